//! `POST /items` (and `POST /`, where the seed's k6 script posts): one item, validated
//! ([`pipeline::item`]), stamped with its arrival time (`upstream_ms`, this host's clock), put
//! on the Kinesis stream (partition key = the item's id), and answered `200
//! {"message":"success"}` only once Kinesis has acknowledged it.
//!
//! | request | answer |
//! |---|---|
//! | a valid item | 200 `{"message":"success"}` |
//! | a `Content-Type` other than `application/json` (parameters allowed) | 415 |
//! | a body over 1 MiB (or too large for one Kinesis record) | 413 |
//! | anything else invalid | 400 `{"message":"<field>: <reason>"}` |
//! | another method on `/items` or `/` | 405 with `Allow: POST` |
//! | another path | 404 |
//! | Kinesis failing after the SDK's attempts and timeouts | 503, `Retry-After: 1`, `{"message":"kinesis: …"}` |
//!
//! Nothing is put unless the item is valid. The Lambda ([`lambda`]) serves this router for API
//! Gateway (HTTP API v2, REST v1) and Function URL events.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use edge::log_summary::LogSummary;
use pipeline::{Error, SharedStream, item, record, stamps};

pub mod lambda;

#[derive(Clone)]
struct App {
    stream: SharedStream,
    /// 503s counted by cause and logged about once a second, not one line per request.
    refused: LogSummary,
}

/// The router the Lambda serves.
pub fn router(stream: SharedStream) -> Router {
    let refused = LogSummary::new(tracing::Level::WARN, "item refused", "items refused");
    Router::new()
        .route("/items", post(items))
        .route("/", post(items))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One byte over the limit, so that `item::parse` sees an oversized body and answers with
        // its own message.
        .layer(DefaultBodyLimit::max(item::MAX_BODY_BYTES + 1))
        .with_state(App { stream, refused })
}

fn json(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// The answer to a refused item: the error's status, `{"message": …}`, and `Retry-After: 1`
/// when the stream failed.
fn refusal(e: &Error) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json(status, &e.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    response
}

async fn items(State(app): State<App>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let upstream_ms = stamps::now_ms();
    match take(&app.stream, &headers, body, upstream_ms).await {
        Ok(()) => json(StatusCode::OK, "success"),
        Err(e) => {
            if e.status() >= 500 {
                app.refused
                    .record(if e.is_timeout() { "kinesis timed out" } else { "kinesis failed" }, e.clone());
            } else {
                tracing::debug!(error = %e, "refused");
            }
            refusal(&e)
        }
    }
}

/// One item: validated, encoded, put; `Ok` once Kinesis acknowledged it.
async fn take(
    stream: &SharedStream,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    upstream_ms: u64,
) -> Result<(), Error> {
    item::check_content_type(headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)")))?;
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(ref inner) if inner.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::TooLarge { limit: item::MAX_BODY_BYTES }
        }
        other => Error::field("body", format!("cannot be read: {}", other.body_text())),
    })?;
    let item = item::parse(&body)?;
    let data = record::encode(&item, upstream_ms)?;
    stream.put(&item.id, data).await
}

async fn not_found() -> Response {
    json(StatusCode::NOT_FOUND, "not found; POST /items")
}

/// axum has already put the route's `Allow: POST` on the response; this adds a body.
async fn method_not_allowed(method: Method) -> Response {
    json(StatusCode::METHOD_NOT_ALLOWED, &format!("method {method} not allowed; POST /items"))
}
