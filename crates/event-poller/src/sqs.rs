//! `event-poller sqs`: Lambda's SQS event source mapping.
//!
//! On AWS the event source mapping long-polls the queue, invokes the function with batches of
//! up to `BatchSize` records (gathering for up to `MaximumBatchingWindowInSeconds`), runs at most
//! `MaximumConcurrency` invocations at once, and — with `ReportBatchItemFailures` — deletes every
//! record except those the function lists in `batchItemFailures`. A failed invocation deletes
//! nothing. What is not deleted becomes visible again after the queue's visibility timeout, and
//! after `maxReceiveCount` receives SQS moves it to the dead-letter queue.
//!
//! This does the same against the emulators: SQS in moto, the function under `cargo lambda
//! watch` (its Invoke endpoint). Nothing here is deployed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use edge::server::{Exit, Shutdown};
use queue::sqs::{MAX_BATCH, Received, SqsSource};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::invoke::Invoker;

/// The flags of `event-poller sqs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The queue to poll (moto's URL).
    #[arg(long)]
    queue_url: String,
    /// The function's Invoke URL, e.g. http://127.0.0.1:9000/2015-03-31/functions/calc-worker/invocations
    #[arg(long)]
    invoke_url: String,
    /// Records per invocation at most (the template's CalcBatchSize).
    #[arg(long, default_value_t = 10)]
    batch_size: usize,
    /// How long to gather a batch once the first record is in, milliseconds
    /// (the template's CalcBatchingWindowSeconds × 1000).
    #[arg(long, default_value_t = 0)]
    batching_window_ms: u64,
    /// Invocations in flight at most (the template's CalcMaxConcurrency).
    #[arg(long, default_value_t = 5)]
    max_concurrency: usize,
    /// Receive loops gathering batches (Lambda starts with five); each hands its batch to an
    /// invocation and gathers the next while that one runs.
    #[arg(long, default_value_t = 5)]
    pollers: usize,
    /// How long an invocation may take before it counts as failed, seconds (the function's timeout).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// After SIGTERM, how long the invocations in flight may take to finish and settle their
    /// batches, seconds; past it the process exits 1 (their records come back to the queue).
    #[arg(long, default_value = "35", value_parser = edge::server::seconds)]
    pub shutdown_timeout: Duration,
}

#[derive(Default)]
struct Stats {
    invocations: AtomicU64,
    deleted: AtomicU64,
    returned: AtomicU64,
}

/// Polls until the shutdown, then lets the invocations in flight settle their batches.
pub async fn run(args: Args, shutdown: Shutdown) -> Result<(), Exit> {
    aws_setup::install_tls_provider();
    let aws = aws_setup::load().await;
    let source = SqsSource::new(&aws, args.queue_url.clone());
    let region = aws.region().map_or_else(|| "eu-west-2".into(), std::string::ToString::to_string);
    let arn = queue_arn(&args.queue_url, &region);
    let invoker =
        Invoker::new(&args.invoke_url, &region, Duration::from_secs(args.timeout)).map_err(Exit::start)?;
    eprintln!(
        "event-poller sqs: {} → {} (batch {}, window {} ms, concurrency {}, pollers {})",
        args.queue_url,
        args.invoke_url,
        args.batch_size,
        args.batching_window_ms,
        args.max_concurrency,
        args.pollers
    );
    let stats = Arc::new(Stats::default());
    let invocations = Arc::new(Semaphore::new(args.max_concurrency.max(1)));
    let poller = Arc::new(Poller { source, invoker, args: args.clone(), arn, region, stats: stats.clone() });
    let mut pollers = Vec::new();
    for _ in 0..args.pollers.max(1) {
        pollers.push(tokio::spawn(poller.clone().run(invocations.clone(), shutdown.clone())));
    }
    for poller in pollers {
        let _ = poller.await;
    }
    // The invocations still running finish (and settle their batches) before the exit.
    let all = u32::try_from(args.max_concurrency.max(1)).unwrap_or(u32::MAX);
    let settled = shutdown.until_deadline(1.0, invocations.acquire_many(all)).await;
    eprintln!(
        "event-poller sqs: stopped after {} invocations: {} records deleted, {} returned to the queue",
        stats.invocations.load(Ordering::Relaxed),
        stats.deleted.load(Ordering::Relaxed),
        stats.returned.load(Ordering::Relaxed)
    );
    match settled {
        Some(_) => Ok(()),
        None => {
            Err(Exit::failed("invocations still running at the shutdown deadline; their records come back"))
        }
    }
}

/// `arn:aws:sqs:<region>:<account>:<name>` from `http(s)://host/<account>/<name>`.
fn queue_arn(queue_url: &str, region: &str) -> String {
    let mut parts = queue_url.trim_end_matches('/').rsplit('/');
    let name = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or("123456789012");
    format!("arn:aws:sqs:{region}:{account}:{name}")
}

struct Poller {
    source: SqsSource,
    invoker: Invoker,
    args: Args,
    arn: String,
    region: String,
    stats: Arc<Stats>,
}

impl Poller {
    /// Gathers a batch whenever an invocation slot is free, and hands it to an invocation of its
    /// own; stops gathering when told to.
    async fn run(self: Arc<Self>, invocations: Arc<Semaphore>, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            // A slot first: messages received without one would only sit invisible.
            let slot = tokio::select! {
                slot = invocations.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
                () = shutdown.requested() => return,
            };
            let batch = tokio::select! {
                batch = self.gather() => batch,
                () = shutdown.requested() => return,
            };
            match batch {
                Ok(batch) if batch.is_empty() => {}
                Ok(batch) => {
                    backoff = Duration::from_millis(100);
                    let poller = self.clone();
                    // An invocation in progress finishes even when told to stop, as Lambda's would.
                    tokio::spawn(async move {
                        poller.invoke_and_settle(batch).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "receive failed");
                    drop(slot);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Long-polls for the first records, then keeps receiving until the batch is full or the
    /// batching window has passed.
    async fn gather(&self) -> Result<Vec<Received>, queue::Error> {
        let size = self.args.batch_size.max(1);
        let mut batch = self.source.receive(size.min(MAX_BATCH), Duration::from_secs(20)).await?;
        if batch.is_empty() {
            return Ok(batch);
        }
        let window_ends = Instant::now() + Duration::from_millis(self.args.batching_window_ms);
        while batch.len() < size && Instant::now() < window_ends {
            let left = window_ends.saturating_duration_since(Instant::now());
            let wait = if left >= Duration::from_secs(1) { Duration::from_secs(1) } else { Duration::ZERO };
            let more = self.source.receive((size - batch.len()).min(MAX_BATCH), wait).await?;
            if more.is_empty() && wait.is_zero() {
                tokio::time::sleep(left.min(Duration::from_millis(20))).await;
            }
            batch.extend(more);
        }
        Ok(batch)
    }

    fn event(&self, batch: &[Received]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for received in batch {
            let mut record = SqsMessage::default();
            record.message_id = Some(received.message.id.clone());
            record.receipt_handle = Some(received.receipt.clone());
            record.body = Some(received.message.body.clone());
            record.md5_of_body = received.md5_of_body.clone();
            record.attributes = received.attributes.clone();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.arn.clone());
            record.aws_region = Some(self.region.clone());
            event.records.push(record);
        }
        event
    }

    async fn invoke_and_settle(&self, batch: Vec<Received>) {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let event = self.event(&batch);
        let failed: Option<Vec<String>> = match self.invoker.invoke(&event).await.result {
            Ok(ids) => {
                // As on AWS: an identifier that is not in the batch fails the whole batch.
                if ids.iter().all(|id| batch.iter().any(|r| &r.message.id == id)) { Some(ids) } else { None }
            }
            Err(e) => {
                tracing::warn!(error = %e, records = batch.len(), "invocation failed; the whole batch returns to the queue");
                None
            }
        };
        let Some(failed) = failed else {
            self.stats.returned.fetch_add(batch.len() as u64, Ordering::Relaxed);
            return;
        };
        let (keep, delete): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|r| failed.contains(&r.message.id));
        self.stats.returned.fetch_add(keep.len() as u64, Ordering::Relaxed);
        let receipts: Vec<String> = delete.into_iter().map(|r| r.receipt).collect();
        match self.source.delete(&receipts).await {
            Ok(not_deleted) => {
                self.stats.deleted.fetch_add((receipts.len() - not_deleted.len()) as u64, Ordering::Relaxed)
            }
            Err(e) => {
                tracing::warn!(error = %e, "delete failed; those records come back (and are not counted twice)");
                0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_arn_comes_from_its_url() {
        assert_eq!(
            queue_arn("http://127.0.0.1:5000/123456789012/local-calcqueue", "eu-west-2"),
            "arn:aws:sqs:eu-west-2:123456789012:local-calcqueue"
        );
    }
}
