//! The Lambda Runtime API as the bootstrap sees it: `GET …/invocation/next` long-polls for the
//! next invocation, and what the bootstrap does — polls, responses, errors, anything else — goes
//! to the harness as a [`Signal`], stamped when it happened.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use super::plan::{ACCOUNT_ID, FUNCTION_NAME, Plan};

/// One invocation waiting for the bootstrap's `/next`.
pub(super) struct Invocation {
    pub(super) id: String,
    event: Bytes,
    deadline_ms: u128,
    arn: String,
    trace_id: String,
}

/// What the bootstrap did, stamped when the harness saw it.
#[derive(Debug)]
pub(super) enum Signal {
    Polled { at: Instant },
    Delivered { id: String, at: Instant },
    Response { id: String, at: Instant, body: Bytes },
    InvocationError { id: String, error_type: String, body: Bytes },
    InitError { error_type: String, body: Bytes },
    Unexpected { method: Method, uri: Uri },
}

pub(super) struct Api {
    pub(super) invocations: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pub(super) signals: mpsc::UnboundedSender<Signal>,
}

impl Api {
    fn signal(&self, signal: Signal) {
        // The receiver is gone only once the run is over; nothing is waiting for this then.
        let _ = self.signals.send(signal);
    }
}

pub(super) fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(unexpected)
        .with_state(api)
}

/// `GET /next`: long-polls until the harness queues an invocation, as Lambda's does.
async fn next(State(api): State<Arc<Api>>) -> Response {
    api.signal(Signal::Polled { at: Instant::now() });
    let invocation = api.invocations.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The run is over; Lambda would have frozen or stopped the process by now.
        return (StatusCode::GONE, "no more invocations").into_response();
    };
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.id.clone()),
        ("lambda-runtime-deadline-ms", invocation.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", invocation.arn),
        ("lambda-runtime-trace-id", invocation.trace_id),
    ];
    for (name, value) in pairs {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(e) => tracing::error!(name, %value, error = %e, "cannot send a runtime header"),
        }
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    api.signal(Signal::Delivered { id: invocation.id, at: Instant::now() });
    (StatusCode::OK, headers, invocation.event).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"OK"}"#).into_response()
}

async fn response(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    api.signal(Signal::Response { id, at: Instant::now(), body });
    accepted()
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unspecified")
        .to_owned()
}

async fn invocation_error(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.signal(Signal::InvocationError { id, error_type: error_type(&headers), body });
    accepted()
}

async fn init_error(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    api.signal(Signal::InitError { error_type: error_type(&headers), body });
    accepted()
}

async fn unexpected(State(api): State<Arc<Api>>, method: Method, uri: Uri) -> Response {
    api.signal(Signal::Unexpected { method, uri });
    (StatusCode::NOT_FOUND, "not part of the Lambda Runtime API this harness plays").into_response()
}

/// Aborts the Runtime API server task when the run ends, however it ends.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn invocation(plan: &Plan, run: u32, call: u32) -> Invocation {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = format!("{:08x}-{:04x}-4000-8000-{:012x}", now.as_secs() & 0xffff_ffff, call, run);
    Invocation {
        id,
        event: plan.event.clone(),
        deadline_ms: (now + plan.timeout).as_millis(),
        arn: format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{FUNCTION_NAME}", plan.region),
        trace_id: format!(
            "Root=1-{:08x}-{:012x}{:012x};Parent={:016x};Sampled=0",
            now.as_secs() & 0xffff_ffff,
            run,
            call,
            now.subsec_nanos()
        ),
    }
}
