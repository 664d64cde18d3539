//! `latency report`: probe named targets, price them, and write `report.md`, `latency.svg` and
//! `report.json` — the original's results table, regenerated with commands.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cost::{Estimate, PriceBook};
use probe::{Prober, Report};
use serde::Serialize;

use crate::chart;
use crate::cost_cmd::PriceArgs;
use crate::error::Error;
use crate::local_state;
use crate::probe_cmd::{self, RunArgs};
use crate::sweep;
use crate::targets::{self, Target};

#[derive(clap::Args)]
pub struct Args {
    /// Targets file (TOML: [[target]] name, url, architecture; see crates/latency/targets.example.toml).
    #[arg(
        long,
        short = 't',
        value_name = "FILE",
        required_unless_present = "local",
        conflicts_with = "local"
    )]
    targets: Option<PathBuf>,
    /// Probe every local variant (`scripts/local up`: the Lambda emulator on DynamoDB and S3,
    /// hits-server on the memory and file stores), starting the local stack if it is not up and
    /// stopping it again afterwards.
    #[arg(long)]
    local: bool,
    /// With --local: build the local stack in debug mode (faster to build, slower to answer).
    #[arg(long, requires = "local")]
    debug_build: bool,
    /// Directory for report.md, latency.svg and report.json.
    #[arg(long, short = 'o', default_value = "report")]
    out: PathBuf,
    /// Overrides every target's settings.
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
    report: Report,
    per_million_calls: Option<f64>,
    per_month: f64,
    cost_note: String,
}

pub async fn run(args: Args) -> Result<(), Error> {
    let book = args.prices.book()?;
    let mut stack = None;
    let targets = if args.local {
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
    let result = measure_and_write(&args, &book, &targets).await;
    if let Some(stack) = stack {
        stack.down();
    }
    result
}

async fn measure_and_write(args: &Args, book: &PriceBook, targets: &[Target]) -> Result<(), Error> {
    // Every architecture must be priceable before minutes of probing, not after.
    for target in targets {
        cost::profile(&target.architecture)?;
    }
    let prober = Prober::new()?;
    let mut lambda = None;
    let mut rows = Vec::with_capacity(targets.len());
    for target in targets {
        let settings = &target.settings;
        let run = RunArgs {
            count: args.run.count.or(settings.count.map(i64::from)),
            concurrency: args.run.concurrency.or(settings.concurrency.map(i64::from)),
            warmup: args.run.warmup.or(settings.warmup.map(i64::from)),
            method: args.run.method.clone(),
            timeout_ms: args.run.timeout_ms.or(settings.timeout_ms.and_then(|t| i64::try_from(t).ok())),
        };
        let input = run.input(&target.url, true);
        eprintln!("latency: probing {} ({})", target.name, target.url);
        let (report, probed_from) = match &settings.via_lambda {
            Some(function) => {
                if lambda.is_none() {
                    lambda = Some(crate::invoke::client().await);
                }
                let client = lambda.as_ref().ok_or_else(|| Error::Aws("no Lambda client".into()))?;
                (probe_cmd::via_lambda(client, function, input).await?, format!("Lambda `{function}`"))
            }
            None => (probe_cmd::from_here(&prober, input).await?, "this machine".to_owned()),
        };
        let (estimate, cost_note) = price(target, &report, book, &args.prices)?;
        rows.push(Row {
            name: &target.name,
            url: &target.url,
            architecture: &target.architecture,
            probed_from,
            per_million_calls: (estimate.per_million_calls > 0.0).then_some(estimate.per_million_calls),
            per_month: estimate.per_month,
            cost_note,
            report,
        });
    }
    let swept = match &args.memory_sweep {
        Some(function) => Some(memory_sweep(args, book, function).await),
        None => None,
    };
    let written = write_outputs(
        &args.out,
        book,
        args.prices.calls_per_month,
        &rows,
        args.memory_sweep.as_deref().zip(swept.as_ref().and_then(|s| s.as_ref().ok())),
    );
    match swept {
        Some(Err(err)) => {
            written?;
            Err(err)
        }
        Some(Ok(sweep)) => {
            written?;
            match (sweep.failures(), &sweep.restored) {
                (Some(failures), _) => Err(Error::Unfinished(failures)),
                (None, Some(r)) if !r.ok => Err(Error::Unfinished(r.note.clone())),
                _ => Ok(()),
            }
        }
        None => written,
    }
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
/// else the measured p50 — an upper bound, since it includes the network and the gateway.
fn price(
    target: &Target,
    report: &Report,
    book: &PriceBook,
    prices: &PriceArgs,
) -> Result<(Estimate, String), Error> {
    let profile = cost::profile(&target.architecture)?;
    let settings = &target.settings;
    let (duration_ms, note) = match (profile.lambda.is_some(), settings.duration_ms, report.stats) {
        (false, _, _) => (None, "fixed monthly cost; no per-call charge".to_owned()),
        (true, Some(ms), _) => (Some(ms), format!("billed duration {ms} ms (from the targets file)")),
        (true, None, Some(stats)) => (
            Some(stats.p50),
            format!(
                "billed duration = measured p50 {:.2} ms (an upper bound: includes network and gateway)",
                stats.p50
            ),
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

fn write_outputs(
    out: &Path,
    book: &PriceBook,
    calls_per_month: u64,
    rows: &[Row<'_>],
    swept: Option<(&str, &sweep::Sweep)>,
) -> Result<(), Error> {
    std::fs::create_dir_all(out).map_err(Error::io(format!("creating {}", out.display())))?;
    let series: Vec<chart::Series<'_>> = rows
        .iter()
        .map(|row| chart::Series {
            label: row.name,
            samples_ms: row.report.samples_ms.as_deref().unwrap_or(&[]),
        })
        .collect();
    let chart_written =
        match chart::cdf_svg("GET /hits latency: share of requests at or under a latency", &series) {
            Ok(svg) => {
                let path = out.join("latency.svg");
                std::fs::write(&path, svg).map_err(Error::io(format!("writing {}", path.display())))?;
                true
            }
            Err(err) => {
                eprintln!("latency: no chart: {err}");
                false
            }
        };
    let mut markdown = markdown(book, calls_per_month, rows, chart_written)?;
    let memory_chart = match swept {
        Some((function, sweep)) => {
            let chart = sweep::write_chart_and_json(out, sweep)?;
            markdown.push('\n');
            markdown.push_str(&sweep::markdown(sweep, &format!("## Memory sweep: `{function}`"), chart));
            chart.is_some()
        }
        None => false,
    };
    let path = out.join("report.md");
    std::fs::write(&path, markdown).map_err(Error::io(format!("writing {}", path.display())))?;
    // Machine-readable, without the raw samples (the chart has them).
    let slim: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut value = serde_json::to_value(row).unwrap_or_default();
            if let Some(report) = value.get_mut("report").and_then(|r| r.as_object_mut()) {
                report.remove("samples_ms");
            }
            value
        })
        .collect();
    let json =
        serde_json::to_string_pretty(&slim).map_err(|e| Error::Invalid(format!("report.json: {e}")))?;
    let path = out.join("report.json");
    std::fs::write(&path, json + "\n").map_err(Error::io(format!("writing {}", path.display())))?;
    println!("{}", out.join("report.md").display());
    if chart_written {
        println!("{}", out.join("latency.svg").display());
    }
    println!("{}", path.display());
    if swept.is_some() {
        if memory_chart {
            println!("{}", out.join("memory.svg").display());
        }
        println!("{}", out.join("memory.json").display());
    }
    Ok(())
}

fn ms(value: f64) -> String {
    format!("{value:.2}")
}

fn markdown(book: &PriceBook, calls_per_month: u64, rows: &[Row<'_>], chart: bool) -> Result<String, Error> {
    let mut md = String::new();
    let volume = cost::thousands(calls_per_month);
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
    let _ = writeln!(
        md,
        "| Architecture | probed from | requests | mean (ms) | p50 | p90 | p99 | errors | $/1M calls | $/month |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let r = &row.report;
        let stat = |f: fn(&probe::Stats) -> f64| r.stats.as_ref().map_or_else(|| "-".into(), |s| ms(f(s)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.probed_from,
            r.count,
            stat(|s| s.mean),
            stat(|s| s.p50),
            stat(|s| s.p90),
            stat(|s| s.p99),
            r.error_count(),
            row.per_million_calls.map_or_else(|| "N/A".into(), cost::money),
            cost::money(row.per_month),
        );
    }
    if chart {
        let _ = writeln!(md, "\n![latency distribution per architecture](latency.svg)\n");
    }
    let _ = writeln!(md, "## Cold path: connection setup and the first request\n");
    let _ = writeln!(
        md,
        "| Architecture | DNS (ms) | TCP connect (ms) | first request (ms) | connection | requests/s |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---|---:|");
    for row in rows {
        let r = &row.report;
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
    let errors: Vec<String> = rows
        .iter()
        .filter(|row| row.report.error_count() > 0)
        .map(|row| {
            let kinds: Vec<String> = row.report.errors.iter().map(|(k, n)| format!("{k} × {n}")).collect();
            format!("- {}: {}", row.name, kinds.join(", "))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n### Errors\n\n{}", errors.join("\n"));
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
fn local_targets(debug_build: bool) -> Result<(Vec<Target>, Option<Stack>), Error> {
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
