//! The crate's one error type. What matters to every source is [`Error::is_poison`]: a poison
//! message can never succeed (dead-letter it); anything else may succeed later (retry it).

use std::time::Duration;

/// Why a message was not counted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body is neither `{"x": <number>}` nor a plain number, or x is not 0 ≤ x ≤ max (or the
    /// message cannot be counted exactly once): retrying cannot help.
    #[error("poison message: {0}")]
    Poison(String),
    /// Not enough time left in this invocation to run the calculation: back to the queue.
    #[error("not enough time: x = {x} s needs {needed_ms} ms, {left_ms} ms left")]
    NoTime { x: f64, needed_ms: u64, left_ms: u64 },
    /// The ledger could not record the message (store unreachable, throttled, …): retry.
    #[error("ledger {ledger}: {detail}")]
    Ledger { ledger: &'static str, detail: String },
    /// The ledger did not answer within the SDK's timeouts (`aws_setup::Timeouts`): retry. The
    /// write may still have been applied; the message id's condition makes the retry harmless.
    #[error("ledger {ledger} timed out after {:.1} s ({operation}): {detail}", after.as_secs_f64())]
    LedgerTimedOut { ledger: &'static str, operation: &'static str, after: Duration, detail: String },
    /// The message source (SQS, RabbitMQ) failed.
    #[error("source {source_kind}: {detail}")]
    Source { source_kind: &'static str, detail: String },
    /// The process is shutting down: the message was not started and goes back to the queue.
    #[error("shutting down")]
    ShuttingDown,
}

impl Error {
    /// A message that will never succeed: report it so that it is dead-lettered.
    pub fn is_poison(&self) -> bool {
        matches!(self, Error::Poison(_))
    }

    /// The ledger did not answer in time ([`Error::LedgerTimedOut`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::LedgerTimedOut { .. })
    }

    pub fn ledger(ledger: &'static str, detail: impl Into<String>) -> Error {
        Error::Ledger { ledger, detail: detail.into() }
    }

    pub fn source(source_kind: &'static str, detail: impl Into<String>) -> Error {
        Error::Source { source_kind, detail: detail.into() }
    }
}
