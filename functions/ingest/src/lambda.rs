//! The Lambda host: the router behind API Gateway (HTTP API v2, REST v1) and Function URLs,
//! delivering each request's events to the sink before it answers.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::Response;
use ingest::direct::{Direct, DirectConfig};
use ingest::{SharedIngest, SharedSink};
use tower::{Service, ServiceBuilder};

use crate::config::LambdaConfig;
use crate::cors::AllowedOrigins;

/// Builds the sinks (SDK clients) once, at init.
pub async fn build(
    config: &LambdaConfig,
    aws: &ingest::AwsConfig,
) -> Result<(SharedIngest, SharedSink), ingest::OpenError> {
    let (sink, invalid_sink) = ingest::open_sinks(&config.sink, config.invalid_sink.as_ref(), aws).await?;
    let mut direct = DirectConfig::for_sink(sink.as_ref());
    direct.budget = config.budget;
    if let Some(cap) = config.pack_bytes {
        direct.pack_cap = cap;
    }
    let ingest: SharedIngest = Arc::new(Direct::new(sink.clone(), invalid_sink, direct));
    Ok((ingest, sink))
}

/// Opens the sink's connection during init (full CPU, not billed at the throttled rate of the
/// first request), then serves events until the runtime stops the function.
pub async fn run(
    ingest: SharedIngest,
    sink: SharedSink,
    origins: AllowedOrigins,
) -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    match sink.warm().await {
        Ok(()) => {
            tracing::info!(sink = %sink.describe(), warm_ms = started.elapsed().as_millis() as u64, "sink connection open");
        }
        Err(e) => {
            tracing::warn!(sink = %sink.describe(), error = %e, "could not pre-connect to the sink; will retry per request");
        }
    }
    lambda_http::run(service(ingest, origins)).await
}

/// What the function serves: the router behind [`edge::strip_stage`], which takes an API
/// Gateway stage off the path (`/prod/events` → `/events`), query string kept. `origins`:
/// `INGEST_ALLOWED_ORIGINS` ([`crate::cors`]).
pub fn service(
    ingest: SharedIngest,
    origins: AllowedOrigins,
) -> impl Service<lambda_http::Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    ServiceBuilder::new().map_request(edge::strip_stage).service(crate::router(ingest, origins))
}
