//! The `calc-worker` Lambda: an SQS batch in, a partial batch response out.
//!
//! Every record of the batch runs concurrently (one span per message). The response lists the
//! records that failed (`batchItemFailures`), so that the event source mapping deletes the rest
//! and only those come back: a poison message returns until the queue's `maxReceiveCount`
//! moves it to the dead-letter queue, without ever holding up the rest of its batch. A message
//! that could not finish before the invocation's deadline is refused up front and returns too.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use queue::{ConsumeStats, Message, Worker};
use tokio::time::Instant;

use crate::config::LambdaConfig;

/// A batch the function cannot answer per record: the whole batch returns to the queue.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record {0} has no messageId; cannot report it alone, so the whole batch is retried")]
    NoMessageId(usize),
}

impl From<BatchError> for lambda_runtime::Diagnostic {
    fn from(e: BatchError) -> Self {
        lambda_runtime::Diagnostic { error_type: "BatchError".into(), error_message: e.to_string() }
    }
}

/// The worker, built once at init (the DynamoDB client and its connection pool are reused).
/// `Err` when the ledger cannot be opened (no AWS region).
pub async fn build(config: &LambdaConfig, aws: &aws_setup::Aws) -> Result<Arc<Worker>, queue::Error> {
    let spec = queue::LedgerSpec::DynamoDb {
        done_table: config.done_table.clone(),
        messages_table: config.messages_table.clone(),
    };
    let ledger = queue::open_ledger(&spec, aws).await?;
    Ok(Arc::new(Worker::new(ledger, config.max_x).with_margin(config.margin)))
}

/// Epoch milliseconds in September 2001: anything smaller is not a wall-clock deadline.
const EPOCH_MS_2001: u64 = 1_000_000_000_000;

/// The invocation's deadline on the tokio clock. Lambda sends epoch milliseconds; cargo-lambda's
/// emulator sends a bare duration (600000) instead, which is no deadline at all: `None`.
fn deadline(deadline_epoch_ms: u64) -> Option<Instant> {
    if deadline_epoch_ms < EPOCH_MS_2001 {
        return None;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms)))
}

/// Handles one SQS batch.
pub async fn handle(worker: &Worker, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, BatchError> {
    let records = event.payload.records;
    let mut messages = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        let id = record.message_id.filter(|id| !id.is_empty()).ok_or(BatchError::NoMessageId(i))?;
        // A record without a body parses as poison, with the reason logged.
        messages.push(Message { id, body: record.body.unwrap_or_default() });
    }
    let verdicts = worker.process_batch(&messages, deadline(event.context.deadline)).await;
    let mut stats = ConsumeStats::default();
    let mut response = SqsBatchResponse::default();
    for (message, verdict) in messages.into_iter().zip(&verdicts) {
        stats.add(verdict);
        if verdict.is_err() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.id;
            response.batch_item_failures.push(failure);
        }
    }
    tracing::info!(
        batch = verdicts.len(),
        counted = stats.counted,
        duplicates = stats.duplicates,
        poison = stats.dead_lettered,
        retry = stats.requeued,
        "batch done"
    );
    Ok(response)
}

/// Serves batches until the runtime stops the function.
pub async fn run(worker: Arc<Worker>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { handle(&worker, event).await }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_deadline_is_kept_and_a_bare_duration_is_none() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let left = deadline(now_ms + 3_000).unwrap().saturating_duration_since(Instant::now());
        assert!(left > Duration::from_millis(2_900) && left <= Duration::from_millis(3_000), "{left:?}");
        assert_eq!(deadline(600_000), None, "cargo-lambda's emulator");
        assert_eq!(deadline(0), None);
    }
}
