//! The Lambda host: the router behind API Gateway (REST v1, HTTP v2), Function URLs, and the
//! scheduled warmer.

use std::convert::Infallible;

use counter::SharedCounter;
use lambda_http::Adapter;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceBuilder};

/// What the function accepts: an HTTP event from any front door, or the warmer.
#[derive(Debug)]
pub enum Event {
    /// `{"instruction":"warmer"}` from a scheduled rule (seed 004).
    Warmer {
        instruction: String,
    },
    Http(Box<LambdaRequest>),
}

impl<'de> Deserialize<'de> for Event {
    /// HTTP events (the hot path) are tried first. `LambdaRequest` only deserializes from raw
    /// JSON text, so this cannot be a `#[serde(untagged)]` enum.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Scheduled {
            instruction: String,
        }
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        if let Ok(request) = serde_json::from_str::<LambdaRequest>(raw.get()) {
            return Ok(Event::Http(Box::new(request)));
        }
        match serde_json::from_str::<Scheduled>(raw.get()) {
            Ok(s) => Ok(Event::Warmer { instruction: s.instruction }),
            Err(_) => Err(serde::de::Error::custom(
                "expected an API Gateway (REST or HTTP API) or Function URL event, or {\"instruction\":\"warmer\"}",
            )),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// The API Gateway / Function URL response (`lambda_http` does not export its type).
    Http(serde_json::Value),
    Warmer {
        warmed: bool,
        store: &'static str,
    },
}

/// A scheduled event this function does not know (only `warmer` is).
#[derive(Debug, thiserror::Error)]
#[error("unknown instruction {0:?}; the only one is \"warmer\"")]
pub struct UnknownInstruction(String);

pub use edge::strip_stage;

/// The whole function as a plain async fn of the event, so tests can drive it without a runtime.
pub fn handler(
    counter: SharedCounter,
) -> impl Service<LambdaEvent<Event>, Response = Reply, Error = lambda_runtime::Error, Future: Send> + Clone {
    let http = ServiceBuilder::new().map_request(strip_stage).service(crate::router(counter.clone()));
    service_fn(move |event: LambdaEvent<Event>| {
        let counter = counter.clone();
        let http = http.clone();
        async move {
            match event.payload {
                Event::Warmer { instruction } if instruction == "warmer" => {
                    // Keep the store connection warm; never touch the count.
                    if let Err(e) = counter.warm().await {
                        tracing::warn!(error = %e, "warmer could not reach the store");
                    }
                    Ok(Reply::Warmer { warmed: true, store: counter.kind() })
                }
                Event::Warmer { instruction } => Err(UnknownInstruction(instruction).into()),
                Event::Http(request) => {
                    // The adapter is not `Send`, so it must not live across an await; the
                    // router is always ready, so calling it straight away is fine.
                    let response = Adapter::from(http).call(LambdaEvent::new(*request, event.context));
                    let response = response.await.map_err(|e: Infallible| match e {})?;
                    Ok(Reply::Http(serde_json::to_value(response)?))
                }
            }
        }
    })
}

/// Runs the function: warms the store connection during init (full CPU, not billed at the
/// throttled rate on the first request), then serves events until the runtime stops it.
pub async fn run(counter: SharedCounter) -> Result<(), lambda_runtime::Error> {
    // HITS_PRECONNECT=0 skips the pre-connect, so `latency cold-start` can show what it saves.
    if matches!(std::env::var("HITS_PRECONNECT").as_deref(), Ok("0" | "false")) {
        tracing::info!(store = counter.kind(), "store pre-connect skipped (HITS_PRECONNECT=0)");
        return lambda_runtime::run(handler(counter)).await;
    }
    let started = std::time::Instant::now();
    match counter.warm().await {
        Ok(()) => tracing::info!(
            store = counter.kind(),
            warm_ms = started.elapsed().as_millis() as u64,
            "store connection open"
        ),
        Err(e) => {
            tracing::warn!(store = counter.kind(), error = %e, "could not pre-connect to the store; will retry per request")
        }
    }
    lambda_runtime::run(handler(counter)).await
}

/// JSON logs when Lambda asks for them (`LoggingConfig.LogFormat: JSON`), text otherwise.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}
