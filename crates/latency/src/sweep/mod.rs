//! `latency sweep`: one function at several memory sizes — its duration, billed duration and
//! cost at each, power-tuning style — as a markdown table, `memory.svg` and `memory.json`.
//!
//! At each size the [`Backend`] puts the function at that memory, absorbs the cold start (its
//! init is recorded), then invokes it `count` times with one event, recording the function-side
//! duration, the billed duration and the invoker's round trip. Two backends, one trait:
//!
//! - [`aws::AwsLambda`]: a deployed function. `UpdateFunctionConfiguration(MemorySize)` on
//!   `$LATEST`, wait for `LastUpdateStatus = Successful`, `Invoke` with `LogType=Tail` and read
//!   Lambda's own `REPORT` record from the log tail; the original memory size is put back at the
//!   end, also after an error or Ctrl-C.
//! - [`local::LocalBootstrap`]: a bootstrap on this machine under `latency cold-start`'s Runtime
//!   API player, a fresh process per size in a cgroup with Lambda's CPU share for the size
//!   (memory / 1769 MB of one CPU); duration = event handed out → response, as Lambda measures.
//!
//! Cost per million calls is `crates/cost`'s Lambda model — one request plus the GB-seconds of
//! the billed duration at the size and architecture, from the price book — averaged over the
//! measured calls' billed durations. It leaves out everything around the function (API Gateway,
//! the store) and INIT: the calls are warm.
//!
//! **Picks.** *cheapest*: the lowest cost per 1M calls; *fastest*: the lowest p90 duration;
//! *balanced*: the cheapest size whose p90 is within 10% of the fastest p90 — as fast as it gets,
//! give or take the noise, for the least money. Ties go to the smaller size.

pub(crate) mod aws;
pub(crate) mod local;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cost::{Arch, PriceBook, Profile};
use serde::Serialize;

use crate::chart;
use crate::error::Error;

/// The sizes swept when none are given: Lambda's smallest, doublings, and one full vCPU.
pub(crate) const DEFAULT_SIZES: &str = "128,256,512,1024,1769";
/// Lambda's memory range, MB.
const MIN_MB: u32 = 128;
const MAX_MB: u32 = 10_240;
/// *balanced*: p90 at most this much above the fastest size's.
pub(crate) const BALANCED_SLACK: f64 = 0.10;
/// The cost model's Lambda alone: one request and the GB-seconds of the billed duration per call.
const LAMBDA_ONLY: &str = r#"
[[profile]]
id = "lambda-alone"
label = "Lambda requests + GB-seconds"
lambda = { arch = "arm64", memory_mb = 128, duration_ms = 1 }
"#;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("backend").required(true).args(["function", "local", "bootstrap"])))]
pub struct Args {
    /// The deployed function (name or ARN). Its unpublished `$LATEST` configuration is set to
    /// each size in turn — and `$LATEST` is what the sweep invokes, unless --qualifier — then
    /// put back to its original MemorySize at the end, also after an error or Ctrl-C. Other
    /// callers of `$LATEST` meet the sizes too: sweep a function nothing else is calling.
    #[arg(long, value_name = "NAME")]
    function: Option<String>,
    /// Invoke this version or alias instead of `$LATEST`. Only `$LATEST`'s configuration can
    /// change: a published version — what an alias such as `live` points at — keeps the memory
    /// it was published with, so its calls would not show the sizes. The sweep checks the memory
    /// size each call reports and stops if it is not the size just set. Useful for an alias that
    /// points at `$LATEST`.
    // (Not `requires = "function"`: clap skips that check when the required argument conflicts
    // with one given, as --function does with --local and --bootstrap.)
    #[arg(long, conflicts_with_all = ["local", "bootstrap"])]
    qualifier: Option<String>,
    /// Wait at most this long for a configuration update to finish (LastUpdateStatus
    /// Successful).
    #[arg(long, default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=3600), conflicts_with_all = ["local", "bootstrap"])]
    update_timeout_secs: u64,
    /// Sweep this checkout's `hits` bootstrap on this machine (built now, release), under the
    /// Runtime API player of `latency cold-start`, with a cgroup CPU quota of memory / 1769 MB of
    /// one CPU per size. Store: `HITS_STORE` from the environment, else memory.
    #[arg(long)]
    local: bool,
    /// With --local: build the bootstrap in debug mode (faster to build, slower to answer).
    #[arg(long, conflicts_with_all = ["function", "bootstrap"])]
    debug_build: bool,
    /// Sweep this bootstrap on this machine instead of building one (like --local).
    #[arg(long, value_name = "PATH")]
    bootstrap: Option<PathBuf>,
    #[command(flatten)]
    sweep: SweepArgs,
    #[command(flatten)]
    here: local::LocalArgs,
    /// AWS region of the function (default: the AWS configuration's) and of the price book
    /// (default: that region, or eu-west-2 for a local sweep without AWS_REGION).
    #[arg(long)]
    region: Option<String>,
    /// Date of the price file (default: the latest).
    #[arg(long)]
    as_of: Option<String>,
    /// A price file of your own (TOML, format in crates/cost/prices/README.md).
    #[arg(long, value_name = "FILE")]
    prices: Option<PathBuf>,
    /// Price as this architecture (arm64, x86_64). Default: the function's own; for a local
    /// sweep arm64, as deployed (the figures are this machine's).
    #[arg(long)]
    arch: Option<Arch>,
    /// Directory for memory.md, memory.svg and memory.json.
    #[arg(long, short = 'o', default_value = "report")]
    out: PathBuf,
}

/// What to sweep, shared by `latency sweep` and `latency report --memory-sweep`.
#[derive(clap::Args, Clone, Debug)]
pub struct SweepArgs {
    /// Memory sizes in MB, comma-separated, each 128..=10240 (sorted, duplicates dropped).
    /// Lambda gives one full vCPU at 1769 MB, in proportion below it.
    #[arg(long = "memory", value_name = "MB,…", default_value = DEFAULT_SIZES, value_parser = parse_sizes)]
    pub memory: Sizes,
    /// Invocations measured at each size, after the cold one.
    #[arg(short = 'n', long = "count", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// The event, a JSON file [default: a real API Gateway HTTP API `GET /hits` event].
    #[arg(long, value_name = "FILE")]
    pub event: Option<PathBuf>,
}

/// Memory sizes: valid for Lambda, ascending, each once.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes(pub Vec<u32>);

/// `128,256, 512` → [128, 256, 512]: each within Lambda's 128..=10240 MB, sorted, deduplicated.
pub fn parse_sizes(text: &str) -> Result<Sizes, String> {
    let mut sizes = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let mb: u32 = part
            .trim_end_matches("MB")
            .trim_end()
            .parse()
            .map_err(|_| format!("{part:?} is not a memory size in MB (a whole number)"))?;
        if !(MIN_MB..=MAX_MB).contains(&mb) {
            return Err(format!("{mb} MB is outside Lambda's {MIN_MB}..={MAX_MB} MB"));
        }
        sizes.push(mb);
    }
    if sizes.is_empty() {
        return Err("no memory sizes: give them comma-separated, e.g. 128,256,512".into());
    }
    sizes.sort_unstable();
    sizes.dedup();
    Ok(Sizes(sizes))
}

/// The event: the built-in `GET /hits` or a JSON file, and how to name it.
pub(crate) struct Event {
    pub(crate) bytes: Vec<u8>,
    pub(crate) source: String,
}

impl Event {
    pub(crate) fn load(path: Option<&Path>) -> Result<Event, Error> {
        match path {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(Error::io(format!("event {}", path.display())))?;
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|e| Error::Invalid(format!("event {} is not JSON: {e}", path.display())))?;
                Ok(Event { bytes, source: path.display().to_string() })
            }
            None => Ok(Event {
                bytes: crate::coldstart::default_event()?.to_vec(),
                source: crate::coldstart::DEFAULT_EVENT_SOURCE.to_owned(),
            }),
        }
    }
}

// --- The port. ----------------------------------------------------------------------------

/// The first call at a size: the cold one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cold {
    /// Lambda's Init Duration (exec → the runtime's first `/next`); `None` when the call was
    /// warm after all (the environment outlived the configuration update).
    pub(crate) init_ms: Option<f64>,
    pub(crate) duration_ms: f64,
}

/// One measured (warm) call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// The function's Duration: the event handed over → the response back.
    pub(crate) duration_ms: f64,
    /// What Lambda bills: the duration rounded up to whole ms, at least 1.
    pub(crate) billed_ms: u64,
    /// The invoker's view: request sent → response received.
    pub(crate) round_trip_ms: f64,
    /// Max Memory Used, where the backend knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_memory_used_mb: Option<u32>,
}

/// Where the sweep runs. An error from `configure` or `invoke` that is an [`Error::Lambda`] (the
/// function failed or answered an error) fails that size and the sweep goes on; any other stops
/// the sweep.
#[allow(async_fn_in_trait)]
pub(crate) trait Backend {
    /// What is swept, for the table's reader: one or more lines.
    fn describe(&self) -> String;
    /// The architecture priced.
    fn arch(&self) -> Arch;
    /// Puts the function at `memory_mb` and makes the cold call.
    async fn configure(&mut self, memory_mb: u32) -> Result<Cold, Error>;
    /// One warm call of the event.
    async fn invoke(&mut self) -> Result<Sample, Error>;
    /// Undoes what `configure` changed, best effort; what happened, if there was anything to do.
    async fn restore(&mut self) -> Option<Restored>;
}

/// How putting the function back went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Restored {
    pub(crate) ok: bool,
    pub(crate) note: String,
}

/// What one size gave before the figures are derived.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measured {
    pub(crate) memory_mb: u32,
    pub(crate) cold: Option<Cold>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) error: Option<String>,
}

/// Runs the sweep: each size in turn, then [`Backend::restore`] whatever happened — the sweep
/// finished, stopped on an error, or Ctrl-C.
pub(crate) async fn run_backend<B: Backend>(
    backend: &mut B,
    sizes: &[u32],
    count: u32,
) -> (Result<Vec<Measured>, Error>, Option<Restored>) {
    let mut done = Vec::with_capacity(sizes.len());
    let finished = tokio::select! {
        result = measure(backend, sizes, count, &mut done) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let result = match finished {
        Some(result) => result.map(|()| done),
        None => Err(Error::Unfinished(format!(
            "interrupted (Ctrl-C) after {} of {} memory sizes",
            done.len(),
            sizes.len()
        ))),
    };
    let restored = backend.restore().await;
    if let Some(restored) = &restored {
        eprintln!("latency: {}", restored.note);
    }
    (result, restored)
}

async fn measure<B: Backend>(
    backend: &mut B,
    sizes: &[u32],
    count: u32,
    done: &mut Vec<Measured>,
) -> Result<(), Error> {
    for &memory_mb in sizes {
        let mut measured = Measured { memory_mb, cold: None, samples: Vec::new(), error: None };
        eprintln!("latency: {memory_mb} MB: configuring, then the cold call and {count} more");
        match measure_size(backend, memory_mb, count, &mut measured).await {
            Ok(()) => {}
            Err(err @ Error::Lambda { .. }) => {
                eprintln!("latency: {memory_mb} MB failed: {err}");
                measured.error = Some(err.to_string());
            }
            Err(err) => return Err(err),
        }
        if let Some(stats) = duration_stats(&measured.samples) {
            eprintln!(
                "latency: {memory_mb} MB: init {}, p50 {:.2} ms, p90 {:.2} ms over {} calls",
                measured.cold.and_then(|c| c.init_ms).map_or("-".to_owned(), |ms| format!("{ms:.2} ms")),
                stats.p50,
                stats.p90,
                measured.samples.len()
            );
        }
        done.push(measured);
    }
    Ok(())
}

async fn measure_size<B: Backend>(
    backend: &mut B,
    memory_mb: u32,
    count: u32,
    measured: &mut Measured,
) -> Result<(), Error> {
    measured.cold = Some(backend.configure(memory_mb).await?);
    for _ in 0..count {
        measured.samples.push(backend.invoke().await?);
    }
    Ok(())
}

// --- The figures. -------------------------------------------------------------------------

/// One size's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SizeRow {
    pub(crate) memory_mb: u32,
    /// Lambda's CPU at this size: memory / 1769 MB, in vCPUs.
    pub(crate) vcpu: f64,
    pub(crate) init_ms: Option<f64>,
    pub(crate) cold_duration_ms: Option<f64>,
    pub(crate) invocations: usize,
    /// mean, min, p50, p90, p99, max (nearest rank, ms) of the function's duration.
    pub(crate) duration_ms: Option<probe::Stats>,
    pub(crate) round_trip_ms: Option<probe::Stats>,
    pub(crate) billed_ms_mean: Option<f64>,
    pub(crate) max_memory_used_mb: Option<u32>,
    /// Lambda requests + GB-seconds of 1M such calls.
    pub(crate) usd_per_million: Option<f64>,
    /// This size's cost ÷ the cheapest size's.
    pub(crate) cost_vs_cheapest: Option<f64>,
    /// The cheapest size's p90 ÷ this size's: 2 = half the latency.
    pub(crate) speed_vs_cheapest: Option<f64>,
    pub(crate) error: Option<String>,
    pub(crate) samples: Vec<Sample>,
}

/// The picked sizes, MB.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub(crate) struct Picks {
    pub(crate) cheapest: Option<u32>,
    pub(crate) fastest: Option<u32>,
    pub(crate) balanced: Option<u32>,
}

/// A finished sweep: what was measured, how it was priced, the rows and the picks.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sweep {
    pub(crate) target: String,
    pub(crate) event: String,
    pub(crate) invocations_per_size: u32,
    pub(crate) arch: String,
    pub(crate) prices: String,
    pub(crate) measured_at: String,
    pub(crate) balanced_rule: String,
    pub(crate) sizes: Vec<SizeRow>,
    pub(crate) picks: Picks,
    pub(crate) restored: Option<Restored>,
}

impl Sweep {
    /// Sizes that failed, as one message.
    pub(crate) fn failures(&self) -> Option<String> {
        let failed: Vec<String> = self
            .sizes
            .iter()
            .filter_map(|row| row.error.as_ref().map(|e| format!("{} MB: {e}", row.memory_mb)))
            .collect();
        (!failed.is_empty()).then(|| {
            format!("{} of {} memory sizes failed — {}", failed.len(), self.sizes.len(), failed.join("; "))
        })
    }
}

pub(crate) fn duration_stats(samples: &[Sample]) -> Option<probe::Stats> {
    probe::stats::summarize(&samples.iter().map(|s| s.duration_ms).collect::<Vec<_>>())
}

fn lambda_only() -> Result<&'static Profile, Error> {
    static PROFILE: OnceLock<Result<Profile, cost::CostError>> = OnceLock::new();
    PROFILE
        .get_or_init(|| {
            cost::parse_profiles(LAMBDA_ONLY, "the sweep's Lambda-only profile").map(|mut all| all.remove(0))
        })
        .as_ref()
        .map_err(|e| Error::Cost(e.clone()))
}

/// Dollars for a million calls at `memory_mb` billed as `billed_ms` (one per measured call):
/// `cost::estimate` of the Lambda request and GB-seconds for each distinct billed duration,
/// weighted by how many calls billed it — the model's mean cost per call, without rounding the
/// mean billed duration up once more.
pub(crate) fn usd_per_million(
    book: &PriceBook,
    arch: Arch,
    memory_mb: u32,
    billed_ms: &[u64],
) -> Result<Option<f64>, Error> {
    if billed_ms.is_empty() {
        return Ok(None);
    }
    let mut calls: BTreeMap<u64, usize> = BTreeMap::new();
    for &ms in billed_ms {
        *calls.entry(ms).or_default() += 1;
    }
    let profile = lambda_only()?;
    let mut total = 0.0;
    for (ms, n) in calls {
        let params = cost::Params {
            arch: Some(arch),
            memory_mb: Some(memory_mb),
            duration_ms: Some(ms as f64),
            ..cost::Params::default()
        };
        total += cost::estimate(profile, book, &params)?.per_million_calls * n as f64;
    }
    Ok(Some(total / billed_ms.len() as f64))
}

/// The rows and picks of what was measured.
pub(crate) fn rows(
    book: &PriceBook,
    arch: Arch,
    measured: &[Measured],
) -> Result<(Vec<SizeRow>, Picks), Error> {
    let mut rows = Vec::with_capacity(measured.len());
    for m in measured {
        let billed: Vec<u64> = m.samples.iter().map(|s| s.billed_ms).collect();
        let round_trips: Vec<f64> = m.samples.iter().map(|s| s.round_trip_ms).collect();
        let usable = m.error.is_none();
        rows.push(SizeRow {
            memory_mb: m.memory_mb,
            vcpu: f64::from(m.memory_mb) / crate::coldstart::MB_PER_VCPU,
            init_ms: m.cold.and_then(|c| c.init_ms),
            cold_duration_ms: m.cold.map(|c| c.duration_ms),
            invocations: m.samples.len(),
            duration_ms: if usable { duration_stats(&m.samples) } else { None },
            round_trip_ms: if usable { probe::stats::summarize(&round_trips) } else { None },
            billed_ms_mean: if usable {
                probe::stats::mean(&billed.iter().map(|&b| b as f64).collect::<Vec<_>>())
            } else {
                None
            },
            max_memory_used_mb: m.samples.iter().filter_map(|s| s.max_memory_used_mb).max(),
            usd_per_million: if usable { usd_per_million(book, arch, m.memory_mb, &billed)? } else { None },
            cost_vs_cheapest: None,
            speed_vs_cheapest: None,
            error: m.error.clone(),
            samples: m.samples.clone(),
        });
    }
    let picks = picks(&rows);
    let cheapest = picks
        .cheapest
        .and_then(|mb| rows.iter().find(|r| r.memory_mb == mb))
        .and_then(|r| Some((r.usd_per_million?, r.duration_ms?.p90)));
    if let Some((cost, p90)) = cheapest {
        for row in &mut rows {
            row.cost_vs_cheapest = row.usd_per_million.map(|c| c / cost);
            row.speed_vs_cheapest = row.duration_ms.filter(|s| s.p90 > 0.0).map(|s| p90 / s.p90);
        }
    }
    Ok((rows, picks))
}

/// cheapest, fastest and balanced among the sizes with figures (see the module docs).
pub(crate) fn picks(rows: &[SizeRow]) -> Picks {
    let priced: Vec<(u32, f64, f64)> =
        rows.iter().filter_map(|r| Some((r.memory_mb, r.usd_per_million?, r.duration_ms?.p90))).collect();
    // Rows are in ascending memory order, and min_by keeps the first of equals: the smaller size.
    let cheapest = priced.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|r| r.0);
    let fastest = priced.iter().min_by(|a, b| a.2.total_cmp(&b.2).then(a.1.total_cmp(&b.1))).copied();
    let balanced = fastest.and_then(|(_, _, best)| {
        priced
            .iter()
            .filter(|r| r.2 <= best * (1.0 + BALANCED_SLACK))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|r| r.0)
    });
    Picks { cheapest, fastest: fastest.map(|r| r.0), balanced }
}

// --- Output. ------------------------------------------------------------------------------

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

fn usd(value: f64) -> String {
    format!("${value:.4}")
}

fn times(value: f64) -> String {
    format!("{value:.2}×")
}

/// The sweep as a markdown section: a heading at `level` (`##` in report.md), what was measured
/// and how it is priced, the table, the picks, and the chart if there is one.
pub(crate) fn markdown(sweep: &Sweep, heading: &str, chart: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "{heading}\n");
    let _ = writeln!(
        md,
        "{}.\n\nMeasured {}. At each size: a configuration change, the cold call (its init is the \
         *init* column), then {} calls of {}. Durations are the function's own, from the event \
         handed over to the response (nearest-rank percentiles). **$ per 1M** is 1M Lambda \
         requests + the GB-seconds of the calls' billed durations ({}, {}): warm calls only, nothing \
         around the function (no API Gateway, no store).\n",
        sweep.target.trim_end(),
        sweep.measured_at,
        sweep.invocations_per_size,
        sweep.event,
        sweep.arch,
        sweep.prices,
    );
    let _ = writeln!(
        md,
        "| memory (MB) | vCPU share | init (ms) | p50 (ms) | p90 (ms) | p99 (ms) | billed (ms, mean) | $ per 1M | cost vs cheapest | speed vs cheapest | pick |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for row in &sweep.sizes {
        let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or_else(|| "-".into(), f);
        let mut pick: Vec<&str> = Vec::new();
        for (name, mb) in [
            ("cheapest", sweep.picks.cheapest),
            ("fastest", sweep.picks.fastest),
            ("balanced", sweep.picks.balanced),
        ] {
            if mb == Some(row.memory_mb) {
                pick.push(name);
            }
        }
        let pick = match &row.error {
            Some(error) => format!("failed: {}", error.replace('|', "\\|").replace('\n', " ")),
            None => pick.join(", "),
        };
        let stat = |f: fn(&probe::Stats) -> f64| opt(row.duration_ms.as_ref().map(f), ms);
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.memory_mb,
            row.vcpu,
            opt(row.init_ms, ms),
            stat(|s| s.p50),
            stat(|s| s.p90),
            stat(|s| s.p99),
            opt(row.billed_ms_mean, |v| format!("{v:.1}")),
            opt(row.usd_per_million, usd),
            opt(row.cost_vs_cheapest, times),
            opt(row.speed_vs_cheapest, times),
            pick,
        );
    }
    let find = |mb: Option<u32>| mb.and_then(|mb| sweep.sizes.iter().find(|r| r.memory_mb == mb));
    let _ = writeln!(md);
    match (find(sweep.picks.cheapest), find(sweep.picks.fastest), find(sweep.picks.balanced)) {
        (Some(cheapest), Some(fastest), Some(balanced)) => {
            let p90 = |r: &SizeRow| r.duration_ms.map_or(0.0, |s| s.p90);
            let cost = |r: &SizeRow| r.usd_per_million.unwrap_or_default();
            let _ = writeln!(
                md,
                "**Cheapest** {} MB ({} per 1M, p90 {} ms); **fastest** {} MB (p90 {} ms, {} per 1M); \
                 **balanced** {} MB (p90 {} ms, {} per 1M), {}.\n",
                cheapest.memory_mb,
                usd(cost(cheapest)),
                ms(p90(cheapest)),
                fastest.memory_mb,
                ms(p90(fastest)),
                usd(cost(fastest)),
                balanced.memory_mb,
                ms(p90(balanced)),
                usd(cost(balanced)),
                sweep.balanced_rule,
            );
        }
        _ => {
            let _ = writeln!(md, "No size has figures: nothing to pick.\n");
        }
    }
    let _ = writeln!(
        md,
        "*vCPU share*: Lambda's CPU at the size, memory / 1769 MB. *cost vs cheapest*: this size's $ per \
         1M ÷ the cheapest's. *speed vs cheapest*: the cheapest size's p90 ÷ this size's (2.00× = half \
         the latency). A size's round trip (the invoker's view) and every call's figures are in \
         memory.json.\n"
    );
    if let Some(restored) = &sweep.restored {
        let _ = writeln!(
            md,
            "{}{}\n",
            if restored.ok { "After the sweep: " } else { "**After the sweep: " },
            if restored.ok { restored.note.clone() } else { format!("{}**", restored.note) }
        );
    }
    if let Some(chart) = chart {
        let _ = writeln!(md, "![cost per 1M calls against p90 duration, per memory size]({chart})\n");
    }
    md
}

/// memory.svg: one labelled point per size, cost per 1M against p90 duration.
pub(crate) fn chart_svg(sweep: &Sweep) -> Result<String, Error> {
    let points: Vec<chart::MemoryPoint> = sweep
        .sizes
        .iter()
        .filter_map(|r| {
            let mut label = format!("{} MB", r.memory_mb);
            for (name, mb) in [
                ("cheapest", sweep.picks.cheapest),
                ("fastest", sweep.picks.fastest),
                ("balanced", sweep.picks.balanced),
            ] {
                if mb == Some(r.memory_mb) {
                    label.push_str(&format!(" · {name}"));
                }
            }
            Some(chart::MemoryPoint {
                label,
                p90_ms: r.duration_ms?.p90,
                usd_per_million: r.usd_per_million?,
            })
        })
        .collect();
    chart::memory_svg("Memory sweep: $ per 1M calls against p90 duration", &points)
}

/// Writes memory.svg (when there are points to draw) and memory.json into `out`; returns the
/// chart's file name if written.
pub(crate) fn write_chart_and_json(out: &Path, sweep: &Sweep) -> Result<Option<&'static str>, Error> {
    std::fs::create_dir_all(out).map_err(Error::io(format!("creating {}", out.display())))?;
    let chart = match chart_svg(sweep) {
        Ok(svg) => {
            let path = out.join("memory.svg");
            std::fs::write(&path, svg).map_err(Error::io(format!("writing {}", path.display())))?;
            Some("memory.svg")
        }
        Err(err) => {
            eprintln!("latency: no memory chart: {err}");
            None
        }
    };
    let json =
        serde_json::to_string_pretty(sweep).map_err(|e| Error::Invalid(format!("memory.json: {e}")))?;
    let path = out.join("memory.json");
    std::fs::write(&path, json + "\n").map_err(Error::io(format!("writing {}", path.display())))?;
    Ok(chart)
}

/// The sweep's prices: the user's file, or the built-in book of `region` at `as_of`.
pub(crate) fn book(region: &str, as_of: Option<&str>, prices: Option<&Path>) -> Result<PriceBook, Error> {
    match prices {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
            Ok(PriceBook::parse(&text, &path.display().to_string())?)
        }
        None => Ok(cost::book(region, as_of)
            .map_err(|e| match e {
                cost::CostError::UnknownRegion { region, known } => Error::Invalid(format!(
                    "no built-in prices for region `{region}` (known: {known}): pass --prices FILE"
                )),
                other => Error::Cost(other),
            })?
            .clone()),
    }
}

pub(crate) fn balanced_rule() -> String {
    format!("the cheapest size whose p90 is within {:.0}% of the fastest p90", BALANCED_SLACK * 100.0)
}

/// A finished sweep from what was measured.
pub(crate) fn summarise<B: Backend>(
    backend: &B,
    book: &PriceBook,
    event: &Event,
    count: u32,
    measured: &[Measured],
    restored: Option<Restored>,
) -> Result<Sweep, Error> {
    let arch = backend.arch();
    let (sizes, picks) = rows(book, arch, measured)?;
    Ok(Sweep {
        target: backend.describe(),
        event: event.source.clone(),
        invocations_per_size: count,
        arch: arch.to_string(),
        prices: format!("{} prices as of {}", book.region(), book.as_of()),
        measured_at: crate::time::utc_now(),
        balanced_rule: balanced_rule(),
        sizes,
        picks,
        restored,
    })
}

/// Sweeps with `backend` and prices the result; the restore note is in the sweep, or in the
/// error when the sweep stopped.
pub(crate) async fn sweep_with<B: Backend>(
    backend: &mut B,
    book: &PriceBook,
    event: &Event,
    args: &SweepArgs,
) -> Result<Sweep, Error> {
    let (result, restored) = run_backend(backend, &args.memory.0, args.count).await;
    match result {
        Ok(measured) => summarise(backend, book, event, args.count, &measured, restored),
        Err(err) => Err(match restored {
            Some(r) if !r.ok => Error::Unfinished(format!("{err}; and {}", r.note)),
            _ => err,
        }),
    }
}

pub async fn run(args: Args) -> Result<(), Error> {
    let event = Event::load(args.sweep.event.as_deref())?;
    let sweep = if let Some(function) = &args.function {
        let mut backend = aws::AwsLambda::connect(aws::Settings {
            function: function.clone(),
            qualifier: args.qualifier.clone(),
            region: args.region.clone(),
            arch: args.arch,
            event: event.bytes.clone(),
            update_timeout: std::time::Duration::from_secs(args.update_timeout_secs),
        })
        .await?;
        let region = args.region.clone().unwrap_or_else(|| backend.region().to_owned());
        let book = book(&region, args.as_of.as_deref(), args.prices.as_deref())?;
        sweep_with(&mut backend, &book, &event, &args.sweep).await?
    } else {
        let region = args
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "eu-west-2".to_owned());
        let book = book(&region, args.as_of.as_deref(), args.prices.as_deref())?;
        let bootstrap = match &args.bootstrap {
            Some(path) => path.clone(),
            None => local::build_hits(args.debug_build)?,
        };
        let mut backend = local::LocalBootstrap::new(
            &bootstrap,
            args.sweep.event.as_deref(),
            &args.here,
            args.arch.unwrap_or(Arch::Arm64),
            args.sweep.memory.0[0],
        )?;
        sweep_with(&mut backend, &book, &event, &args.sweep).await?
    };
    let chart = write_chart_and_json(&args.out, &sweep)?;
    let title = match (&args.function, &args.bootstrap) {
        (Some(function), _) => format!("# Memory sweep: `{function}`"),
        (None, Some(bootstrap)) => format!(
            "# Memory sweep: `{}` on this machine",
            bootstrap.file_name().unwrap_or(bootstrap.as_os_str()).to_string_lossy()
        ),
        (None, None) => "# Memory sweep: the hits bootstrap on this machine".to_owned(),
    };
    let md = markdown(&sweep, &title, chart);
    let path = args.out.join("memory.md");
    std::fs::write(&path, &md).map_err(Error::io(format!("writing {}", path.display())))?;
    print!("{md}");
    eprintln!("latency: wrote {}", path.display());
    if chart.is_some() {
        eprintln!("latency: wrote {}", args.out.join("memory.svg").display());
    }
    eprintln!("latency: wrote {}", args.out.join("memory.json").display());
    match (sweep.failures(), &sweep.restored) {
        (Some(failures), _) => Err(Error::Unfinished(failures)),
        (None, Some(r)) if !r.ok => Err(Error::Unfinished(r.note.clone())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(duration_ms: f64) -> Sample {
        Sample {
            duration_ms,
            billed_ms: cost::billed_ms(duration_ms),
            round_trip_ms: duration_ms + 10.0,
            max_memory_used_mb: Some(20),
        }
    }

    fn measured(memory_mb: u32, durations: &[f64]) -> Measured {
        Measured {
            memory_mb,
            cold: Some(Cold { init_ms: Some(30.0), duration_ms: durations[0] * 3.0 }),
            samples: durations.iter().copied().map(sample).collect(),
            error: None,
        }
    }

    fn london() -> PriceBook {
        cost::book("eu-west-2", None).expect("built-in book").clone()
    }

    #[test]
    fn sizes_are_validated_sorted_and_deduplicated() {
        assert_eq!(parse_sizes("512,128, 256,128"), Ok(Sizes(vec![128, 256, 512])));
        assert_eq!(parse_sizes(DEFAULT_SIZES), Ok(Sizes(vec![128, 256, 512, 1024, 1769])));
        assert_eq!(parse_sizes("1769MB,10240"), Ok(Sizes(vec![1769, 10240])));
        assert!(parse_sizes("64").unwrap_err().contains("outside Lambda's 128..=10240 MB"));
        assert!(parse_sizes("10241").is_err());
        assert!(parse_sizes("big").unwrap_err().contains("not a memory size"));
        assert!(parse_sizes(" , ").unwrap_err().contains("no memory sizes"));
    }

    #[test]
    fn the_cost_per_million_is_the_cost_model_s_requests_and_gb_seconds() {
        let book = london();
        // 1 ms at 128 MB on arm64: a request and 0.125 GB × 0.001 s, by the model itself.
        let one = usd_per_million(&book, Arch::Arm64, 128, &[1]).expect("priced").expect("a figure");
        let profile = lambda_only().expect("profile");
        let params = cost::Params {
            arch: Some(Arch::Arm64),
            memory_mb: Some(128),
            duration_ms: Some(1.0),
            ..cost::Params::default()
        };
        let model = cost::estimate(profile, &book, &params).expect("estimate");
        assert_eq!(model.lines.len(), 2, "a request and the GB-seconds: {:?}", model.lines);
        assert!((one - model.per_million_calls).abs() < 1e-12);
        // The mean of the calls' costs, not the cost of the mean rounded up again.
        let mixed = usd_per_million(&book, Arch::Arm64, 1024, &[1, 2]).expect("priced").expect("figure");
        let at = |ms: u64| usd_per_million(&book, Arch::Arm64, 1024, &[ms]).expect("p").expect("f");
        assert!((mixed - (at(1) + at(2)) / 2.0).abs() < 1e-12);
        assert!(at(2) > at(1));
        // x86_64 costs more per GB-second than arm64.
        let x86 = usd_per_million(&book, Arch::X86_64, 1024, &[10]).expect("p").expect("f");
        assert!(x86 > usd_per_million(&book, Arch::Arm64, 1024, &[10]).expect("p").expect("f"));
        assert_eq!(usd_per_million(&book, Arch::Arm64, 128, &[]).expect("nothing to price"), None);
    }

    #[test]
    fn statistics_per_size_come_from_the_calls_and_the_cold_call_stays_apart() {
        let durations: Vec<f64> = (1..=10).map(|i| f64::from(i) / 2.0).collect();
        let (rows, _) = rows(&london(), Arch::Arm64, &[measured(256, &durations)]).expect("rows");
        let row = &rows[0];
        let stats = row.duration_ms.expect("stats");
        assert_eq!((stats.p50, stats.p90, stats.p99, stats.max), (2.5, 4.5, 5.0, 5.0));
        assert_eq!(stats.mean, 2.75);
        // Billed: 1,1,2,2,3,3,4,4,5,5.
        assert_eq!(row.billed_ms_mean, Some(3.0));
        assert_eq!((row.init_ms, row.cold_duration_ms, row.invocations), (Some(30.0), Some(1.5), 10));
        assert!((row.vcpu - 256.0 / 1769.0).abs() < 1e-12);
        assert_eq!(row.round_trip_ms.expect("round trips").p50, 12.5);
        assert_eq!(row.max_memory_used_mb, Some(20));
    }

    fn row(memory_mb: u32, usd: f64, p90: f64) -> SizeRow {
        SizeRow {
            memory_mb,
            vcpu: 0.0,
            init_ms: None,
            cold_duration_ms: None,
            invocations: 1,
            duration_ms: Some(probe::Stats { mean: p90, min: p90, p50: p90, p90, p99: p90, max: p90 }),
            round_trip_ms: None,
            billed_ms_mean: None,
            max_memory_used_mb: None,
            usd_per_million: Some(usd),
            cost_vs_cheapest: None,
            speed_vs_cheapest: None,
            error: None,
            samples: Vec::new(),
        }
    }

    #[test]
    fn the_picks_are_the_cheapest_the_fastest_and_the_cheapest_within_ten_percent_of_the_fastest() {
        let rows = [
            row(128, 0.2010, 10.0),
            row(256, 0.2015, 5.0),
            row(512, 0.2030, 2.2),
            row(1024, 0.2060, 2.05),
            row(1769, 0.2110, 2.0),
        ];
        let picks = picks(&rows);
        assert_eq!(picks, Picks { cheapest: Some(128), fastest: Some(1769), balanced: Some(512) });
    }

    #[test]
    fn ties_go_to_the_smaller_size_and_failed_sizes_are_never_picked() {
        let mut failed = row(128, 0.1, 0.5);
        failed.usd_per_million = None;
        failed.duration_ms = None;
        failed.error = Some("boom".into());
        let rows = [failed, row(256, 0.2, 1.0), row(512, 0.2, 1.0)];
        assert_eq!(picks(&rows), Picks { cheapest: Some(256), fastest: Some(256), balanced: Some(256) });
        assert_eq!(picks(&[]), Picks::default());
    }

    fn sweep() -> Sweep {
        let book = london();
        let mut failed = measured(128, &[1.0]);
        failed.samples.clear();
        failed.cold = None;
        failed.error = Some("hits failed (Unhandled): Runtime.OutOfMemory: | out of memory".into());
        let measured = [failed, measured(256, &[4.0, 4.2, 4.4]), measured(1769, &[1.0, 1.1, 1.2])];
        let (sizes, picks) = rows(&book, Arch::Arm64, &measured).expect("rows");
        Sweep {
            target: "function `hits` ($LATEST) in eu-west-2, arm64".into(),
            event: "API Gateway HTTP API (v2) GET /hits".into(),
            invocations_per_size: 3,
            arch: "arm64".into(),
            prices: format!("{} prices as of {}", book.region(), book.as_of()),
            measured_at: "2025-01-01 00:00 UTC".into(),
            balanced_rule: balanced_rule(),
            sizes,
            picks,
            restored: Some(Restored { ok: true, note: "restored MemorySize to 128 MB".into() }),
        }
    }

    #[test]
    fn the_markdown_table_has_a_row_per_size_with_the_picks_and_the_failure() {
        let sweep = sweep();
        let md = markdown(&sweep, "## Memory sweep", Some("memory.svg"));
        assert!(md.starts_with("## Memory sweep\n"), "{md}");
        assert!(
            md.contains("| memory (MB) | vCPU share | init (ms) | p50 (ms) | p90 (ms) | p99 (ms) |"),
            "{md}"
        );
        let lines: Vec<&str> =
            md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| memory")).collect();
        assert_eq!(lines.len(), 3, "{md}");
        assert!(lines[0].starts_with("| 128 | 0.07 | - |"), "{}", lines[0]);
        assert!(lines[0].contains("failed: hits failed (Unhandled): Runtime.OutOfMemory: \\| out of memory"));
        // Billed 4, 5, 5 and 1, 2, 2 ms.
        assert!(
            lines[1].starts_with("| 256 | 0.14 | 30.00 | 4.20 | 4.40 | 4.40 | 4.7 | $0.2"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("| 1.00× | 1.00× | cheapest |"), "{}", lines[1]);
        assert!(
            lines[2].starts_with("| 1769 | 1.00 | 30.00 | 1.10 | 1.20 | 1.20 | 1.7 | $0.2"),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with("× | 3.67× | fastest, balanced |"), "{}", lines[2]);
        assert!(md.contains("**Cheapest** 256 MB"), "{md}");
        assert!(md.contains("**balanced** 1769 MB"), "{md}");
        assert!(md.contains("within 10% of the fastest p90"), "{md}");
        assert!(md.contains("After the sweep: restored MemorySize to 128 MB"), "{md}");
        assert!(md.contains("](memory.svg)"), "{md}");
    }

    #[test]
    fn the_json_has_the_rows_the_picks_and_every_call() {
        let sweep = sweep();
        let json: serde_json::Value = serde_json::to_value(&sweep).expect("serialises");
        assert_eq!(json["picks"]["cheapest"], 256);
        assert_eq!(json["picks"]["fastest"], 1769);
        assert_eq!(json["sizes"][0]["memory_mb"], 128);
        assert!(json["sizes"][0]["error"].as_str().is_some_and(|e| e.contains("OutOfMemory")));
        assert!(json["sizes"][0]["usd_per_million"].is_null());
        let size = &json["sizes"][1];
        assert_eq!(size["duration_ms"]["p90"], 4.4);
        assert_eq!(size["samples"].as_array().map(Vec::len), Some(3));
        assert_eq!(size["samples"][0]["billed_ms"], 4);
        assert_eq!(size["cost_vs_cheapest"], 1.0);
        assert_eq!(json["restored"]["ok"], true);
        assert!(json["balanced_rule"].as_str().is_some_and(|r| r.contains("10%")));
    }

    #[test]
    fn the_chart_has_a_labelled_point_per_size_with_figures() {
        let svg = chart_svg(&sweep()).expect("renders");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("256 MB · cheapest"), "{svg}");
        assert!(svg.contains("1769 MB · fastest · balanced"), "{svg}");
        assert!(!svg.contains("128 MB"), "a failed size has no point");
    }

    /// A backend that records what it was asked and fails where told.
    struct Scripted {
        log: Vec<String>,
        fail_at: Option<u32>,
        stop_at: Option<u32>,
        current: u32,
    }

    impl Backend for Scripted {
        fn describe(&self) -> String {
            "scripted".into()
        }
        fn arch(&self) -> Arch {
            Arch::Arm64
        }
        async fn configure(&mut self, memory_mb: u32) -> Result<Cold, Error> {
            self.log.push(format!("configure {memory_mb}"));
            self.current = memory_mb;
            if self.stop_at == Some(memory_mb) {
                return Err(Error::Aws("throttled".into()));
            }
            Ok(Cold { init_ms: Some(20.0), duration_ms: 5.0 })
        }
        async fn invoke(&mut self) -> Result<Sample, Error> {
            self.log.push(format!("invoke {}", self.current));
            if self.fail_at == Some(self.current) {
                return Err(Error::Lambda {
                    function: "f".into(),
                    kind: "Unhandled".into(),
                    detail: "Runtime.OutOfMemory: killed".into(),
                });
            }
            Ok(sample(1000.0 / f64::from(self.current)))
        }
        async fn restore(&mut self) -> Option<Restored> {
            self.log.push("restore".into());
            Some(Restored { ok: true, note: "restored".into() })
        }
    }

    #[tokio::test]
    async fn a_function_error_fails_its_size_and_the_sweep_goes_on_then_restores() {
        let mut backend = Scripted { log: Vec::new(), fail_at: Some(128), stop_at: None, current: 0 };
        let (result, restored) = run_backend(&mut backend, &[128, 256], 2).await;
        let measured = result.expect("the sweep finishes");
        assert_eq!(measured.len(), 2);
        assert!(measured[0].error.as_deref().is_some_and(|e| e.contains("Runtime.OutOfMemory")));
        assert_eq!(measured[1].samples.len(), 2);
        assert_eq!(
            backend.log,
            ["configure 128", "invoke 128", "configure 256", "invoke 256", "invoke 256", "restore"]
        );
        assert_eq!(restored.map(|r| r.ok), Some(true));
    }

    #[tokio::test]
    async fn any_other_error_stops_the_sweep_and_still_restores() {
        let mut backend = Scripted { log: Vec::new(), fail_at: None, stop_at: Some(256), current: 0 };
        let (result, _) = run_backend(&mut backend, &[128, 256, 512], 1).await;
        assert!(result.expect_err("stops").to_string().contains("throttled"));
        assert_eq!(backend.log, ["configure 128", "invoke 128", "configure 256", "restore"]);
    }
}
