//! `--via-lambda`: run the probe inside the region by invoking the deployed probe function.
//!
//! The endpoint comes from the environment as usual (`AWS_ENDPOINT_URL_LAMBDA` or
//! `AWS_ENDPOINT_URL`), so the same code invokes the probe under `cargo lambda watch` locally.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::{Client, config::timeout::TimeoutConfig};
use serde::Deserialize;

use crate::error::Error;

/// The probe function's own limit is 5 minutes; wait a little longer than that, and no longer.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(330);

/// A Lambda client for the probe: built once, with a timeout that fits a 5-minute probe run.
pub async fn client() -> Client {
    let shared = aws_setup::load().await;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(INVOKE_TIMEOUT)
        .operation_timeout(INVOKE_TIMEOUT)
        .build();
    Client::from_conf(aws_sdk_lambda::config::Builder::from(&shared).timeout_config(timeouts).build())
}

/// The error object a Lambda returns when its handler fails.
#[derive(Deserialize)]
struct FunctionError {
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(rename = "errorMessage", default)]
    error_message: String,
}

/// Invokes `function` synchronously with `event` and returns its JSON result; a function error
/// (`X-Amz-Function-Error`) becomes an [`Error::Lambda`] carrying the function's own message.
pub async fn invoke(
    client: &Client,
    function: &str,
    event: &serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let payload = serde_json::to_vec(event).map_err(|e| Error::Invalid(format!("event: {e}")))?;
    let output =
        client.invoke().function_name(function).payload(Blob::new(payload)).send().await.map_err(|e| {
            Error::Aws(format!("invoking {function}: {}", aws_sdk_lambda::error::DisplayErrorContext(e)))
        })?;
    let body = output.payload().map(|b| b.as_ref()).unwrap_or_default();
    if let Some(kind) = output.function_error() {
        let detail = match serde_json::from_slice::<FunctionError>(body) {
            Ok(e) if !e.error_message.is_empty() => format!("{}: {}", e.error_type, e.error_message),
            _ => String::from_utf8_lossy(body).into_owned(),
        };
        return Err(Error::Lambda { function: function.to_owned(), kind: kind.to_owned(), detail });
    }
    serde_json::from_slice(body).map_err(|e| Error::Lambda {
        function: function.to_owned(),
        kind: "InvalidResponse".into(),
        detail: format!("{e}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    })
}
