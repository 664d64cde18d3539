//! The `probe` Lambda (`bootstrap`): measures a URL's latency, or loads it, from inside the
//! region.
//!
//! Events:
//! - `{"url": "...", "hits": N}` (the original's) or `{"url", "count", "concurrency", "warmup",
//!   "method", "timeout_ms", "samples"}`: a sequential probe; answer: the [`probe::Report`].
//! - `{"load": {...}}`: a load run, the fields of [`probe::load::LoadInput`] (what `latency load`
//!   sends for `--via-lambda`); answer: the [`probe::load::LoadReport`]. The run is cut short to
//!   answer before the function's timeout (the report's `ending` is then `deadline`).
//!
//! A bad event fails the invocation with `errorType` `InvalidEvent` and a message naming the
//! field; a load target that cannot be reached fails it with `Unreachable`.

use std::time::{Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use probe::ProbeError;
use serde_json::Value;

// One thread, as in the `latency` CLI: timings include no hand-off between worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when Lambda's LoggingConfig asks for them, text otherwise.
    lambda_runtime::tracing::init_default_subscriber();
    // One client for the life of the execution environment: keep-alive across invocations.
    let prober = probe::Prober::new()?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let prober = prober.clone();
        async move {
            // A deadline not in the future is no deadline (cargo lambda watch sends a relative
            // 600000).
            let deadline = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .ok()
                .map(|left| Instant::now() + left);
            match event.payload {
                Value::Object(mut fields) if fields.contains_key("load") => {
                    let load = fields.remove("load").unwrap_or_default();
                    if let Some(other) = fields.keys().next() {
                        return Err(invalid(ProbeError::Invalid {
                            field: other.clone(),
                            reason: "a load event is {\"load\": {...}} alone; put the run's fields inside it"
                                .into(),
                        }));
                    }
                    load_run(load, deadline).await
                }
                payload => {
                    let spec = probe::Spec::from_event(payload).map_err(invalid)?;
                    // Stop starting requests in time to answer before the function's timeout.
                    let spec = match deadline {
                        Some(deadline) => spec.with_deadline(deadline),
                        None => spec,
                    };
                    serde_json::to_value(prober.run(&spec).await).map_err(internal)
                }
            }
        }
    }))
    .await
}

async fn load_run(load: Value, deadline: Option<Instant>) -> Result<Value, Diagnostic> {
    let input: probe::load::LoadInput = serde_json::from_value(load)
        .map_err(|e| invalid(ProbeError::Invalid { field: "load".into(), reason: e.to_string() }))?;
    let spec = input.validate().map_err(invalid)?;
    let spec = match deadline {
        Some(deadline) => spec.with_deadline(deadline),
        None => spec,
    };
    let report = probe::load::run(&spec, std::future::pending(), |_| {}).await.map_err(|e| {
        tracing::warn!(error = %e, "load target unreachable");
        Diagnostic { error_type: "Unreachable".into(), error_message: e.to_string() }
    })?;
    serde_json::to_value(report).map_err(internal)
}

fn invalid(e: ProbeError) -> Diagnostic {
    tracing::warn!(error = %e, "invalid event");
    Diagnostic { error_type: "InvalidEvent".into(), error_message: e.to_string() }
}

fn internal(e: serde_json::Error) -> Diagnostic {
    Diagnostic { error_type: "Internal".into(), error_message: format!("cannot encode the report: {e}") }
}
