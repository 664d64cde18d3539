//! `latency queue`: the seed's "Queues" experiment (`python sqs.py 1000 2`). Post N `calc(x)`
//! jobs with x ~ U(0, max) seconds and time them until every accepted one is counted in `done`.
//!
//! A run:
//! 1. draw the N values of x (`--seed` repeats a draw). The **ideal** is the largest x: with
//!    every calculation running in parallel, the run still cannot end before the longest one
//!    (the largest *accepted* x, when some posts fail: a refused x never runs);
//! 2. reset `done` in the ledger (DynamoDB: `--done-table`, item id = 0, attribute `done`);
//! 3. start the clock, then post all N, at most `--concurrency` in flight: `POST {"x": …}` to an
//!    http(s) target (API Gateway → SQS; any 2xx is accepted), or publish to RabbitMQ for an
//!    `amqp://` target (persistent, confirmed, each with a message id unique across runs). A
//!    post is tried 3 times with jittered exponential backoff; a 4xx answer other than 429
//!    (throttled) is final and not retried. A post that still fails counts in `failed posts`;
//!    the rest of the run goes on;
//! 4. poll `done` every `--poll-ms` until done ≥ accepted: that moment is the **elapsed** time;
//! 5. print calculations, accepted, failed posts, the post phase, elapsed, ideal, elapsed/ideal
//!    and the throughput (accepted calculations per second of elapsed), and `done` at the end;
//!    `--json` prints the same as one JSON object (and the seed). A run that fails (timed out,
//!    nothing accepted) prints nothing on stdout: the error goes to stderr, the exit code is 1.
//!
//! `--timeout` counts from the clock start (posting is never cut short; its default is
//! `60 + 2 × max + N × max / 100` seconds: a minute of slack, twice the longest calculation, and
//! the whole run's work — N × max / 2 seconds on average — spread over 50 calculations at a
//! time). When it passes, the command reads the dead-letter queue (`--dlq`: the SQS queue URL for
//! an http target; for an amqp target the queue name, default `<queue>.dlq`), says how many of
//! the accepted calculations are done, how many messages reached the dead-letter queue during the
//! run and how many may still be in flight, and fails.
//!
//! Caveats: an HTTP post whose answer was lost may have been enqueued all the same, and its retry
//! enqueues it again under a new SQS message id, so `done` can end above `accepted` (the summary
//! says so); messages left in the queue by an earlier run are counted too.
//!
//! # `--local`: `.local/queue.toml`
//! `scripts/local up` writes it (in `$HITS_LOCAL_STATE` when set, else `<checkout>/.local`);
//! `--local` reads it instead of the target flags, `--path NAME` picks a `[[path]]` (default: the
//! first one):
//!
//! ```toml
//! # Written by scripts/local up.
//! endpoint = "http://127.0.0.1:PORT"   # optional: the emulator (moto); AWS clients use it
//! [[path]]
//! name = "lambda"                      # API stand-in → SQS → poller → the Lambda
//! target = "http://127.0.0.1:9020/v1/calc"
//! dlq = "http://127.0.0.1:PORT/123456789012/local-calcdeadletterqueue"   # optional
//! done_table = "local-calctable"
//! messages_table = "local-calcmessagestable"
//! [[path]]
//! name = "worker"                      # calc-worker-server consuming RabbitMQ
//! target = "amqp://guest:guest@127.0.0.1:5673/%2f"
//! amqp_queue = "calc"                  # optional, amqp targets only [default: calc]
//! dlq = "calc.dlq"                     # optional [default: <amqp_queue>.dlq]
//! done_table = "local-calctable-worker"
//! messages_table = "local-calcmessagestable"
//! ```
//!
//! Other keys are ignored, so the writer can add some without breaking older readers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use queue::{BoxFuture, Ledger};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::Error;

/// Attempts per post before it counts as failed.
const ATTEMPTS: u32 = 3;
/// The first retry waits about this long (× 0.5–1.5), the second twice as long.
const BACKOFF: Duration = Duration::from_millis(200);
/// One HTTP post gives up after this long (and is retried).
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of an error answer's body shown.
const BODY_SHOWN: usize = 500;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many calculations to post.
    #[arg(long, short = 'n', default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    calculations: u64,
    /// The longest calculation, in seconds: x ~ U(0, max). The deployment refuses x above its
    /// MaxX (template default 10).
    #[arg(long, default_value_t = 2.0)]
    max: f64,
    /// Where to post: http(s)://…/calc (POST {"x": …}, API Gateway → SQS) or amqp://user:pass@host:port/vhost
    /// (publish to --amqp-queue).
    #[arg(long, value_name = "URL", required_unless_present = "local", conflicts_with = "local")]
    target: Option<String>,
    /// With an amqp target: the work queue [default: calc].
    #[arg(long, value_name = "QUEUE", conflicts_with = "local")]
    amqp_queue: Option<String>,
    /// The DynamoDB table holding `done` (item id = 0), reset before the run and polled.
    #[arg(long, value_name = "NAME", required_unless_present = "local", conflicts_with = "local")]
    done_table: Option<String>,
    /// The DynamoDB table of counted message ids (the ledger's exactly-once record).
    #[arg(long, value_name = "NAME", required_unless_present = "local", conflicts_with = "local")]
    messages_table: Option<String>,
    /// The dead-letter queue, read when the run times out: its SQS queue URL for an http target
    /// (not read if absent), its name for an amqp target [default: <queue>.dlq].
    #[arg(long, value_name = "URL_OR_NAME", conflicts_with = "local")]
    dlq: Option<String>,
    /// The SQS work queue behind an http target (the stack's CalcQueueUrl). When given, the run
    /// first waits until it is empty: messages of an earlier run would be counted in this one.
    /// (An amqp target's queue is always checked.)
    #[arg(long, value_name = "URL", conflicts_with = "local")]
    queue_url: Option<String>,
    /// Take the target, tables and DLQ from .local/queue.toml (written by `scripts/local up`).
    #[arg(long)]
    local: bool,
    /// With --local: which [[path]] of queue.toml (lambda, worker) [default: the first].
    #[arg(long, value_name = "NAME", requires = "local")]
    path: Option<String>,
    /// Posts in flight at once.
    #[arg(long, short = 'c', default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Give up this many seconds after the clock start [default: 60 + 2 × max + N × max / 100].
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Seed of the x values, to repeat a run's draw [default: from the clock; printed].
    #[arg(long)]
    seed: Option<u64>,
    /// How often to read `done`, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    poll_ms: u64,
    /// Print the results as one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> Result<(), Error> {
    let setup = match args.local {
        true => {
            let root = crate::report::workspace_root()?;
            let path = crate::report::local_state_dir(&root).join("queue.toml");
            load_local(&path, args.path.as_deref())?
        }
        false => Setup {
            endpoint: None,
            target: args.target.clone().unwrap_or_default(),
            amqp_queue: args.amqp_queue.clone(),
            dlq: args.dlq.clone(),
            queue_url: args.queue_url.clone(),
            done_table: args.done_table.clone().unwrap_or_default(),
            messages_table: args.messages_table.clone().unwrap_or_default(),
        },
    };
    let n =
        usize::try_from(args.calculations).map_err(|_| Error::Invalid("--calculations: too many".into()))?;
    if !(args.max.is_finite() && args.max > 0.0) {
        return Err(Error::Invalid(format!("--max must be a positive number of seconds, not {}", args.max)));
    }
    let timeout = args.timeout.unwrap_or_else(|| default_timeout(n, args.max));
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(Error::Invalid(format!("--timeout must be a positive number of seconds, not {timeout}")));
    }
    let kind = Kind::of(&setup.target)?;
    let seed = args.seed.unwrap_or_else(clock_seed);
    let plan = Plan::draw(n, args.max, seed);

    let config = aws_setup::load_at(aws_setup::TrustRoots::Platform, setup.endpoint.as_deref()).await;
    let ledger =
        queue::dynamodb::DynamoDbLedger::new(&config, setup.done_table.clone(), setup.messages_table.clone());
    // The broker connection, closed after the run (politely: the broker logs a dropped one).
    let mut publisher = None;
    let (poster, dlq, work): (Arc<dyn Post>, Option<DepthBox>, Option<DepthBox>) = match kind {
        Kind::Http => {
            let dlq = match &setup.dlq {
                Some(url) if is_http(url) => {
                    Some(Box::new(SqsDlq { config: config.clone(), url: url.clone() }) as Box<dyn Depth>)
                }
                Some(other) => {
                    return Err(Error::Invalid(format!(
                        "--dlq {other:?}: for an http target the dead-letter queue is an SQS queue URL \
                         (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
                    )));
                }
                None => None,
            };
            let work = match &setup.queue_url {
                Some(url) if is_http(url) => {
                    Some(Box::new(SqsDlq { config: config.clone(), url: url.clone() }) as Box<dyn Depth>)
                }
                Some(other) => {
                    return Err(Error::Invalid(format!("--queue-url {other:?}: not an SQS queue URL")));
                }
                None => None,
            };
            (Arc::new(HttpPoster::new(&setup.target)?), dlq, work)
        }
        Kind::Amqp => {
            let queue_name = setup.amqp_queue.clone().unwrap_or_else(|| "calc".to_owned());
            let connected =
                queue::amqp::Publisher::connect(&setup.target, &queue_name).await.map_err(|source| {
                    Error::Queue { context: format!("connecting to {}", redact(&setup.target)), source }
                })?;
            let shared = Arc::new(connected);
            publisher = Some(shared.clone());
            let dlq_name = setup.dlq.clone().unwrap_or_else(|| queue::amqp::dead_letter_queue(&queue_name));
            let dlq = AmqpDlq { publisher: shared.clone(), queue: dlq_name };
            let work = AmqpDlq { publisher: shared.clone(), queue: queue_name };
            (Arc::new(AmqpPoster(shared)), Some(Box::new(dlq)), Some(Box::new(work)))
        }
    };

    eprintln!(
        "latency: {n} calc(x) jobs, x ~ U(0, {}) s (seed {seed}, longest {:.3} s) → {}; counting in {}; \
         timeout {timeout} s",
        args.max,
        plan.ideal(),
        redact(&setup.target),
        ledger.describe()
    );
    let opts = Opts {
        concurrency: usize::try_from(args.concurrency).unwrap_or(1),
        poll: Duration::from_millis(args.poll_ms),
        timeout: Duration::from_secs_f64(timeout),
        backoff: BACKOFF,
        progress: true,
    };
    let result = match wait_until_empty(work.as_deref(), &opts).await {
        Ok(()) => drive(&plan, poster, &ledger, dlq.as_deref(), &opts).await,
        Err(e) => Err(e),
    };
    drop((dlq, work));
    if let Some(Ok(publisher)) = publisher.map(Arc::try_unwrap)
        && let Err(e) = publisher.close().await
    {
        tracing::debug!(error = %e, "closing the broker connection");
    }
    let summary = result?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        println!("{json}");
    } else {
        print!("{}", summary.render());
    }
    Ok(())
}

/// Something whose depth the run reads: a work queue or a dead-letter queue.
type DepthBox = Box<dyn Depth>;

/// Waits (up to the run's timeout) until the work queue holds nothing: messages of an earlier run
/// would be counted in this run's `done` and end it early.
async fn wait_until_empty(work: Option<&dyn Depth>, opts: &Opts) -> Result<(), Error> {
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

/// What `run` needs to know about the deployment: from the flags or from queue.toml.
#[derive(Debug, Clone, PartialEq)]
struct Setup {
    /// The AWS endpoint override (the emulator), if any.
    endpoint: Option<String>,
    target: String,
    amqp_queue: Option<String>,
    dlq: Option<String>,
    /// The SQS work queue of an http target, to wait until it is empty.
    queue_url: Option<String>,
    done_table: String,
    messages_table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Amqp,
}

impl Kind {
    fn of(target: &str) -> Result<Kind, Error> {
        if is_http(target) {
            Ok(Kind::Http)
        } else if target.starts_with("amqp://") || target.starts_with("amqps://") {
            Ok(Kind::Amqp)
        } else {
            Err(Error::Invalid(format!(
                "target {:?} is neither http(s)://…/calc nor amqp://…",
                redact(target)
            )))
        }
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// `amqp://user:secret@host/…` → `amqp://user:***@host/…`, for messages.
fn redact(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else { return uri.to_owned() };
    let authority_end = uri[start..].find('/').map_or(uri.len(), |i| start + i);
    let authority = &uri[start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}{}:***{}", &uri[..start], &authority[..colon], &uri[start + at..])
        }
        _ => uri.to_owned(),
    }
}

/// `60 + 2 × max + N × max / 100` seconds (see the module docs).
fn default_timeout(n: usize, max: f64) -> f64 {
    60.0 + 2.0 * max + n as f64 * max / 100.0
}

fn clock_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Folded to 53 bits: the seed is printed and typed back as --seed.
    SplitMix64::new(nanos as u64 ^ u64::from(std::process::id())).next_u64() >> 11
}

// ---------------------------------------------------------------------------------------------
// queue.toml

#[derive(Debug, Deserialize)]
struct LocalFile {
    endpoint: Option<String>,
    #[serde(default, rename = "path")]
    paths: Vec<LocalPath>,
}

#[derive(Debug, Deserialize)]
struct LocalPath {
    name: String,
    target: String,
    amqp_queue: Option<String>,
    dlq: Option<String>,
    queue: Option<String>,
    done_table: String,
    messages_table: String,
}

/// Reads queue.toml at `path` and picks the path named `name` (default: the first).
fn load_local(path: &Path, name: Option<&str>) -> Result<Setup, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "{} not found: start the local stack first (scripts/local up), which writes it",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    };
    parse_local(&text, &path.display().to_string(), name)
}

fn parse_local(text: &str, origin: &str, name: Option<&str>) -> Result<Setup, Error> {
    let file: LocalFile = toml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    let chosen = match name {
        None => file.paths.first(),
        Some(name) => file.paths.iter().find(|p| p.name == name),
    };
    let Some(chosen) = chosen else {
        let names: Vec<&str> = file.paths.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::Invalid(match name {
            None => format!("{origin}: no [[path]] entries"),
            Some(name) => format!("{origin}: no path named {name:?} (there are: {})", names.join(", ")),
        }));
    };
    Kind::of(&chosen.target).map_err(|e| Error::Invalid(format!("{origin}: path {:?}: {e}", chosen.name)))?;
    Ok(Setup {
        endpoint: file.endpoint.filter(|e| !e.is_empty()),
        target: chosen.target.clone(),
        amqp_queue: chosen.amqp_queue.clone(),
        dlq: chosen.dlq.clone().filter(|d| !d.is_empty()),
        queue_url: chosen.queue.clone().filter(|q| !q.is_empty()),
        done_table: chosen.done_table.clone(),
        messages_table: chosen.messages_table.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// The draw

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough to draw x values.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, max).
    pub fn below(&mut self, max: f64) -> f64 {
        let x = self.next_f64() * max;
        // The product can round up to `max` itself; keep the interval half-open.
        if x < max { x } else { max * (1.0 - f64::EPSILON) }
    }
}

/// The calculations of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub xs: Vec<f64>,
    pub seed: u64,
    /// Prefix of the message ids: unique per run (the ledger remembers ids across runs), even
    /// when the seed repeats.
    pub run_id: String,
}

impl Plan {
    /// N values of x ~ U(0, max), the same for the same seed.
    pub fn draw(n: usize, max: f64, seed: u64) -> Plan {
        let mut rng = SplitMix64::new(seed);
        let xs = (0..n).map(|_| rng.below(max)).collect();
        Plan { xs, seed, run_id: run_id() }
    }

    /// The longest calculation: the run cannot end sooner.
    pub fn ideal(&self) -> f64 {
        self.xs.iter().copied().fold(0.0, f64::max)
    }

    fn message_id(&self, index: usize) -> String {
        format!("{}-{index}", self.run_id)
    }
}

fn run_id() -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("latency-{nanos:x}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// The ports: posting and the dead-letter queue

/// Why a post failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// Refused for good (a 4xx answer): not retried.
    Rejected(String),
    /// May succeed if tried again (connection, timeout, 5xx, 429, a broker nack).
    Failed(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Rejected(why) | PostError::Failed(why) => f.write_str(why),
        }
    }
}

/// Sends one calculation request.
pub trait Post: Send + Sync {
    /// Posts `body`; `message_id` is unique across runs (used where the transport carries it).
    fn post<'a>(&'a self, message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>>;
}

/// The dead-letter queue, read when a run times out.
pub trait Depth: Send + Sync {
    /// Messages in it now.
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>>;
    /// What it is, for the timeout message: `the dead-letter queue <url> (why messages go there)`.
    fn describe(&self) -> String;
}

/// `POST {"x": …}` to an API (API Gateway → SQS, or scripts/calc_api.py locally).
pub struct HttpPoster {
    client: reqwest::Client,
    url: String,
}

impl HttpPoster {
    pub fn new(url: &str) -> Result<HttpPoster, Error> {
        aws_setup::install_tls_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("latency-queue/", env!("CARGO_PKG_VERSION")))
            .timeout(POST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| Error::Invalid(format!("building the HTTP client: {e}")))?;
        Ok(HttpPoster { client, url: url.to_owned() })
    }
}

impl Post for HttpPoster {
    fn post<'a>(&'a self, _message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned())
                .send()
                .await
                .map_err(|e| PostError::Failed(error_chain(&e)))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(BODY_SHOWN).collect();
            let why = format!("HTTP {status}: {}", text.trim());
            if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                Err(PostError::Rejected(why))
            } else {
                Err(PostError::Failed(why))
            }
        })
    }
}

/// An error with its causes: reqwest's own message is often just "error sending request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Publishes to RabbitMQ, persistent and confirmed.
struct AmqpPoster(Arc<queue::amqp::Publisher>);

impl Post for AmqpPoster {
    fn post<'a>(&'a self, message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            self.0.publish(message_id, body).await.map_err(|e| PostError::Failed(e.to_string()))
        })
    }
}

struct AmqpDlq {
    publisher: Arc<queue::amqp::Publisher>,
    queue: String,
}

impl Depth for AmqpDlq {
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move { self.publisher.depth(&self.queue).await.map_err(|e| e.to_string()) })
    }

    fn describe(&self) -> String {
        format!("the dead-letter queue {} (poison: the worker rejected them)", self.queue)
    }
}

struct SqsDlq {
    config: aws_config::SdkConfig,
    url: String,
}

impl Depth for SqsDlq {
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move { queue::sqs::depth(&self.config, &self.url).await.map_err(|e| e.to_string()) })
    }

    fn describe(&self) -> String {
        format!("the dead-letter queue {} (poison or failed maxReceiveCount times)", self.url)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

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

/// A completed run, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub calculations: usize,
    pub accepted: usize,
    pub failed_posts: usize,
    /// Clock start → the last post answered.
    pub post_seconds: f64,
    /// Clock start → done ≥ accepted.
    pub elapsed_seconds: f64,
    /// The longest accepted x (all of them, unless posts failed).
    pub ideal_seconds: f64,
    /// elapsed / ideal.
    pub ratio: f64,
    /// Accepted calculations per second of elapsed.
    pub throughput_per_second: f64,
    /// `done` when the run ended (above `accepted` if something was counted twice or came
    /// from an earlier run).
    pub done: u64,
    pub seed: u64,
}

impl Summary {
    fn new(plan: &Plan, posted: &Posted, post: Duration, elapsed: Duration, done: u64) -> Summary {
        let elapsed_seconds = elapsed.as_secs_f64();
        let ideal_seconds = posted.longest_accepted;
        Summary {
            calculations: plan.xs.len(),
            accepted: posted.accepted,
            failed_posts: posted.failed,
            post_seconds: post.as_secs_f64(),
            elapsed_seconds,
            ideal_seconds,
            ratio: elapsed_seconds / ideal_seconds,
            throughput_per_second: posted.accepted as f64 / elapsed_seconds,
            done,
            seed: plan.seed,
        }
    }

    /// The human-readable summary, one figure a line.
    pub fn render(&self) -> String {
        let mut lines = vec![
            format!("calculations     {}", self.calculations),
            format!("accepted         {}", self.accepted),
            format!("failed posts     {}", self.failed_posts),
            format!("post phase       {:.3} s", self.post_seconds),
            format!("elapsed          {:.3} s  (clock start → done = accepted)", self.elapsed_seconds),
            format!("ideal            {:.3} s  (the longest x: all in parallel)", self.ideal_seconds),
            format!("ratio            {:.2}  (elapsed / ideal)", self.ratio),
            format!("throughput       {:.1} calculations/s", self.throughput_per_second),
            format!("done             {}", self.done),
            format!("seed             {}", self.seed),
        ];
        if self.done > self.accepted as u64 {
            lines.push(format!(
                "note: done exceeds accepted by {}: a post retried after its answer was lost, or \
                 messages from an earlier run",
                self.done - self.accepted as u64
            ));
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// What the post phase did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Posted {
    pub accepted: usize,
    pub failed: usize,
    /// The largest accepted x: the ideal.
    pub longest_accepted: f64,
    /// The first final failure, as printed.
    pub first_failure: Option<String>,
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
                        eprintln!("latency: reading done failed (retrying until the timeout): {e}")
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

/// What the dead-letter queue said at the timeout.
#[derive(Debug, Clone, PartialEq)]
enum DlqReport {
    NotGiven,
    Depth { what: String, now: u64, before: Option<u64> },
    Failed { what: String, error: String },
}

/// "timed out after 60 s: 987 of 1000 done; 13 messages in the dead-letter queue … ; …"
fn timeout_message(
    timeout: Duration,
    done: Option<u64>,
    accepted: u64,
    failed_posts: usize,
    dlq: &DlqReport,
    ledger_error: Option<&str>,
) -> String {
    let mut text = format!("timed out after {} s: ", fmt_secs(timeout.as_secs_f64()));
    match done {
        Some(done) => text.push_str(&format!("{done} of {accepted} done")),
        None => text.push_str(&format!("done unknown of {accepted}")),
    }
    if failed_posts > 0 {
        text.push_str(&format!(" ({failed_posts} posts failed)"));
    }
    let mut accounted = done.unwrap_or(0);
    match dlq {
        DlqReport::NotGiven => text.push_str("; the dead-letter queue was not read (no --dlq)"),
        DlqReport::Failed { what, error } => text.push_str(&format!("; reading {what} failed: {error}")),
        DlqReport::Depth { what, now, before } => {
            let new = now.saturating_sub(before.unwrap_or(0));
            let s = if new == 1 { "" } else { "s" };
            match before {
                Some(before) if *before > 0 => {
                    text.push_str(&format!("; {new} new message{s} in {what}, {now} in all"))
                }
                _ => text.push_str(&format!("; {new} message{s} in {what}")),
            }
            accounted += new;
        }
    }
    let rest = accepted.saturating_sub(accounted);
    if rest > 0 {
        text.push_str(&format!("; the rest ({rest}) may still be in flight"));
    }
    if let Some(error) = ledger_error {
        text.push_str(&format!("; the last read of done failed: {error}"));
    }
    text
}

/// `60`, `0.5`, `84.1`: seconds without a trailing `.0`.
fn fmt_secs(secs: f64) -> String {
    let text = format!("{secs:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

fn bar(visible: bool, len: u64, message: &'static str) -> ProgressBar {
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

/// Up to [`ATTEMPTS`] tries; waits `backoff × 2^(attempt-1) × U(0.5, 1.5)` between them.
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
                let factor = f64::from(1u32 << (attempt - 1)) * (0.5 + jitter.next_f64());
                tokio::time::sleep(backoff.mul_f64(factor)).await;
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
    use queue::{Calculation, MemoryLedger};

    use super::*;

    fn opts() -> Opts {
        Opts {
            concurrency: 8,
            poll: Duration::from_millis(5),
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(1),
            progress: false,
        }
    }

    #[test]
    fn the_draw_is_reproducible_and_within_zero_to_max() {
        let a = Plan::draw(1000, 2.0, 42);
        let b = Plan::draw(1000, 2.0, 42);
        assert_eq!(a.xs, b.xs, "same seed, same x values");
        assert_ne!(a.xs, Plan::draw(1000, 2.0, 43).xs, "another seed, other values");
        assert!(a.xs.iter().all(|&x| (0.0..2.0).contains(&x)));
        let mean = a.xs.iter().sum::<f64>() / 1000.0;
        assert!((0.9..1.1).contains(&mean), "U(0, 2) has mean 1, got {mean}");
        assert_ne!(a.run_id, b.run_id, "message ids never repeat across runs, even with the same seed");
        // The first outputs of SplitMix64 seeded with 0 (the reference implementation's).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        // An x that would round up to max stays below it.
        assert!(SplitMix64(u64::MAX).below(f64::MIN_POSITIVE) < f64::MIN_POSITIVE);
    }

    #[test]
    fn the_ideal_is_the_longest_x() {
        let mut plan = Plan::draw(0, 1.0, 1);
        assert_eq!(plan.ideal(), 0.0);
        plan.xs = vec![0.3, 1.7, 0.2];
        assert_eq!(plan.ideal(), 1.7);
        let plan = Plan::draw(500, 2.0, 7);
        assert_eq!(plan.ideal(), plan.xs.iter().copied().fold(f64::MIN, f64::max));
    }

    #[test]
    fn the_default_timeout_grows_with_max_and_with_n() {
        assert_eq!(default_timeout(1000, 2.0), 84.0);
        assert!((default_timeout(10, 0.05) - 60.105).abs() < 1e-9);
    }

    const QUEUE_TOML: &str = r#"
        # Written by scripts/local up.
        endpoint = "http://127.0.0.1:5000"
        [[path]]
        name = "lambda"
        target = "http://127.0.0.1:9020/v1/calc"
        dlq = "http://127.0.0.1:5000/123456789012/local-calcdeadletterqueue"
        done_table = "local-calctable"
        messages_table = "local-calcmessagestable"
        [[path]]
        name = "worker"
        target = "amqp://guest:guest@127.0.0.1:5673/%2f"
        amqp_queue = "calc"
        dlq = "calc.dlq"
        done_table = "local-calctable-worker"
        messages_table = "local-calcmessagestable"
        comment = "other keys are ignored"
    "#;

    #[test]
    fn queue_toml_gives_the_first_path_by_default_and_any_path_by_name() {
        let lambda = parse_local(QUEUE_TOML, "queue.toml", None).expect("valid");
        assert_eq!(
            lambda,
            Setup {
                endpoint: Some("http://127.0.0.1:5000".into()),
                target: "http://127.0.0.1:9020/v1/calc".into(),
                amqp_queue: None,
                dlq: Some("http://127.0.0.1:5000/123456789012/local-calcdeadletterqueue".into()),
                queue_url: None,
                done_table: "local-calctable".into(),
                messages_table: "local-calcmessagestable".into(),
            }
        );
        assert_eq!(parse_local(QUEUE_TOML, "queue.toml", Some("lambda")).expect("valid"), lambda);
        let worker = parse_local(QUEUE_TOML, "queue.toml", Some("worker")).expect("valid");
        assert_eq!(worker.target, "amqp://guest:guest@127.0.0.1:5673/%2f");
        assert_eq!(worker.amqp_queue.as_deref(), Some("calc"));
        assert_eq!(worker.dlq.as_deref(), Some("calc.dlq"));
        assert_eq!(worker.done_table, "local-calctable-worker");
        assert_eq!(Kind::of(&worker.target).expect("amqp"), Kind::Amqp);
    }

    #[test]
    fn bad_or_missing_queue_toml_says_what_to_do() {
        let missing = tempfile::tempdir().expect("tempdir");
        let err = load_local(&missing.path().join("queue.toml"), None).expect_err("missing").to_string();
        assert!(err.contains("queue.toml not found") && err.contains("scripts/local up"), "{err}");

        let err = parse_local(QUEUE_TOML, "q.toml", Some("fargate")).expect_err("no such path").to_string();
        assert!(err.contains("no path named \"fargate\"") && err.contains("lambda, worker"), "{err}");
        let err = parse_local("endpoint = 'http://x'", "q.toml", None).expect_err("no paths").to_string();
        assert!(err.contains("no [[path]]"), "{err}");
        let err = parse_local("[[path]]\nname = 'a'\ntarget = 'http://x'", "q.toml", None)
            .expect_err("no tables")
            .to_string();
        assert!(err.contains("q.toml") && err.contains("done_table"), "{err}");
        let text = "[[path]]\nname='a'\ntarget='ftp://x'\ndone_table='d'\nmessages_table='m'";
        let err = parse_local(text, "q.toml", None).expect_err("bad scheme").to_string();
        assert!(err.contains("neither http(s)"), "{err}");
    }

    #[test]
    fn secrets_in_amqp_uris_are_not_printed() {
        assert_eq!(redact("amqp://guest:guest@127.0.0.1:5673/%2f"), "amqp://guest:***@127.0.0.1:5673/%2f");
        assert_eq!(redact("amqp://127.0.0.1:5673/%2f"), "amqp://127.0.0.1:5673/%2f");
        assert_eq!(redact("https://x.example/v1/calc?a=b@c:d"), "https://x.example/v1/calc?a=b@c:d");
    }

    fn summary() -> Summary {
        Summary {
            calculations: 1000,
            accepted: 998,
            failed_posts: 2,
            post_seconds: 3.2104,
            elapsed_seconds: 12.5,
            ideal_seconds: 1.9990,
            ratio: 12.5 / 1.999,
            throughput_per_second: 998.0 / 12.5,
            done: 998,
            seed: 42,
        }
    }

    #[test]
    fn the_summary_prints_one_figure_a_line_and_as_json() {
        let text = summary().render();
        assert_eq!(
            text,
            "calculations     1000\n\
             accepted         998\n\
             failed posts     2\n\
             post phase       3.210 s\n\
             elapsed          12.500 s  (clock start → done = accepted)\n\
             ideal            1.999 s  (the longest x: all in parallel)\n\
             ratio            6.25  (elapsed / ideal)\n\
             throughput       79.8 calculations/s\n\
             done             998\n\
             seed             42\n"
        );
        let over = Summary { done: 1000, ..summary() }.render();
        assert!(over.contains("done exceeds accepted by 2"), "{over}");

        let json: serde_json::Value = serde_json::to_value(summary()).expect("serializes");
        for field in [
            "calculations",
            "accepted",
            "failed_posts",
            "post_seconds",
            "elapsed_seconds",
            "ideal_seconds",
            "ratio",
            "throughput_per_second",
            "done",
        ] {
            assert!(json[field].is_number(), "{field} in {json}");
        }
        assert_eq!(json["accepted"], 998);
        assert_eq!(json["elapsed_seconds"], 12.5);
    }

    #[test]
    fn the_timeout_message_accounts_for_every_accepted_calculation() {
        let dlq = |now, before| DlqReport::Depth { what: "the dead-letter queue q".into(), now, before };
        assert_eq!(
            timeout_message(Duration::from_secs(60), Some(987), 1000, 0, &dlq(13, Some(0)), None),
            "timed out after 60 s: 987 of 1000 done; 13 messages in the dead-letter queue q"
        );
        assert_eq!(
            timeout_message(Duration::from_millis(1500), Some(980), 1000, 3, &dlq(25, Some(20)), None),
            "timed out after 1.5 s: 980 of 1000 done (3 posts failed); 5 new messages in the dead-letter \
             queue q, 25 in all; the rest (15) may still be in flight"
        );
        assert_eq!(
            timeout_message(Duration::from_secs(5), None, 10, 0, &DlqReport::NotGiven, Some("throttled")),
            "timed out after 5 s: done unknown of 10; the dead-letter queue was not read (no --dlq); the \
             rest (10) may still be in flight; the last read of done failed: throttled"
        );
        let failed =
            DlqReport::Failed { what: "the dead-letter queue q".into(), error: "no such queue".into() };
        assert!(
            timeout_message(Duration::from_secs(5), Some(1), 2, 0, &failed, None)
                .contains("reading the dead-letter queue q failed: no such queue")
        );
    }

    /// A stand-in for API Gateway → SQS → worker: answers 202 and runs calc(x) in the background,
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
        let fake = FakeQueue::new(None, StatusCode::ACCEPTED);
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
        let fake = FakeQueue::new(Some(5), StatusCode::ACCEPTED);
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
