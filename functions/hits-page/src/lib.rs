//! `hits-page`: a CloudFormation custom resource (`Custom::Page`) that puts the page
//! (`static/index.html`, embedded at build time) into the page bucket, so that
//! `cargo lambda build --release && sam deploy` alone leaves the page in place.
//!
//! * `Create` / `Update`: `PutObject` of [`PAGE`] at `ResourceProperties.Bucket` /
//!   `ResourceProperties.Key`; the physical resource id is `s3://<bucket>/<key>`. When an
//!   `Update` moves the page, the id changes and CloudFormation later sends a `Delete` for the
//!   old id, which removes the old object.
//! * `Delete`: `DeleteObject` of the object the physical id names; an object or bucket that is
//!   already gone counts as deleted, so stack deletes and rollbacks never get stuck.
//!
//! Whatever happens, CloudFormation gets an answer (`SUCCESS` or `FAILED` with a reason) by a
//! `PUT` to the request's presigned `ResponseURL`; otherwise the stack would wait an hour.

use std::time::Duration;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;

/// The page, embedded so the deployed bytes are exactly the ones this binary was built with.
pub const PAGE: &str = include_str!("../../../static/index.html");
/// `Content-Type` of the page object (the HTTP API passes it through to browsers).
pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";
/// `Cache-Control` of the page object: short, so a redeploy shows up within a minute.
pub const CACHE_CONTROL: &str = "max-age=60";

/// The request as CloudFormation sends it; properties are parsed by [`PageProperties`] so that
/// bad properties become a `FAILED` answer instead of an unanswered invocation.
pub type Request = CloudFormationCustomResourceRequest;
pub type Response = CloudFormationCustomResourceResponse;
pub type Status = CloudFormationCustomResourceResponseStatus;

/// CloudFormation rejects response bodies over 4 KiB; the reason is the only unbounded field.
const MAX_REASON_BYTES: usize = 1024;
/// Attempts at delivering the response (transport errors and 5xx are retried).
pub const RESPOND_ATTEMPTS: u32 = 3;
/// How long one attempt at delivering the response may take.
pub const RESPOND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one S3 call (with the SDK's retries) may take.
pub const S3_TIMEOUT: Duration = Duration::from_secs(20);

/// `ResourceProperties` of `Custom::Page` (CloudFormation also sends `ServiceToken` and
/// whatever else the template lists, e.g. a code version that forces an update; ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageProperties {
    pub bucket: String,
    pub key: String,
}

impl PageProperties {
    /// Parses and checks the properties of a request.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, Error> {
        let properties = PageProperties::deserialize(value).map_err(Error::Properties)?;
        if properties.bucket.is_empty() || properties.key.is_empty() {
            return Err(Error::EmptyProperty);
        }
        Ok(properties)
    }

    /// The physical resource id: `s3://<bucket>/<key>`.
    pub fn physical_id(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The object a physical id names; `None` for ids that name no object (a failed create).
    pub fn from_physical_id(id: &str) -> Option<Self> {
        let (bucket, key) = id.strip_prefix("s3://")?.split_once('/')?;
        (!bucket.is_empty() && !key.is_empty())
            .then(|| PageProperties { bucket: bucket.to_owned(), key: key.to_owned() })
    }
}

/// Everything that can go wrong. The S3 and property errors become a `FAILED` answer; the
/// others mean no answer could be given.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid ResourceProperties, expected string properties Bucket and Key: {0}")]
    Properties(serde_json::Error),
    #[error("invalid ResourceProperties: Bucket and Key must not be empty")]
    EmptyProperty,
    #[error("PutObject s3://{bucket}/{key} failed: {detail}")]
    Put { bucket: String, key: String, detail: String },
    #[error("DeleteObject s3://{bucket}/{key} failed: {detail}")]
    Delete { bucket: String, key: String, detail: String },
    #[error("request type is not Create, Update or Delete")]
    UnsupportedRequest,
    #[error("could not send the response to CloudFormation: {0}")]
    Send(#[source] reqwest::Error),
    #[error("CloudFormation refused the response with HTTP {0}")]
    Refused(u16),
    #[error("cannot encode the response: {0}")]
    Encode(serde_json::Error),
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        Diagnostic { error_type: "hits_page::Error".to_owned(), error_message: error.to_string() }
    }
}

/// The fields every request type carries.
struct Envelope<'a> {
    kind: &'static str,
    request_id: &'a str,
    response_url: &'a str,
    stack_id: &'a str,
    logical_resource_id: &'a str,
    physical_resource_id: Option<&'a str>,
}

fn envelope(request: &Request) -> Option<Envelope<'_>> {
    Some(match request {
        Request::Create(r) => Envelope {
            kind: "Create",
            request_id: &r.request_id,
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: None,
        },
        Request::Update(r) => Envelope {
            kind: "Update",
            request_id: &r.request_id,
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: Some(&r.physical_resource_id),
        },
        Request::Delete(r) => Envelope {
            kind: "Delete",
            request_id: &r.request_id,
            response_url: &r.response_url,
            stack_id: &r.stack_id,
            logical_resource_id: &r.logical_resource_id,
            physical_resource_id: Some(&r.physical_resource_id),
        },
        _ => return None,
    })
}

/// The answer to `request`, given what [`PageWriter::apply`] did (`Ok`: the physical id).
///
/// A failed `Update` or `Delete` keeps the request's physical id (no replacement happens). A
/// failed `Create` created nothing, so its id names no object and the rollback's `Delete` is a
/// no-op. `log_stream` (empty outside Lambda) is added to failure reasons.
pub fn response_for(
    request: &Request,
    outcome: &Result<String, Error>,
    log_stream: &str,
) -> Option<Response> {
    let envelope = envelope(request)?;
    let mut response = Response::default();
    match outcome {
        Ok(physical_id) => {
            response.status = Status::Success;
            response.physical_resource_id = physical_id.clone();
            response.reason = Some(format!("{} of {physical_id} done", envelope.kind));
        }
        Err(error) => {
            response.status = Status::Failed;
            response.physical_resource_id = match envelope.physical_resource_id {
                Some(id) => id.to_owned(),
                None => format!("{}-not-created-{}", envelope.logical_resource_id, envelope.request_id),
            };
            let mut reason = error.to_string();
            if !log_stream.is_empty() {
                reason.push_str(&format!(" (CloudWatch log stream {log_stream})"));
            }
            response.reason = Some(truncate(reason, MAX_REASON_BYTES));
        }
    }
    response.stack_id = envelope.stack_id.to_owned();
    response.request_id = envelope.request_id.to_owned();
    response.logical_resource_id = envelope.logical_resource_id.to_owned();
    Some(response)
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The S3 client ([`aws_setup::s3_config`]: path-style addressing on emulators). Calls give up after [`S3_TIMEOUT`], so
/// that the answer always goes out before the function's own timeout (60 s in the template).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_setup::s3_config(config)
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder().operation_timeout(S3_TIMEOUT).build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// The HTTP client for the response `PUT`: [`RESPOND_ATTEMPTS`] of at most [`RESPOND_TIMEOUT`]
/// each, after at most [`S3_TIMEOUT`] of S3, stay well inside the function's 60 s.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    aws_setup::install_tls_provider();
    reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(RESPOND_TIMEOUT).build()
}

/// The function: clients built once per process, one request per invocation.
#[derive(Debug, Clone)]
pub struct PageWriter {
    s3: aws_sdk_s3::Client,
    http: reqwest::Client,
}

impl PageWriter {
    pub fn new(s3: aws_sdk_s3::Client, http: reqwest::Client) -> Self {
        PageWriter { s3, http }
    }

    /// Handles one invocation: does what CloudFormation asks, then always answers it.
    ///
    /// `Err` only when the answer could not be delivered: Lambda then retries the (idempotent)
    /// invocation. A `FAILED` answer that was delivered is `Ok`, so it is not retried.
    pub async fn handle(&self, event: LambdaEvent<Request>) -> Result<(), Error> {
        let (request, context) = event.into_parts();
        let outcome = self.apply(&request).await;
        let response = response_for(&request, &outcome, &context.env_config.log_stream)
            .ok_or(Error::UnsupportedRequest)?;
        let envelope = envelope(&request).ok_or(Error::UnsupportedRequest)?;
        match &outcome {
            Ok(id) => tracing::info!(request = envelope.kind, physical_id = %id, "done"),
            Err(e) => {
                tracing::error!(request = envelope.kind, error = %e, "failed; answering FAILED");
            }
        }
        self.respond(envelope.response_url, &response).await
    }

    /// Does what the request asks; `Ok` holds the physical resource id to answer with.
    pub async fn apply(&self, request: &Request) -> Result<String, Error> {
        match request {
            Request::Create(r) => self.put(&PageProperties::from_value(&r.resource_properties)?).await,
            Request::Update(r) => self.put(&PageProperties::from_value(&r.resource_properties)?).await,
            Request::Delete(r) => {
                match PageProperties::from_physical_id(&r.physical_resource_id) {
                    Some(page) => self.delete(&page).await?,
                    None => {
                        tracing::info!(physical_id = %r.physical_resource_id, "names no object; nothing to delete");
                    }
                }
                Ok(r.physical_resource_id.clone())
            }
            _ => Err(Error::UnsupportedRequest),
        }
    }

    async fn put(&self, page: &PageProperties) -> Result<String, Error> {
        self.s3
            .put_object()
            .bucket(&page.bucket)
            .key(&page.key)
            .content_type(CONTENT_TYPE)
            .cache_control(CACHE_CONTROL)
            .body(ByteStream::from_static(PAGE.as_bytes()))
            .send()
            .await
            .map_err(|e| Error::Put {
                bucket: page.bucket.clone(),
                key: page.key.clone(),
                detail: DisplayErrorContext(e).to_string(),
            })?;
        tracing::info!(bucket = %page.bucket, key = %page.key, bytes = PAGE.len(), "page written");
        Ok(page.physical_id())
    }

    async fn delete(&self, page: &PageProperties) -> Result<(), Error> {
        match self.s3.delete_object().bucket(&page.bucket).key(&page.key).send().await {
            Ok(_) => tracing::info!(bucket = %page.bucket, key = %page.key, "page deleted"),
            // Already gone (or its bucket is): the resource is deleted either way.
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchBucket")) => {
                tracing::info!(bucket = %page.bucket, key = %page.key, code = ?e.code(), "already gone");
            }
            Err(e) => {
                return Err(Error::Delete {
                    bucket: page.bucket.clone(),
                    key: page.key.clone(),
                    detail: DisplayErrorContext(e).to_string(),
                });
            }
        }
        Ok(())
    }

    /// `PUT`s the answer to the presigned URL. The URL is signed for an empty `Content-Type`,
    /// so the header must be present and empty.
    async fn respond(&self, url: &str, response: &Response) -> Result<(), Error> {
        let body = serde_json::to_vec(response).map_err(Error::Encode)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent =
                self.http.put(url).header(reqwest::header::CONTENT_TYPE, "").body(body.clone()).send().await;
            let retryable = match sent {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() => Error::Refused(r.status().as_u16()),
                Ok(r) => return Err(Error::Refused(r.status().as_u16())),
                Err(e) => Error::Send(e),
            };
            if attempt >= RESPOND_ATTEMPTS {
                return Err(retryable);
            }
            tracing::warn!(attempt, error = %retryable, "answering CloudFormation failed; retrying");
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fixture: &str) -> Request {
        serde_json::from_str(fixture).expect("fixture is a CloudFormation request")
    }

    const CREATE: &str = include_str!("../tests/fixtures/create.json");
    const UPDATE: &str = include_str!("../tests/fixtures/update.json");
    const DELETE: &str = include_str!("../tests/fixtures/delete.json");

    fn body(response: &Response) -> serde_json::Value {
        serde_json::to_value(response).expect("response serializes")
    }

    #[test]
    fn a_successful_create_answers_success_with_the_object_as_physical_id() {
        let request = request(CREATE);
        let outcome = Ok("s3://latency-hits-pagebucket-1x2y3z4w5v6u/index.html".to_owned());
        let response =
            response_for(&request, &outcome, "2025/01/01/[$LATEST]abc").expect("known request type");
        let body = body(&response);
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], "s3://latency-hits-pagebucket-1x2y3z4w5v6u/index.html");
        assert_eq!(body["RequestId"], "7bfe2d54-710d-42e2-9e81-8f5a3c1b2e4d");
        assert_eq!(body["LogicalResourceId"], "Page");
        assert_eq!(
            body["StackId"],
            "arn:aws:cloudformation:eu-west-2:123456789012:stack/latency-hits/5b6c2a40-1f2e-11f0-8a3b-0a1b2c3d4e5f"
        );
        assert_eq!(body["Reason"], "Create of s3://latency-hits-pagebucket-1x2y3z4w5v6u/index.html done");
    }

    #[test]
    fn a_failed_create_answers_failed_with_the_reason_and_an_id_that_names_no_object() {
        let request = request(CREATE);
        let outcome = Err(Error::Put {
            bucket: "gone".into(),
            key: "index.html".into(),
            detail: "NoSuchBucket".into(),
        });
        let response =
            response_for(&request, &outcome, "2025/01/01/[$LATEST]abc").expect("known request type");
        let body = body(&response);
        assert_eq!(body["Status"], "FAILED");
        let reason = body["Reason"].as_str().expect("a reason");
        assert!(reason.contains("PutObject s3://gone/index.html failed: NoSuchBucket"), "{reason}");
        assert!(reason.contains("log stream 2025/01/01/[$LATEST]abc"), "{reason}");
        let id = body["PhysicalResourceId"].as_str().expect("an id");
        assert!(!id.is_empty());
        assert_eq!(PageProperties::from_physical_id(id), None, "a rollback Delete must not delete anything");
        assert_eq!(body["RequestId"], "7bfe2d54-710d-42e2-9e81-8f5a3c1b2e4d");
        assert_eq!(body["LogicalResourceId"], "Page");
    }

    #[test]
    fn a_failed_update_or_delete_keeps_the_physical_id() {
        for fixture in [UPDATE, DELETE] {
            let request = request(fixture);
            let response =
                response_for(&request, &Err(Error::EmptyProperty), "").expect("known request type");
            let body = body(&response);
            assert_eq!(body["Status"], "FAILED");
            assert_eq!(body["PhysicalResourceId"], "s3://latency-hits-pagebucket-1x2y3z4w5v6u/index.html");
            assert_eq!(body["Reason"], Error::EmptyProperty.to_string());
        }
    }

    #[test]
    fn a_long_reason_is_cut_to_fit_the_response_limit() {
        let request = request(CREATE);
        let detail = "é".repeat(4000);
        let outcome = Err(Error::Put { bucket: "b".into(), key: "k".into(), detail });
        let response = response_for(&request, &outcome, "").expect("known request type");
        let reason = response.reason.as_deref().expect("a reason");
        assert!(reason.len() <= MAX_REASON_BYTES && reason.ends_with('…'));
        assert!(serde_json::to_vec(&body(&response)).expect("serializes").len() < 4096);
    }

    #[test]
    fn properties_need_a_bucket_and_a_key() {
        let ok = serde_json::json!({"ServiceToken": "arn", "Bucket": "b", "Key": "index.html"});
        assert_eq!(
            PageProperties::from_value(&ok).expect("valid"),
            PageProperties { bucket: "b".into(), key: "index.html".into() }
        );
        assert!(matches!(
            PageProperties::from_value(&serde_json::json!({"Bucket": "b"})),
            Err(Error::Properties(_))
        ));
        assert!(matches!(
            PageProperties::from_value(&serde_json::json!({"Bucket": "", "Key": "k"})),
            Err(Error::EmptyProperty)
        ));
    }

    #[test]
    fn physical_ids_round_trip_and_foreign_ids_name_nothing() {
        let page = PageProperties { bucket: "b".into(), key: "dir/index.html".into() };
        assert_eq!(PageProperties::from_physical_id(&page.physical_id()), Some(page));
        for id in ["Page-not-created-1", "s3://", "s3://b", "s3://b/", "s3:///k"] {
            assert_eq!(PageProperties::from_physical_id(id), None, "{id}");
        }
    }
}
