//! SQS as a source: the plain worker's long-poll loop ([`consume`]), and the calls the local
//! event-source poller shares with it ([`SqsSource`]).
//!
//! On AWS the Lambda's event source mapping receives, invokes and deletes; the plain binary does
//! it itself here: long-poll up to 10 messages at a time while fewer than `concurrency` are in
//! flight, run each as soon as it arrives, delete what succeeded (deletes batched, up to 10 per
//! call, as they come), and leave the rest to come back:
//! - a poison message is made visible again at once, so it reaches the queue's
//!   `maxReceiveCount` (and the dead-letter queue, where SQS moves it) without waiting out the
//!   visibility timeout each time;
//! - a retryable failure (ledger down) waits out the visibility timeout: a natural back-off.
//!
//! On shutdown it stops receiving (a long poll in progress is dropped: anything it had taken
//! becomes visible again after the visibility timeout, nothing is lost), finishes the messages in
//! flight, deletes those that succeeded, and returns.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::worker::ConsumeStats;
use crate::{Error, Message, Worker};

const SOURCE: &str = "sqs";
/// SQS's limit for ReceiveMessage and DeleteMessageBatch.
pub const MAX_BATCH: usize = 10;

fn failed(call: &str, e: impl std::error::Error) -> Error {
    Error::source(SOURCE, format!("{call}: {}", DisplayErrorContext(e)))
}

/// A message as received, with what deleting it and describing it to a Lambda need.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: Message,
    pub receipt: String,
    pub md5_of_body: Option<String>,
    /// System attributes by name (`ApproximateReceiveCount`, `SentTimestamp`, …).
    pub attributes: HashMap<String, String>,
}

impl Received {
    /// How many times SQS has handed this message out, this time included.
    pub fn receive_count(&self) -> u32 {
        self.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1)
    }
}

/// One queue.
#[derive(Clone)]
pub struct SqsSource {
    client: Client,
    queue_url: String,
}

impl SqsSource {
    pub fn new(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> SqsSource {
        SqsSource::from_client(Client::new(config), queue_url)
    }

    pub fn from_client(client: Client, queue_url: impl Into<String>) -> SqsSource {
        SqsSource { client, queue_url: queue_url.into() }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Long-polls for up to `max` (1–10) messages, waiting up to `wait` (≤ 20 s) for the first.
    /// The client's attempt and operation timeouts (`aws_setup::Timeouts`) are lengthened by the
    /// wait for this call ([`aws_setup::long_poll`]): a poll is not cut short, a stalled one ends.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, Error> {
        let wait = Duration::from_secs(wait.as_secs().min(20));
        let timeouts = aws_setup::long_poll(self.client.config().timeout_config(), wait);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| failed("ReceiveMessage", e))?;
        let mut received = Vec::with_capacity(out.messages().len());
        for m in out.messages() {
            let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                // SQS always sends both; without a receipt handle it could not be deleted anyway.
                tracing::warn!(?m, "ReceiveMessage returned a message without id or receipt handle; skipped");
                continue;
            };
            let attributes = m
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                .unwrap_or_default();
            received.push(Received {
                message: Message { id: id.to_owned(), body: m.body().unwrap_or_default().to_owned() },
                receipt: receipt.to_owned(),
                md5_of_body: m.md5_of_body().map(str::to_owned),
                attributes,
            });
        }
        Ok(received)
    }

    /// Deletes messages by receipt handle, 10 per call. Returns the receipts SQS did not delete
    /// (they will be redelivered; the ledger makes that harmless).
    pub async fn delete(&self, receipts: &[String]) -> Result<Vec<String>, Error> {
        let mut not_deleted = Vec::new();
        for chunk in receipts.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .map_err(|e| Error::source(SOURCE, format!("DeleteMessageBatch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failed("DeleteMessageBatch", e))?;
            for failure in out.failed() {
                tracing::warn!(code = failure.code(), message = ?failure.message(), "SQS did not delete a message");
                if let Some(receipt) = failure.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    not_deleted.push(receipt.clone());
                }
            }
        }
        Ok(not_deleted)
    }

    /// Makes a received message visible again now (instead of after the visibility timeout).
    pub async fn release(&self, receipt: &str) -> Result<(), Error> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| failed("ChangeMessageVisibility", e))?;
        Ok(())
    }

    /// Approximate number of messages in the queue: visible + in flight.
    pub async fn depth(&self) -> Result<u64, Error> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| failed("GetQueueAttributes", e))?;
        let attributes = out.attributes();
        let count = |name: QueueAttributeName| -> u64 {
            attributes.and_then(|a| a.get(&name)).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        Ok(count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

/// Approximate number of messages (visible + in flight) in the queue at `queue_url`.
pub async fn depth(config: &aws_config::SdkConfig, queue_url: &str) -> Result<u64, Error> {
    SqsSource::new(config, queue_url).depth().await
}

/// How the plain worker consumes SQS.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Messages in flight at most (received and not yet deleted or released).
    pub concurrency: usize,
    /// Long-poll wait (≤ 20 s).
    pub wait: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig { concurrency: 64, wait: Duration::from_secs(20) }
    }
}

/// Consumes until `shutdown` resolves; see the module docs. Errs when SQS cannot be reached at
/// all (the first receive fails); later receive errors are logged and retried with back-off.
pub async fn consume(
    source: &SqsSource,
    worker: Arc<Worker>,
    config: &ConsumerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ConsumeStats, Error> {
    let concurrency = config.concurrency.max(1);
    tracing::info!(queue = source.queue_url(), concurrency, "consuming SQS");
    let slots = Arc::new(Semaphore::new(concurrency));
    let (verdicts_tx, mut verdicts_rx) = mpsc::unbounded_channel::<(Received, crate::Verdict)>();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Receiving runs on its own task, so that settling verdicts never cancels a long poll.
    let mut receiver =
        tokio::spawn(receive_loop(source.clone(), worker, slots.clone(), verdicts_tx, config.wait, stop_rx));
    let mut stats = ConsumeStats::default();
    let mut to_delete: Vec<String> = Vec::new();
    tokio::pin!(shutdown);
    let receiver_result = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                break (&mut receiver).await;
            }
            Some((received, verdict)) = verdicts_rx.recv() => {
                settle(source, received, verdict, &mut stats, &mut to_delete).await;
                // Settle whatever else finished meanwhile, then delete them together.
                while let Ok((received, verdict)) = verdicts_rx.try_recv() {
                    settle(source, received, verdict, &mut stats, &mut to_delete).await;
                }
                flush_deletes(source, &mut to_delete).await;
            }
            result = &mut receiver => break result,
        }
    };
    // Draining: no more receives; every message in flight finishes and is settled.
    tracing::info!(
        in_flight = concurrency - slots.available_permits(),
        "stopping: finishing messages in flight"
    );
    while let Some((received, verdict)) = verdicts_rx.recv().await {
        settle(source, received, verdict, &mut stats, &mut to_delete).await;
        if to_delete.len() >= MAX_BATCH {
            flush_deletes(source, &mut to_delete).await;
        }
    }
    flush_deletes(source, &mut to_delete).await;
    tracing::info!(?stats, "stopped consuming SQS");
    match receiver_result {
        Ok(Ok(())) => Ok(stats),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Error::source(SOURCE, format!("the receive task failed: {e}"))),
    }
}

/// Receives while there is room, and runs each message on a task of its own that reports its
/// verdict. Returns when told to stop, or with the error of a first receive that fails.
async fn receive_loop(
    source: SqsSource,
    worker: Arc<Worker>,
    slots: Arc<Semaphore>,
    verdicts: mpsc::UnboundedSender<(Received, crate::Verdict)>,
    wait: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut first_receive = true;
    let mut backoff = Duration::from_millis(100);
    loop {
        // Wait for room for one message, then take as much more room as there is (≤ 10).
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(()),
            },
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        };
        let mut permits = vec![first];
        while permits.len() < MAX_BATCH {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let result = tokio::select! {
            result = source.receive(permits.len(), wait) => result,
            // A long poll cut short: whatever it had taken returns after the visibility timeout.
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        };
        match result {
            Ok(batch) => {
                first_receive = false;
                backoff = Duration::from_millis(100);
                for (received, permit) in batch.into_iter().zip(permits.drain(..)) {
                    let worker = worker.clone();
                    let verdicts = verdicts.clone();
                    tokio::spawn(async move {
                        let verdict = worker.process_logged(&received.message, None).await;
                        drop(permit);
                        // `consume` drains the channel until every sender is gone.
                        let _ = verdicts.send((received, verdict));
                    });
                }
            }
            Err(e) if first_receive => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "receive failed");
                drop(permits);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn settle(
    source: &SqsSource,
    received: Received,
    verdict: crate::Verdict,
    stats: &mut ConsumeStats,
    to_delete: &mut Vec<String>,
) {
    stats.add(&verdict);
    match verdict {
        Ok(_) => to_delete.push(received.receipt),
        Err(e) if e.is_poison() => {
            if let Err(e) = source.release(&received.receipt).await {
                tracing::warn!(id = %received.message.id, error = %e, "could not release a poison message; it returns after the visibility timeout");
            }
        }
        // Retryable: it comes back after the visibility timeout.
        Err(_) => {}
    }
}

async fn flush_deletes(source: &SqsSource, to_delete: &mut Vec<String>) {
    if to_delete.is_empty() {
        return;
    }
    match source.delete(to_delete).await {
        Ok(not_deleted) if !not_deleted.is_empty() => {
            tracing::warn!(
                count = not_deleted.len(),
                "messages not deleted; they will be redelivered and not counted twice"
            );
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, count = to_delete.len(), "delete failed; those messages will be redelivered and not counted twice");
        }
    }
    to_delete.clear();
}
