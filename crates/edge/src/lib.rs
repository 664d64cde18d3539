//! What every host here shares at the edge: API Gateway stage stripping for the Lambdas, the
//! server kit ([`server`]: signals, drain with a deadline, the `listening on` line; with
//! [`connections`]: the timeouts and the cap every HTTP connection is held to), and the
//! logs: Lambda's ([`logs`], with the X-Ray layer of [`xray`]) and the servers'
//! ([`init_server_tracing`]), per-request failures counted rather than logged one by one
//! ([`log_summary`]); and the AWS SDK's timeouts as every host takes them ([`aws`]).

use lambda_http::RequestExt;

pub mod aws;
pub mod connections;
pub mod log_summary;
pub mod logs;
mod seconds;
pub mod server;
pub mod xray;

pub use logs::init_lambda_tracing;

/// Strips an API Gateway stage prefix (`/prod/hits` → `/hits`), so routes match whatever the
/// stage is called. `lambda_http` puts the stage in front of REST and named-stage HTTP API
/// paths; `$default` stages and Function URLs have none. The query string is kept; a path that
/// only starts with the stage's letters (`/prodhits`) is left alone.
///
/// Why not `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` instead: in lambda_http 1.3.2 that variable
/// only stops lambda_http from *adding* the stage (`apigw_path_with_stage` in its
/// `src/request.rs` returns the event's path untouched when `env::var(..).is_ok()`, read on
/// every request, whatever the value). A REST (v1) event's `path` has no stage, so that is
/// enough there; but an HTTP API (v2) event on a named stage has the stage in `rawPath` itself
/// (`/Prod/hits`), which the variable leaves as it is
/// (aws/aws-lambda-rust-runtime#919). The hits and ingest `lambda_events` tests show it: with
/// the variable set and no `strip_stage`, a named-stage HTTP API request is a 404. With this
/// function the routes match with or without the variable (the tests run both ways).
///
/// Left as lambda_http does it: a REST resource whose first segment is the stage's name
/// (`/prod/x` on stage `prod`) loses that segment, since lambda_http does not add a stage to a
/// path that already starts with it. No route here starts with a stage name.
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

    mod strip_stage {
        use lambda_http::RequestExt;
        use lambda_http::aws_lambda_events::apigw::{
            ApiGatewayProxyRequestContext, ApiGatewayV2httpRequestContext,
        };
        use lambda_http::request::RequestContext;

        use crate::strip_stage;

        fn rest(stage: &str) -> RequestContext {
            let mut c = ApiGatewayProxyRequestContext::default();
            c.stage = Some(stage.into());
            RequestContext::ApiGatewayV1(c)
        }

        fn http_api(stage: &str) -> RequestContext {
            let mut c = ApiGatewayV2httpRequestContext::default();
            c.stage = Some(stage.into());
            RequestContext::ApiGatewayV2(c)
        }

        /// The path and query `strip_stage` makes of `uri` under `context`.
        fn stripped(uri: &str, context: Option<RequestContext>) -> String {
            let req = lambda_http::Request::new(lambda_http::Body::Empty);
            let mut req = match context {
                Some(c) => req.with_request_context(c),
                None => req,
            };
            *req.uri_mut() = uri.parse().unwrap();
            let req = strip_stage(req);
            req.uri().path_and_query().unwrap().to_string()
        }

        #[test]
        fn the_stage_goes_from_rest_and_named_http_api_paths_with_the_query_kept() {
            for context in [rest("prod"), http_api("prod")] {
                assert_eq!(stripped("/prod/hits", Some(context.clone())), "/hits");
                assert_eq!(
                    stripped("/prod/events?mode=sync&x=1", Some(context.clone())),
                    "/events?mode=sync&x=1"
                );
                assert_eq!(stripped("/prod", Some(context.clone())), "/");
                assert_eq!(stripped("/prod?mode=sync", Some(context.clone())), "/?mode=sync");
                assert_eq!(stripped("https://example.com/prod/hits?a=b", Some(context)), "/hits?a=b");
            }
        }

        #[test]
        fn paths_that_only_look_like_the_stage_and_stageless_requests_stay() {
            assert_eq!(stripped("/prodx/hits", Some(rest("prod"))), "/prodx/hits");
            assert_eq!(stripped("/prodhits", Some(http_api("prod"))), "/prodhits");
            assert_eq!(stripped("/Prod/hits", Some(http_api("prod"))), "/Prod/hits", "case counts");
            assert_eq!(stripped("/hits", Some(http_api("prod"))), "/hits");
            assert_eq!(stripped("/$default/hits", Some(http_api("$default"))), "/$default/hits");
            assert_eq!(stripped("/hits", Some(http_api(""))), "/hits");
            assert_eq!(stripped("/prod/hits", None), "/prod/hits");
        }
    }
}
