//! The Firehose data-transformation Lambda: checks each record of a batch against the event
//! contract ([`ingest::transform::check_record`]) and answers `Ok` or `ProcessingFailed` per
//! record.
//!
//! The data goes back unchanged either way. For `Ok` records Firehose delivers it under the
//! stream's prefix; for `ProcessingFailed` ones it writes the original record under the error
//! output prefix (`errors/processing-failed/` in template.yaml), so a bad record is set aside,
//! never dropped. The response has exactly one record per input record, with the same
//! `recordId`: Firehose fails the whole batch (and retries it) otherwise.

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
};
use ingest::transform::{Verdict, check_record};
use lambda_runtime::{Error, LambdaEvent};

/// The handler `main` runs: [`transform`] of the payload. Never fails and never panics, whatever
/// the records hold: a record it cannot accept is a `ProcessingFailed` result, not an error of
/// the invocation (which would make Firehose retry the whole batch, then fail all of it).
pub async fn handle(event: LambdaEvent<KinesisFirehoseEvent>) -> Result<KinesisFirehoseResponse, Error> {
    Ok(transform(event.payload))
}

/// One response record per event record, in order: same `recordId`, the verdict as `result`,
/// the data as it came. Logs one line per failed record (its id and the reason) and one summary
/// line per batch.
pub fn transform(event: KinesisFirehoseEvent) -> KinesisFirehoseResponse {
    let total = event.records.len();
    let mut failed = 0usize;
    let mut response = KinesisFirehoseResponse::default();
    response.records = event
        .records
        .into_iter()
        .map(|record| {
            let verdict = check_record(&record.data);
            let record_id = record.record_id.as_deref().unwrap_or("(none)");
            if let Verdict::ProcessingFailed(reason) = &verdict {
                failed += 1;
                tracing::warn!(record_id, bytes = record.data.len(), reason = %reason, "record failed validation");
            }
            if record.record_id.is_none() {
                // Firehose always sends one; without it the answer cannot be matched, and
                // Firehose will fail the batch. Say so rather than guess an id.
                tracing::error!("a record without recordId; Firehose will reject this batch's response");
            }
            let mut out = KinesisFirehoseResponseRecord::default();
            out.record_id = record.record_id;
            out.result = Some(verdict.result().to_owned());
            out.data = record.data;
            out
        })
        .collect();
    tracing::info!(
        invocation_id = event.invocation_id.as_deref().unwrap_or("(none)"),
        delivery_stream = event.delivery_stream_arn.as_deref().unwrap_or("(none)"),
        records = total,
        ok = total - failed,
        failed,
        "batch checked"
    );
    response
}
