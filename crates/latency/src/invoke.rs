//! `--via-lambda`: run the probe inside the region by invoking the deployed probe function.
//!
//! The endpoint comes from the environment as usual (`AWS_ENDPOINT_URL_LAMBDA` or
//! `AWS_ENDPOINT_URL`), so the same code invokes the probe under `cargo lambda watch` locally.
//! A failed invocation reads the same from both: AWS answers 200 with `X-Amz-Function-Error`
//! and the function's error object; cargo lambda watch answers HTTP 500 with that object.

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::interceptors::InterceptorContext;
use aws_sdk_lambda::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use serde::Deserialize;

use crate::error::Error;

/// The probe function's own limit is 5 minutes; wait a little longer than that, and no longer.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(330);

/// A Lambda client for the probe: built once, with a timeout that fits a 5-minute probe run.
pub async fn client() -> Client {
    client_in(None).await
}

/// [`client`] in `region` instead of the configured one (`AWS_REGION`, the profile's).
pub async fn client_in(region: Option<&str>) -> Client {
    let shared = aws_setup::load_with(aws_setup::TrustRoots::Platform).await;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(INVOKE_TIMEOUT)
        .operation_timeout(INVOKE_TIMEOUT)
        .build();
    let mut config = aws_sdk_lambda::config::Builder::from(&shared)
        .timeout_config(timeouts)
        .retry_classifier(FunctionErrorsAreFinal);
    if let Some(region) = region {
        config = config.region(aws_sdk_lambda::config::Region::new(region.to_owned()));
    }
    Client::from_conf(config.build())
}

/// The SDK retries an HTTP 500 as a transient error; under cargo lambda watch that status means
/// the function failed, and running a failing probe again only fails again (and sends its
/// requests again). AWS's own 500s (ServiceException, no error object) are still retried.
#[derive(Debug)]
struct FunctionErrorsAreFinal;

impl ClassifyRetry for FunctionErrorsAreFinal {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(r) if r.status().as_u16() == 500 && r.body().bytes().and_then(function_error).is_some() => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "function errors are final"
    }
}

/// The error object a Lambda returns when its handler fails.
#[derive(Deserialize)]
struct FunctionError {
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(rename = "errorMessage", default)]
    error_message: String,
}

/// `errorType: errorMessage` when `body` is a Lambda error object.
pub(crate) fn function_error(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<FunctionError>(body)
        .ok()
        .filter(|e| !e.error_type.is_empty() && !e.error_message.is_empty())
        .map(|e| format!("{}: {}", e.error_type, e.error_message))
}

/// Invokes `function` synchronously with `event` and returns its JSON result; a function error
/// (`X-Amz-Function-Error`, or cargo lambda watch's HTTP 500 with an error object) becomes an
/// [`Error::Lambda`] carrying the function's own message.
pub async fn invoke(
    client: &Client,
    function: &str,
    event: &serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let payload = serde_json::to_vec(event).map_err(|e| Error::Invalid(format!("event: {e}")))?;
    let output = client
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| invoke_error(function, e))?;
    let body = output.payload().map(std::convert::AsRef::as_ref).unwrap_or_default();
    if let Some(kind) = output.function_error() {
        let detail = function_error(body).unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        return Err(Error::Lambda { function: function.to_owned(), kind: kind.to_owned(), detail });
    }
    serde_json::from_slice(body).map_err(|e| Error::Lambda {
        function: function.to_owned(),
        kind: "InvalidResponse".into(),
        detail: format!("{e}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    })
}

/// The SDK's error, unless it is cargo lambda watch's HTTP 500 carrying the function's error
/// object: then that, as AWS would have reported it (an unhandled function error).
pub(crate) fn invoke_error<E>(
    function: &str,
    error: SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &error {
        let raw = service.raw();
        if raw.status().as_u16() == 500
            && let Some(detail) = raw.body().bytes().and_then(function_error)
        {
            return Error::Lambda { function: function.to_owned(), kind: "Unhandled".into(), detail };
        }
    }
    Error::Aws(format!("invoking {function}: {}", aws_sdk_lambda::error::DisplayErrorContext(error)))
}
