//! The crate's one error type. A request's errors map to a status ([`Error::status`]); a
//! record's to poison ([`Error::is_poison`]: report it, retrying cannot help) or not (a store or
//! the stream failed: report it, a retry may succeed).

/// What went wrong with a body, a record, the stream or a table.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The request's content type is not JSON (415).
    #[error("content type must be application/json, got {0}")]
    ContentType(String),
    /// The body is larger than [`crate::item::MAX_BODY_BYTES`] (413).
    #[error("body: larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A field of the item (or the body as a whole: field `body`) is invalid (400).
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    /// A stream or table record that cannot be decoded or holds an invalid item: poison.
    #[error("poison record: {0}")]
    Poison(String),
    /// The stream did not take the record (after the SDK's attempts): the client may retry.
    #[error("kinesis: {detail}")]
    Stream { detail: String, timed_out: bool },
    /// A table did not take the row (after the SDK's attempts): the record is retried.
    #[error("dynamodb {table}: {detail}")]
    Table { table: String, detail: String, timed_out: bool },
    /// The AWS SDK configuration cannot be used (no region): the host cannot start.
    #[error("aws: {0}")]
    Aws(String),
}

impl Error {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Error {
        Error::Field { field, reason: reason.into() }
    }

    /// The HTTP status of a request that failed with this error: 415, 413, 400 for the
    /// client's mistakes, 503 when the stream (or anything else) failed.
    pub fn status(&self) -> u16 {
        match self {
            Error::ContentType(_) => 415,
            Error::TooLarge { .. } => 413,
            Error::Field { .. } | Error::Poison(_) => 400,
            Error::Stream { .. } | Error::Table { .. } | Error::Aws(_) => 503,
        }
    }

    /// A record that can never be written: report it alone, for the on-failure destination.
    pub fn is_poison(&self) -> bool {
        matches!(self, Error::Poison(_))
    }

    /// The service gave no answer within the SDK's timeouts.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Stream { timed_out: true, .. } | Error::Table { timed_out: true, .. })
    }
}
