//! `latency report`: probe named targets (or load them, for targets with a load profile), price
//! them, and write `report.md`, `latency.svg` and `report.json` — the original's results table,
//! regenerated with commands. A `[[pipeline]]` of the targets file is measured as `latency
//! pipeline` measures it, after the targets: a *Pipeline* section of report.md, its own files
//! under `pipeline/<name>/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use cost::{Estimate, PriceBook};
use probe::load::{Ending, LoadReport};
use probe::{Prober, Report};
use serde::Serialize;

use crate::chart;
use crate::cost_cmd::PriceArgs;
use crate::error::Error;
use crate::probe_cmd::{self, RunArgs};
use crate::targets::{self, Pipeline, Target, Targets};
use crate::{load_cmd, local_state, pipeline, sweep};

#[derive(clap::Args)]
pub struct Args {
    /// Targets file (TOML: [[target]] name, url, architecture, optionally a `load` profile; and
    /// [[pipeline]] entries, each measured as `latency pipeline` does; see
    /// crates/latency/targets.example.toml).
    #[arg(
        long,
        short = 't',
        value_name = "FILE",
        required_unless_present = "local",
        conflicts_with = "local"
    )]
    targets: Option<PathBuf>,
    /// Probe every local variant (`scripts/local up`: the Lambda emulator on DynamoDB and S3,
    /// hits-server on the memory and file stores) and measure the local pipeline, starting the local stack if it is not up and
    /// stopping it again afterwards.
    #[arg(long)]
    local: bool,
    /// With --local: build the local stack in debug mode (faster to build, slower to answer).
    #[arg(long, requires = "local")]
    debug_build: bool,
    /// Directory for report.md, latency.svg and report.json (and pipeline/<name>/).
    #[arg(long, short = 'o', default_value = "report")]
    out: PathBuf,
    /// Overrides every probed target's settings (a target with a load profile keeps its own).
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    prices: PriceArgs,
    /// Also sweep this deployed function's memory sizes, as `latency sweep --function` does
    /// (its `$LATEST` configuration is changed size by size and put back afterwards), after the
    /// targets: the table goes at the end of report.md, with memory.svg and memory.json.
    #[arg(long, value_name = "FUNCTION")]
    memory_sweep: Option<String>,
    /// With --memory-sweep: the memory sizes in MB, comma-separated (each 128..=10240).
    #[arg(long, value_name = "MB,…", default_value = sweep::DEFAULT_SIZES, value_parser = sweep::parse_sizes, requires = "memory_sweep")]
    sweep_memory: sweep::Sizes,
    /// With --memory-sweep: calls measured at each size, after the cold one.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000), requires = "memory_sweep")]
    sweep_count: u32,
    /// With --memory-sweep: the event, a JSON file [default: API Gateway HTTP API `GET /hits`].
    #[arg(long, value_name = "FILE", requires = "memory_sweep")]
    sweep_event: Option<PathBuf>,
    /// With --memory-sweep: invoke this version or alias instead of `$LATEST` (see `latency
    /// sweep --help`: a published version does not follow `$LATEST`'s memory).
    #[arg(long, requires = "memory_sweep")]
    sweep_qualifier: Option<String>,
}

/// One measured target, as written to report.json.
#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    url: &'a str,
    architecture: &'a str,
    probed_from: String,
    #[serde(flatten)]
    measured: Measured,
    per_million_calls: Option<f64>,
    per_month: f64,
    cost_note: String,
}

/// What measuring a target gave; in report.json `"report": {…}` (the sequential probe's) or
/// `"load": {…}` (a load run's).
#[derive(Serialize)]
enum Measured {
    #[serde(rename = "report")]
    Probe(Box<Report>),
    #[serde(rename = "load")]
    Load(Box<LoadReport>),
}

/// A row's figures for the results table.
struct Figures {
    run: String,
    requests: u64,
    per_s: f64,
    /// mean, p50, p90, p99 in ms.
    latency: Option<[f64; 4]>,
    failed: u64,
    failed_pct: f64,
}

impl Measured {
    fn figures(&self) -> Figures {
        match self {
            Measured::Probe(r) => Figures {
                run: match r.concurrency {
                    1 => "probe".to_owned(),
                    n => format!("probe, {n} at a time"),
                },
                requests: r.count,
                per_s: r.requests_per_s,
                latency: r.stats.map(|s| [s.mean, s.p50, s.p90, s.p99]),
                failed: r.error_count(),
                failed_pct: 100.0 * r.error_count() as f64 / r.completed.max(1) as f64,
            },
            Measured::Load(r) => Figures {
                run: format!("load: {}", r.scenario),
                requests: r.requests,
                per_s: r.rate_per_s,
                latency: r.headline().map(|t| [t.avg, t.med, t.p90, t.p99]),
                failed: r.failed,
                failed_pct: r.failed_pct,
            },
        }
    }

    fn errors(&self) -> &BTreeMap<String, u64> {
        match self {
            Measured::Probe(r) => &r.errors,
            Measured::Load(r) => &r.errors,
        }
    }

    /// The measured median a Lambda is billed at, unless the target says, and what it is.
    fn median(&self) -> Option<(f64, &'static str)> {
        match self {
            Measured::Probe(r) => r.stats.map(|s| (s.p50, "measured p50")),
            Measured::Load(r) => r.headline().map(|t| {
                let what = if r.latency_ms.is_some() {
                    "the load run's median latency from the scheduled start"
                } else {
                    "the load run's median"
                };
                (t.med, what)
            }),
        }
    }

    fn load(&self) -> Option<&LoadReport> {
        match self {
            Measured::Probe(_) => None,
            Measured::Load(r) => Some(r),
        }
    }
}

/// `work`, or `None` when Ctrl-C comes first.
async fn unless_interrupted<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        Ok(()) = tokio::signal::ctrl_c() => None,
    }
}

pub async fn run(args: Args) -> Result<(), Error> {
    let book = args.prices.book()?;
    let mut stack = None;
    let Targets { targets, pipelines } = if args.local {
        let (targets, started) = local_targets(args.debug_build)?;
        stack = started;
        targets
    } else {
        if let Some(path) = &args.sweep_event {
            sweep::Event::load(Some(path))?;
        }
        let path = args.targets.as_deref().unwrap_or(Path::new("targets.toml"));
        let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
        targets::parse(&text, &path.display().to_string())?
    };
    let result = measure_and_write(&args, &book, &targets, &pipelines).await;
    if let Some(stack) = stack {
        stack.down();
    }
    result
}

async fn measure_and_write(
    args: &Args,
    book: &PriceBook,
    targets: &[Target],
    pipelines: &[Pipeline],
) -> Result<(), Error> {
    // Every architecture must be priceable before minutes of probing, not after.
    for target in targets {
        cost::profile(&target.architecture)?;
    }
    let prober = Prober::new()?;
    let mut lambda = None;
    let mut rows = Vec::with_capacity(targets.len());
    // Targets left unmeasured, and why: a load run that could not start, or Ctrl-C.
    let mut unmeasured: Vec<(&str, String)> = Vec::new();
    let mut interrupted = false;
    for target in targets {
        if interrupted {
            unmeasured.push((&target.name, "not reached: interrupted (Ctrl-C)".to_owned()));
            continue;
        }
        let settings = &target.settings;
        let function = settings.via_lambda.as_deref();
        if function.is_some() && lambda.is_none() {
            lambda = Some(crate::invoke::client().await);
        }
        let client = || lambda.as_ref().ok_or_else(|| Error::Aws("no Lambda client".into()));
        let probed_from = match function {
            Some(function) => format!("Lambda `{function}`"),
            None => "this machine".to_owned(),
        };
        let measured = match &target.load {
            None => {
                let run = RunArgs {
                    count: args.run.count.or(settings.count.map(i64::from)),
                    concurrency: args.run.concurrency.or(settings.concurrency.map(i64::from)),
                    warmup: args.run.warmup.or(settings.warmup.map(i64::from)),
                    method: args.run.method.clone(),
                    timeout_ms: args
                        .run
                        .timeout_ms
                        .or(settings.timeout_ms.and_then(|t| i64::try_from(t).ok())),
                };
                let input = run.input(&target.url, true);
                eprintln!("latency: probing {} ({})", target.name, target.url);
                let report = match function {
                    Some(function) => {
                        unless_interrupted(probe_cmd::via_lambda(client()?, function, input)).await
                    }
                    None => unless_interrupted(probe_cmd::from_here(&prober, input)).await,
                };
                match report {
                    Some(report) => Some(Measured::Probe(Box::new(report?))),
                    None => None,
                }
            }
            Some(load) => {
                eprintln!(
                    "latency: loading {} ({}): {}",
                    target.name,
                    target.url,
                    probe::load::scenario(&load.spec)
                );
                // From here, Ctrl-C ends the run and its report is the run so far.
                let report = match function {
                    Some(function) => {
                        unless_interrupted(load_cmd::via_lambda(client()?, function, &load.input)).await
                    }
                    None => Some(load_cmd::from_here(&load.spec, false).await),
                };
                match report {
                    Some(Ok(report)) => {
                        interrupted = report.ending == Ending::Interrupted;
                        Some(Measured::Load(Box::new(report)))
                    }
                    Some(Err(err)) => {
                        eprintln!("latency: {}: {err}", target.name);
                        unmeasured.push((&target.name, err.to_string()));
                        continue;
                    }
                    None => None,
                }
            }
        };
        let Some(measured) = measured else {
            interrupted = true;
            unmeasured.push((&target.name, "interrupted (Ctrl-C)".to_owned()));
            continue;
        };
        let (estimate, cost_note) = price(target, measured.median(), book, &args.prices)?;
        rows.push(Row {
            name: &target.name,
            url: &target.url,
            architecture: &target.architecture,
            probed_from,
            measured,
            per_million_calls: (estimate.per_million_calls > 0.0).then_some(estimate.per_million_calls),
            per_month: estimate.per_month,
            cost_note,
        });
    }
    // The pipelines after the targets: a pipeline run leaves a backlog behind it.
    let mut measured_pipelines = Vec::with_capacity(pipelines.len());
    for pipeline in pipelines {
        if interrupted {
            unmeasured.push((&pipeline.name, "not reached: interrupted (Ctrl-C)".to_owned()));
            continue;
        }
        match measure_pipeline(pipeline).await {
            Ok(measured) => {
                interrupted = measured.report.load.as_ref().is_some_and(|l| l.ending == Ending::Interrupted);
                measured_pipelines.push((pipeline.name.as_str(), measured));
            }
            Err(err) => {
                eprintln!("latency: pipeline {}: {err}", pipeline.name);
                unmeasured.push((&pipeline.name, err.to_string()));
            }
        }
    }
    let swept = match &args.memory_sweep {
        Some(function) if !interrupted => Some(memory_sweep(args, book, function).await),
        _ => None,
    };
    let written = write_outputs(
        &args.out,
        book,
        args.prices.calls_per_month(),
        &rows,
        &measured_pipelines,
        &unmeasured,
        args.memory_sweep.as_deref().zip(swept.as_ref().and_then(|s| s.as_ref().ok())),
    );
    let dirs = written?;
    match swept {
        Some(Err(err)) => return Err(err),
        Some(Ok(sweep)) => match (sweep.failures(), &sweep.restored) {
            (Some(failures), _) => return Err(Error::Unfinished(failures)),
            (None, Some(r)) if !r.ok => return Err(Error::Unfinished(r.note.clone())),
            _ => {}
        },
        None => {}
    }
    // A pipeline whose items did not all come through fails the command, as in `latency pipeline`.
    let stuck: Vec<String> = measured_pipelines
        .iter()
        .zip(&dirs)
        .filter_map(|((name, measured), dir)| {
            let stuck = measured.report.stuck.as_ref()?;
            Some(format!(
                "pipeline {name}: {}\nIts report is in {}.",
                stuck.describe(),
                args.out.join(dir).display()
            ))
        })
        .collect();
    if unmeasured.is_empty() && stuck.is_empty() {
        return Ok(());
    }
    let mut problems = stuck;
    if !unmeasured.is_empty() {
        let names: Vec<&str> = unmeasured.iter().map(|(name, _)| *name).collect();
        problems.push(format!(
            "{} of {} targets not measured ({}); the report covers the rest{}",
            unmeasured.len(),
            targets.len() + pipelines.len(),
            names.join(", "),
            if interrupted && args.memory_sweep.is_some() { ", without the memory sweep" } else { "" }
        ));
    }
    Err(Error::Unfinished(problems.join("\n")))
}

/// One `[[pipeline]]`, as `latency pipeline` measures it (`local = true`: where
/// `.local/pipeline.toml` says).
async fn measure_pipeline(pipeline: &Pipeline) -> Result<pipeline::Measurement, Error> {
    let setup = match &pipeline.setup {
        Some(setup) => setup.clone(),
        None => pipeline::local_setup()?,
    };
    let mut input = pipeline.load.clone();
    input.url = setup.url.clone();
    let spec = input.validate().map_err(|err| match err {
        probe::ProbeError::Invalid { field, reason } => {
            Error::Invalid(format!("pipeline {:?}: {field}: {reason}", pipeline.name))
        }
        other => Error::Probe(other),
    })?;
    eprintln!("latency: measuring pipeline {}", pipeline.name);
    pipeline::measure(&setup, pipeline::Plan::Load(Box::new(spec)), &pipeline.options).await
}

/// `--memory-sweep FUNCTION`: the sweep of `latency sweep --function`, priced with this report's
/// prices.
async fn memory_sweep(args: &Args, book: &PriceBook, function: &str) -> Result<sweep::Sweep, Error> {
    eprintln!("latency: sweeping the memory sizes of {function}");
    let event = sweep::Event::load(args.sweep_event.as_deref())?;
    let mut backend = sweep::aws::AwsLambda::connect(sweep::aws::Settings {
        function: function.to_owned(),
        qualifier: args.sweep_qualifier.clone(),
        region: None,
        arch: args.prices.arch,
        event: event.bytes.clone(),
        update_timeout: std::time::Duration::from_secs(180),
    })
    .await?;
    let options = sweep::SweepArgs {
        memory: args.sweep_memory.clone(),
        count: args.sweep_count,
        event: args.sweep_event.clone(),
    };
    sweep::sweep_with(&mut backend, book, &event, &options).await
}

/// The estimate for a target. A Lambda's billed duration is the target's `duration_ms` if given,
/// else the measured median (`median`: the value and what it is) — an upper bound, since it
/// includes the network and the gateway.
fn price(
    target: &Target,
    median: Option<(f64, &str)>,
    book: &PriceBook,
    prices: &PriceArgs,
) -> Result<(Estimate, String), Error> {
    let profile = cost::profile(&target.architecture)?;
    let settings = &target.settings;
    let (duration_ms, note) = match (profile.lambda.is_some(), settings.duration_ms, median) {
        (false, _, _) => (None, "fixed monthly cost; no per-call charge".to_owned()),
        (true, Some(ms), _) => (Some(ms), format!("billed duration {ms} ms (from the targets file)")),
        (true, None, Some((ms, what))) => (
            Some(ms),
            format!("billed duration = {what} {ms:.2} ms (an upper bound: includes network and gateway)"),
        ),
        (true, None, None) => (None, "no successful request: the profile's placeholder duration".to_owned()),
    };
    let mut params = prices.params(duration_ms);
    if let Some(arch) = &settings.arch {
        params.arch = Some(arch.parse()?);
    }
    params.memory_mb = prices.memory_mb.or(settings.memory_mb);
    Ok((cost::estimate(profile, book, &params)?, note))
}

/// `load-<slug>.svg` names for the load rows (`None` for the others): the name in lower case,
/// runs of anything but letters and digits as one `-`, numbered when two names meet.
fn timeline_files<'a>(load_rows: impl IntoIterator<Item = Option<&'a str>>) -> Vec<Option<String>> {
    unique_files(load_rows, |slug| format!("load-{slug}.svg"))
}

/// `pipeline/<slug>/` directories for the pipelines, as [`timeline_files`] names its files.
fn pipeline_dirs<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    unique_files(names.into_iter().map(Some), |slug| format!("pipeline/{slug}/"))
        .into_iter()
        .flatten()
        .collect()
}

/// A file name per name (`None` stays `None`) from its slug, numbered when two slugs meet.
fn unique_files<'a>(
    names: impl IntoIterator<Item = Option<&'a str>>,
    file: impl Fn(&str) -> String,
) -> Vec<Option<String>> {
    let mut taken = std::collections::BTreeSet::new();
    names
        .into_iter()
        .map(|name| {
            let slug = slug(name?);
            let mut name = file(&slug);
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = file(&format!("{slug}-{n}"));
                n += 1;
            }
            Some(name)
        })
        .collect()
}

fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() { "target".to_owned() } else { slug.to_owned() }
}

/// Writes report.md, latency.svg, the timelines, report.json, each pipeline's files (into the
/// directories returned, relative to `out`) and the memory sweep's.
fn write_outputs(
    out: &Path,
    book: &PriceBook,
    calls_per_month: u64,
    rows: &[Row<'_>],
    pipelines: &[(&str, pipeline::Measurement)],
    unmeasured: &[(&str, String)],
    swept: Option<(&str, &sweep::Sweep)>,
) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(out).map_err(Error::io(format!("creating {}", out.display())))?;
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
    };
    // Probe rows from every measured request; load rows from their histogram's percentiles.
    let labels: Vec<String> = rows
        .iter()
        .map(|row| match row.measured {
            Measured::Probe(_) => row.name.to_owned(),
            Measured::Load(_) => format!("{} (load)", row.name),
        })
        .collect();
    let lines: Vec<(&str, Vec<(f64, f64)>)> = rows
        .iter()
        .zip(&labels)
        .map(|(row, label)| {
            let points = match &row.measured {
                Measured::Probe(r) => chart::cdf_points(r.samples_ms.as_deref().unwrap_or(&[])),
                Measured::Load(r) => r.headline().map(chart::percentile_points).unwrap_or_default(),
            };
            (label.as_str(), points)
        })
        .collect();
    let title = if rows.iter().all(|row| row.measured.load().is_none()) {
        "GET /hits latency: share of requests at or under a latency"
    } else {
        "Latency: share of requests at or under a latency"
    };
    let chart_written = match chart::cdf_svg(title, lines) {
        Ok(svg) => {
            write("latency.svg", &svg)?;
            true
        }
        Err(err) => {
            eprintln!("latency: no chart: {err}");
            false
        }
    };
    let mut timelines = timeline_files(rows.iter().map(|row| row.measured.load().map(|_| row.name)));
    for (row, file) in rows.iter().zip(&mut timelines) {
        let (Some(report), Some(name)) = (row.measured.load(), file.as_ref()) else { continue };
        let title = format!("{}: {}", row.name, report.scenario);
        match chart::timeline_svg(&title, &report.timeline) {
            Ok(svg) => write(name, &svg)?,
            Err(err) => {
                eprintln!("latency: no timeline chart for {}: {err}", row.name);
                *file = None;
            }
        }
    }
    let dirs = pipeline_dirs(pipelines.iter().map(|(name, _)| *name));
    for ((_, measured), dir) in pipelines.iter().zip(&dirs) {
        measured.write(&out.join(dir))?;
    }
    let reports: Vec<(&str, &str, &pipeline::PipelineReport)> =
        pipelines.iter().zip(&dirs).map(|((name, m), dir)| (*name, dir.as_str(), &m.report)).collect();
    let mut markdown =
        markdown(book, calls_per_month, rows, &timelines, &reports, unmeasured, chart_written)?;
    let memory_chart = match swept {
        Some((function, sweep)) => {
            let chart = sweep::write_chart_and_json(out, sweep)?;
            markdown.push('\n');
            markdown.push_str(&sweep::markdown(sweep, &format!("## Memory sweep: `{function}`"), chart));
            chart.is_some()
        }
        None => false,
    };
    write("report.md", &markdown)?;
    // Machine-readable, without the raw samples (the chart has them).
    let slim: Vec<serde_json::Value> = rows
        .iter()
        .zip(&timelines)
        .map(|(row, timeline)| {
            let mut value = serde_json::to_value(row).unwrap_or_default();
            if let Some(report) = value.get_mut("report").and_then(|r| r.as_object_mut()) {
                report.remove("samples_ms");
            }
            if let (Some(object), Some(file)) = (value.as_object_mut(), timeline) {
                object.insert("timeline_chart".into(), file.as_str().into());
            }
            value
        })
        .collect();
    let json =
        serde_json::to_string_pretty(&slim).map_err(|e| Error::Invalid(format!("report.json: {e}")))?;
    write("report.json", &(json + "\n"))?;
    println!("{}", out.join("report.md").display());
    if chart_written {
        println!("{}", out.join("latency.svg").display());
    }
    for file in timelines.iter().flatten() {
        println!("{}", out.join(file).display());
    }
    println!("{}", out.join("report.json").display());
    for dir in &dirs {
        println!("{}", out.join(dir).join("pipeline.md").display());
    }
    if swept.is_some() {
        if memory_chart {
            println!("{}", out.join("memory.svg").display());
        }
        println!("{}", out.join("memory.json").display());
    }
    Ok(dirs)
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

/// report.md; `pipelines`: (name, directory of its files, report).
fn markdown(
    book: &PriceBook,
    calls_per_month: u64,
    rows: &[Row<'_>],
    timelines: &[Option<String>],
    pipelines: &[(&str, &str, &pipeline::PipelineReport)],
    unmeasured: &[(&str, String)],
    chart: bool,
) -> Result<String, Error> {
    let mut md = String::new();
    let volume = cost::thousands(calls_per_month);
    let loads = rows.iter().any(|row| row.measured.load().is_some());
    let _ = writeln!(md, "# hits: latency and cost per architecture\n");
    let _ = writeln!(
        md,
        "Measured {} by `latency report`. Latency is send → last body byte of `GET /hits` on a keep-alive \
         connection, after the first request and a warm-up (reported separately below). Prices: {} as of {} \
         (USD, no free tier); $/month at {volume} calls.\n",
        crate::time::utc_now(),
        book.region(),
        book.as_of(),
    );
    if loads {
        let _ = writeln!(
            md,
            "Rows whose run says *load* are load runs, as `latency load` makes them (each under [Load \
             runs](#load-runs) below, with its request and its timeline). Their figures come from the \
             run's HDR histogram: in a closed loop the request duration (send → last byte); in an open \
             loop the latency from each request's scheduled start, so a stall counts against every \
             request due during it. Requests/s is the rate the run achieved.\n"
        );
    }
    let _ = writeln!(
        md,
        "| Architecture | probed from | run | requests | requests/s | mean (ms) | p50 | p90 | p99 | failed | \
         $/1M calls | $/month |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let f = row.measured.figures();
        let stat = |i: usize| f.latency.map_or_else(|| "-".into(), |l| ms(l[i]));
        let failed = match f.failed {
            0 => "0".to_owned(),
            n => format!("{n} ({:.2}%)", f.failed_pct),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {failed} | {} | {} |",
            row.name,
            row.probed_from,
            f.run,
            f.requests,
            f.per_s,
            stat(0),
            stat(1),
            stat(2),
            stat(3),
            row.per_million_calls.map_or_else(|| "N/A".into(), cost::money),
            cost::money(row.per_month),
        );
    }
    if !unmeasured.is_empty() {
        let _ = writeln!(md, "\n**Not measured:**\n");
        for (name, why) in unmeasured {
            let _ = writeln!(md, "- {name}: {why}");
        }
    }
    md.push('\n');
    if chart {
        let _ = writeln!(md, "![latency distribution per architecture](latency.svg)\n");
        if loads {
            let _ = writeln!(
                md,
                "Probe rows are drawn from every measured request; load rows (\"(load)\" in the legend) \
                 from their histogram's percentiles (min, p50, p90, p95, p99, p99.9, max) joined by \
                 straight lines.\n"
            );
        }
    }
    let probed: Vec<(&Row<'_>, &Report)> = rows
        .iter()
        .filter_map(|row| match &row.measured {
            Measured::Probe(r) => Some((row, r.as_ref())),
            Measured::Load(_) => None,
        })
        .collect();
    if !probed.is_empty() {
        let _ = writeln!(md, "## Cold path: connection setup and the first request\n");
        if loads {
            let _ = writeln!(md, "Probed targets only: a load run opens a connection per virtual user.\n");
        }
        let _ = writeln!(
            md,
            "| Architecture | DNS (ms) | TCP connect (ms) | first request (ms) | connection | requests/s |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---|---:|");
        for (row, r) in probed {
            let opt = |v: Option<f64>| v.map_or_else(|| "-".into(), ms);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} |",
                row.name,
                opt(r.setup.dns_ms),
                opt(r.setup.connect_ms),
                ms(r.first.ms),
                match r.first.connection {
                    probe::Connection::New => "new",
                    probe::Connection::Reused => "reused",
                },
                r.requests_per_s
            );
        }
    }
    let errors: Vec<String> = rows
        .iter()
        .filter(|row| !row.measured.errors().is_empty())
        .map(|row| {
            let kinds: Vec<String> =
                row.measured.errors().iter().map(|(k, n)| format!("{k} × {n}")).collect();
            format!("- {}: {}", row.name, kinds.join(", "))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n### Errors\n\n{}", errors.join("\n"));
    }
    if loads {
        let _ = writeln!(md, "\n## Load runs");
        for (row, timeline) in rows.iter().zip(timelines) {
            let Some(report) = row.measured.load() else { continue };
            let _ = writeln!(md, "\n### {}\n", row.name);
            let _ = writeln!(md, "From {}: {}.\n", row.probed_from, report.scenario);
            if let Some(file) = timeline {
                let _ = writeln!(
                    md,
                    "![{}: latency and requests per second]({file})\n\n[timeline chart]({file}) \
                     (p50 and p99 per second, requests and failures per second)\n",
                    row.name
                );
            }
            let _ = writeln!(md, "```text\n{report}\n```");
        }
    }
    if !pipelines.is_empty() {
        md.push_str(&pipeline_section(pipelines));
    }
    let _ = writeln!(md, "\n## How each is priced\n");
    for row in rows {
        let _ = writeln!(
            md,
            "- **{}** as `{}` (`latency cost -a {}`): {}",
            row.name, row.architecture, row.architecture, row.cost_note
        );
    }
    let _ = writeln!(md, "\n{}", original_table()?);
    Ok(md)
}

/// The *Pipeline* section: each pipeline's report as `latency pipeline` writes it (its figures
/// beside seed 003's, end to end and per hop), one heading down, its charts linked in its
/// directory.
fn pipeline_section(pipelines: &[(&str, &str, &pipeline::PipelineReport)]) -> String {
    let mut md = String::from("\n## Pipeline\n\n");
    md.push_str(
        "Each `[[pipeline]]` of the targets file, measured as `latency pipeline` measures it: the load, \
         then a wait until every accepted item is in the results table. Requests in and items through \
         per second, the drain after the last request and the latencies end to end and per hop \
         (nearest rank), beside seed 003's own figures.\n",
    );
    for (name, dir, report) in pipelines {
        md.push('\n');
        md.push_str(&report.section(&format!("{name}: {}", report.target()), 3, dir));
        let _ = writeln!(
            md,
            "All of it: [pipeline.md]({dir}pipeline.md), [pipeline.json]({dir}pipeline.json), [items.csv]({dir}items.csv)."
        );
    }
    md
}

/// The original's published results (seed 000, eu-west-2, 2021): label, cost architecture,
/// billed duration the published cost implies (ms), published mean latency (ms), published cost.
const ORIGINAL: &[(&str, &str, Option<f64>, u32, &str)] = &[
    ("FastAPI + EC2", "original-ec2", None, 13, "$10.57/month"),
    ("Lambda Python + S3", "original-lambda-s3", Some(38.0), 120, "$7.16/1M"),
    ("Lambda Python + DynamoDB", "original-lambda-dynamodb", Some(88.0), 60, "$3.24/1M"),
    ("Lambda JavaScript + DynamoDB", "original-lambda-dynamodb", Some(160.0), 105, "$3.39/1M"),
    ("Lambda C++ + DynamoDB", "original-lambda-dynamodb", Some(16.0), 23, "$3.09/1M"),
    ("Lambda Rust + DynamoDB", "original-lambda-dynamodb", Some(16.0), 26, "$3.09/1M"),
    ("Fargate Spot ECS", "original-fargate-spot", None, 16, "$3.11/month"),
    ("ALB (left out of the original's rows)", "original-alb", None, 0, "$19.32/month"),
];

/// The original's table next to what the cost model gives for it with 2021 and today's London
/// prices: the check that the model is right, and what has changed since.
fn original_table() -> Result<String, Error> {
    let then = cost::book("eu-west-2", Some("2021"))?;
    let now = cost::book("eu-west-2", None)?;
    let mut md = String::new();
    let _ = writeln!(md, "## The original's table, recomputed\n");
    let _ = writeln!(
        md,
        "The published results of the comparison this project started from (eu-west-2, measured over the \
         internet), and the cost model's figures for the same architectures with London prices of 2021 \
         and of {}. Lambda rows use the billed duration the published cost implies (the original did \
         not publish durations). `cargo test -p cost --test reproduction` checks the 2021 column \
         within 2%.\n",
        now.as_of()
    );
    let _ = writeln!(
        md,
        "| Architecture (original) | mean latency (ms) | published | model, 2021 prices | model, {} prices |",
        now.as_of()
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for (label, id, duration_ms, latency, published) in ORIGINAL {
        let profile = cost::profile(id)?;
        let params = cost::Params { duration_ms: *duration_ms, ..cost::Params::default() };
        let show = |e: &Estimate| {
            if e.per_million_calls > 0.0 {
                format!("{}/1M", cost::money(e.per_million_calls))
            } else {
                format!("{}/month", cost::money(e.fixed_per_month))
            }
        };
        let then = cost::estimate(profile, then, &params)?;
        let now = cost::estimate(profile, now, &params)?;
        let latency = if *latency > 0 { latency.to_string() } else { "-".into() };
        let _ = writeln!(md, "| {label} | {latency} | {published} | {} | {} |", show(&then), show(&now));
    }
    Ok(md)
}

/// A local stack this command started, and stops again.
struct Stack {
    script: PathBuf,
}

impl Stack {
    fn down(self) {
        match Command::new(&self.script).arg("down").status() {
            Ok(status) if status.success() => {}
            _ => eprintln!("latency: `{} down` failed; stop the local stack by hand", self.script.display()),
        }
    }
}

/// The local variants' targets (`.local/targets.toml`, written by `scripts/local up`), starting
/// the stack first when it is not running.
fn local_targets(debug_build: bool) -> Result<(Targets, Option<Stack>), Error> {
    let root = local_state::workspace_root()?;
    let script = root.join("scripts/local");
    let path = local_state::local_state_dir(&root).join("targets.toml");
    let running = path.exists()
        && Command::new(&script)
            .arg("status")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let mut started = None;
    if !running {
        eprintln!("latency: starting the local stack (scripts/local up); the first build takes minutes");
        let mut up = Command::new(&script);
        up.arg("up");
        if debug_build {
            up.arg("--debug");
        }
        // Its URLs go to stderr too: stdout is for this command's own output.
        let status = up
            .stdout(std::io::stderr())
            .status()
            .map_err(Error::io(format!("running {}", script.display())))?;
        if !status.success() {
            return Err(Error::Process(format!("{} up failed ({status})", script.display())));
        }
        started = Some(Stack { script });
    }
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
    Ok((targets::parse(&text, &path.display().to_string())?, started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_charts_are_named_after_their_target_and_never_share_a_file() {
        assert_eq!(slug("Lambda + DynamoDB (HTTP API)"), "lambda-dynamodb-http-api");
        assert_eq!(slug("  seed 003 — k6  "), "seed-003-k6");
        assert_eq!(slug("ééé"), "target");
        assert_eq!(
            timeline_files([Some("A + B"), None, Some("a b"), Some("a-b 2"), Some("ééé")]),
            [
                Some("load-a-b.svg".to_owned()),
                None,
                Some("load-a-b-2.svg".to_owned()),
                Some("load-a-b-2-2.svg".to_owned()),
                Some("load-target.svg".to_owned()),
            ]
        );
    }

    #[test]
    fn each_pipeline_gets_its_own_directory_even_when_two_names_make_one_slug() {
        assert_eq!(
            pipeline_dirs(["Local chain", "local-chain", "AWS"]),
            ["pipeline/local-chain/", "pipeline/local-chain-2/", "pipeline/aws/"]
        );
    }

    fn report_md(pipelines: &[(&str, &str, &pipeline::PipelineReport)]) -> String {
        let book = cost::book("eu-west-2", None).expect("prices");
        markdown(book, 1_000_000, &[], &[], pipelines, &[], false).expect("markdown")
    }

    #[test]
    fn report_md_has_a_pipeline_section_with_the_flow_the_latencies_beside_the_seeds_and_the_charts() {
        let report = pipeline::PipelineReport::fabricated(false);
        let md = report_md(&[("local chain", "pipeline/local-chain/", &report)]);
        let section = &md[md.find("\n## Pipeline\n").expect("the section")..];
        let section = &section[..section.find("\n## How each is priced").expect("before the pricing")];
        for expected in [
            "### local chain: http://x/items\n",
            "10 requests sent, 10 accepted (status 200), 0 failed; all 10 accepted items came through",
            "| | this run | the original, on its emulator |",
            "| requests in per second | 5.0 | 28 |",
            "| items through per second |",
            "| end-to-end p99 | 0.100 s | 58.5 s |",
            "| end-to-end max | 0.100 s | 59 s |",
            "| drain after the last request |",
            "#### Latency (ms, nearest rank)",
            "| EndToEnd | client send → downstream | 10 | 100.00 | 100.00 |",
            "| UpstreamToKinesis | upstream receive → Kinesis arrival | 10 | 10.00 | 10.00 |",
            "| KinesisToMidstream |",
            "| MidstreamToDownstream |",
            "![End-to-end latency against send time](pipeline/local-chain/timeline.svg)",
            "![Latency CDF](pipeline/local-chain/cdf.svg)",
            "[pipeline.json](pipeline/local-chain/pipeline.json)",
        ] {
            assert!(section.contains(expected), "{expected:?} not in:\n{section}");
        }
        assert!(!section.contains("Not through"), "{section}");
        assert!(!md.contains("\n# Pipeline"), "no top-level heading of its own: {md}");
    }

    #[test]
    fn a_pipeline_whose_items_did_not_all_come_through_says_where_they_are_stuck_in_report_md() {
        let report = pipeline::PipelineReport::fabricated(true);
        let md = report_md(&[("aws", "pipeline/aws/", &report)]);
        for expected in [
            "8 of 10 accepted items came through",
            "#### Not through",
            "2 accepted items did not come through:",
            "1 in the items table but not in the results table: stuck between midstream and downstream",
            "1 not in the items table: stuck between upstream and midstream",
        ] {
            assert!(md.contains(expected), "{expected:?} not in:\n{md}");
        }
        assert!(!report_md(&[]).contains("## Pipeline"), "no pipeline, no section");
    }
}
