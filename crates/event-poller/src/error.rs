//! The one error type of the poller.

use std::path::PathBuf;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Invoke call itself failed (connection, timeout): the function may not have run.
    #[error("invoke: {0} ({cause})", cause = std::error::Error::source(.0).map(ToString::to_string).unwrap_or_default())]
    Http(#[from] reqwest::Error),
    /// The function ran and failed (an error status, or `X-Amz-Function-Error`).
    #[error("the function failed ({status}): {body}")]
    Function { status: u16, body: String },
    /// The function answered with something that is not a batch response, or one that names a
    /// record that is not in the batch: as on AWS, the whole batch failed.
    #[error("the response is not a valid batch response: {0}")]
    Response(String),
    /// An AWS call failed (after the SDK's own attempts).
    #[error("{call}: {message}")]
    Aws { call: &'static str, message: String },
    /// SQS, through the queue crate's source.
    #[error(transparent)]
    Queue(#[from] queue::Error),
    #[error("checkpoint {}: {source}", path.display())]
    Checkpoint { path: PathBuf, source: std::io::Error },
    /// A setting that cannot work (no stream for the table, …).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An AWS SDK failure: the service's code and message when it answered, the SDK's whole
    /// context otherwise (a timeout, a connection refused).
    pub fn aws<E, R>(call: &'static str, e: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let message = match e.as_service_error() {
            Some(service) => {
                format!(
                    "{}: {}",
                    service.code().unwrap_or("service error"),
                    service.message().unwrap_or_default()
                )
            }
            None => DisplayErrorContext(&e).to_string(),
        };
        Error::Aws { call, message }
    }
}
