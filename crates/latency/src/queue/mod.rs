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
//!    and the throughput (accepted calculations per second of elapsed), and `done` at the end,
//!    then the run's **cost**: the accepted calculations × the per-call cost of the path driven
//!    (`run_cost`: the `queue-*` profiles of `latency cost -a queue`, at the run's region's
//!    prices, else London's); `--json` prints the same as one JSON object (and the seed). A run
//!    that fails (timed out, nothing accepted) prints nothing on stdout: the error goes to
//!    stderr, the exit code is 1.
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
//! `scripts/local up` writes it (in `$LOCAL_STACK_STATE` when set, else `<checkout>/.local`);
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
//!
//! # `--rpc`: request–reply, as seed 000's RabbitMQ driver
//! With an amqp target (or `--local --path worker`), `--rpc` calls instead of posting: each x as
//! text with `reply_to`, all N in flight, timed per call until its answer; no tables are read
//! ([`rpc`]).

mod config;
mod dlq;
mod driver;
mod post;
mod rng;
mod rpc;
mod run_cost;
mod summary;
mod target;

use std::sync::Arc;
use std::time::Duration;

use queue::Ledger;

use config::Setup;
use dlq::{AmqpDlq, Depth, DepthBox, SqsDlq};
use driver::{BACKOFF, Opts, drive, wait_until_empty};
use post::{AmqpPoster, HttpPoster, Post};
use rng::{Plan, clock_seed};
use target::{Kind, is_http, redact};

use crate::error::Error;

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
    #[arg(long, value_name = "NAME", required_unless_present_any = ["local", "rpc"], conflicts_with = "local")]
    done_table: Option<String>,
    /// The DynamoDB table of counted message ids (the ledger's exactly-once record).
    #[arg(long, value_name = "NAME", required_unless_present_any = ["local", "rpc"], conflicts_with = "local")]
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
    /// Posts in flight at once [default: 50; with --rpc, all the calculations at once, as the
    /// seed's driver].
    #[arg(long, short = 'c', value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    concurrency: Option<u64>,
    /// Request–reply, as seed 000's RabbitMQ driver (amqp targets): publish each x as text with
    /// reply_to (an exclusive callback queue) and a correlation id, await every answer; report
    /// elapsed, ideal, ratio and per-call latency percentiles. Reads no tables.
    #[arg(long)]
    rpc: bool,
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
            let root = crate::local_state::workspace_root()?;
            let path = crate::local_state::local_state_dir(&root).join("queue.toml");
            config::load_local(&path, args.path.as_deref())?
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
    if args.rpc {
        if kind != Kind::Amqp {
            return Err(Error::Invalid(format!(
                "--rpc calls over RabbitMQ: the target must be amqp://…, not {}",
                redact(&setup.target)
            )));
        }
        let concurrency = args.concurrency.map_or(n, |c| usize::try_from(c).unwrap_or(n));
        let opts = rpc::RpcOpts { concurrency, timeout: Duration::from_secs_f64(timeout), progress: true };
        let queue_name = setup.amqp_queue.clone().unwrap_or_else(|| "calc".to_owned());
        return rpc::run(&plan, &setup.target, &queue_name, &opts, args.json).await;
    }

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
        concurrency: args.concurrency.map_or(50, |c| usize::try_from(c).unwrap_or(1)),
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
    // A run's figures are never lost to its pricing: without a price, the run prints no cost.
    let run_cost =
        run_cost::RunCost::of_run(kind, summary.accepted, config.region().map(aws_config::Region::as_ref))
            .inspect_err(|e| tracing::warn!(error = %e, "the run's cost could not be priced"))
            .ok();
    if args.json {
        let mut value =
            serde_json::to_value(&summary).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        if let Some(run_cost) = &run_cost {
            value["cost"] =
                serde_json::to_value(run_cost).map_err(|e| Error::Invalid(format!("cost: {e}")))?;
        }
        let json =
            serde_json::to_string_pretty(&value).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        println!("{json}");
    } else {
        print!(
            "{}{}",
            summary.render(),
            run_cost.as_ref().map(run_cost::RunCost::render).unwrap_or_default()
        );
    }
    Ok(())
}

/// `60 + 2 × max + N × max / 100` seconds (see the module docs).
fn default_timeout(n: usize, max: f64) -> f64 {
    60.0 + 2.0 * max + n as f64 * max / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("queue").chain(argv.iter().copied())).map(|cli| cli.args)
    }

    #[test]
    fn rpc_runs_need_no_tables_and_other_runs_still_do() {
        let args = parse(&["--rpc", "--target", "amqp://127.0.0.1/%2f", "--amqp-queue", "rpc_queue"])
            .expect("valid");
        assert!(args.rpc);
        assert_eq!(args.concurrency, None, "all N in flight unless capped");
        let error = parse(&["--target", "amqp://127.0.0.1/%2f"]).expect_err("tables missing").to_string();
        assert!(error.contains("--done-table"), "{error}");
        assert!(parse(&["--rpc", "--local", "--path", "worker"]).is_ok());
    }

    #[tokio::test]
    async fn rpc_over_http_is_refused_with_what_to_do() {
        let args = parse(&["--rpc", "--target", "https://x.example/v1/calc", "-n", "1"]).expect("parses");
        let error = run(args).await.expect_err("refused").to_string();
        assert!(error.contains("--rpc calls over RabbitMQ: the target must be amqp://"), "{error}");
    }

    #[test]
    fn the_default_timeout_grows_with_max_and_with_n() {
        assert_eq!(default_timeout(1000, 2.0), 84.0);
        assert!((default_timeout(10, 0.05) - 60.105).abs() < 1e-9);
    }
}
