//! What every host here shares at the edge: API Gateway stage stripping for the Lambdas, the
//! server kit ([`server`]: signals, drain with a deadline, the `listening on` line), and the
//! logs: Lambda's ([`logs`], with the X-Ray layer of [`xray`]) and the servers'
//! ([`init_server_tracing`]).

use lambda_http::RequestExt;

pub mod logs;
pub mod server;
pub mod xray;

pub use logs::init_lambda_tracing;

/// Strips an API Gateway stage prefix (`/prod/hits` → `/hits`), so routes match whatever the
/// stage is called. `lambda_http` puts the stage in front of REST and named-stage HTTP API
/// paths; `$default` stages and Function URLs have none.
pub fn strip_stage(mut req: lambda_http::Request) -> lambda_http::Request {
    let stage = match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV1(c)) => c.stage.clone(),
        Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| s != "$default" && !s.is_empty()) else {
        return req;
    };
    let prefix = format!("/{stage}");
    let path = req.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return req,
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = lambda_http::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Logs of the server binaries: text on stderr (stdout may be data), `RUST_LOG` as the filter
/// (default `info`), colours only on a terminal.
pub fn init_server_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// Tests that install a subscriber take turns (all of this crate's, [`crate::logs`]' and
    /// [`crate::xray`]'s): tracing caches, per call site, whether any subscriber wants it, and a
    /// call site first met while another test's subscriber is the only one could be missed.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
