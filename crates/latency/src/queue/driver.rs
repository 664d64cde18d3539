//! The run itself, on injected ports: wait for the work queue to be empty, reset `done`, post
//! every calculation (at most `concurrency` at once, each tried up to 3 times with jittered
//! backoff), then poll `done` until it reaches the accepted count or the timeout passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use queue::Ledger;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dlq::Depth;
use super::post::{Post, PostError};
use super::rng::{Plan, SplitMix64};
use super::summary::{DlqReport, Posted, Summary, timeout_message};
use crate::error::Error;

/// Attempts per post before it counts as failed.
const ATTEMPTS: u32 = 3;
/// The first retry waits about this long (× 0.5–1.5), the second twice as long.
pub(super) const BACKOFF: Duration = Duration::from_millis(200);

/// How to drive a run.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Posts in flight at once.
    pub concurrency: usize,
    /// How often `done` is read.
    pub poll: Duration,
    /// From the clock start to giving up.
    pub timeout: Duration,
    /// The first retry's wait (× 0.5–1.5); doubles per attempt.
    pub backoff: Duration,
    /// Progress bars on stderr.
    pub progress: bool,
}

/// Runs the whole experiment on injected ports: reset, post, poll, summarise.
pub async fn drive(
    plan: &Plan,
    poster: Arc<dyn Post>,
    ledger: &dyn Ledger,
    dlq: Option<&dyn Depth>,
    opts: &Opts,
) -> Result<Summary, Error> {
    // What the DLQ held before, so that the timeout message counts only this run's arrivals.
    let dlq_before = match dlq {
        Some(dlq) => dlq.depth().await.ok(),
        None => None,
    };
    ledger.reset().await.map_err(|source| Error::Queue {
        context: format!("resetting done in {}", ledger.describe()),
        source,
    })?;

    let start = Instant::now();
    let deadline = start + opts.timeout;
    let posted = post_all(plan, poster, opts).await?;
    let post_phase = start.elapsed();
    if posted.accepted == 0 {
        return Err(Error::Unfinished(format!(
            "none of the {} posts was accepted; the first failure: {}",
            plan.xs.len(),
            posted.first_failure.as_deref().unwrap_or("unknown")
        )));
    }

    let bar = bar(opts.progress, posted.accepted as u64, "done");
    let target = posted.accepted as u64;
    let mut last_error = None;
    let mut done = None;
    loop {
        match ledger.done().await {
            Ok(now) => {
                bar.set_position(now.min(target));
                done = Some(now);
                if now >= target {
                    let elapsed = start.elapsed();
                    bar.finish_and_clear();
                    return Ok(Summary::new(plan, &posted, post_phase, elapsed, now));
                }
            }
            Err(e) => {
                if last_error.is_none() {
                    bar.suspend(|| {
                        eprintln!("latency: reading done failed (retrying until the timeout): {e}");
                    });
                }
                last_error = Some(e.to_string());
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::time::sleep(opts.poll.min(deadline - now)).await;
    }
    bar.finish_and_clear();

    let dlq_report = match dlq {
        None => DlqReport::NotGiven,
        Some(dlq) => match dlq.depth().await {
            Ok(now) => DlqReport::Depth { what: dlq.describe(), now, before: dlq_before },
            Err(e) => DlqReport::Failed { what: dlq.describe(), error: e },
        },
    };
    Err(Error::Unfinished(timeout_message(
        opts.timeout,
        done,
        posted.accepted as u64,
        posted.failed,
        &dlq_report,
        last_error.as_deref(),
    )))
}

/// Waits (up to the run's timeout) until the work queue holds nothing: messages of an earlier run
/// would be counted in this run's `done` and end it early.
pub(super) async fn wait_until_empty(work: Option<&dyn Depth>, opts: &Opts) -> Result<(), Error> {
    let Some(work) = work else { return Ok(()) };
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let depth = work.depth().await.map_err(|e| Error::Invalid(format!("{}: {e}", work.describe())))?;
        if depth == 0 {
            return Ok(());
        }
        if started.elapsed() >= opts.timeout {
            return Err(Error::Invalid(format!(
                "{depth} messages of an earlier run are still in {}; they would be counted in this run. \
                 Wait for the workers to finish them (or purge the queue) and run again",
                work.describe()
            )));
        }
        if !said {
            eprintln!(
                "latency: waiting for {depth} messages of an earlier run in {} to be processed",
                work.describe()
            );
            said = true;
        }
        tokio::time::sleep(opts.poll.max(Duration::from_millis(200))).await;
    }
}

pub(super) fn bar(visible: bool, len: u64, message: &'static str) -> ProgressBar {
    let bar = if visible { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {per_sec} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message);
    bar
}

/// Posts every calculation, at most `opts.concurrency` at once.
async fn post_all(plan: &Plan, poster: Arc<dyn Post>, opts: &Opts) -> Result<Posted, Error> {
    let n = plan.xs.len();
    let bar = bar(opts.progress, n as u64, "posting");
    let bodies: Arc<Vec<(String, String, f64)>> = Arc::new(
        plan.xs.iter().enumerate().map(|(i, &x)| (plan.message_id(i), queue::calc::body(x), x)).collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let reported = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let mut tasks = JoinSet::new();
    for _ in 0..opts.concurrency.clamp(1, n.max(1)) {
        let (bodies, next, reported, poster, bar) =
            (bodies.clone(), next.clone(), reported.clone(), poster.clone(), bar.clone());
        let (backoff, seed) = (opts.backoff, plan.seed);
        tasks.spawn(async move {
            let mut tally = Posted::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, body, x)) = bodies.get(i) else { break };
                let mut jitter = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                match post_with_retries(&*poster, id, body, backoff, &mut jitter).await {
                    Ok(()) => {
                        tally.accepted += 1;
                        tally.longest_accepted = tally.longest_accepted.max(*x);
                    }
                    Err(e) => {
                        tally.failed += 1;
                        // The first refusal (4xx) and the first other failure, each once.
                        let (slot, what) = match &e {
                            PostError::Rejected(_) => (0, "refused (4xx answers are not retried)"),
                            PostError::Failed(_) => (1, "failed after 3 attempts"),
                        };
                        if !reported[slot].swap(true, Ordering::Relaxed) {
                            bar.suspend(|| eprintln!("latency: a post {what}: {e}"));
                        }
                        tally.first_failure.get_or_insert_with(|| e.to_string());
                    }
                }
                bar.inc(1);
            }
            tally
        });
    }
    let mut posted = Posted::default();
    while let Some(result) = tasks.join_next().await {
        let tally = result.map_err(|e| Error::Process(format!("a posting task failed: {e}")))?;
        posted.accepted += tally.accepted;
        posted.failed += tally.failed;
        posted.longest_accepted = posted.longest_accepted.max(tally.longest_accepted);
        if posted.first_failure.is_none() {
            posted.first_failure = tally.first_failure;
        }
    }
    bar.finish_and_clear();
    Ok(posted)
}

/// Up to [`ATTEMPTS`] tries; between them an equal-jitter wait below `1.5 × backoff × 2^(attempt-1)`
/// (`retry::Backoff`), drawn from the run's seeded generator so a run is reproducible.
async fn post_with_retries(
    poster: &dyn Post,
    id: &str,
    body: &str,
    backoff: Duration,
    jitter: &mut SplitMix64,
) -> Result<(), PostError> {
    let mut attempt = 1;
    loop {
        match poster.post(id, body).await {
            Ok(()) => return Ok(()),
            Err(PostError::Failed(why)) if attempt < ATTEMPTS => {
                tracing::debug!(id, attempt, %why, "post failed; retrying");
                let policy = retry::Backoff::equal(backoff.mul_f64(1.5), Duration::MAX);
                tokio::time::sleep(policy.delay_at(attempt, jitter.next_f64())).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use queue::{BoxFuture, Calculation, MemoryLedger};

    use super::*;
    use crate::queue::post::HttpPoster;

    fn opts() -> Opts {
        Opts {
            concurrency: 8,
            poll: Duration::from_millis(5),
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(1),
            progress: false,
        }
    }

    /// A stand-in for API Gateway → SQS → worker: answers 200 and runs calc(x) in the background,
    /// counting it in the ledger — except every `drop_every`-th message, which it "dead-letters".
    #[derive(Clone)]
    struct FakeQueue {
        ledger: Arc<MemoryLedger>,
        received: Arc<AtomicUsize>,
        dead: Arc<AtomicUsize>,
        drop_every: Option<usize>,
        status: StatusCode,
    }

    impl FakeQueue {
        fn new(drop_every: Option<usize>, status: StatusCode) -> FakeQueue {
            FakeQueue {
                ledger: Arc::new(MemoryLedger::new()),
                received: Arc::default(),
                dead: Arc::default(),
                drop_every,
                status,
            }
        }

        /// Serves POST /calc on a free port; returns its URL.
        async fn serve(&self) -> String {
            async fn calc(State(fake): State<FakeQueue>, body: String) -> (StatusCode, &'static str) {
                let n = fake.received.fetch_add(1, Ordering::SeqCst) + 1;
                if !fake.status.is_success() {
                    return (fake.status, "{\"message\": \"Invalid request body\"}");
                }
                let Ok(calculation) = Calculation::parse(&body, 10.0) else {
                    return (StatusCode::BAD_REQUEST, "bad body");
                };
                if fake.drop_every.is_some_and(|k| n % k == 0) {
                    fake.dead.fetch_add(1, Ordering::SeqCst);
                } else {
                    tokio::spawn(async move {
                        calculation.run().await;
                        fake.ledger.record(&format!("sqs-{n}")).await.expect("memory ledger");
                    });
                }
                (fake.status, "{}")
            }
            let app = Router::new().route("/calc", post(calc)).with_state(self.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}/calc")
        }
    }

    impl Depth for FakeQueue {
        fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
            Box::pin(async move { Ok(self.dead.load(Ordering::SeqCst) as u64) })
        }

        fn describe(&self) -> String {
            "the dead-letter queue fake-dlq (poison or failed maxReceiveCount times)".into()
        }
    }

    /// A work queue that drains by one message each time it is read.
    struct Draining(std::sync::atomic::AtomicU64);

    impl Depth for Draining {
        fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
            Box::pin(async move {
                let left = self.0.load(Ordering::SeqCst);
                self.0.store(left.saturating_sub(1), Ordering::SeqCst);
                Ok(left)
            })
        }

        fn describe(&self) -> String {
            "the work queue".into()
        }
    }

    #[tokio::test]
    async fn a_run_waits_for_messages_of_an_earlier_run_and_gives_up_at_the_timeout() {
        // Polled every 200 ms: two messages take two polls, well inside the timeout.
        let opts = Opts { timeout: Duration::from_millis(1500), ..opts() };
        let draining = Draining(std::sync::atomic::AtomicU64::new(2));
        wait_until_empty(Some(&draining), &opts).await.expect("empties within the timeout");
        assert_eq!(draining.0.load(Ordering::SeqCst), 0);
        let stuck = Draining(std::sync::atomic::AtomicU64::new(1_000));
        let error = wait_until_empty(Some(&stuck), &opts).await.expect_err("never empties");
        assert!(error.to_string().contains("of an earlier run are still in the work queue"), "{error}");
        wait_until_empty(None, &opts).await.expect("nothing to wait for");
    }

    #[tokio::test]
    async fn a_run_posts_everything_over_http_and_ends_when_done_reaches_accepted() {
        let fake = FakeQueue::new(None, StatusCode::OK);
        let url = fake.serve().await;
        fake.ledger.record("left over from an earlier run").await.expect("record");
        let plan = Plan::draw(40, 0.05, 3);
        let poster = Arc::new(HttpPoster::new(&url).expect("client"));
        let summary = drive(&plan, poster, &*fake.ledger, Some(&fake), &opts()).await.expect("completes");
        assert_eq!(fake.received.load(Ordering::SeqCst), 40);
        assert_eq!(
            (summary.calculations, summary.accepted, summary.failed_posts, summary.done),
            (40, 40, 0, 40)
        );
        assert_eq!(summary.ideal_seconds, plan.ideal());
        assert!(summary.elapsed_seconds >= summary.ideal_seconds, "{summary:?}");
        assert!(summary.elapsed_seconds >= summary.post_seconds);
        assert!(summary.elapsed_seconds < 5.0, "{summary:?}");
        assert!((summary.ratio - summary.elapsed_seconds / summary.ideal_seconds).abs() < 1e-12);
        assert!((summary.throughput_per_second - 40.0 / summary.elapsed_seconds).abs() < 1e-9);
        assert_eq!(summary.seed, 3);
    }

    #[tokio::test]
    async fn a_run_that_times_out_names_the_dead_letter_count() {
        let fake = FakeQueue::new(Some(5), StatusCode::OK);
        let url = fake.serve().await;
        let plan = Plan::draw(20, 0.05, 9);
        let poster = Arc::new(HttpPoster::new(&url).expect("client"));
        let opts = Opts { timeout: Duration::from_millis(400), ..opts() };
        let err = drive(&plan, poster, &*fake.ledger, Some(&fake), &opts).await.expect_err("4 never finish");
        assert!(matches!(err, Error::Unfinished(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "timed out after 0.4 s: 16 of 20 done; 4 messages in the dead-letter queue fake-dlq (poison or \
             failed maxReceiveCount times)"
        );
    }

    #[tokio::test]
    async fn a_4xx_answer_is_not_retried_and_a_run_with_nothing_accepted_fails() {
        let fake = FakeQueue::new(None, StatusCode::BAD_REQUEST);
        let url = fake.serve().await;
        let plan = Plan::draw(10, 0.05, 1);
        let poster = Arc::new(HttpPoster::new(&url).expect("client"));
        let err = drive(&plan, poster, &*fake.ledger, None, &opts()).await.expect_err("nothing accepted");
        assert_eq!(fake.received.load(Ordering::SeqCst), 10, "one attempt each");
        let err = err.to_string();
        assert!(
            err.contains("none of the 10 posts was accepted") && err.contains("Invalid request body"),
            "{err}"
        );
        assert!(err.contains("400"), "{err}");
    }

    /// Fails the first attempts of some ids with a retryable error, then counts them at once.
    struct Flaky {
        ledger: Arc<MemoryLedger>,
        attempts: Mutex<std::collections::HashMap<String, u32>>,
        /// Attempts that fail for ids ending in 0 / the others.
        fail_first: (u32, u32),
    }

    impl Post for Flaky {
        fn post<'a>(&'a self, id: &'a str, _body: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
            Box::pin(async move {
                let attempt = {
                    let mut attempts = self.attempts.lock().expect("lock");
                    let n = attempts.entry(id.to_owned()).or_default();
                    *n += 1;
                    *n
                };
                let fails = if id.ends_with('0') { self.fail_first.0 } else { self.fail_first.1 };
                if attempt <= fails {
                    return Err(PostError::Failed(format!(
                        "HTTP 503 Service Unavailable (attempt {attempt})"
                    )));
                }
                self.ledger.record(id).await.map(|_| ()).map_err(|e| PostError::Failed(e.to_string()))
            })
        }
    }

    #[tokio::test]
    async fn a_failing_post_is_tried_three_times_then_counted_as_failed() {
        let ledger = Arc::new(MemoryLedger::new());
        // Ids ending in 0 fail 3 times (failed for good); the others fail twice and then pass.
        let flaky =
            Arc::new(Flaky { ledger: ledger.clone(), attempts: Mutex::default(), fail_first: (3, 2) });
        let plan = Plan::draw(30, 0.05, 5);
        let summary = drive(&plan, flaky.clone(), &*ledger, None, &opts()).await.expect("completes");
        assert_eq!((summary.accepted, summary.failed_posts, summary.done), (27, 3, 27));
        let longest_accepted = (0..30).filter(|i| i % 10 != 0).map(|i| plan.xs[i]).fold(0.0, f64::max);
        assert_eq!(summary.ideal_seconds, longest_accepted, "a refused x never runs: not in the ideal");
        let attempts = flaky.attempts.lock().expect("lock");
        assert!(attempts.values().all(|&n| n == 3), "{attempts:?}");
        assert_eq!(attempts.len(), 30);
    }
}
