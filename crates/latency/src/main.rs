//! `latency`: measure and price every architecture.
//!
//! - `latency probe URL` — latency stats from this machine (or `--via-lambda FUNCTION` from the region)
//! - `latency load URL` — load it as k6 and wrk2 do: virtual users, or an arrival rate
//! - `latency cost` — itemised cost per million calls and per month, per architecture
//! - `latency report` — probe (or load) named targets, write `report.md` and SVG charts
//! - `latency cold-start` — play the Lambda Runtime API for a bootstrap: init and first-call times
//! - `latency queue` — post N calc(x) jobs with x ~ U(0, max) and time them until all are done
//! - `latency pipeline` — load the seed-003 pipeline, wait for every item, end-to-end and per-hop latency
//! - `latency sweep` — one function at several memory sizes: duration and cost at each

mod chart;
mod coldstart;
mod cost_cmd;
mod error;
mod invoke;
mod load_cmd;
mod local_state;
mod pipeline;
mod probe_cmd;
mod queue;
mod report;
mod sweep;
mod targets;
mod time;

use clap::{Parser, Subcommand};
use error::Error;

#[derive(Parser)]
#[command(name = "latency", version, about = "Latency and cost of each AWS architecture, measured")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Latency stats for a URL: from this machine, or from inside the region (--via-lambda).
    Probe(probe_cmd::Args),
    /// Load a URL: virtual users for a duration (closed loop) or a fixed arrival rate (open
    /// loop, latency from the scheduled start); k6's summary, a per-second timeline.
    Load(load_cmd::Args),
    /// Probe named targets (a TOML file, or --local) — or load those with a load profile — price
    /// them, write report.md + latency.svg.
    Report(report::Args),
    /// Itemised cost per million calls and per month, per architecture, from dated price files.
    Cost(cost_cmd::Args),
    /// Play the Lambda Runtime API for a bootstrap: time to init and to the first responses.
    ColdStart(coldstart::Args),
    /// Post N calc(x) jobs with x ~ U(0, max) and time them until all are done.
    Queue(queue::Args),
    /// Load the pipeline (HTTP → Kinesis → DynamoDB → stream), wait until every accepted item
    /// came through, and report end-to-end and per-hop latency beside seed 003's figures.
    Pipeline(pipeline::Args),
    /// One function at several memory sizes (a deployed one, or the hits bootstrap here under
    /// Lambda's CPU share): duration, billed duration and cost per size, power-tuning style.
    Sweep(sweep::Args),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    // One thread: a request's timing then includes no hand-off between worker threads, which
    // shows on loopback targets; the CLI spends its time waiting on the network anyway.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("latency: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(), Error> = runtime.block_on(async {
        match cli.command {
            Command::Probe(args) => probe_cmd::run(args).await,
            Command::Load(args) => load_cmd::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Cost(args) => cost_cmd::run(args),
            Command::ColdStart(args) => coldstart::run(args).await,
            Command::Queue(args) => queue::run(args).await,
            Command::Pipeline(args) => pipeline::run(args).await,
            Command::Sweep(args) => sweep::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("latency: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
