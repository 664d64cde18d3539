//! The pipeline's midstream: a Kinesis batch in (the event source mapping on the stream, with
//! `ReportBatchItemFailures`), each record written to the items table, a partial batch response
//! out.
//!
//! Per record: the data decoded ([`pipeline::record`]); `kinesis_ms` = the record's
//! `approximateArrivalTimestamp`, read from the event's JSON number itself ([`Batch`]: the
//! `aws_lambda_events` decoding of it is wrong unless it has exactly three decimals);
//! `midstream_ms` = when the batch arrived (this host's clock);
//! one conditional `PutItem` (`attribute_not_exists(id)`) of the row ([`pipeline::stamps::Row::item`]).
//! The records of a batch are written concurrently, [`pipeline::MAX_IN_FLIGHT`] at a time; after a
//! table failure the records not yet started are reported without a call ([`pipeline::batch`]).
//!
//! - written, or **already there** (a redelivery: the condition failed): success;
//! - **poison** (not a pipeline record, an invalid item): reported in `batchItemFailures` by its
//!   sequence number. The mapping bisects and retries it alone and, after
//!   `MaximumRetryAttempts`, sends it to the on-failure destination;
//! - the table failed (unreachable, throttled past the SDK's attempts, stalled past its
//!   timeouts): reported too. Lambda checkpoints before the lowest reported sequence number and
//!   delivers the rest again; the records after it that were written become "already there".

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{LambdaEvent, service_fn};
use pipeline::stamps::{self, ItemRow, Row};
use pipeline::{Error, Put, SharedTable, record};
use serde_json::Value;

/// What became of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Inserted,
    AlreadyThere,
    /// Reported: retrying cannot help (the on-failure destination gets it).
    Poison(Error),
    /// Reported: the table failed; a retry may succeed.
    Failed(Error),
}

/// A Kinesis batch as the function takes it: the event, and each record's arrival time in
/// epoch milliseconds as the event's JSON has it.
///
/// `aws_lambda_events` (1.2) decodes `approximateArrivalTimestamp` by taking the digits after
/// the decimal point as milliseconds whatever their number: `1796529069.51` (a JSON number,
/// which drops trailing zeros: 510 ms) becomes 51 ms, `.5` becomes 5 ms. One arrival in ten
/// (those on a multiple of 10 ms) was stamped up to 0.9 s early, which showed as a slow
/// Kinesis → midstream hop. So the arrivals are read from the JSON here.
#[derive(Debug, Clone)]
pub struct Batch {
    pub event: KinesisEvent,
    /// Per record, in order; `None`: not a number (the record is poison).
    pub arrivals_ms: Vec<Option<i64>>,
}

impl From<KinesisEvent> for Batch {
    /// An event built in code: its arrival times as they are.
    fn from(event: KinesisEvent) -> Batch {
        let arrivals_ms = event
            .records
            .iter()
            .map(|r| Some(r.kinesis.approximate_arrival_timestamp.timestamp_millis()))
            .collect();
        Batch { event, arrivals_ms }
    }
}

impl<'de> serde::Deserialize<'de> for Batch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Batch, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        let arrivals_ms = raw
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| arrival_ms(&r["kinesis"]["approximateArrivalTimestamp"]))
            .collect();
        let event = serde_json::from_value(raw).map_err(serde::de::Error::custom)?;
        Ok(Batch { event, arrivals_ms })
    }
}

/// Epoch seconds (a number, or a string of one, as Lambda's events may carry) → milliseconds.
fn arrival_ms(seconds: &Value) -> Option<i64> {
    let seconds = match seconds {
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        other => other.as_f64()?,
    };
    seconds.is_finite().then(|| (seconds * 1000.0).round() as i64)
}

/// The row a record makes, or why it is poison.
fn row_of(record: &KinesisEventRecord, arrival_ms: Option<i64>, midstream_ms: u64) -> Result<Row, Error> {
    let decoded = record::decode(&record.kinesis.data.0)?;
    let kinesis_ms = arrival_ms.ok_or_else(|| Error::Poison("no arrival time".into()))?;
    let kinesis_ms =
        u64::try_from(kinesis_ms).map_err(|_| Error::Poison(format!("arrival time {kinesis_ms} ms")))?;
    Ok(Row::item(&ItemRow {
        id: decoded.item.id,
        item: decoded.item.json,
        client_ms: decoded.item.client_ms,
        upstream_ms: decoded.upstream_ms,
        kinesis_ms,
        midstream_ms,
    }))
}

/// Handles one Kinesis batch: every record written concurrently; the poison and failed ones
/// reported by sequence number. Also returns each record's outcome, in the batch's order.
pub async fn handle(table: &SharedTable, batch: impl Into<Batch>) -> (KinesisEventResponse, Vec<Outcome>) {
    let midstream_ms = stamps::now_ms();
    let Batch { event, arrivals_ms } = batch.into();
    let (rows, poison): (Vec<Option<Row>>, Vec<Option<Error>>) = event
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| match row_of(r, arrivals_ms.get(i).copied().flatten(), midstream_ms) {
            Ok(row) => (Some(row), None),
            Err(e) => (None, Some(e)),
        })
        .unzip();
    let written = pipeline::put_all(table.as_ref(), &rows).await;
    let outcomes: Vec<Outcome> = poison
        .into_iter()
        .zip(written)
        .map(|(poison, put)| match (poison, put) {
            (Some(e), _) => Outcome::Poison(e),
            (None, Some(Ok(Put::Inserted))) => Outcome::Inserted,
            (None, Some(Ok(Put::AlreadyThere))) => Outcome::AlreadyThere,
            (None, Some(Err(e))) => Outcome::Failed(e),
            // `put_all` answers every row it is given; were it not to, retry the record.
            (None, None) => Outcome::Failed(Error::Table {
                table: table.describe(),
                detail: "no answer for this record".into(),
                timed_out: false,
            }),
        })
        .collect();
    let mut response = KinesisEventResponse::default();
    let (mut inserted, mut already) = (0, 0);
    let (mut poison, mut failed) = (Reported::default(), Reported::default());
    for (record, outcome) in event.records.iter().zip(&outcomes) {
        let sequence = &record.kinesis.sequence_number;
        match outcome {
            Outcome::Inserted => inserted += 1,
            Outcome::AlreadyThere => already += 1,
            Outcome::Poison(e) => poison.add(sequence, e),
            Outcome::Failed(e) => failed.add(sequence, e),
        }
        if matches!(outcome, Outcome::Poison(_) | Outcome::Failed(_)) {
            response.add_failure(sequence.clone());
        }
    }
    poison.log("poison records reported (the on-failure destination gets them after the retries)");
    failed.log("records not written, reported for retry");
    tracing::info!(
        batch = outcomes.len(),
        inserted,
        already_there = already,
        poison = poison.count,
        failed = failed.count,
        "batch done"
    );
    (response, outcomes)
}

/// Reported records of one kind, logged as one line per batch (the first one's sequence number
/// and error, and how many): a stalled table fails every record, which would otherwise be a
/// line each.
#[derive(Default)]
struct Reported {
    count: usize,
    first: Option<(String, String)>,
}

impl Reported {
    fn add(&mut self, sequence: &str, error: &Error) {
        self.count += 1;
        self.first.get_or_insert_with(|| (sequence.to_owned(), error.to_string()));
    }

    fn log(&self, what: &str) {
        if let Some((sequence, error)) = &self.first {
            tracing::warn!(count = self.count, first_sequence = %sequence, first_error = %error, "{what}");
        }
    }
}

/// The function's settings, from its environment (template.yaml), read once in `main`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `PIPELINE_ITEMS_TABLE`.
    pub items_table: String,
    /// The AWS SDK's timeouts ([`edge::aws`]).
    pub aws: aws_setup::Timeouts,
}

/// A Lambda environment the function cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("PIPELINE_ITEMS_TABLE is not set: the DynamoDB table to write items into")]
    NoTable,
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
}

impl Settings {
    /// Reads the settings from `var` (`std::env::var` in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let items_table =
            var("PIPELINE_ITEMS_TABLE").filter(|s| !s.trim().is_empty()).ok_or(SettingsError::NoTable)?;
        Ok(Settings { items_table, aws: edge::aws::timeouts_from_vars(&var)? })
    }
}

/// Opens the table's connection during init, then serves batches until the runtime stops the
/// function.
pub async fn run(table: SharedTable) -> Result<(), lambda_runtime::Error> {
    let started = std::time::Instant::now();
    match table.warm().await {
        Ok(()) => tracing::info!(
            table = %table.describe(),
            warm_ms = started.elapsed().as_millis() as u64,
            "table connection open"
        ),
        Err(e) => {
            tracing::warn!(table = %table.describe(), error = %e, "could not pre-connect to the table; will retry per batch");
        }
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Batch>| {
        let table = table.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&table, event.payload).await.0) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_required() {
        assert!(matches!(Settings::from_vars(|_| None), Err(SettingsError::NoTable)));
        let settings =
            Settings::from_vars(|name| (name == "PIPELINE_ITEMS_TABLE").then(|| "items".to_owned())).unwrap();
        assert_eq!(settings.items_table, "items");
    }
}
