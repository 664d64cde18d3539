//! `latency cold-start`: plays the Lambda Runtime API for a bootstrap and times its cold starts.
//!
//! Each run starts a fresh bootstrap process, as Lambda does for a cold start, with the
//! environment Lambda gives a `provided.al2023` function plus the store's settings
//! (`HITS_*`, `AWS_ENDPOINT_URL`, credentials). The timeline of one run:
//!
//! - **init** — exec → the bootstrap's first `GET …/invocation/next` (Lambda's init phase);
//! - **first call** — that `/next` answered with the event → its `POST …/response`;
//! - **warm call** — a second invocation on the same process, `/next` answered → response.
//!
//! A response must be an HTTP `200` whose body is a count (a number), and the warm call's count
//! must follow the first call's: an error or any other answer fails the run instead of being
//! timed as a success.
//!
//! `--cpu-quota` confines the bootstrap to a share of one CPU through a cgroup (v2 `cpu.max`, or
//! v1 `cpu.cfs_quota_us`), entered between fork and exec so that loading the binary is throttled
//! too. Lambda gives a function CPU in proportion to its memory, one vCPU at 1769 MB, so 128 MB
//! gets about 7.2% (`--cpu-quota lambda`). When no cgroup can be made the command says so and why.

mod cgroup;
mod harness;
mod plan;
mod process;
mod runtime_api;
mod summary;

use std::path::PathBuf;

pub(crate) use cgroup::{CpuLimit, MB_PER_VCPU, Quota};
pub(crate) use harness::Harness;
pub(crate) use plan::{DEFAULT_EVENT_SOURCE, Plan, default_event};
use summary::{RunTimes, Summary, ms};

use crate::error::Error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bootstrap executable to cold-start (e.g. `$CARGO_TARGET_DIR/release/hits`).
    #[arg(long, value_name = "PATH")]
    pub bootstrap: PathBuf,
    /// How many cold starts: each one a fresh process.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// The invocation event, a JSON file [default: a real API Gateway HTTP API `GET /hits` event].
    #[arg(long, value_name = "FILE")]
    pub event: Option<PathBuf>,
    /// Confine the bootstrap to this percentage of one CPU, or `lambda`: what --memory-mb gets
    /// on Lambda (memory / 1769 MB per vCPU; 7.2% at 128 MB).
    #[arg(long, value_name = "PCT|lambda")]
    pub cpu_quota: Option<Quota>,
    /// The scheduler period the CPU quota is granted over, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cpu_period_ms: u32,
    /// Let init run at full CPU and apply the quota from the first invocation on: the bootstrap
    /// enters the cgroup when it first polls `/next`, before the event is handed over. Lambda
    /// has been measured to throttle on-demand init less than invocations; by default the
    /// quota applies from exec, the harsher assumption.
    #[arg(long, requires = "cpu_quota")]
    pub quota_after_init: bool,
    /// The function's memory size: set as AWS_LAMBDA_FUNCTION_MEMORY_SIZE and used by
    /// `--cpu-quota lambda`. Memory itself is not limited.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory_mb: u32,
    /// More environment for the bootstrap, KEY=VALUE (repeatable). HITS_*, AWS_ENDPOINT_URL*,
    /// AWS credentials, AWS_REGION and RUST_LOG are passed through from this process anyway.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give up on a phase (init, a call) after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub timeout_secs: u64,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> Result<(), Error> {
    let plan = Plan::new(&args)?;
    let cpu = match plan.cpu_percent {
        Some(percent) => Some(CpuLimit::create(percent, u64::from(args.cpu_period_ms) * 1000)?),
        None => None,
    };
    if !args.json {
        println!("{}", plan.describe(cpu.as_ref()));
    }
    let mut runs = Vec::with_capacity(args.runs as usize);
    for n in 1..=args.runs {
        let times = cold_start(&plan, cpu.as_ref(), n).await?;
        tracing::info!(
            run = n,
            init_ms = ms(times.init),
            first_ms = ms(times.first),
            warm_ms = ms(times.warm),
            "cold start"
        );
        if !args.json {
            eprintln!(
                "run {n:>3}: init {:>8.2} ms  first call {:>8.2} ms  warm call {:>7.2} ms  (count {} → {})",
                ms(times.init),
                ms(times.first),
                ms(times.warm),
                times.first_count,
                times.warm_count
            );
        }
        runs.push(times);
    }
    let summary = Summary::new(&plan, cpu.as_ref(), &runs);
    if args.json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| Error::Invalid(format!("cannot write the JSON summary: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

/// One cold start: a fresh process, its init, its first call and one warm call.
async fn cold_start(plan: &Plan, cpu: Option<&CpuLimit>, run: u32) -> Result<RunTimes, Error> {
    let mut harness = Harness::start(plan, cpu, run).await?;
    let first = harness.invoke(plan, "first call").await?;
    let first_count = harness.count(&first.body, "first call")?;
    let warm = harness.invoke(plan, "warm call").await?;
    let warm_count = harness.count(&warm.body, "warm call")?;
    if warm_count != first_count + 1 {
        return Err(harness.failure(
            "warm call",
            format!("the count went from {first_count} to {warm_count}, not up by one"),
        ));
    }
    Ok(RunTimes {
        init: harness.init,
        first: first.duration(),
        warm: warm.duration(),
        first_count,
        warm_count,
        preconnect_ms: harness.preconnect_ms(),
    })
}
