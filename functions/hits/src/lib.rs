//! `hits`: the one HTTP contract every architecture serves, as an axum [`Router`].
//!
//! * `GET /hits` → 200 `text/plain`, the count after this call.
//! * `GET /healthz` → 200 `{"status":"pass"}`; never touches the counter.
//! * `GET /` → the page (`static/index.html`, embedded at build time).
//! * Wrong method on a known path → 405 with `Allow`; unknown path → 404;
//!   store failure → 503 with a short reason (the cause is logged: the first of each reason in
//!   full, the rest counted and summed up once a second, [`edge::log_summary`]).
//!
//! The same router runs on Lambda ([`lambda`], binary `hits`) and as a plain server
//! ([`server`], binary `hits-server`).
//!
//! Every call to the store runs in a [`store_span`] (an X-Ray subsegment on Lambda), and on the
//! Lambda a `GET /hits` response carries a [`metrics::StoreCall`] extension (latency, outcome)
//! that the host turns into an EMF metrics line ([`StoreCalls::Report`]); the server skips both
//! the clock reading and the extension, which nothing there reads.
//!
//! The router has no request-tracing layer: the Lambda host adds tower-http's (request lines at
//! DEBUG, `RUST_LOG=tower_http=debug`); the server goes without, since a span and two events per
//! request cost it more than a tenth of its requests/s (`scripts/bench-http` against nginx;
//! docs/results.md).

use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use counter::SharedCounter;
use edge::log_summary::{ErrorChain, LogSummary};
use tracing::Instrument;
use tracing::field::{Empty, display};

pub mod lambda;
pub mod metrics;
pub mod server;

/// The page, embedded so that every host serves the same bytes with no file layout to get wrong.
pub const PAGE: &str = include_str!("../../../static/index.html");

/// Whether `GET /hits` responses carry a [`metrics::StoreCall`] extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCalls {
    /// The Lambda host: its EMF line per hit reads the extension.
    Report,
    /// The server: nothing reads it.
    Skip,
}

#[derive(Clone)]
struct App {
    counter: SharedCounter,
    calls: StoreCalls,
    /// Store failures are counted by reason and logged about once a second each
    /// ([`LogSummary`]), not one line per request: during a store outage that was ~1 KB per 503.
    failed: LogSummary,
}

/// The router every host serves.
pub fn router(counter: SharedCounter, calls: StoreCalls) -> Router {
    let failed = LogSummary::new(tracing::Level::ERROR, "GET /hits failed", "GET /hits failed");
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/hits", get(hits).head(head_hits))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(App { counter, calls, failed })
}

async fn hits(State(App { counter, calls, failed }): State<App>) -> Response {
    let span = store_span(counter.as_ref(), counter::Call::Increment);
    let started = (calls == StoreCalls::Report).then(Instant::now);
    let result = counter.increment().instrument(span.clone()).await;
    let call = started.map(|started| metrics::StoreCall {
        store: counter.kind(),
        latency: started.elapsed(),
        count: result.as_ref().ok().copied(),
    });
    if let Err(e) = &result {
        span.record("error", display(e));
    }
    drop(span); // closed: the subsegment ends here
    let mut response = match result {
        Ok(count) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            count.to_string(),
        )
            .into_response(),
        Err(e) => {
            let reason = e.reason();
            failed.record(&reason, ErrorChain(e));
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, HeaderValue::from_static("1"))], reason)
                .into_response()
        }
    };
    if let Some(call) = call {
        response.extensions_mut().insert(call);
    }
    response
}

/// The span around one `call` to `counter`. It is marked for X-Ray ([`edge::xray`]: field
/// `xray`, the subsegment name), so on Lambda, in a sampled invocation, it becomes a subsegment:
/// named after the AWS service in namespace `aws` with the API operation, as the adapter says
/// ([`counter::Counter::remote`]), or after the store's kind (`file`, `memory`) otherwise.
/// Record `error` on it when the call fails: the subsegment is then a fault. The SDK's HTTP
/// request inside carries the invocation's trace header by itself (see [`lambda`]).
pub fn store_span(counter: &dyn counter::Counter, call: counter::Call) -> tracing::Span {
    let remote = counter.remote(call);
    // DEBUG: the X-Ray layer takes it whatever the log level (its own filter), while a server
    // logging at INFO (hits-server under load) does not pay for a span per request.
    let span = tracing::debug_span!(
        "store",
        store = counter.kind(),
        op = call.name(),
        xray = remote.map_or(counter.kind(), |r| r.service),
        xray.namespace = Empty,
        aws.operation = Empty,
        error = Empty
    );
    if let Some(remote) = remote {
        span.record("xray.namespace", "aws");
        if let Some(operation) = remote.operation {
            span.record("aws.operation", operation);
        }
    }
    span
}

/// `HEAD /hits` would otherwise run the GET handler and bump the count for a response nobody
/// reads (monitors and link checkers send HEAD): answer with GET's headers, count untouched.
async fn head_hits() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], ())
        .into_response()
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        r#"{"status":"pass"}"#,
    )
        .into_response()
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

/// axum has already put the route's `Allow` header on the response; this adds a body.
async fn method_not_allowed(method: Method) -> (StatusCode, String) {
    (StatusCode::METHOD_NOT_ALLOWED, format!("method {method} not allowed here"))
}
