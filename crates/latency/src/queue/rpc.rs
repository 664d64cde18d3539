//! `latency queue --rpc`: seed 000's RabbitMQ driver (`rabbitmq.py N max`). Every x goes to the
//! worker's queue as plain text (`str(x)`) with `reply_to` = an exclusive, auto-delete callback
//! queue and a correlation id of its own; the call ends when its answer arrives
//! ([`queue::rpc`]). All N calls are in flight at once (as the seed's `asyncio.gather`) unless
//! `--concurrency` caps them; a progress bar counts the answers.
//!
//! A call's **latency** runs from just before its publish to its answer: the time it waited in
//! the queue plus x (plus the broker's round trips). The run's **elapsed** time runs from the
//! clock start to the last answer; the **ideal** is the longest answered x, the ratio their
//! quotient. Latency percentiles are nearest-rank (`probe::stats`), in milliseconds, as is the
//! **queueing** (latency − x) of each call. An answer must be the x that was sent (within 1e-6,
//! as the seed asserts); an error reply (`type = error`, e.g. x above the worker's max) or a
//! wrong answer counts as an error and is left out of the figures; a call that cannot be
//! published counts as failed. Nothing is counted in a ledger: the answers are the signal.
//!
//! A run fails (nothing on stdout, exit 1) when some call is still unanswered at the timeout,
//! or when no call was answered with its x.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use probe::Stats;
use queue::rpc::{Reply, RpcClient};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::driver::bar;
use super::rng::Plan;
use super::target::redact;
use crate::error::Error;

/// How close an answer must be to the x sent (the seed's check).
const TOLERANCE: f64 = 1e-6;

/// How to drive a request–reply run.
#[derive(Debug, Clone)]
pub struct RpcOpts {
    /// Calls in flight at once.
    pub concurrency: usize,
    /// From the clock start to giving up on the calls not answered yet.
    pub timeout: Duration,
    /// A progress bar on stderr.
    pub progress: bool,
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    /// Answered with its x: publish → answer, x, and when the answer came.
    Answered { latency: Duration, x: f64, at: Instant },
    /// Answered with an error reply, or with another number.
    Refused(String),
    /// Could not be published, or the client lost its connection.
    Failed(String),
    /// No answer before the timeout.
    Unanswered,
}

/// A completed request–reply run, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcSummary {
    pub calculations: usize,
    /// Answered with their x.
    pub answered: usize,
    /// Answered with an error reply (or a wrong number).
    pub errors: usize,
    /// Never published (the broker refused, the connection failed).
    pub failed_calls: usize,
    /// The first error or failure, as the worker or the client said it.
    pub first_error: Option<String>,
    /// Clock start → the last answer.
    pub elapsed_seconds: f64,
    /// The longest answered x.
    pub ideal_seconds: f64,
    /// elapsed / ideal.
    pub ratio: f64,
    /// Answered calls per second of elapsed.
    pub throughput_per_second: f64,
    /// Per call, publish → answer (queueing + x), ms, nearest-rank percentiles.
    pub latency_ms: Stats,
    /// Per call, latency − x: the time not spent calculating, ms.
    pub queueing_ms: Stats,
    /// Calls in flight at most.
    pub concurrency: usize,
    pub seed: u64,
}

impl RpcSummary {
    /// The human-readable summary, one figure a line.
    pub fn render(&self) -> String {
        let stats = |s: &Stats| {
            format!(
                "mean {:.2}  min {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                s.mean, s.min, s.p50, s.p90, s.p99, s.max
            )
        };
        let mut lines = vec![
            format!(
                "calculations     {}  (request–reply, {} in flight at most)",
                self.calculations, self.concurrency
            ),
            format!("answered         {}", self.answered),
            format!("error replies    {}", self.errors),
            format!("failed calls     {}", self.failed_calls),
            format!("elapsed          {:.3} s  (clock start → the last answer)", self.elapsed_seconds),
            format!("ideal            {:.3} s  (the longest x: all in parallel)", self.ideal_seconds),
            format!("ratio            {:.2}  (elapsed / ideal)", self.ratio),
            format!("throughput       {:.1} calculations/s", self.throughput_per_second),
            format!("latency ms       {}  (publish → answer: queueing + x)", stats(&self.latency_ms)),
            format!("queueing ms      {}  (latency − x)", stats(&self.queueing_ms)),
            format!("seed             {}", self.seed),
        ];
        if let Some(first) = &self.first_error {
            lines.push(format!("first error: {first}"));
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// Connects to the broker at `target`, runs the calls of `plan` on `queue`, prints the summary
/// (text, or JSON with `json`) and closes the connection.
pub async fn run(plan: &Plan, target: &str, queue: &str, opts: &RpcOpts, json: bool) -> Result<(), Error> {
    let client = RpcClient::connect(target, queue)
        .await
        .map_err(|source| Error::Queue { context: format!("connecting to {}", redact(target)), source })?;
    eprintln!(
        "latency: {} calc(x) calls, x as text (seed {}, longest {:.3} s) → {}, queue {queue}, replies to {}; \
         {} in flight at most; timeout {} s",
        plan.xs.len(),
        plan.seed,
        plan.ideal(),
        redact(target),
        client.callback_queue(),
        opts.concurrency.min(plan.xs.len()),
        opts.timeout.as_secs_f64()
    );
    let client = Arc::new(client);
    let result = drive_rpc(plan, client.clone(), opts).await;
    if let Ok(client) = Arc::try_unwrap(client)
        && let Err(e) = client.close().await
    {
        tracing::debug!(error = %e, "closing the broker connection");
    }
    let summary = result?;
    if json {
        let json =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", summary.render());
    }
    Ok(())
}

/// Runs every call of `plan` through `client`, at most `opts.concurrency` at once.
pub async fn drive_rpc(plan: &Plan, client: Arc<RpcClient>, opts: &RpcOpts) -> Result<RpcSummary, Error> {
    let n = plan.xs.len();
    let concurrency = opts.concurrency.clamp(1, n.max(1));
    let bar = bar(opts.progress, n as u64, "answered");
    let xs = Arc::new(plan.xs.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let said = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (xs, next, client, bar, said) =
            (xs.clone(), next.clone(), client.clone(), bar.clone(), said.clone());
        tasks.spawn(async move {
            let mut calls = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&x) = xs.get(i) else { break };
                let call = call(&client, x, deadline).await;
                report_first(&bar, &said, &call);
                bar.inc(1);
                calls.push(call);
            }
            calls
        });
    }
    let mut calls = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        calls.extend(done.map_err(|e| Error::Process(format!("a calling task failed: {e}")))?);
    }
    bar.finish_and_clear();
    summarize(&calls, start, plan.seed, concurrency, opts.timeout)
}

/// One call: publish x as text, await the answer until `deadline`.
async fn call(client: &RpcClient, x: f64, deadline: Instant) -> Call {
    let started = Instant::now();
    let answer = tokio::time::timeout_at(deadline, async {
        let pending = client.send(&queue::calc::result_text(x)).await?;
        pending.reply().await
    })
    .await;
    match answer {
        Err(_) => Call::Unanswered,
        Ok(Err(e)) => Call::Failed(e.to_string()),
        Ok(Ok(Reply::Result(y))) if (y - x).abs() < TOLERANCE => {
            let at = Instant::now();
            Call::Answered { latency: at - started, x, at }
        }
        Ok(Ok(Reply::Result(y))) => Call::Refused(format!("asked for calc({x}), answered {y}")),
        Ok(Ok(Reply::Error(reason))) => Call::Refused(format!("calc({x}): {reason}")),
    }
}

/// The first refusal and the first failure of a run, each said once, above the bar.
fn report_first(bar: &ProgressBar, said: &[AtomicBool; 2], call: &Call) {
    let (slot, what, why) = match call {
        Call::Refused(why) => (0, "answered with an error", why),
        Call::Failed(why) => (1, "failed", why),
        _ => return,
    };
    if !said[slot].swap(true, Ordering::Relaxed) {
        bar.suspend(|| eprintln!("latency: a call {what}: {why}"));
    }
}

/// The summary of the calls, or why the run failed.
fn summarize(
    calls: &[Call],
    start: Instant,
    seed: u64,
    concurrency: usize,
    timeout: Duration,
) -> Result<RpcSummary, Error> {
    let mut last = start;
    let mut latency_ms = Vec::with_capacity(calls.len());
    let mut queueing_ms = Vec::with_capacity(calls.len());
    let (mut ideal, mut errors, mut failed, mut unanswered) = (0.0_f64, 0, 0, 0);
    let mut first_error = None;
    for call in calls {
        match call {
            Call::Answered { latency, x, at } => {
                last = last.max(*at);
                let ms = latency.as_secs_f64() * 1000.0;
                latency_ms.push(ms);
                queueing_ms.push(ms - x * 1000.0);
                ideal = ideal.max(*x);
            }
            Call::Refused(why) => {
                errors += 1;
                first_error.get_or_insert_with(|| why.clone());
            }
            Call::Failed(why) => {
                failed += 1;
                first_error.get_or_insert_with(|| why.clone());
            }
            Call::Unanswered => unanswered += 1,
        }
    }
    let answered = latency_ms.len();
    if unanswered > 0 {
        return Err(Error::Unfinished(format!(
            "timed out after {:.1} s: {answered} of {} calls answered, {errors} with an error, {failed} \
             failed; {unanswered} never answered (is a worker consuming the queue?){}",
            timeout.as_secs_f64(),
            calls.len(),
            first_error.map(|e| format!("; the first error: {e}")).unwrap_or_default()
        )));
    }
    let (Some(latency), Some(queueing)) =
        (probe::stats::summarize(&latency_ms), probe::stats::summarize(&queueing_ms))
    else {
        return Err(Error::Unfinished(format!(
            "none of the {} calls was answered with its x; the first error: {}",
            calls.len(),
            first_error.as_deref().unwrap_or("unknown")
        )));
    };
    let elapsed = (last - start).as_secs_f64();
    Ok(RpcSummary {
        calculations: calls.len(),
        answered,
        errors,
        failed_calls: failed,
        first_error,
        elapsed_seconds: elapsed,
        ideal_seconds: ideal,
        ratio: elapsed / ideal,
        throughput_per_second: answered as f64 / elapsed,
        latency_ms: latency,
        queueing_ms: queueing,
        concurrency,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use queue::MemoryLedger;
    use queue::Worker;
    use queue::amqp::{ConsumerConfig, consume};

    use super::*;

    fn answered(start: Instant, x: f64, latency_ms: u64) -> Call {
        let latency = Duration::from_millis(latency_ms);
        Call::Answered { latency, x, at: start + latency }
    }

    #[test]
    fn the_summary_takes_elapsed_to_the_last_answer_and_percentiles_by_nearest_rank() {
        let start = Instant::now();
        let calls = [
            answered(start, 0.5, 520),
            answered(start, 1.0, 1030),
            answered(start, 0.25, 300),
            answered(start, 1.9, 1990),
            Call::Refused("calc(3): out of range".into()),
        ];
        let summary = summarize(&calls, start, 7, 5, Duration::from_secs(60)).expect("complete");
        assert_eq!(
            (summary.calculations, summary.answered, summary.errors, summary.failed_calls),
            (5, 4, 1, 0)
        );
        assert_eq!(summary.elapsed_seconds, 1.99);
        assert_eq!(summary.ideal_seconds, 1.9);
        assert!((summary.ratio - 1.99 / 1.9).abs() < 1e-12);
        // Nearest rank over [300, 520, 1030, 1990]: p50 is the 2nd, p90 and p99 the 4th.
        assert_eq!(
            (summary.latency_ms.min, summary.latency_ms.p50, summary.latency_ms.p90, summary.latency_ms.max),
            (300.0, 520.0, 1990.0, 1990.0)
        );
        assert_eq!((summary.queueing_ms.min, summary.queueing_ms.max), (20.0, 90.0));
        assert_eq!(summary.first_error.as_deref(), Some("calc(3): out of range"));
        let text = summary.render();
        assert!(text.contains("answered         4\n"), "{text}");
        assert!(text.contains("error replies    1\n"), "{text}");
        assert!(text.contains("latency ms       mean 960.00  min 300.00  p50 520.00"), "{text}");
        assert!(text.contains("first error: calc(3): out of range"), "{text}");
        let json = serde_json::to_value(&summary).expect("serializes");
        assert_eq!(json["latency_ms"]["p50"], 520.0);
        assert_eq!(json["answered"], 4);
    }

    #[test]
    fn a_run_with_unanswered_calls_or_no_answer_fails_and_says_how_far_it_got() {
        let start = Instant::now();
        let calls = [answered(start, 0.1, 120), Call::Unanswered, Call::Failed("connection reset".into())];
        let error =
            summarize(&calls, start, 1, 3, Duration::from_secs(5)).expect_err("timed out").to_string();
        assert!(error.contains("timed out after 5.0 s: 1 of 3 calls answered"), "{error}");
        assert!(error.contains("1 never answered") && error.contains("connection reset"), "{error}");
        let calls = [Call::Refused("calc(5): out of range".into())];
        let error = summarize(&calls, start, 1, 1, Duration::from_secs(5)).expect_err("nothing").to_string();
        assert!(
            error.contains("none of the 1 calls was answered") && error.contains("out of range"),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_through_the_worker_on_rabbitmq_are_all_answered_and_timed() {
        let Some(url) = testkit::moto::amqp_url() else { return };
        let queue = testkit::moto::unique("test-latency-rpc");
        let ledger = Arc::new(MemoryLedger::new());
        let worker = Arc::new(Worker::new(ledger.clone(), 0.2));
        let config = ConsumerConfig { uri: url.clone(), queue: queue.clone(), prefetch: 100 };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let consumer = tokio::spawn(async move {
            consume(&config, worker, async {
                let _ = stopped.await;
            })
            .await
        });
        let client = Arc::new(RpcClient::connect(&url, &queue).await.expect("client"));
        // 50 calls with x < 0.2 s, and 5 above the worker's max, which are answered with errors.
        let mut plan = Plan::draw(55, 0.2, 11);
        for x in plan.xs.iter_mut().take(5) {
            *x += 0.2;
        }
        let opts = RpcOpts { concurrency: 55, timeout: Duration::from_secs(30), progress: false };
        let summary = drive_rpc(&plan, client, &opts).await.expect("every call is answered");
        assert_eq!((summary.answered, summary.errors, summary.failed_calls), (50, 5, 0), "{summary:?}");
        assert!(summary.first_error.as_deref().is_some_and(|e| e.contains("out of range")), "{summary:?}");
        assert_eq!(summary.ideal_seconds, plan.xs[5..].iter().copied().fold(0.0, f64::max));
        assert!(summary.elapsed_seconds >= summary.ideal_seconds, "{summary:?}");
        assert!(summary.latency_ms.min >= 0.0 && summary.queueing_ms.min >= 0.0, "{summary:?}");
        assert!(summary.latency_ms.max <= summary.elapsed_seconds * 1000.0 + 1.0, "{summary:?}");
        assert_eq!(queue::Ledger::done(&*ledger).await.expect("done"), 50, "each answered call counted once");
        let _ = stop.send(());
        let stats = consumer.await.expect("no panic").expect("consumed");
        assert_eq!((stats.counted, stats.dead_lettered), (50, 5));
    }
}
