//! Ingest: JSON events in, newline-delimited JSON records out to Firehose or Kinesis.
//!
//! Ports and adapters. Nothing here knows about Lambda or HTTP:
//!
//! | module | what |
//! |---|---|
//! | [`event`] | parse a request body into events and validate each (`type`, `timestamp`) |
//! | [`pack`] | pack events into records up to a size cap (Firehose bills every record as ≥ 5 KB) |
//! | [`Sink`] | the port records are delivered to; [`sinks`] holds memory, null, file/stdout and a fault-injecting double |
//! | [`direct`] | deliver one request's records now, retrying failed entries until a deadline (the Lambda path) |
//! | [`batcher`] | the in-process buffer of the server: count / bytes / linger flushes, retries, backpressure, spill on shutdown |
//! | [`metrics`] | counters and the flush-latency histogram, handed out as a plain [`metrics::MetricsSnapshot`] |
//! | [`transform`] | the Firehose data-transformation contract: validate records in batch |
//! | [`spec`] | which sink: `stdout`, `file:<path>`, `null`, `firehose:<stream>`, `kinesis:<stream>` |
//! | `firehose`, `kinesis` | the AWS adapters (cargo features of the same names) |
//!
//! Both hosts talk to an [`Ingest`]: the Lambda holds a [`direct::Direct`], the server a
//! [`batcher::Buffered`].

use std::sync::Arc;
use std::time::Duration;

#[cfg(any(feature = "firehose", feature = "kinesis"))]
mod aws_error;
pub mod batcher;
pub mod direct;
pub mod event;
#[cfg(feature = "firehose")]
pub mod firehose;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod metrics;
pub mod pack;
pub mod sinks;
pub mod spec;
pub mod spill;
pub mod transform;

pub use bytes::Bytes;
pub use event::{BodyError, EventError, Invalid, Parsed};
pub use spec::{AwsConfig, ConfigError, OpenError, SinkSpec, open_sinks};

/// The boxed future of the ports' methods (stores are chosen at run time, behind `dyn`).
pub use futures_util::future::BoxFuture;

/// One record as the sink receives it: one or more events, each a line of compact JSON ending in
/// `\n` (newline-delimited JSON, what Firehose → S3 and Athena expect).
pub type Record = Bytes;

/// What one call to a sink may carry (`PutRecordBatch` / `PutRecords` limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records per call.
    pub max_records: usize,
    /// Bytes of record data per call.
    pub max_batch_bytes: usize,
    /// Bytes per record.
    pub max_record_bytes: usize,
}

impl Limits {
    /// Firehose `PutRecordBatch`: 500 records, 4 MiB per call, 1,000 KiB per record.
    pub const FIREHOSE: Limits =
        Limits { max_records: 500, max_batch_bytes: 4 * 1024 * 1024, max_record_bytes: 1000 * 1024 };
    /// Kinesis Data Streams `PutRecords`: 500 records, 5 MiB per call, 1 MiB per record — the
    /// partition key counts towards both, so records leave room for one (≤ 256 bytes).
    pub const KINESIS: Limits = Limits {
        max_records: 500,
        max_batch_bytes: 5 * 1024 * 1024 - 500 * 256,
        max_record_bytes: 1024 * 1024 - 256,
    };
}

/// One entry of a call that the sink did not take (`FailedPutCount > 0`): retry it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEntry {
    /// Index into the slice given to [`Sink::put`].
    pub index: usize,
    /// The service's error code (`ServiceUnavailableException`,
    /// `ProvisionedThroughputExceededException`, …).
    pub code: String,
    pub message: String,
}

/// The port: where records go. Implementations must be cheap to call concurrently.
pub trait Sink: Send + Sync + 'static {
    /// Puts up to [`Limits`] records in one call. `Ok` lists the entries that failed (empty when
    /// all were taken); `Err` means the call as a whole failed and none was taken.
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>>;

    /// What one call may carry.
    fn limits(&self) -> Limits;

    /// The sink's kind and target, for logs and `/healthz` (`firehose:events`, `null`, …).
    fn describe(&self) -> String;

    /// Opens the connection with a cheap call so the first request does not pay for it.
    fn warm(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

pub type SharedSink = Arc<dyn Sink>;

/// A whole call to a sink failed: refused or unreachable (`firehose:events unavailable: …`), or
/// not answered in time (`firehose:events timed out after 6.0 s: …`; the records may still
/// have been taken).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{sink} {}: {source}", self.what())]
pub struct SinkError {
    pub sink: String,
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
    /// How long the call waited when it gave up on a timeout (the AWS SDK's, or a caller's
    /// deadline); `None` for any other failure.
    pub timed_out: Option<Duration>,
}

impl SinkError {
    pub fn new(sink: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SinkError { sink: sink.into(), source: Arc::from(source.into()), timed_out: None }
    }

    /// The call got no answer within `after`.
    pub fn timed_out(
        sink: impl Into<String>,
        after: Duration,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SinkError { timed_out: Some(after), ..SinkError::new(sink, source) }
    }

    /// Whether the call gave up on a timeout.
    pub fn is_timeout(&self) -> bool {
        self.timed_out.is_some()
    }

    fn what(&self) -> String {
        match self.timed_out {
            Some(after) => format!("timed out after {:.1} s", after.as_secs_f64()),
            None => "unavailable".to_owned(),
        }
    }
}

/// How the caller wants its answer (`?mode=sync` or `X-Ingest-Mode: sync`; async by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer once the events are handed over (to the sink on Lambda, to the buffer on the
    /// server); invalid events are counted and routed to the invalid sink, not refused.
    #[default]
    Async,
    /// Validate everything first (all-or-nothing), answer only after the sink acknowledged.
    Sync,
}

/// What a host hands to an [`Ingest`] for one request. In sync mode the host only submits when
/// `invalid` is empty (it answers 400 itself otherwise).
#[derive(Debug, Default)]
pub struct Submission {
    pub mode: Mode,
    /// Valid events, each compact JSON on one line, without the trailing newline.
    pub valid: Vec<Bytes>,
    /// Invalid events, to be routed where they can be inspected.
    pub invalid: Vec<Invalid>,
}

/// The answer to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Receipt {
    /// Valid events taken (async: handed over; sync: acknowledged by the sink).
    pub accepted: usize,
    /// Invalid events, routed to the invalid sink (async only).
    pub invalid: usize,
    /// Async on Lambda only: valid events the sink still refused when the retries ran out
    /// (logged and counted in the metrics).
    pub undelivered: usize,
}

/// Why a submission was not taken. Every variant is a 503 at the edge.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The buffer is full: try again after `retry_after` (503 + `Retry-After`).
    #[error("the ingest buffer is full ({buffered_bytes} of {limit_bytes} bytes); retry after {}s", retry_after.as_secs().max(1))]
    Overloaded { buffered_bytes: usize, limit_bytes: usize, retry_after: Duration },
    /// Sync mode: the sink did not acknowledge every record in time. On the server the records
    /// stay buffered and will still be delivered (so a retry may duplicate them: at-least-once).
    #[error("{undelivered} of {total} events were not acknowledged by {sink} in time: {reason}")]
    Undelivered { undelivered: usize, total: usize, sink: String, reason: String },
    /// The host is shutting down and takes nothing new.
    #[error("shutting down; send to another instance")]
    ShuttingDown,
}

/// The port both hosts talk to.
pub trait Ingest: Send + Sync + 'static {
    fn submit(&self, submission: Submission) -> BoxFuture<'_, Result<Receipt, IngestError>>;

    /// Every counter, gauge and histogram bucket now, as plain numbers (the host renders them).
    fn metrics_snapshot(&self) -> metrics::MetricsSnapshot;

    /// The sink's description, for `/healthz`.
    fn describe(&self) -> String;
}

pub type SharedIngest = Arc<dyn Ingest>;
