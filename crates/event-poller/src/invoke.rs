//! The function's Invoke endpoint (`cargo lambda watch`'s, or any that speaks Lambda's Invoke
//! API), and what its answer means for a batch: every record done, the records the function
//! listed in `batchItemFailures`, or the whole batch failed.

use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// One function, invoked over HTTP.
pub struct Invoker {
    http: reqwest::Client,
    url: String,
    function_arn: String,
}

/// What one invocation gave: the request id and status for the on-failure record, and either
/// the identifiers the function reported as failed (empty: all done) or why the whole batch
/// failed.
#[derive(Debug)]
pub struct Invoked {
    pub request_id: String,
    /// The HTTP status, 0 when no answer came.
    pub status: u16,
    /// `Unhandled` when the function failed, as the Invoke API says it.
    pub function_error: Option<String>,
    pub result: Result<Vec<String>, Error>,
}

#[derive(Deserialize)]
struct BatchResponse {
    #[serde(default, rename = "batchItemFailures")]
    failures: Option<Vec<ItemFailure>>,
}

#[derive(Deserialize)]
struct ItemFailure {
    #[serde(default, rename = "itemIdentifier")]
    id: Option<serde_json::Value>,
}

impl Invoker {
    /// `timeout`: how long an invocation may take before it counts as failed (the function's
    /// timeout).
    pub fn new(url: &str, region: &str, timeout: Duration) -> Result<Invoker, Error> {
        // reqwest takes the process-wide rustls provider (ring); installing it twice is harmless.
        aws_setup::install_tls_provider();
        // A fresh connection per invocation: the emulator may close an idle one just as it is
        // reused, which would fail the invocation before it was sent.
        let http = reqwest::Client::builder().timeout(timeout).pool_max_idle_per_host(0).build()?;
        Ok(Invoker { http, url: url.to_owned(), function_arn: function_arn(url, region) })
    }

    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    /// Invokes the function with `event` (synchronously, as event source mappings do).
    pub async fn invoke(&self, event: &impl serde::Serialize) -> Invoked {
        let response = match self.http.post(&self.url).json(event).send().await {
            Ok(response) => response,
            Err(e) => {
                return Invoked {
                    request_id: request_id(None),
                    status: 0,
                    function_error: None,
                    result: Err(e.into()),
                };
            }
        };
        let status = response.status();
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let id = request_id(header("x-amzn-requestid").or_else(|| header("lambda-runtime-aws-request-id")));
        // The Invoke API reports a function error with 200 and this header; the emulator may
        // also answer with an error status.
        let function_error = header("x-amz-function-error");
        let body = match response.text().await {
            Ok(body) => body,
            Err(e) => {
                return Invoked {
                    request_id: id,
                    status: status.as_u16(),
                    function_error,
                    result: Err(e.into()),
                };
            }
        };
        if !status.is_success() || function_error.is_some() {
            return Invoked {
                request_id: id,
                status: status.as_u16(),
                function_error: Some(function_error.unwrap_or_else(|| "Unhandled".into())),
                result: Err(Error::Function { status: status.as_u16(), body }),
            };
        }
        Invoked { request_id: id, status: status.as_u16(), function_error: None, result: failed_items(&body) }
    }
}

/// The identifiers a batch response lists as failed. No response, `null`, an object without
/// `batchItemFailures` or an empty list: every record succeeded. An entry without an identifier
/// (null, empty) or a body that is not JSON: the whole batch failed, as on AWS.
pub fn failed_items(body: &str) -> Result<Vec<String>, Error> {
    let body = body.trim();
    if body.is_empty() || body == "null" {
        return Ok(Vec::new());
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| Error::Response(format!("{e}: {body}")))?;
    if !value.is_object() {
        return Ok(Vec::new());
    }
    let response: BatchResponse =
        serde_json::from_value(value).map_err(|e| Error::Response(format!("{e}: {body}")))?;
    let mut ids = Vec::new();
    for failure in response.failures.unwrap_or_default() {
        match failure.id {
            Some(serde_json::Value::String(id)) if !id.is_empty() => ids.push(id),
            other => {
                return Err(Error::Response(format!(
                    "an itemIdentifier that names no record ({other:?}): {body}"
                )));
            }
        }
    }
    Ok(ids)
}

/// The request id the answer carried, or a fresh one in the same (UUID) shape.
fn request_id(given: Option<String>) -> String {
    given.filter(|id| !id.is_empty()).unwrap_or_else(|| {
        let (a, b) = (fastrand::u64(..), fastrand::u64(..));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    })
}

/// `arn:aws:lambda:<region>:123456789012:function:<name>` from an Invoke URL
/// (`…/2015-03-31/functions/<name>/invocations`); the URL itself when it has no function name.
pub fn function_arn(invoke_url: &str, region: &str) -> String {
    let mut parts = invoke_url.trim_end_matches('/').rsplit('/');
    match (parts.next(), parts.next()) {
        (Some("invocations"), Some(name)) if !name.is_empty() => {
            format!("arn:aws:lambda:{region}:123456789012:function:{name}")
        }
        _ => invoke_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_response_lists_the_failed_records_and_anything_else_is_all_done() {
        assert_eq!(failed_items("").unwrap(), Vec::<String>::new());
        assert_eq!(failed_items("null").unwrap(), Vec::<String>::new());
        assert_eq!(failed_items(r#"{"batchItemFailures":[]}"#).unwrap(), Vec::<String>::new());
        assert_eq!(failed_items(r#"{"other":1}"#).unwrap(), Vec::<String>::new());
        assert_eq!(failed_items(r#""done""#).unwrap(), Vec::<String>::new());
        assert_eq!(
            failed_items(r#"{"batchItemFailures":[{"itemIdentifier":"7"},{"itemIdentifier":"9"}]}"#).unwrap(),
            ["7", "9"]
        );
    }

    #[test]
    fn a_failure_without_an_identifier_or_a_body_that_is_not_json_fails_the_whole_batch() {
        assert!(failed_items(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#).is_err());
        assert!(failed_items(r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#).is_err());
        assert!(failed_items(r#"{"batchItemFailures":[{}]}"#).is_err());
        assert!(failed_items("{").is_err());
    }

    #[test]
    fn the_function_arn_comes_from_the_invoke_url() {
        assert_eq!(
            function_arn("http://127.0.0.1:9000/2015-03-31/functions/midstream/invocations", "eu-west-2"),
            "arn:aws:lambda:eu-west-2:123456789012:function:midstream"
        );
        assert_eq!(function_arn("http://127.0.0.1:1/", "eu-west-2"), "http://127.0.0.1:1/");
    }

    #[test]
    fn a_made_up_request_id_looks_like_lambdas() {
        let id = request_id(None);
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.matches('-').count(), 4, "{id}");
        assert_eq!(request_id(Some("abc".into())), "abc");
    }
}
