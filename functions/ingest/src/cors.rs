//! CORS for `/events`, so that pages on other origins can post events (what the original
//! services were for: client metrics from web pages). Answered by the router itself, so
//! `ingest-server`, the Lambda behind the HTTP API and a Function URL answer alike; the template
//! therefore gives neither front door a CORS configuration of its own (either would answer
//! preflights itself and replace the function's headers).
//!
//! * `OPTIONS /events` (a preflight: `fetch` with `application/json`, a `Content-Encoding`, or
//!   `X-Ingest-Mode`) → `204` with `Access-Control-Allow-Methods: POST`,
//!   `Access-Control-Allow-Headers: content-type, content-encoding, x-ingest-mode` and
//!   `Access-Control-Max-Age: 7200` (Chromium's cap).
//! * Every `/events` response carries `Access-Control-Allow-Origin`: `*` when any origin is
//!   allowed (the default, as the original service answered), else the request's own `Origin`
//!   when it is in the list, with `Access-Control-Allow-Credentials: true` and `Vary: Origin` on
//!   every response so a cache never hands one origin's answer to another; and
//!   `Access-Control-Expose-Headers: retry-after`, so a page can honour a 503's `Retry-After`.
//! * Credentials: `navigator.sendBeacon` always sends them, and a credentialed request passes
//!   CORS only with the page's own origin and `Allow-Credentials` — never with `*` (Fetch
//!   standard). A string beacon (`text/plain`) needs no preflight and arrives either way; a beacon
//!   that is preflighted (a `Blob` of `application/json`) passes only for listed origins. The
//!   service reads no cookies, so a listed origin's credentials give it nothing more.
//! * An origin not in the list gets no CORS headers at all, and the request is handled exactly as
//!   without CORS: a `POST` is taken or refused as the contract says (a browser then hides the
//!   answer from the page; a preflight without the headers stops the browser before it posts).
//!   CORS is the browser's rule for what a page may read, not access control: a `text/plain`
//!   beacon needs no preflight, so its events arrive from any origin.
//!
//! Why not `tower-http`'s `CorsLayer` (the workspace builds tower-http with `trace` only): it
//! answers every `OPTIONS` on every route it wraps with `200`, and sends the allowed methods and
//! headers to any origin, allowed or not. This is the whole of what `/events` needs, in a few
//! lines and without another feature to compile into the Lambda.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// How long a browser may reuse a preflight's answer: 2 hours, the most Chromium keeps one.
pub const MAX_AGE_SECS: u32 = 7200;
/// The request headers a page may send beyond the CORS-safelisted ones.
pub const ALLOW_HEADERS: &str = "content-type, content-encoding, x-ingest-mode";

/// Which origins may read `/events`' answers: `*` (any) or a comma-separated list of origins
/// (`https://example.com,http://localhost:8080`), the form of `--allowed-origins` /
/// `INGEST_ALLOWED_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedOrigins {
    #[default]
    Any,
    /// Each as browsers serialise an `Origin` header: `scheme://host[:port]`, lower case.
    List(Vec<String>),
}

/// An `--allowed-origins` value that is not `*` or a list of origins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allowed origins {value:?}: {why}; give * (any origin) or origins like https://example.com,http://localhost:8080"
)]
pub struct BadOrigins {
    value: String,
    why: String,
}

impl FromStr for AllowedOrigins {
    type Err = BadOrigins;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| BadOrigins { value: value.to_owned(), why };
        if value.trim() == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if origin == "*" {
                return Err(bad("* cannot be mixed with origins".into()));
            }
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err(bad(format!("{origin:?} has no scheme (https://…)")));
            };
            if scheme.is_empty() || host.is_empty() {
                return Err(bad(format!("{origin:?} is not scheme://host[:port]")));
            }
            if host.contains('/') {
                return Err(bad(format!(
                    "{origin:?} has a path; an origin is scheme://host[:port], no slash after it"
                )));
            }
            if HeaderValue::from_str(origin).is_err() || origin.contains(char::is_whitespace) {
                return Err(bad(format!("{origin:?} is not a header value")));
            }
            origins.push(origin.to_ascii_lowercase());
        }
        if origins.is_empty() {
            return Err(bad("no origin given".into()));
        }
        Ok(AllowedOrigins::List(origins))
    }
}

impl std::fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowedOrigins::Any => f.write_str("*"),
            AllowedOrigins::List(origins) => f.write_str(&origins.join(",")),
        }
    }
}

impl AllowedOrigins {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it may read the
    /// answer.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            AllowedOrigins::Any => Some(HeaderValue::from_static("*")),
            AllowedOrigins::List(list) => {
                let origin = origin?;
                let text = origin.to_str().ok()?;
                list.iter().any(|o| o.eq_ignore_ascii_case(text)).then(|| origin.clone())
            }
        }
    }
}

/// The middleware on `/events`: adds the CORS headers to whatever the route answered (the
/// preflight's `204` included, and every error).
pub async fn layer(State(origins): State<Arc<AllowedOrigins>>, request: Request, next: Next) -> Response {
    let preflight = request.method() == Method::OPTIONS;
    let allow = origins.allow(request.headers().get(header::ORIGIN));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if matches!(*origins, AllowedOrigins::List(_)) {
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    let Some(allow) = allow else {
        return response;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    if matches!(*origins, AllowedOrigins::List(_)) {
        // `navigator.sendBeacon` always sends credentials, so a beacon that needs a preflight
        // (a JSON Blob) passes only with the page's own origin and this; `*` never allows it.
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    if preflight {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
    } else {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_origins_are_any_or_a_list_of_origins() {
        assert_eq!("*".parse::<AllowedOrigins>().unwrap(), AllowedOrigins::Any);
        assert_eq!(
            " https://Example.com , http://localhost:8080 ".parse::<AllowedOrigins>().unwrap(),
            AllowedOrigins::List(vec!["https://example.com".into(), "http://localhost:8080".into()])
        );
        assert_eq!(
            "https://a.example,http://localhost:1".parse::<AllowedOrigins>().unwrap().to_string(),
            "https://a.example,http://localhost:1"
        );
    }

    #[test]
    fn a_value_that_is_not_origins_is_explained() {
        for (value, needle) in [
            ("", "no origin given"),
            (" , ", "no origin given"),
            ("https://a.example,*", "cannot be mixed"),
            ("example.com", "has no scheme"),
            ("https://example.com/", "has a path"),
            ("https://example.com/app", "has a path"),
            ("https://", "not scheme://host"),
        ] {
            let e = value.parse::<AllowedOrigins>().unwrap_err().to_string();
            assert!(
                e.contains(needle) && e.contains("https://example.com,http://localhost:8080"),
                "{value:?}: {e}"
            );
        }
    }
}
