//! `hits`: the one HTTP contract every architecture serves, as an axum [`Router`].
//!
//! * `GET /hits` → 200 `text/plain`, the count after this call.
//! * `GET /healthz` → 200 `{"status":"pass"}`; never touches the counter.
//! * `GET /` → the page (`static/index.html`, embedded at build time).
//! * Wrong method on a known path → 405 with `Allow`; unknown path → 404;
//!   store failure → 503 with a short reason (the cause is logged).
//!
//! The same router runs on Lambda ([`lambda`], binary `hits`) and as a plain server
//! ([`server`], binary `hits-server`).

use std::error::Error as _;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use counter::SharedCounter;
use tower_http::trace::TraceLayer;

pub mod lambda;
pub mod server;

/// The page, embedded so that every host serves the same bytes with no file layout to get wrong.
pub const PAGE: &str = include_str!("../../../static/index.html");

/// The router every host serves.
pub fn router(counter: SharedCounter) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/hits", get(hits).head(head_hits))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(counter)
}

async fn hits(State(counter): State<SharedCounter>) -> Response {
    match counter.increment().await {
        Ok(count) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            count.to_string(),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(store = counter.kind(), error = %e, cause = ?e.source(), "increment failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
                e.reason(),
            )
                .into_response()
        }
    }
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
