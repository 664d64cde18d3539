//! The `probe` Lambda (`bootstrap`): measures a URL's latency from inside the region.
//!
//! Event: `{"url": "...", "hits": N}` (the original's) or `{"url", "count", "concurrency",
//! "warmup", "method", "timeout_ms", "samples"}`; answer: the [`probe::Report`] as JSON. A bad
//! event fails the invocation with `errorType` `InvalidEvent` and a message naming the field.

use std::time::{Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};

// One thread, as in the `latency` CLI: timings include no hand-off between worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when Lambda's LoggingConfig asks for them, text otherwise.
    lambda_runtime::tracing::init_default_subscriber();
    // One client for the life of the execution environment: keep-alive across invocations.
    let prober = probe::Prober::new()?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let prober = prober.clone();
        async move {
            let spec = probe::Spec::from_event(event.payload).map_err(|e| {
                tracing::warn!(error = %e, "invalid event");
                Diagnostic { error_type: "InvalidEvent".into(), error_message: e.to_string() }
            })?;
            // Stop starting requests in time to answer before the function's timeout. A deadline
            // not in the future is no deadline (cargo lambda watch sends a relative 600000).
            let spec = match event.context.deadline().duration_since(SystemTime::now()) {
                Ok(left) => spec.with_deadline(Instant::now() + left),
                Err(_) => spec,
            };
            Ok::<_, Diagnostic>(prober.run(&spec).await)
        }
    }))
    .await
}
