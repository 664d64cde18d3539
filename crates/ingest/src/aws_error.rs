//! What the AWS adapters share: a failed SDK call as a [`SinkError`], and its text. The error
//! types are smithy's, re-exported the same by every SDK crate.

use std::time::Instant;

use crate::SinkError;

#[cfg(feature = "firehose")]
use aws_sdk_firehose::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "firehose")]
use aws_sdk_firehose::operation::RequestId;
#[cfg(not(feature = "firehose"))]
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(not(feature = "firehose"))]
use aws_sdk_kinesis::operation::RequestId;

/// The text of a failed call. A service error reads `Code: message (HTTP 400, request id …)`:
/// `DisplayErrorContext`'s one-line part leaves out the message of an error code this SDK does
/// not model (`service error: unhandled error (ValidationException)`) and then appends the whole
/// raw response in `Debug` form, headers and all, which buries the message in the logs. Anything
/// else (timeouts, DNS, TLS, credentials) goes through `DisplayErrorContext`, whose chain of
/// causes is what explains those.
pub(crate) fn error_text<E>(e: &SdkError<E>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(service) => {
            let code = e.code().unwrap_or("UnknownError");
            let message = e.message().unwrap_or("(no message)");
            let status = service.raw().status().as_u16();
            match e.request_id() {
                Some(id) => format!("{code}: {message} (HTTP {status}, request id {id})"),
                None => format!("{code}: {message} (HTTP {status})"),
            }
        }
        other => DisplayErrorContext(other).to_string(),
    }
}

/// A failed call to `sink`, begun at `started`: [`SinkError::timed_out`] when it gave up on one
/// of the SDK's timeouts (`aws_setup::Timeouts`: the sink never answered), unavailable otherwise.
pub(crate) fn sink_error<E>(sink: String, started: Instant, e: &SdkError<E>) -> SinkError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match aws_setup::timed_out(e) {
        Some(text) => SinkError::timed_out(sink, started.elapsed(), text),
        None => SinkError::new(sink, error_text(e)),
    }
}
