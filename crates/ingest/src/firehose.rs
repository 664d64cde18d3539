//! `firehose:<stream>`: records into an Amazon Data Firehose delivery stream (DirectPut).
//!
//! One record goes out as `PutRecord`, more as `PutRecordBatch` (up to [`Limits::FIREHOSE`]).
//! A batch can be taken in part: the response counts the refused entries (`FailedPutCount`) and
//! gives each its `ErrorCode` (`ServiceUnavailableException` when the stream is over its
//! throughput, `InternalFailure`), in request order. Those come back as [`FailedEntry`]s for the
//! caller to retry alone; resending the whole batch would duplicate what was taken. A call that
//! fails as a whole (no such stream, no permission, throttled, the network) is a [`SinkError`]
//! carrying the service's code and message; one that got no answer within the SDK's timeouts
//! (`aws_setup::Timeouts`) is a [`SinkError::timed_out`] (the records may still have been taken).
//!
//! Firehose then buffers the records and writes them to S3 as they came (each record's bytes,
//! one after the other), so the newline-delimited records of [`crate::pack`] become
//! newline-delimited objects without any separator being added.

use std::time::Instant;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchOutput;
use aws_sdk_firehose::primitives::Blob;

use crate::aws_error::sink_error;
use crate::{BoxFuture, FailedEntry, Limits, Record, Sink, SinkError};

/// A [`Sink`] delivering to one Firehose delivery stream.
pub struct FirehoseSink {
    client: Client,
    stream: String,
}

impl FirehoseSink {
    pub fn new(client: Client, stream: impl Into<String>) -> Self {
        FirehoseSink { client, stream: stream.into() }
    }

    /// A client built from `config`. Hosts with two sinks (valid and invalid events) load the
    /// configuration once and build both from it: one credentials provider, one connection pool.
    pub fn from_config(config: &aws_config::SdkConfig, stream: impl Into<String>) -> Self {
        FirehoseSink::new(Client::new(config), stream)
    }

    /// A client from [`aws_setup::load`]: region, credentials and `AWS_ENDPOINT_URL` (moto in
    /// tests) from the environment, TLS through rustls + ring.
    pub async fn from_env(stream: impl Into<String>) -> Self {
        FirehoseSink::from_config(&aws_setup::load().await, stream)
    }

    /// The delivery stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn error<E>(&self, started: Instant, e: SdkError<E>) -> SinkError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        sink_error(self.describe(), started, &e)
    }

    fn record(&self, data: &Record) -> Result<aws_sdk_firehose::types::Record, SinkError> {
        // The SDK's Blob owns a Vec, so each record is copied once here.
        aws_sdk_firehose::types::Record::builder()
            .data(Blob::new(data.to_vec()))
            .build()
            .map_err(|e| SinkError::new(self.describe(), DisplayErrorContext(e).to_string()))
    }

    async fn put_one(&self, data: &Record) -> Result<Vec<FailedEntry>, SinkError> {
        let started = Instant::now();
        self.client
            .put_record()
            .delivery_stream_name(&self.stream)
            .record(self.record(data)?)
            .send()
            .await
            .map_err(|e| self.error(started, e))?;
        Ok(Vec::new())
    }

    async fn put_batch(&self, records: &[Record]) -> Result<Vec<FailedEntry>, SinkError> {
        let entries = records.iter().map(|r| self.record(r)).collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let out = self
            .client
            .put_record_batch()
            .delivery_stream_name(&self.stream)
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
                "firehose refused some entries of a batch"
            );
        }
        Ok(failed)
    }
}

/// The entries of a `PutRecordBatch` of `records` records that Firehose did not take.
///
/// `FailedPutCount == 0` means every record was taken, whatever the entry list holds. Otherwise
/// an entry counts as taken only when it says so (a `RecordId` and no `ErrorCode`): an entry with
/// neither, or one missing from a short list, is reported failed, so that an inconsistent answer
/// costs a duplicate on retry rather than a lost record.
fn failed_entries(records: usize, out: &PutRecordBatchOutput) -> Vec<FailedEntry> {
    if out.failed_put_count() <= 0 {
        return Vec::new();
    }
    let responses = out.request_responses();
    (0..records)
        .filter_map(|index| match responses.get(index) {
            Some(entry) => match (entry.error_code(), entry.record_id()) {
                (Some(code), _) => Some(FailedEntry {
                    index,
                    code: code.to_owned(),
                    message: entry.error_message().unwrap_or_default().to_owned(),
                }),
                (None, Some(_)) => None,
                (None, None) => Some(FailedEntry {
                    index,
                    code: "Unacknowledged".to_owned(),
                    message: "the entry has neither a RecordId nor an ErrorCode".to_owned(),
                }),
            },
            None => Some(FailedEntry {
                index,
                code: "Unacknowledged".to_owned(),
                message: format!("the response has {} entries for {records} records", responses.len()),
            }),
        })
        .collect()
}

impl Sink for FirehoseSink {
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        Box::pin(async move {
            match records {
                [] => Ok(Vec::new()),
                // One record: PutRecord, whose answer has no entry list to check.
                [one] => self.put_one(one).await,
                _ => self.put_batch(records).await,
            }
        })
    }

    fn limits(&self) -> Limits {
        Limits::FIREHOSE
    }

    fn describe(&self) -> String {
        format!("firehose:{}", self.stream)
    }

    /// `DescribeDeliveryStream`: free, and it resolves credentials and opens the TLS connection
    /// the first `PutRecordBatch` would otherwise pay for. It also fails early on a stream that
    /// does not exist or a role without access to it.
    fn warm(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let started = Instant::now();
            self.client
                .describe_delivery_stream()
                .delivery_stream_name(&self.stream)
                .send()
                .await
                .map_err(|e| self.error(started, e))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_firehose::types::PutRecordBatchResponseEntry;

    use super::*;

    fn taken(id: &str) -> PutRecordBatchResponseEntry {
        PutRecordBatchResponseEntry::builder().record_id(id).build()
    }

    fn refused(code: &str, message: &str) -> PutRecordBatchResponseEntry {
        PutRecordBatchResponseEntry::builder().error_code(code).error_message(message).build()
    }

    fn output(failed: i32, entries: Vec<PutRecordBatchResponseEntry>) -> PutRecordBatchOutput {
        PutRecordBatchOutput::builder()
            .failed_put_count(failed)
            .set_request_responses(Some(entries))
            .build()
            .expect("failed_put_count and request_responses are set")
    }

    #[test]
    fn refused_entries_come_back_with_their_index_code_and_message() {
        let out = output(
            2,
            vec![
                taken("a"),
                refused("ServiceUnavailableException", "Slow down."),
                taken("c"),
                refused("InternalFailure", "oops"),
            ],
        );
        assert_eq!(
            failed_entries(4, &out),
            vec![
                FailedEntry {
                    index: 1,
                    code: "ServiceUnavailableException".into(),
                    message: "Slow down.".into()
                },
                FailedEntry { index: 3, code: "InternalFailure".into(), message: "oops".into() },
            ]
        );
    }

    #[test]
    fn a_failed_put_count_of_zero_means_everything_was_taken() {
        assert!(failed_entries(3, &output(0, vec![taken("a"), taken("b"), taken("c")])).is_empty());
        // moto answers a destination it does not emulate with an empty list.
        assert!(failed_entries(3, &output(0, vec![])).is_empty());
    }

    #[test]
    fn an_inconsistent_answer_reports_unacknowledged_entries_as_failed_rather_than_lose_them() {
        let out = output(1, vec![taken("a"), PutRecordBatchResponseEntry::builder().build()]);
        let failed = failed_entries(3, &out);
        assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), vec![1, 2]);
        assert!(failed.iter().all(|f| f.code == "Unacknowledged"));
        assert!(failed[1].message.contains("2 entries for 3 records"), "{}", failed[1].message);
    }
}
