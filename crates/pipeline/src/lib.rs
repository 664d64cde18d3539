//! The pipeline's domain: HTTP → upstream → Kinesis → midstream → items table → its stream →
//! downstream → results table + CloudWatch (EMF). No Lambda or HTTP imports: the three Lambdas
//! are glue in `functions/pipeline-*` (docs/pipeline.md).
//!
//! - [`item`]: what upstream accepts (content type, size, fields, the timestamp rule);
//! - [`record`]: the Kinesis record data;
//! - [`stamps`]: the stamps, the rows of both tables, the latencies;
//! - [`emf`]: the metrics lines downstream writes;
//! - [`batch`]: a batch's rows written concurrently, stopping after a failure;
//! - the ports: [`Stream`] (put one record) and [`Table`] (put a row if its id is absent; the
//!   items table and the results table), with [`memory`] adapters and the AWS ones,
//!   [`kinesis`] and [`dynamodb`] (features of the same names).

pub mod batch;
pub mod emf;
pub mod error;
pub mod item;
pub mod memory;
pub mod record;
pub mod stamps;

#[cfg(feature = "aws")]
mod aws_error;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "kinesis")]
pub mod kinesis;

use std::sync::Arc;

use tracing::Instrument;

pub use batch::{MAX_IN_FLIGHT, put_all};
pub use error::Error;
pub use futures_util::future::BoxFuture;
pub use item::Item;
pub use stamps::{ItemRow, Row, Stamps};

/// Where upstream puts records: one Kinesis data stream.
pub trait Stream: Send + Sync {
    /// Puts one record with this partition key; `Ok` once the stream acknowledged it.
    fn put<'a>(&'a self, partition_key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>>;
    /// Opens the connection with a cheap call (Lambda init, on the unthrottled CPU).
    fn warm(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// `kinesis:<stream>`, `memory`.
    fn describe(&self) -> String;
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The row was written now.
    Inserted,
    /// A row with this id was there already (a redelivery): nothing written, not an error.
    AlreadyThere,
}

/// A table keyed by `id`: the items table (midstream) and the results table (downstream).
pub trait Table: Send + Sync {
    /// Writes the row unless one with its id exists; `Ok` once durable.
    fn put_if_absent<'a>(&'a self, row: &'a Row) -> BoxFuture<'a, Result<Put, Error>>;
    /// Opens the connection with a cheap call.
    fn warm(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// `dynamodb:<table>`, `memory`.
    fn describe(&self) -> String;
}

pub type SharedStream = Arc<dyn Stream>;
pub type SharedTable = Arc<dyn Table>;

/// The Kinesis stream `name`, its client built from `aws` (once per process).
#[cfg(feature = "kinesis")]
pub async fn open_stream(name: &str, aws: &aws_setup::Aws) -> Result<SharedStream, Error> {
    let config = aws.config().await.map_err(|e| Error::Aws(e.to_string()))?;
    Ok(Arc::new(kinesis::KinesisStream::new(aws_sdk_kinesis::Client::new(config), name)))
}

/// The DynamoDB table `name`, its client built from `aws` (once per process).
#[cfg(feature = "dynamodb")]
pub async fn open_table(name: &str, aws: &aws_setup::Aws) -> Result<SharedTable, Error> {
    let config = aws.config().await.map_err(|e| Error::Aws(e.to_string()))?;
    Ok(Arc::new(dynamodb::DynamoDbTable::new(aws_sdk_dynamodb::Client::new(config), name)))
}

/// The span of one call to an AWS service: on Lambda the X-Ray layer (`edge::xray`) makes it a
/// subsegment named `service` with `aws.operation` (fields `xray`, `xray.namespace`,
/// `aws.operation`), and records a failure in `error`. DEBUG: the layer takes it whatever the log
/// level, while the logs at INFO do not pay for a span per call.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
fn call_span(service: &'static str, operation: &'static str) -> tracing::Span {
    tracing::debug_span!(
        "aws",
        xray = service,
        xray.namespace = "aws",
        aws.operation = operation,
        error = tracing::field::Empty
    )
}

/// `call` within `span`, its error recorded there.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
async fn traced<T>(call: impl Future<Output = Result<T, Error>>, span: tracing::Span) -> Result<T, Error> {
    let result = call.instrument(span.clone()).await;
    if let Err(e) = &result {
        span.record("error", tracing::field::display(e));
    }
    result
}
