//! The Lambda host: the router behind API Gateway (HTTP API v2, REST v1) and Function URLs,
//! with the stream's client built once at init and its connection opened there.

use std::convert::Infallible;

use axum::response::Response;
use pipeline::SharedStream;
use tower::{Service, ServiceBuilder};

/// The function's settings, from its environment (template.yaml), read once in `main`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `PIPELINE_STREAM`: the Kinesis stream's name.
    pub stream: String,
    /// The AWS SDK's timeouts (`AWS_CONNECT_TIMEOUT`, …; [`edge::aws`]): keep the operation
    /// timeout below the function's, so a stalled stream is a 503 rather than a killed
    /// invocation.
    pub aws: aws_setup::Timeouts,
}

/// A Lambda environment the function cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("PIPELINE_STREAM is not set: the Kinesis stream to put items on")]
    NoStream,
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
}

impl Settings {
    /// Reads the settings from `var` (`std::env::var` in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let stream =
            var("PIPELINE_STREAM").filter(|s| !s.trim().is_empty()).ok_or(SettingsError::NoStream)?;
        Ok(Settings { stream, aws: edge::aws::timeouts_from_vars(&var)? })
    }
}

/// What the function serves: the router behind [`edge::strip_stage`] (`/prod/items` → `/items`).
pub fn service(
    stream: SharedStream,
) -> impl Service<lambda_http::Request, Response = Response, Error = Infallible, Future: Send> + Clone {
    ServiceBuilder::new().map_request(edge::strip_stage).service(crate::router(stream))
}

/// Opens the stream's connection during init (full CPU, not billed at the throttled rate of
/// the first request), then serves requests until the runtime stops the function.
pub async fn run(stream: SharedStream) -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    match stream.warm().await {
        Ok(()) => tracing::info!(
            stream = %stream.describe(),
            warm_ms = started.elapsed().as_millis() as u64,
            "stream connection open"
        ),
        Err(e) => {
            tracing::warn!(stream = %stream.describe(), error = %e, "could not pre-connect to the stream; will retry per request");
        }
    }
    lambda_http::run(service(stream)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_required_and_the_timeouts_are_read() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(matches!(Settings::from_vars(vars(&[])), Err(SettingsError::NoStream)));
        let settings =
            Settings::from_vars(vars(&[("PIPELINE_STREAM", "s"), ("AWS_MAX_ATTEMPTS", "2")])).unwrap();
        assert_eq!(settings.stream, "s");
        assert_eq!(settings.aws.max_attempts, 2);
        assert!(Settings::from_vars(vars(&[("PIPELINE_STREAM", "s"), ("AWS_MAX_ATTEMPTS", "x")])).is_err());
    }
}
