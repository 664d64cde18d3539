//! The pipeline's downstream: a batch of the items table's stream in (`NEW_IMAGE`, a
//! `FilterCriteria` that passes INSERTs only), a results row per item, one EMF metrics line per
//! invocation, a partial batch response out.
//!
//! Per record: the stamps midstream wrote, from `NewImage`; `stream_ms` = the stream record's
//! `ApproximateCreationDateTime` (**whole seconds** on AWS: the hops through it are only
//! second-precise); `downstream_ms` = when the batch arrived (this host's clock). One
//! conditional `PutItem` of the results row ([`pipeline::stamps::Row::result`]); the records of a
//! batch are written concurrently, [`pipeline::MAX_IN_FLIGHT`] at a time; after a table failure
//! the records not yet started are reported without a call ([`pipeline::batch`]).
//!
//! - **inserted**: its latencies ([`pipeline::Stamps::latencies`]) go into this invocation's
//!   metrics;
//! - **already there** (a redelivered record): success, and **not counted again**;
//! - a bad image (poison) or a results-table failure: reported in `batchItemFailures` by the
//!   stream record's `SequenceNumber` (retried; the on-failure destination after
//!   `MaximumRetryAttempts`);
//! - not an INSERT (should the filter let one through): skipped.
//!
//! The metrics: one EMF line on stdout per invocation ([`pipeline::emf`]: values arrays, at
//! most 100 values per metric a line, split beyond), never an API call per record.

use std::io::Write as _;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::emf;
use pipeline::stamps::{self, Row, Stamps};
use pipeline::{Error, Put, SharedTable};

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written now, and counted.
    Inserted(Stamps),
    /// A redelivery: neither written nor counted again.
    AlreadyThere,
    /// Not an INSERT: nothing to do.
    Skipped,
    /// Reported: the image is not one midstream writes.
    Poison(Error),
    /// Reported: the results table failed.
    Failed(Error),
}

/// A batch the function cannot answer per record: the whole batch is retried.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record {0} has no SequenceNumber; cannot report it alone, so the whole batch is retried")]
    NoSequenceNumber(usize),
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        lambda_runtime::Diagnostic { error_type: "BatchError".into(), error_message: e.to_string() }
    }
}

/// What an invocation answers and the metrics lines it writes.
#[derive(Debug)]
pub struct Handled {
    pub response: DynamoDbEventResponse,
    pub outcomes: Vec<Outcome>,
    /// The EMF lines (each ending in `\n`); none when nothing was inserted.
    pub lines: Vec<String>,
}

fn stamps_of(record: &EventRecord, downstream_ms: u64) -> Result<(String, Stamps), Error> {
    let image = serde_json::to_value(&record.change.new_image)
        .map_err(|e| Error::Poison(format!("NewImage cannot be read: {e}")))?;
    let row = stamps::item_row_from_image(&image)?;
    let stream_ms = record.change.approximate_creation_date_time.timestamp_millis();
    let stream_ms = u64::try_from(stream_ms)
        .map_err(|_| Error::Poison(format!("ApproximateCreationDateTime {stream_ms} ms")))?;
    Ok((row.id.clone(), Stamps::of(&row, stream_ms, downstream_ms)))
}

/// What to do with a record before any write: write this row (with these stamps), or the
/// outcome it already has.
fn plan(record: &EventRecord, downstream_ms: u64) -> Result<(Row, Stamps), Outcome> {
    if record.event_name != "INSERT" {
        return Err(Outcome::Skipped);
    }
    let (id, stamps) = stamps_of(record, downstream_ms).map_err(Outcome::Poison)?;
    Ok((Row::result(&id, &stamps), stamps))
}

/// Handles one batch of the items table's stream: every record written concurrently, the
/// inserted ones counted in the metrics lines, the poison and failed ones reported.
pub async fn handle(
    results: &SharedTable,
    event: Event,
    namespace: &str,
    request_id: &str,
) -> Result<Handled, BatchError> {
    let downstream_ms = stamps::now_ms();
    let (rows, plans): (Vec<Option<Row>>, Vec<Result<Stamps, Outcome>>) = event
        .records
        .iter()
        .map(|r| match plan(r, downstream_ms) {
            Ok((row, stamps)) => (Some(row), Ok(stamps)),
            Err(outcome) => (None, Err(outcome)),
        })
        .unzip();
    let written = pipeline::put_all(results.as_ref(), &rows).await;
    let outcomes: Vec<Outcome> = plans
        .into_iter()
        .zip(written)
        .map(|(plan, put)| match (plan, put) {
            (Err(outcome), _) => outcome,
            (Ok(stamps), Some(Ok(Put::Inserted))) => Outcome::Inserted(stamps),
            (Ok(_), Some(Ok(Put::AlreadyThere))) => Outcome::AlreadyThere,
            (Ok(_), Some(Err(e))) => Outcome::Failed(e),
            // `put_all` answers every row it is given; were it not to, retry the record.
            (Ok(_), None) => Outcome::Failed(Error::Table {
                table: results.describe(),
                detail: "no answer for this record".into(),
                timed_out: false,
            }),
        })
        .collect();
    let mut response = DynamoDbEventResponse::default();
    let mut metrics = emf::Batch::new();
    let (mut already, mut skipped, mut reported) = (0, 0, 0);
    let mut first_reported: Option<(String, String)> = None;
    for (i, (record, outcome)) in event.records.iter().zip(&outcomes).enumerate() {
        let error = match outcome {
            Outcome::Inserted(stamps) => {
                metrics.add_item(&stamps.latencies());
                continue;
            }
            Outcome::AlreadyThere => {
                already += 1;
                continue;
            }
            Outcome::Skipped => {
                skipped += 1;
                continue;
            }
            Outcome::Poison(e) | Outcome::Failed(e) => e,
        };
        let sequence = record.change.sequence_number.clone().ok_or(BatchError::NoSequenceNumber(i))?;
        // One line per batch, not one per record (a stalled table fails them all).
        first_reported.get_or_insert_with(|| (sequence.clone(), error.to_string()));
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
        reported += 1;
    }
    if let Some((sequence, error)) = &first_reported {
        tracing::warn!(count = reported, first_sequence = %sequence, first_error = %error, "records reported for retry");
    }
    tracing::info!(
        batch = outcomes.len(),
        inserted = metrics.items(),
        already_there = already,
        skipped,
        reported,
        "batch done"
    );
    let mut properties = serde_json::Map::new();
    properties.insert("requestId".into(), request_id.into());
    let lines = metrics.lines(namespace, downstream_ms, &properties);
    Ok(Handled { response, outcomes, lines })
}

/// The function's settings, from its environment (template.yaml), read once in `main`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `PIPELINE_RESULTS_TABLE`.
    pub results_table: String,
    /// `PIPELINE_METRICS_NAMESPACE` (default `Pipeline`).
    pub namespace: String,
    /// The AWS SDK's timeouts ([`edge::aws`]).
    pub aws: aws_setup::Timeouts,
}

/// A Lambda environment the function cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("PIPELINE_RESULTS_TABLE is not set: the DynamoDB table to write results into")]
    NoTable,
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
}

impl Settings {
    /// Reads the settings from `var` (`std::env::var` in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let results_table =
            var("PIPELINE_RESULTS_TABLE").filter(|s| !s.trim().is_empty()).ok_or(SettingsError::NoTable)?;
        let namespace = var("PIPELINE_METRICS_NAMESPACE")
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_owned());
        Ok(Settings { results_table, namespace, aws: edge::aws::timeouts_from_vars(&var)? })
    }
}

/// Each line to stdout in one `write_all` under stdout's lock, so it never interleaves with a
/// log line. A failed write is dropped: metrics never fail a batch.
fn print(lines: &[String]) {
    let mut out = std::io::stdout().lock();
    for line in lines {
        let _ = out.write_all(line.as_bytes());
    }
    let _ = out.flush();
}

/// Opens the table's connection during init, then serves batches until the runtime stops the
/// function.
pub async fn run(results: SharedTable, namespace: String) -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    match results.warm().await {
        Ok(()) => tracing::info!(
            table = %results.describe(),
            warm_ms = started.elapsed().as_millis() as u64,
            "table connection open"
        ),
        Err(e) => {
            tracing::warn!(table = %results.describe(), error = %e, "could not pre-connect to the table; will retry per batch");
        }
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let results = results.clone();
        let namespace = namespace.clone();
        async move {
            let handled = handle(&results, event.payload, &namespace, &event.context.request_id).await?;
            print(&handled.lines);
            Ok::<_, BatchError>(handled.response)
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_required_and_the_namespace_defaults_to_pipeline() {
        assert!(matches!(Settings::from_vars(|_| None), Err(SettingsError::NoTable)));
        let settings =
            Settings::from_vars(|name| (name == "PIPELINE_RESULTS_TABLE").then(|| "results".to_owned()))
                .unwrap();
        assert_eq!((settings.results_table.as_str(), settings.namespace.as_str()), ("results", "Pipeline"));
        let settings = Settings::from_vars(|name| Some(format!("{name}-x"))).unwrap_err();
        assert!(matches!(settings, SettingsError::Aws(_)), "AWS_MAX_ATTEMPTS-x is no number");
    }
}
