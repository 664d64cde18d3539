//! `POST /events`: one axum [`Router`] for both hosts.
//!
//! * `POST /events` (`Content-Type: application/json`, or `text/plain` holding JSON as
//!   `navigator.sendBeacon` sends it), one event object or an array of up to 500. Mode per
//!   request: `?mode=sync` or `X-Ingest-Mode: sync`; async by default.
//!   * async → 202 `{"accepted":n,"invalid":m}` once the events are handed over (Lambda: to the
//!     sink; server: to the buffer). Invalid events are counted and routed to the invalid sink.
//!     On Lambda, events the sink still refused after the retries are reported as
//!     `"undelivered":k`.
//!   * sync → all-or-nothing: any invalid event → 400 with `errors: [{index, error}]` and nothing
//!     taken; otherwise 200 `{"accepted":n}` only after the sink acknowledged every record.
//!   * `Content-Encoding: gzip` bodies are decompressed first (at most 1 MiB of output); any
//!     other encoding but `identity` → 415 naming it.
//!   * not events at all (content type or encoding, empty, not JSON, more than 1 MiB, too many)
//!     → 4xx `{"error": "..."}` in both modes.
//!   * buffer full → 503 + `Retry-After`; sink did not acknowledge (sync) → 503; shutting down →
//!     503.
//! * `OPTIONS /events` → 204, the CORS preflight; every `/events` answer carries the CORS
//!   headers for an allowed origin ([`cors`]).
//! * `GET /healthz` → 200 `{"status":"pass","sink":"…"}`.
//! * `GET /metrics` → Prometheus text ([`prometheus`]).
//!
//! The Lambda ([`lambda`], binary `ingest`) holds an [`ingest::direct::Direct`]; the server
//! ([`server`], binary `ingest-server`) an [`ingest::batcher::Buffered`].

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use edge::log_summary::LogSummary;
use ingest::event::{self, BodyError, MAX_BODY_BYTES};
use ingest::{IngestError, Invalid, Mode, SharedIngest, Submission};
use serde::Serialize;

use crate::cors::AllowedOrigins;

pub mod config;
pub mod cors;
pub mod lambda;
pub mod prometheus;
pub mod server;

/// What the handlers share: the port, and the count of refused requests.
#[derive(Clone)]
struct App {
    ingest: SharedIngest,
    /// 503s are counted by cause and logged about once a second each ([`LogSummary`]), not one
    /// line per request: under load shedding that was 2 lines per request, hundreds of MB in
    /// seconds. The metrics count each one.
    refused: LogSummary,
}

/// The router both hosts serve; `origins` may read `/events`' answers from a browser ([`cors`]).
pub fn router(ingest: SharedIngest, origins: AllowedOrigins) -> Router {
    let refused = LogSummary::new(tracing::Level::WARN, "request refused", "requests refused");
    let cors = axum::middleware::from_fn_with_state(Arc::new(origins), cors::layer);
    Router::new()
        .route("/events", post(events).options(preflight).layer(cors))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One byte over the limit, so that `event::parse` sees an oversized body and answers
        // with its own message (axum's rejection would be plain text).
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
        .with_state(App { ingest, refused })
}

/// Why a request was refused, mapped to a status and a JSON body at the edge.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("{} of the events are invalid; nothing was accepted (sync mode is all-or-nothing)", .0.len())]
    InvalidEvents(Vec<Invalid>),
    #[error("mode must be sync or async, got {0:?}")]
    BadMode(String),
    #[error("cannot read the body: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [IndexedError],
}

#[derive(Serialize)]
struct IndexedError {
    index: usize,
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, errors, retry_after) = match &self {
            ApiError::Body(e) => {
                (StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST), vec![], None)
            }
            ApiError::InvalidEvents(invalid) => (
                StatusCode::BAD_REQUEST,
                invalid.iter().map(|i| IndexedError { index: i.index, error: i.error.to_string() }).collect(),
                None,
            ),
            ApiError::BadMode(_) => (StatusCode::BAD_REQUEST, vec![], None),
            ApiError::Unreadable(_) => (StatusCode::BAD_REQUEST, vec![], None),
            ApiError::Ingest(IngestError::Overloaded { retry_after, .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, vec![], Some(retry_after.as_secs().max(1)))
            }
            ApiError::Ingest(IngestError::Undelivered { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, vec![], Some(1))
            }
            ApiError::Ingest(IngestError::ShuttingDown) => (StatusCode::SERVICE_UNAVAILABLE, vec![], Some(1)),
        };
        let body = serde_json::to_vec(&ErrorBody { error: self.to_string(), errors: &errors })
            .unwrap_or_else(|_| br#"{"error":"unprintable error"}"#.to_vec());
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
                .into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl ApiError {
    /// What a refusal is counted under in the log summary: a short text that does not vary
    /// with the request (`None`: the client's fault, logged at DEBUG only).
    fn server_cause(&self) -> Option<&'static str> {
        match self {
            ApiError::Ingest(IngestError::Overloaded { .. }) => Some("the buffer is full"),
            ApiError::Ingest(IngestError::Undelivered { .. }) => Some("the sink did not acknowledge in time"),
            ApiError::Ingest(IngestError::ShuttingDown) => Some("shutting down"),
            _ => None,
        }
    }
}

/// `?mode=` wins over `X-Ingest-Mode`; neither means async.
fn mode_of(uri: &Uri, headers: &HeaderMap) -> Result<Mode, ApiError> {
    let query = uri.query().unwrap_or("").split('&').find_map(|pair| pair.strip_prefix("mode="));
    let header = headers.get("x-ingest-mode").map(|v| v.to_str().unwrap_or("(not text)"));
    match query.or(header).map(str::trim) {
        None | Some("") => Ok(Mode::Async),
        Some(m) if m.eq_ignore_ascii_case("async") => Ok(Mode::Async),
        Some(m) if m.eq_ignore_ascii_case("sync") => Ok(Mode::Sync),
        Some(other) => Err(ApiError::BadMode(other.to_owned())),
    }
}

async fn events(
    State(app): State<App>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match take(&app.ingest, &uri, &headers, body).await {
        Ok(response) => response,
        Err(e) => {
            match (e.server_cause(), &e) {
                (Some(cause), ApiError::Ingest(ingest)) => app.refused.record(cause, ingest.clone()),
                _ => tracing::debug!(error = %e, "refused"),
            }
            e.into_response()
        }
    }
}

/// One `POST /events`: the answer, or why the request was refused.
async fn take(
    ingest: &SharedIngest,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mode = mode_of(uri, headers)?;
    event::check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)")))?;
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(ref inner) if inner.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::Body(BodyError::TooLarge)
        }
        other => ApiError::Unreadable(other.body_text()),
    })?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("(not text)"));
    let body = event::decode(encoding, &body)?;
    let parsed = event::parse(&body)?;
    if mode == Mode::Sync && !parsed.invalid.is_empty() {
        return Err(ApiError::InvalidEvents(parsed.invalid));
    }
    let receipt = ingest.submit(Submission { mode, valid: parsed.valid, invalid: parsed.invalid }).await?;
    let status = match mode {
        Mode::Sync => StatusCode::OK,
        Mode::Async => StatusCode::ACCEPTED,
    };
    let body = match (mode, receipt.undelivered) {
        (Mode::Sync, _) => format!(r#"{{"accepted":{}}}"#, receipt.accepted),
        (Mode::Async, 0) => format!(r#"{{"accepted":{},"invalid":{}}}"#, receipt.accepted, receipt.invalid),
        (Mode::Async, n) => {
            format!(r#"{{"accepted":{},"invalid":{},"undelivered":{n}}}"#, receipt.accepted, receipt.invalid)
        }
    };
    Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The CORS preflight of `POST /events`; [`cors::layer`] adds its headers.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn healthz(State(app): State<App>) -> Response {
    let body = serde_json::json!({"status": "pass", "sink": app.ingest.describe()});
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    ([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], prometheus::render(&app.ingest.metrics_snapshot()))
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"not found; POST /events"}"#,
    )
        .into_response()
}

/// axum has already put the route's `Allow` header on the response; this adds a body.
async fn method_not_allowed(method: Method) -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"error":"method {method} not allowed here"}}"#),
    )
        .into_response()
}
