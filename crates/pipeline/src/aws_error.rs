//! A failed SDK call as text: `Code: message` for a service error, the chain of causes for the
//! rest (timeouts, DNS, TLS); and whether it ended on one of the SDK's timeouts. The error types
//! are smithy's, re-exported the same by every SDK crate.

#[cfg(feature = "dynamodb")]
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(not(feature = "dynamodb"))]
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The text of a failed call, and whether it timed out.
pub(crate) fn describe<E, R>(e: &SdkError<E, R>) -> (String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(text) = aws_setup::timed_out(e) {
        return (text, true);
    }
    let text = match e {
        SdkError::ServiceError(_) => {
            format!("{}: {}", e.code().unwrap_or("UnknownError"), e.message().unwrap_or("(no message)"))
        }
        other => DisplayErrorContext(other).to_string(),
    };
    (text, false)
}
