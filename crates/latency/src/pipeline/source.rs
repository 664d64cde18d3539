//! The port the driver reads the pipeline back through: the results table (what came through),
//! the items table (how far the rest got) and the on-failure queue (what was given up on). The
//! adapter is [`super::aws::AwsSource`] (DynamoDB and SQS; moto in tests and the local stack).

use serde::Serialize;

use crate::error::Error;

/// One item's stamps as the downstream function wrote them into the results table, in ms since
/// the Unix epoch. `client_ms` is the client's `timestamp` (so second-precise when it sent whole
/// seconds); `kinesis_ms` Kinesis' arrival time; `stream_ms` the DynamoDB stream record's
/// creation time (whole seconds on AWS). A stamp the row lacks is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Row {
    pub id: String,
    pub client_ms: Option<f64>,
    pub upstream_ms: Option<f64>,
    pub kinesis_ms: Option<f64>,
    pub midstream_ms: Option<f64>,
    pub stream_ms: Option<f64>,
    pub downstream_ms: Option<f64>,
}

/// Messages in the on-failure queue, read without receiving (and so without hiding or deleting)
/// any: SQS' approximate counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`: waiting to be read.
    pub messages: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received by someone and not yet deleted.
    pub in_flight: u64,
}

/// Reads the pipeline back. Each call asks for any number of ids; the adapter splits them into
/// the service's batches.
pub trait ResultsSource {
    /// The rows of those `ids` that are in the results table (any order; absent ids left out).
    async fn results(&self, ids: &[String]) -> Result<Vec<Row>, Error>;
    /// Those of `ids` that are in the items table (written by midstream).
    async fn in_items(&self, ids: &[String]) -> Result<Vec<String>, Error>;
    /// The on-failure queue's depth, or `None` when the run was given no queue.
    async fn failure_queue(&self) -> Result<Option<QueueDepth>, Error>;
    /// The tables and the queue, for messages: `results table T, items table T, queue Q`.
    fn describe(&self) -> String;
}
