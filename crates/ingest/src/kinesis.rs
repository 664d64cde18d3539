//! `kinesis:<stream>`: records into a Kinesis data stream.
//!
//! Always `PutRecords` (up to [`Limits::KINESIS`]), even for one record: Kinesis has no cheaper
//! single-record call, and one code path answers per entry. Like Firehose, a call can be taken in
//! part (`FailedRecordCount` > 0; each refused entry has an `ErrorCode`, mostly
//! `ProvisionedThroughputExceededException` when a shard is over 1 MB/s or 1,000 records/s);
//! those come back as [`FailedEntry`]s, a call that fails as a whole as a [`SinkError`] (timed
//! out, [`SinkError::timed_out`], when it got no answer within the SDK's timeouts).
//!
//! Kinesis puts a record on the shard owning the MD5 of its partition key. Each record here gets
//! its own key ([`PartitionKeys`]), so a sink's records spread evenly over every shard instead
//! of pinning one.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::aws_error::sink_error;
use crate::{BoxFuture, FailedEntry, Limits, Record, Sink, SinkError};

/// Partition keys: 16 hex digits of a counter that starts at a random value per process.
///
/// Kinesis hashes the key with MD5, so any two distinct keys land on independent shards: a
/// counter spreads as well as random keys do, for the price of one atomic add per call. The
/// random start matters on Lambda, where many short-lived instances each put a few records: all
/// starting at 0 would send every instance's first record to the same shard. 16 bytes of key
/// stay well inside the 256 [`Limits::KINESIS`] leaves room for.
#[derive(Debug)]
pub struct PartitionKeys {
    next: AtomicU64,
}

impl PartitionKeys {
    pub fn new() -> PartitionKeys {
        PartitionKeys::starting_at(RandomState::new().hash_one(std::process::id()))
    }

    pub fn starting_at(start: u64) -> PartitionKeys {
        PartitionKeys { next: AtomicU64::new(start) }
    }

    /// `n` consecutive keys, distinct from every other call's (until the counter wraps, after
    /// 2^64 records).
    pub fn take(&self, n: usize) -> impl Iterator<Item = String> + use<> {
        let first = self.next.fetch_add(n as u64, Ordering::Relaxed);
        (0..n as u64).map(move |i| format!("{:016x}", first.wrapping_add(i)))
    }
}

impl Default for PartitionKeys {
    fn default() -> Self {
        PartitionKeys::new()
    }
}

/// A [`Sink`] delivering to one Kinesis data stream.
pub struct KinesisSink {
    client: Client,
    stream: String,
    keys: PartitionKeys,
}

impl KinesisSink {
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        KinesisSink { client, stream: stream.into(), keys: PartitionKeys::new() }
    }

    /// A client built from `config` (load it once per process and share it between sinks).
    pub fn from_config(config: &aws_config::SdkConfig, stream: impl Into<String>) -> Self {
        KinesisSink::new(Client::new(config), stream)
    }

    /// A client from [`aws_setup::load`]: region, credentials and `AWS_ENDPOINT_URL` (moto in
    /// tests) from the environment, TLS through rustls + ring.
    pub async fn from_env(stream: impl Into<String>) -> Self {
        KinesisSink::from_config(&aws_setup::load().await, stream)
    }

    /// The data stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn error<E>(&self, started: Instant, e: SdkError<E>) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        sink_error(self.describe(), started, &e)
    }
}

/// The entries of a `PutRecords` of `records` records that Kinesis did not take: as for
/// Firehose, `FailedRecordCount` 0 (or absent) means all were taken; otherwise an entry counts as
/// taken only with a `SequenceNumber` and no `ErrorCode`, so an inconsistent answer costs a
/// duplicate on retry, never a lost record.
fn failed_entries(records: usize, out: &PutRecordsOutput) -> Vec<FailedEntry> {
    if out.failed_record_count().unwrap_or(0) <= 0 {
        return Vec::new();
    }
    let results = out.records();
    (0..records)
        .filter_map(|index| match results.get(index) {
            Some(entry) => match (entry.error_code(), entry.sequence_number()) {
                (Some(code), _) => Some(FailedEntry {
                    index,
                    code: code.to_owned(),
                    message: entry.error_message().unwrap_or_default().to_owned(),
                }),
                (None, Some(_)) => None,
                (None, None) => Some(FailedEntry {
                    index,
                    code: "Unacknowledged".to_owned(),
                    message: "the entry has neither a SequenceNumber nor an ErrorCode".to_owned(),
                }),
            },
            None => Some(FailedEntry {
                index,
                code: "Unacknowledged".to_owned(),
                message: format!("the response has {} entries for {records} records", results.len()),
            }),
        })
        .collect()
}

impl Sink for KinesisSink {
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(Vec::new());
            }
            let entries = records
                .iter()
                .zip(self.keys.take(records.len()))
                .map(|(data, key)| {
                    // The SDK's Blob owns a Vec, so each record is copied once here.
                    PutRecordsRequestEntry::builder()
                        .data(Blob::new(data.to_vec()))
                        .partition_key(key)
                        .build()
                        .map_err(|e| SinkError::new(self.describe(), DisplayErrorContext(e).to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let started = Instant::now();
            let out = self
                .client
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| self.error(started, e))?;
            let failed = failed_entries(records.len(), &out);
            if !failed.is_empty() {
                tracing::debug!(
                    stream = %self.stream,
                    records = records.len(),
                    failed = failed.len(),
                    first_code = %failed[0].code,
                    "kinesis refused some entries of a batch"
                );
            }
            Ok(failed)
        })
    }

    fn limits(&self) -> Limits {
        Limits::KINESIS
    }

    fn describe(&self) -> String {
        format!("kinesis:{}", self.stream)
    }

    /// `DescribeStreamSummary`: free, and it resolves credentials and opens the TLS connection
    /// before the first `PutRecords`; a missing stream or a role without access fails here.
    fn warm(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let started = Instant::now();
            self.client
                .describe_stream_summary()
                .stream_name(&self.stream)
                .send()
                .await
                .map_err(|e| self.error(started, e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use aws_sdk_kinesis::types::PutRecordsResultEntry;

    use super::*;

    fn taken(sequence: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder().sequence_number(sequence).shard_id("shardId-000000000000").build()
    }

    fn refused(code: &str, message: &str) -> PutRecordsResultEntry {
        PutRecordsResultEntry::builder().error_code(code).error_message(message).build()
    }

    fn output(failed: Option<i32>, entries: Vec<PutRecordsResultEntry>) -> PutRecordsOutput {
        PutRecordsOutput::builder()
            .set_failed_record_count(failed)
            .set_records(Some(entries))
            .build()
            .unwrap()
    }

    #[test]
    fn refused_entries_come_back_with_their_index_code_and_message() {
        let out = output(
            Some(1),
            vec![taken("1"), refused("ProvisionedThroughputExceededException", "Rate exceeded for shard")],
        );
        assert_eq!(
            failed_entries(2, &out),
            vec![FailedEntry {
                index: 1,
                code: "ProvisionedThroughputExceededException".into(),
                message: "Rate exceeded for shard".into(),
            }]
        );
    }

    #[test]
    fn no_failed_record_count_means_everything_was_taken() {
        assert!(failed_entries(2, &output(None, vec![taken("1"), taken("2")])).is_empty());
        assert!(failed_entries(2, &output(Some(0), vec![])).is_empty());
    }

    #[test]
    fn an_inconsistent_answer_reports_unacknowledged_entries_as_failed_rather_than_lose_them() {
        let out = output(Some(1), vec![PutRecordsResultEntry::builder().build()]);
        let failed = failed_entries(2, &out);
        assert_eq!(
            failed.iter().map(|f| (f.index, f.code.as_str())).collect::<Vec<_>>(),
            [(0, "Unacknowledged"), (1, "Unacknowledged")]
        );
    }

    #[test]
    fn partition_keys_are_distinct_hex_and_short() {
        let keys = PartitionKeys::new();
        let all: Vec<String> = keys.take(500).chain(keys.take(500)).collect();
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1000);
        assert!(all.iter().all(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit())));
    }

    #[test]
    fn partition_keys_wrap_around_instead_of_overflowing() {
        let keys = PartitionKeys::starting_at(u64::MAX);
        assert_eq!(keys.take(2).collect::<Vec<_>>(), ["ffffffffffffffff", "0000000000000000"]);
        assert_eq!(keys.take(1).collect::<Vec<_>>(), ["0000000000000001"]);
    }
}
