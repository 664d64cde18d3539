//! `latency pipeline`: load the pipeline (seed 003's chain: HTTP → upstream → Kinesis →
//! midstream → items table → its stream → downstream → results table) with `latency load`'s
//! engine, wait until every accepted item has come through, and report how fast and how long.
//!
//! A run:
//! 1. checks the flags (the load's, as `latency load` takes them) and reads the on-failure
//!    queue's depth and the results table once, so a wrong name fails before any request;
//! 2. runs the load — by default the `seed-003` preset: 10 virtual users for 60 s posting the
//!    seed's item with a unique `{{id}}`, its `timestamp` in **milliseconds** (`{{now_ms}}`; the
//!    seed sends whole seconds, which would make end to end second-precise) — and keeps the id
//!    of every request answered 200;
//! 3. looks those ids up in the results table (`BatchGetItem`, 100 keys a call), again every
//!    `--poll` for the missing ones, until none is missing or `--drain-timeout` has passed since
//!    the load ended ([`wait`]);
//! 4. computes requests in and items through per second, the drain, and every latency with
//!    nearest-rank percentiles ([`stats`]), writes `pipeline.md`, `pipeline.json`,
//!    `timeline.svg` (end-to-end latency against send time), `cdf.svg` and `items.csv` (every
//!    item's stamps) into `--out`, and prints `pipeline.md` (or the JSON with `--json`);
//! 5. if some did not come through, says where they are stuck and exits 1 (after writing the
//!    report of those that did).
//!
//! # `--local`: `.local/pipeline.toml`
//! `scripts/local up` writes it (in `$LOCAL_STACK_STATE` when set, else `<checkout>/.local`);
//! `--local` reads it instead of `--url`, `--results-table`, `--items-table` and
//! `--failure-queue-url`:
//!
//! ```toml
//! # Written by scripts/local up.
//! url = "http://127.0.0.1:9000/lambda-url/pipeline-upstream/items"   # where to POST the items
//! results_table = "local-pipeline-results"     # the downstream function's table
//! items_table = "local-pipeline-items"         # the midstream function's table
//! failure_queue_url = "http://127.0.0.1:PORT/123456789012/local-pipeline-failures"   # optional
//! endpoint = "http://127.0.0.1:PORT"           # optional: the emulator (moto); AWS clients use it
//! region = "us-east-1"                         # optional [default: the environment's]
//! ```
//!
//! Other keys are ignored, so the writer can add some without breaking older readers.

mod aws;
mod config;
mod seed;
mod source;
mod stats;
mod summary;
mod wait;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::Setup;
use source::{ResultsSource, Row};
use summary::PipelineReport;
use wait::{Stuck, wait_for};

use crate::error::Error;
use crate::load_cmd::{self, Shape, flag_error};

/// Seed 003's item with the send time in milliseconds: the upstream function takes a
/// `timestamp` of 1e11 or more as epoch milliseconds (below, as the seed's seconds).
const ITEM_MS: &str = r#"{"id":"{{id}}","message":"Hello World","timestamp":{{now_ms}}}"#;

#[derive(clap::Args)]
pub struct Args {
    /// Where to POST the items: the stack's PipelineUrl (…/items).
    #[arg(long, required_unless_present = "local", conflicts_with = "local")]
    url: Option<String>,
    /// The results table the downstream function writes (PipelineResultsTableName).
    #[arg(long, value_name = "NAME", required_unless_present = "local", conflicts_with = "local")]
    results_table: Option<String>,
    /// The items table the midstream function writes (PipelineItemsTableName).
    #[arg(long, value_name = "NAME", required_unless_present = "local", conflicts_with = "local")]
    items_table: Option<String>,
    /// The on-failure queue of both event source mappings (PipelineFailureQueueUrl): its depth
    /// is read (never its messages) before the run and when items are missing.
    #[arg(long, value_name = "URL", conflicts_with = "local")]
    failure_queue_url: Option<String>,
    /// Take the URL, tables, queue, endpoint and region from .local/pipeline.toml (written by
    /// `scripts/local up`).
    #[arg(long)]
    local: bool,
    /// The load, as `latency load` takes it [default: --preset seed-003, 10 VUs for 60 s; the
    /// seed's item with its timestamp in ms].
    #[command(flatten)]
    shape: Shape,
    /// How long to wait, after the last request, for every accepted item to come through.
    #[arg(long, default_value = "60s", value_parser = duration)]
    drain_timeout: Duration,
    /// How often to look the missing items up while waiting.
    #[arg(long, default_value = "250ms", value_parser = duration)]
    poll: Duration,
    /// Directory for pipeline.md, pipeline.json, timeline.svg, cdf.svg and items.csv.
    #[arg(long, short = 'o', default_value = "pipeline")]
    out: PathBuf,
    /// Print pipeline.json instead of pipeline.md.
    #[arg(long)]
    json: bool,
    /// No live progress line.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    probe::load::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration like 60s, 1m30s or 250ms"))
}

pub async fn run(args: Args) -> Result<(), Error> {
    let setup = match args.local {
        true => {
            let root = crate::local_state::workspace_root()?;
            config::load_local(&crate::local_state::local_state_dir(&root).join("pipeline.toml"))?
        }
        false => Setup {
            url: args.url.clone().unwrap_or_default(),
            results_table: args.results_table.clone().unwrap_or_default(),
            items_table: args.items_table.clone().unwrap_or_default(),
            failure_queue_url: args.failure_queue_url.clone(),
            endpoint: None,
            region: None,
        },
    };
    setup.check()?;
    let spec = load_input(&args.shape, &setup.url)?.validate().map_err(spec_error)?;

    let mut aws = aws_setup::Aws::new(aws_setup::TrustRoots::Platform);
    if let Some(endpoint) = &setup.endpoint {
        aws = aws.with_endpoint(endpoint);
    }
    if let Some(region) = &setup.region {
        aws = aws.with_region(region);
    }
    let config = aws.config().await.map_err(|e| Error::Aws(e.to_string()))?;
    let source = aws::AwsSource::new(
        config,
        setup.results_table.clone(),
        setup.items_table.clone(),
        setup.failure_queue_url.clone(),
    );
    // A wrong table or queue fails here, before any request is sent.
    source.results(&["latency-pipeline-check".to_owned()]).await?;
    let queue_before = source.failure_queue().await?;

    let show = !args.quiet && std::io::stderr().is_terminal();
    eprintln!(
        "latency: {} → {}; then waiting up to {} for every accepted item in {}",
        probe::load::scenario(&spec),
        setup.url,
        probe::load::format_duration(args.drain_timeout),
        source.describe()
    );
    let mut load = load_cmd::from_here(&spec, show).await?;
    let ids = load.ids.take().unwrap_or_default();
    if ids.is_empty() {
        return Err(Error::Unfinished(format!(
            "no request was accepted (status 200) of {} sent: statuses {:?}, failures {:?}",
            load.requests, load.statuses, load.errors
        )));
    }

    let waiting = tokio::time::Instant::now();
    let mut stderr = std::io::stderr();
    // The load's Ctrl-C handler stays installed: a Ctrl-C now ends the wait, not the process.
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let waited = wait_for(&source, &ids, waiting + args.drain_timeout, args.poll, stop, |found, total| {
        if show {
            let _ = write!(stderr, "\r\x1b[2Kwaiting: {found} of {total} items through");
            let _ = stderr.flush();
        }
    })
    .await?;
    if show {
        let _ = write!(stderr, "\r\x1b[2K");
    }
    let waited_s = probe::stats::round2(waiting.elapsed().as_secs_f64());
    let stuck = match waited.missing.is_empty() {
        true => None,
        false => Some(Stuck::locate(&source, &waited.missing, queue_before).await?),
    };

    let report = PipelineReport {
        url: setup.url.clone(),
        scenario: load.scenario.clone(),
        run_id: load.run_id.clone(),
        started_at_ms: load.started_at_ms,
        read_from: source.describe(),
        requests: load.requests,
        accepted: ids.len(),
        failed: load.failed,
        flow: stats::flow(&waited.rows, load.requests, ids.len(), load.started_at_ms, load.elapsed_s),
        latencies: stats::latencies(&waited.rows),
        waited_s,
        complete: stuck.is_none(),
        stuck,
        seed: seed::SEED,
        seed_label: seed::LABEL,
        load,
    };
    write_out(&args.out, &report, &waited.rows)?;
    if args.json {
        println!("{}", to_json(&report)?);
    } else {
        print!("{}", report.markdown());
    }
    match &report.stuck {
        None => Ok(()),
        Some(stuck) => Err(Error::Unfinished(format!(
            "{}\nThe report of those that came through is in {}.",
            stuck.describe(),
            args.out.display()
        ))),
    }
}

/// The load input of these flags: the seed-003 preset unless another is named, and its item
/// with the send time in ms unless a body is given. Asks the load for the accepted ids.
fn load_input(shape: &Shape, url: &str) -> Result<probe::load::LoadInput, Error> {
    let mut input = shape.input(url, true)?;
    let preset = input.preset.get_or_insert_with(|| "seed-003".to_owned());
    let seeds_item = matches!(preset.as_str(), "seed-003" | "items");
    if seeds_item && input.body.is_none() && input.bodies.is_none() {
        input.body = Some(ITEM_MS.to_owned());
    }
    Ok(input)
}

/// A load spec error as the flag it is about; the ids are always asked for here, so a body
/// without `{{id}}` is the body's fault.
fn spec_error(err: probe::ProbeError) -> Error {
    match err {
        probe::ProbeError::Invalid { field, reason } if field == "ids" => {
            Error::Invalid(format!("--body: {reason} (the driver traces each item by its id)"))
        }
        other => flag_error(other),
    }
}

fn to_json(report: &PipelineReport) -> Result<String, Error> {
    serde_json::to_string_pretty(report).map_err(|e| Error::Invalid(format!("report: {e}")))
}

/// pipeline.md, pipeline.json, timeline.svg, cdf.svg and items.csv in `dir`.
fn write_out(dir: &Path, report: &PipelineReport, rows: &[Row]) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
    };
    write("pipeline.md", &report.markdown())?;
    write("pipeline.json", &to_json(report)?)?;
    write("items.csv", &items_csv(rows))?;
    let points = stats::end_to_end_over_time(rows, report.started_at_ms);
    let title = format!("{} — end-to-end latency against send time ({})", report.url, report.scenario);
    match crate::chart::latency_over_time_svg(&title, &points, report.load.elapsed_s) {
        Ok(svg) => write("timeline.svg", &svg)?,
        Err(err) => eprintln!("latency: no timeline chart: {err}"),
    }
    let samples = stats::samples(rows);
    let lines = samples.iter().map(|(name, ms)| (*name, crate::chart::cdf_points(ms))).collect();
    match crate::chart::cdf_svg(&format!("{} — latency CDF", report.url), lines) {
        Ok(svg) => write("cdf.svg", &svg)?,
        Err(err) => eprintln!("latency: no CDF chart: {err}"),
    }
    Ok(())
}

/// Every item's stamps, one line each, sorted by send time.
fn items_csv(rows: &[Row]) -> String {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by(|a, b| a.client_ms.unwrap_or(f64::MAX).total_cmp(&b.client_ms.unwrap_or(f64::MAX)));
    let mut csv = String::from("id,client_ms,upstream_ms,kinesis_ms,midstream_ms,stream_ms,downstream_ms\n");
    let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.id,
            cell(r.client_ms),
            cell(r.upstream_ms),
            cell(r.kinesis_ms),
            cell(r.midstream_ms),
            cell(r.stream_ms),
            cell(r.downstream_ms)
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_load_is_the_seeds_run_with_its_item_stamped_in_milliseconds() {
        let input = load_input(&Shape::default(), "http://x/items").expect("input");
        assert_eq!(input.preset.as_deref(), Some("seed-003"));
        assert_eq!(input.body.as_deref(), Some(ITEM_MS));
        assert!(input.ids, "the accepted ids are kept");
        let spec = input.validate().expect("valid");
        assert_eq!(probe::load::scenario(&spec), "closed loop, 10 VUs for 1m");
        // An open loop and a body of one's own are taken as given.
        let shape = Shape {
            rate: Some(200.0),
            duration: Some("30s".into()),
            body: Some(r#"{"id":"{{id}}","message":"m","timestamp":{{now_s}}}"#.into()),
            ..Shape::default()
        };
        let input = load_input(&shape, "http://x/items").expect("input");
        assert!(input.body.as_deref().is_some_and(|b| b.contains("now_s")));
        assert!(
            probe::load::scenario(&input.validate().expect("valid")).starts_with("open loop, 200/s for 30s")
        );
        // A body without {{id}} cannot be traced: an error naming the flag.
        let untraceable = Shape { body: Some("{}".into()), ..Shape::default() };
        let err = load_input(&untraceable, "http://x/items").expect("input").validate().map_err(spec_error);
        let err = err.expect_err("no id").to_string();
        assert!(err.starts_with("--body: the requests carry no {{id}}"), "{err}");
    }

    #[test]
    fn items_csv_has_a_line_per_item_in_send_order_and_blanks_for_missing_stamps() {
        let rows = vec![
            Row { id: "b".into(), client_ms: Some(2.0), downstream_ms: Some(9.0), ..Row::default() },
            Row { id: "a".into(), client_ms: Some(1.0), upstream_ms: Some(1.5), ..Row::default() },
        ];
        assert_eq!(
            items_csv(&rows),
            "id,client_ms,upstream_ms,kinesis_ms,midstream_ms,stream_ms,downstream_ms\na,1,1.5,,,,\nb,2,,,,,9\n"
        );
    }
}
