//! The Lambda path: deliver one request's records now, retrying what the sink did not take.
//!
//! A Lambda cannot keep a buffer between invocations (it may be frozen or recycled after the
//! response), so each request is packed and put before it is answered. A failed entry
//! (`FailedPutCount > 0`, typically throttling) is re-sent alone, a failed call whole, with
//! exponential backoff and full jitter, until everything is taken, the attempts run out, or the
//! next pause would pass the request's budget. What is still refused then is reported: sync mode
//! answers 503 (the client retries), async mode logs it at ERROR and counts it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::metrics::{Metrics, MetricsSnapshot};
use crate::{
    BoxFuture, FailedEntry, Ingest, IngestError, Invalid, Limits, Mode, Receipt, Record, SharedSink, Sink,
    SinkError, Submission, pack,
};

/// How failed entries and calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first pause; each further attempt doubles it.
    pub first_backoff: Duration,
    /// The ceiling never grows past this.
    pub max_backoff: Duration,
    /// Attempts in all, the first one included (the Lambda path; the server's buffer retries
    /// accepted data without limit and only logs louder past this count).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// The pause after `attempt` failed attempts (1 after the first failure): uniform in
    /// `[0, min(max_backoff, first_backoff × 2^(attempt−1))]`. Full jitter spreads the retries of
    /// many clients throttled at the same moment, so they do not all come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        retry::Backoff::full(self.first_backoff, self.max_backoff).delay(attempt)
    }
}

/// `now + by`, or a point so far ahead that it never comes when the sum does not fit
/// (`Instant + Duration` panics on overflow, and budgets come from configuration).
pub(crate) fn later(now: Instant, by: Duration) -> Instant {
    now.checked_add(by).or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600))).unwrap_or(now)
}

/// What one call's answer means for each of its entries.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `failed[i]`: entry `i` was not taken. Empty when all were taken.
    pub failed: Vec<bool>,
    /// How many entries were not taken.
    pub count: usize,
    /// The sink's error (`code: message` of the first failed entry, or the call's error).
    pub reason: Option<String>,
}

impl Outcome {
    pub fn is_failed(&self, index: usize) -> bool {
        self.failed.get(index).copied().unwrap_or(false)
    }
}

/// Reads a sink's answer to a call of `len` entries. Indices outside the call or repeated are
/// ignored (with a warning) rather than trusted, so a confused sink cannot make us panic or
/// double-count.
pub(crate) fn classify(len: usize, result: &Result<Vec<FailedEntry>, SinkError>) -> Outcome {
    match result {
        Err(e) => Outcome { failed: vec![true; len], count: len, reason: Some(e.to_string()) },
        Ok(entries) if entries.is_empty() => Outcome { failed: Vec::new(), count: 0, reason: None },
        Ok(entries) => {
            let mut failed = vec![false; len];
            let mut count = 0;
            for entry in entries {
                match failed.get_mut(entry.index) {
                    Some(slot) if !*slot => {
                        *slot = true;
                        count += 1;
                    }
                    Some(_) => {}
                    None => tracing::warn!(
                        index = entry.index,
                        len,
                        "the sink reported a failed entry outside the call"
                    ),
                }
            }
            let reason = entries.first().map(|e| format!("{}: {}", e.code, e.message));
            Outcome { failed, count, reason }
        }
    }
}

/// The result of [`deliver`].
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Records the sink took.
    pub delivered: usize,
    /// Records it still refused when the retries stopped.
    pub failed: Vec<Record>,
    /// The last error seen, for logs and the 503 body.
    pub last_error: Option<String>,
}

impl Delivery {
    /// The events (lines) in the failed records.
    pub fn failed_events(&self) -> usize {
        self.failed.iter().map(|r| pack::lines(r).count()).sum()
    }
}

/// Puts `records` into `sink` in calls that respect its limits, re-sending failed entries (or a
/// failed call whole) after a backoff until all are taken, `policy.max_attempts` are used, or
/// the next pause would pass `deadline`. A call still running at the deadline is abandoned and
/// its records counted as failed (the sink may have taken them: a client retry may duplicate).
///
/// Calls are made one after another: a request body is at most 1 MiB and 500 events, which is
/// always one call to Firehose or Kinesis, so running calls concurrently would buy nothing.
pub async fn deliver(
    sink: &dyn Sink,
    records: Vec<Record>,
    deadline: Instant,
    policy: &RetryPolicy,
    metrics: &Metrics,
) -> Delivery {
    let limits = sink.limits();
    let mut pending = records;
    let mut delivered = 0;
    let mut last_error = None;
    let mut attempt: u32 = 0;
    while !pending.is_empty() {
        attempt = attempt.saturating_add(1);
        let mut failed = Vec::new();
        for batch in pack::batches(&pending, limits) {
            let outcome = put_once(sink, batch, deadline, metrics).await;
            delivered += batch.len() - outcome.count;
            failed.extend(
                batch.iter().enumerate().filter(|(i, _)| outcome.is_failed(*i)).map(|(_, r)| r.clone()),
            );
            if outcome.reason.is_some() {
                last_error = outcome.reason;
            }
        }
        pending = failed;
        if pending.is_empty() {
            break;
        }
        let pause = policy.backoff(attempt);
        if attempt >= policy.max_attempts || later(Instant::now(), pause) > deadline {
            break;
        }
        metrics.add_retried(pending.len());
        tokio::time::sleep(pause).await;
    }
    Delivery { delivered, failed: pending, last_error }
}

/// One call, bounded by the deadline, recorded in the metrics and logged.
async fn put_once(sink: &dyn Sink, batch: &[Record], deadline: Instant, metrics: &Metrics) -> Outcome {
    let bytes: usize = batch.iter().map(Bytes::len).sum();
    let timer = metrics.start_flush();
    let started = Instant::now();
    let result = match tokio::time::timeout_at(deadline, sink.put(batch)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError::timed_out(
            sink.describe(),
            started.elapsed(),
            std::io::Error::other("the call outlived the request's budget"),
        )),
    };
    timer.finish();
    let outcome = classify(batch.len(), &result);
    let events: usize = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| !outcome.is_failed(*i))
        .map(|(_, r)| pack::lines(r).count())
        .sum();
    metrics.add_flushed(batch.len() - outcome.count, events);
    tracing::debug!(sink = %sink.describe(), records = batch.len(), bytes, failed = outcome.count, "put");
    if let Some(reason) = &outcome.reason {
        tracing::warn!(sink = %sink.describe(), records = batch.len(), failed = outcome.count, error = %reason, "the sink refused records");
    }
    outcome
}

/// How [`Direct`] packs and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectConfig {
    /// The most bytes per record. Defaults to the Firehose record limit (pack as much as
    /// possible: Firehose bills every record rounded up to 5 KB); [`Direct::new`] lowers it to
    /// the sink's record limit if it is larger.
    pub pack_cap: usize,
    /// How long one request may spend delivering, retries included.
    pub budget: Duration,
    pub retry: RetryPolicy,
}

impl Default for DirectConfig {
    fn default() -> Self {
        DirectConfig {
            pack_cap: Limits::FIREHOSE.max_record_bytes,
            budget: Duration::from_millis(2500),
            retry: RetryPolicy::default(),
        }
    }
}

impl DirectConfig {
    /// The defaults, packing up to `sink`'s own record limit.
    pub fn for_sink(sink: &dyn Sink) -> DirectConfig {
        DirectConfig { pack_cap: sink.limits().max_record_bytes, ..DirectConfig::default() }
    }
}

/// Delivers each submission before answering it: the [`Ingest`] of the Lambda.
pub struct Direct {
    sink: SharedSink,
    invalid_sink: Option<SharedSink>,
    config: DirectConfig,
    metrics: Arc<Metrics>,
}

impl Direct {
    pub fn new(sink: SharedSink, invalid_sink: Option<SharedSink>, mut config: DirectConfig) -> Direct {
        config.pack_cap = config.pack_cap.min(sink.limits().max_record_bytes);
        Direct { sink, invalid_sink, config, metrics: Arc::default() }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    async fn run(&self, submission: Submission) -> Result<Receipt, IngestError> {
        let Submission { mode, valid, invalid } = submission;
        let deadline = later(Instant::now(), self.config.budget);
        let records = pack::pack(&valid, self.config.pack_cap);
        let (delivery, ()) = tokio::join!(
            deliver(self.sink.as_ref(), records, deadline, &self.config.retry, &self.metrics),
            self.route_invalid(&invalid, deadline),
        );
        self.metrics.add_invalid(invalid.len());
        let undelivered = delivery.failed_events();
        let reason = delivery.last_error.unwrap_or_else(|| "the sink did not take them".to_owned());
        match mode {
            Mode::Sync if undelivered > 0 => {
                tracing::warn!(sink = %self.sink.describe(), undelivered, total = valid.len(), error = %reason, "sync submission not delivered");
                Err(IngestError::Undelivered {
                    undelivered,
                    total: valid.len(),
                    sink: self.sink.describe(),
                    reason,
                })
            }
            _ => {
                let accepted = valid.len().saturating_sub(undelivered);
                self.metrics.add_accepted(accepted);
                if undelivered > 0 {
                    self.metrics.add_undelivered(undelivered);
                    tracing::error!(sink = %self.sink.describe(), undelivered, total = valid.len(), error = %reason, "events undelivered after the retries");
                    // The events are only in this process: log them so they can be recovered.
                    for record in &delivery.failed {
                        for line in pack::lines(record) {
                            tracing::error!(target: "ingest::undelivered", event = %String::from_utf8_lossy(line), "undelivered event");
                        }
                    }
                }
                Ok(Receipt { accepted, invalid: invalid.len(), undelivered })
            }
        }
    }

    /// Invalid events go to the invalid sink as `{"index","error","event"}` lines or, without one
    /// (or when it refuses them), to the log at WARN, so none disappears silently.
    async fn route_invalid(&self, invalid: &[Invalid], deadline: Instant) {
        if invalid.is_empty() {
            return;
        }
        let lines: Vec<Bytes> = invalid.iter().map(Invalid::to_line).collect();
        let Some(sink) = &self.invalid_sink else {
            lines.iter().for_each(|line| log_invalid(line, "no invalid sink"));
            return;
        };
        let max_record = sink.limits().max_record_bytes;
        let cap = self.config.pack_cap.min(max_record);
        // A line too large for one record would be refused whatever we do: log it instead.
        let (fits, too_large): (Vec<Bytes>, Vec<Bytes>) =
            lines.into_iter().partition(|l| l.len() < max_record);
        too_large.iter().for_each(|line| log_invalid(line, "too large for the invalid sink"));
        let delivery =
            deliver(sink.as_ref(), pack::pack(&fits, cap), deadline, &self.config.retry, &self.metrics).await;
        for record in &delivery.failed {
            pack::lines(record).for_each(|line| log_invalid(line, "the invalid sink refused it"));
        }
    }
}

/// Logs one invalid-event line at WARN under the `ingest::invalid` target.
pub(crate) fn log_invalid(line: &[u8], why: &str) {
    tracing::warn!(target: "ingest::invalid", line = %String::from_utf8_lossy(line), why, "invalid event");
}

impl Ingest for Direct {
    fn submit(&self, submission: Submission) -> BoxFuture<'_, Result<Receipt, IngestError>> {
        Box::pin(self.run(submission))
    }

    fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    fn describe(&self) -> String {
        self.sink.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_a_doubling_ceiling_capped_at_the_maximum() {
        let policy = RetryPolicy {
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_attempts: 8,
        };
        for _ in 0..1000 {
            assert!(policy.backoff(0) <= Duration::from_millis(10));
            assert!(policy.backoff(1) <= Duration::from_millis(10));
            assert!(policy.backoff(3) <= Duration::from_millis(40));
            assert!(policy.backoff(u32::MAX) <= Duration::from_millis(100));
        }
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| policy.backoff(5)).collect();
        assert!(draws.len() > 50, "the jitter should spread the pauses");
    }

    #[test]
    fn huge_durations_never_overflow() {
        let policy =
            RetryPolicy { first_backoff: Duration::MAX, max_backoff: Duration::MAX, max_attempts: 1 };
        let _ = policy.backoff(40);
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
    }

    #[test]
    fn a_confused_sink_answer_is_not_trusted() {
        let entry = |index| FailedEntry { index, code: "X".into(), message: "m".into() };
        let outcome = classify(3, &Ok(vec![entry(1), entry(1), entry(7)]));
        assert_eq!(outcome.count, 1);
        assert!(outcome.is_failed(1) && !outcome.is_failed(0) && !outcome.is_failed(7));
        assert_eq!(outcome.reason.as_deref(), Some("X: m"));
    }
}
