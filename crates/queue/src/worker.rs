//! Runs messages: parse, check the time budget, calculate, count once. A batch runs
//! concurrently (one span per message); each message gets its own [`Verdict`], so a poison
//! message or a slow one never holds up the rest.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use tracing::Instrument;

use crate::calc::Calculation;
use crate::{Error, Outcome, SharedLedger};

/// One message from any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The source's id for this message, the same on every delivery (SQS `MessageId`, AMQP
    /// `message_id`): the key of exactly-once counting.
    pub id: String,
    pub body: String,
}

/// What happened to one message. `Ok` (counted, or already counted): ack/delete it.
/// `Err(e)` with `e.is_poison()`: dead-letter it. Any other `Err`: let it be redelivered.
pub type Verdict = Result<Outcome, Error>;

/// A message calculated and counted: what `calc(x)` returned (the body of a request–reply
/// answer) and how the ledger took it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answered {
    pub result: f64,
    pub outcome: Outcome,
}

/// What a consumer did until it stopped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConsumeStats {
    /// Counted for the first time.
    pub counted: u64,
    /// Redeliveries of messages already counted: acknowledged, not counted again.
    pub duplicates: u64,
    /// Poison: dead-lettered (RabbitMQ) or released towards the DLQ (SQS).
    pub dead_lettered: u64,
    /// Not counted (ledger down, shutting down): back to the queue.
    pub requeued: u64,
}

impl ConsumeStats {
    /// Adds one verdict.
    pub fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Ok(Outcome::Counted) => self.counted += 1,
            Ok(Outcome::Duplicate) => self.duplicates += 1,
            Err(e) if e.is_poison() => self.dead_lettered += 1,
            Err(_) => self.requeued += 1,
        }
    }
}

/// Time kept back after a calculation for recording it, when a deadline applies.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(500);

pub struct Worker {
    ledger: SharedLedger,
    max_x: f64,
    margin: Duration,
}

impl Worker {
    /// A worker that accepts 0 ≤ x ≤ `max_x` and counts in `ledger`.
    pub fn new(ledger: SharedLedger, max_x: f64) -> Worker {
        Worker { ledger, max_x, margin: DEFAULT_MARGIN }
    }

    /// Time kept back for the ledger write when a deadline applies (default 500 ms).
    pub fn with_margin(mut self, margin: Duration) -> Worker {
        self.margin = margin;
        self
    }

    pub fn ledger(&self) -> &SharedLedger {
        &self.ledger
    }

    pub fn max_x(&self) -> f64 {
        self.max_x
    }

    /// Runs one message. With a `deadline` (a Lambda invocation's), a calculation that could
    /// not finish and be recorded before it is refused with [`Error::NoTime`] instead of being
    /// cut off mid-batch; it goes back to the queue for another invocation.
    pub async fn process(&self, message: &Message, deadline: Option<Instant>) -> Verdict {
        self.answer(message, deadline).await.map(|answered| answered.outcome)
    }

    /// [`Worker::process`], with what the calculation returned: for a source that replies.
    pub async fn answer(&self, message: &Message, deadline: Option<Instant>) -> Result<Answered, Error> {
        let calculation = Calculation::parse(&message.body, self.max_x)?;
        if let Some(deadline) = deadline {
            let needed = calculation.duration() + self.margin;
            let left = deadline.saturating_duration_since(Instant::now());
            if left < needed {
                return Err(Error::NoTime {
                    x: calculation.x,
                    needed_ms: needed.as_millis() as u64,
                    left_ms: left.as_millis() as u64,
                });
            }
        }
        let result = calculation.run().await;
        let outcome = self.ledger.record(&message.id).await?;
        Ok(Answered { result, outcome })
    }

    /// Runs one message in its own span and logs its verdict.
    pub async fn process_logged(&self, message: &Message, deadline: Option<Instant>) -> Verdict {
        self.answer_logged(message, deadline).await.map(|answered| answered.outcome)
    }

    /// [`Worker::answer`] in its own span, its verdict logged.
    pub async fn answer_logged(
        &self,
        message: &Message,
        deadline: Option<Instant>,
    ) -> Result<Answered, Error> {
        let span = tracing::info_span!("message", id = %message.id);
        async {
            let started = Instant::now();
            let verdict = self.answer(message, deadline).await;
            let ms = started.elapsed().as_millis() as u64;
            match &verdict {
                Ok(Answered { outcome: Outcome::Counted, .. }) => tracing::debug!(ms, "counted"),
                Ok(Answered { outcome: Outcome::Duplicate, .. }) => {
                    tracing::info!(ms, "redelivered; already counted");
                }
                Err(e) if e.is_poison() => tracing::warn!(error = %e, "poison message; dead-letter it"),
                Err(e @ Error::NoTime { .. }) => tracing::info!(error = %e, "back to the queue"),
                Err(e) => tracing::error!(error = %e, ms, "not counted; back to the queue"),
            }
            verdict
        }
        .instrument(span)
        .await
    }

    /// Runs a batch concurrently; verdicts in the order of `messages`.
    pub async fn process_batch(&self, messages: &[Message], deadline: Option<Instant>) -> Vec<Verdict> {
        join_all(messages.iter().map(|m| self.process_logged(m, deadline))).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Ledger, MemoryLedger};

    fn message(id: &str, body: &str) -> Message {
        Message { id: id.into(), body: body.into() }
    }

    fn worker() -> (Worker, Arc<MemoryLedger>) {
        let ledger = Arc::new(MemoryLedger::new());
        (Worker::new(ledger.clone(), 2.0), ledger)
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_runs_concurrently_and_takes_its_longest_x() {
        let (worker, ledger) = worker();
        let batch: Vec<_> =
            (0..10).map(|i| message(&format!("m{i}"), &format!(r#"{{"x": {}}}"#, 0.2 * i as f64))).collect();
        let started = Instant::now();
        let verdicts = worker.process_batch(&batch, None).await;
        assert!(verdicts.iter().all(|v| matches!(v, Ok(Outcome::Counted))));
        assert_eq!(started.elapsed(), Duration::from_millis(1800));
        assert_eq!(ledger.done().await.unwrap(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn poison_fails_alone_and_the_rest_of_the_batch_counts() {
        let (worker, ledger) = worker();
        let batch = [
            message("a", r#"{"x": 1}"#),
            message("bad", "{oops"),
            message("far", r#"{"x": 3}"#),
            message("b", r#"{"x": 0.5}"#),
        ];
        let verdicts = worker.process_batch(&batch, None).await;
        assert!(matches!(verdicts[0], Ok(Outcome::Counted)));
        assert!(verdicts[1].as_ref().is_err_and(Error::is_poison));
        assert!(verdicts[2].as_ref().is_err_and(Error::is_poison));
        assert!(matches!(verdicts[3], Ok(Outcome::Counted)));
        assert_eq!(ledger.done().await.unwrap(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_redelivered_message_is_acknowledged_but_not_counted_again() {
        let (worker, ledger) = worker();
        let batch = [message("a", r#"{"x": 1}"#), message("a", r#"{"x": 1}"#)];
        let mut verdicts: Vec<_> =
            worker.process_batch(&batch, None).await.into_iter().map(Result::unwrap).collect();
        verdicts.sort_by_key(|o| *o == Outcome::Duplicate);
        assert_eq!(verdicts, [Outcome::Counted, Outcome::Duplicate]);
        assert_eq!(worker.process(&batch[0], None).await.unwrap(), Outcome::Duplicate);
        assert_eq!(ledger.done().await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_cannot_finish_before_the_deadline_goes_back_without_running() {
        let (worker, ledger) = worker();
        let deadline = Instant::now() + Duration::from_millis(1200);
        let batch = [message("short", r#"{"x": 0.5}"#), message("long", r#"{"x": 1}"#)];
        let started = Instant::now();
        let verdicts = worker.process_batch(&batch, Some(deadline)).await;
        assert!(matches!(verdicts[0], Ok(Outcome::Counted)), "0.5 s + 0.5 s margin fits in 1.2 s");
        assert!(matches!(verdicts[1], Err(Error::NoTime { needed_ms: 1500, left_ms: 1200, .. })));
        assert_eq!(started.elapsed(), Duration::from_millis(500), "the long one never started");
        assert_eq!(ledger.done().await.unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_failure_is_retryable_not_poison() {
        let (worker, ledger) = worker();
        ledger.set_down(true);
        let verdict = worker.process(&message("a", r#"{"x": 0}"#), None).await;
        assert!(matches!(&verdict, Err(e @ Error::Ledger { .. }) if !e.is_poison()));
        ledger.set_down(false);
        assert_eq!(worker.process(&message("a", r#"{"x": 0}"#), None).await.unwrap(), Outcome::Counted);
    }
}
