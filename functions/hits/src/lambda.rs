//! The Lambda host: the router behind API Gateway (REST v1, HTTP v2), Function URLs, and the
//! scheduled warmer.
//!
//! Operations (seed 004): logs as Lambda asks for them, with the request id
//! ([`edge::logs`]); store calls as X-Ray subsegments ([`crate::store_span`], [`edge::xray`]);
//! one EMF metrics line on stdout per `GET /hits` and per warmer run ([`crate::metrics`],
//! [`Metrics`]).
//!
//! The store call's own AWS request needs nothing here to join the trace: lambda_runtime 1.5
//! sets `_X_AMZN_TRACE_ID` per invocation when it runs them one at a time (`run`, as here),
//! and the SDK's recursion-detection interceptor (aws-runtime 1.10, every client) copies it
//! into the `X-Amzn-Trace-Id` header of each request when `AWS_LAMBDA_FUNCTION_NAME` is set.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use counter::SharedCounter;
use lambda_http::Adapter;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use tower::{Service, ServiceBuilder};
use tracing::Instrument;
use tracing::field::display;

use crate::metrics::{self, StoreCall};

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

/// Where the EMF metrics lines go: stdout on Lambda, where CloudWatch Logs extracts the
/// metrics; a function of the line in tests; or nowhere.
#[derive(Clone, Default)]
pub struct Metrics(Option<Sink>);

/// What takes each line.
type Sink = Arc<dyn Fn(&str) + Send + Sync>;

impl Metrics {
    /// No lines.
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// Each line to stdout in one `write_all` of the complete line, under stdout's lock, so it
    /// never interleaves with a log line. A failed write is dropped: metrics never fail a request.
    pub fn stdout() -> Metrics {
        Metrics::to(|line| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        })
    }

    /// Each line (with its `\n`) to `sink`.
    pub fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Metrics {
        Metrics(Some(Arc::new(sink)))
    }

    /// Writes the line `line` makes, if lines go anywhere.
    fn emit(&self, line: impl FnOnce(u64) -> String) {
        if let Some(sink) = &self.0 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            sink(&line(now.as_millis() as u64));
        }
    }
}

/// The whole function as a plain async fn of the event, so tests can drive it without a
/// runtime; no metrics lines ([`handler_with`] chooses).
pub fn handler(
    counter: SharedCounter,
) -> impl Service<LambdaEvent<Event>, Response = Reply, Error = lambda_runtime::Error, Future: Send> + Clone {
    handler_with(counter, Metrics::off())
}

/// [`handler`] writing an EMF line per `GET /hits` and per warmer run to `metrics`. Its first
/// invocation is the cold start (`ColdStart` 1), whatever that invocation is.
pub fn handler_with(
    counter: SharedCounter,
    metrics: Metrics,
) -> impl Service<LambdaEvent<Event>, Response = Reply, Error = lambda_runtime::Error, Future: Send> + Clone {
    // Request lines at DEBUG (`RUST_LOG=tower_http=debug`), within the invocation's span.
    let router = crate::router(counter.clone(), crate::StoreCalls::Report)
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let first = Arc::new(AtomicBool::new(true));
    service_fn(move |event: LambdaEvent<Event>| {
        let cold_start = first.swap(false, Ordering::Relaxed);
        let counter = counter.clone();
        let router = router.clone();
        let metrics = metrics.clone();
        async move {
            let request_id = event.context.request_id.clone();
            match event.payload {
                Event::Warmer { instruction } if instruction == "warmer" => {
                    // Keep the store connection warm; never touch the count.
                    let span = crate::store_span(counter.as_ref(), counter::Call::Warm);
                    let started = Instant::now();
                    let warmed = counter.warm().instrument(span.clone()).await;
                    // Not `warm_ms`: `latency cold-start` reads that one from the init line.
                    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                    match &warmed {
                        Ok(()) => {
                            tracing::info!(
                                store = counter.kind(),
                                elapsed_ms,
                                "warmer: store connection warm"
                            );
                        }
                        Err(e) => {
                            span.record("error", display(e));
                            tracing::warn!(error = %e, "warmer could not reach the store");
                        }
                    }
                    drop(span);
                    metrics.emit(|timestamp_ms| {
                        let at = metrics::Invocation { request_id: &request_id, cold_start, timestamp_ms };
                        metrics::warmer_line(counter.kind(), warmed.is_ok(), &at)
                    });
                    Ok(Reply::Warmer { warmed: true, store: counter.kind() })
                }
                Event::Warmer { instruction } => Err(UnknownInstruction(instruction).into()),
                Event::Http(request) => {
                    // `GET /hits` responses carry what the store call did; the line is written
                    // as the router answers.
                    let http = ServiceBuilder::new()
                        .map_request(edge::strip_stage)
                        .map_response(move |response: axum::response::Response| {
                            if let Some(call) = response.extensions().get::<StoreCall>() {
                                metrics.emit(|timestamp_ms| {
                                    let at = metrics::Invocation {
                                        request_id: &request_id,
                                        cold_start,
                                        timestamp_ms,
                                    };
                                    metrics::hit_line(call, &at)
                                });
                            }
                            response
                        })
                        .service(router);
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

/// The function's settings, from its environment (template.yaml), read once in `main`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `HITS_STORE` (unset or empty: `memory`).
    pub store: counter::StoreSpec,
    /// One EMF line per hit and per warmer run; `HITS_METRICS=0` (or `false`) turns them off.
    pub metrics: bool,
    /// Warm the store connection at init; `HITS_PRECONNECT=0` skips it, so `latency cold-start`
    /// can show what it saves.
    pub preconnect: bool,
    /// The AWS SDK's timeouts (`AWS_CONNECT_TIMEOUT`, `AWS_ATTEMPT_TIMEOUT`,
    /// `AWS_OPERATION_TIMEOUT`, `AWS_MAX_ATTEMPTS`; [`edge::aws`]). Keep the operation timeout
    /// below the function's timeout, so a stalled store is a 503 rather than a killed invocation.
    pub aws: aws_setup::Timeouts,
}

/// A Lambda environment the function cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Store(#[from] counter::ConfigError),
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
}

impl Settings {
    /// Reads the settings from `var` (`std::env::var` in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let off = |name| matches!(var(name).as_deref(), Some("0" | "false"));
        let store = match var("HITS_STORE") {
            Some(value) if !value.trim().is_empty() => value.parse()?,
            _ => counter::StoreSpec::Memory,
        };
        let aws = edge::aws::timeouts_from_vars(&var)?;
        Ok(Settings { store, metrics: !off("HITS_METRICS"), preconnect: !off("HITS_PRECONNECT"), aws })
    }
}

/// Runs the function: warms the store connection during init (full CPU, not billed at the
/// throttled rate on the first request), then serves events until the runtime stops it.
pub async fn run(counter: SharedCounter, settings: &Settings) -> Result<(), lambda_runtime::Error> {
    let metrics = if settings.metrics { Metrics::stdout() } else { Metrics::off() };
    if !settings.preconnect {
        tracing::info!(store = counter.kind(), "store pre-connect skipped (HITS_PRECONNECT=0)");
        return lambda_runtime::run(handler_with(counter, metrics)).await;
    }
    let started = std::time::Instant::now();
    match counter.warm().await {
        Ok(()) => tracing::info!(
            store = counter.kind(),
            warm_ms = started.elapsed().as_millis() as u64,
            "store connection open"
        ),
        Err(e) => {
            tracing::warn!(store = counter.kind(), error = %e, "could not pre-connect to the store; will retry per request");
        }
    }
    lambda_runtime::run(handler_with(counter, metrics)).await
}
