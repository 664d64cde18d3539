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
//! With `--ids-from FILE` there is no load of ours: another tool (the seed's k6 script) sent the
//! items, and the file holds the id of each one it got a 200 for ([`ids`]). Steps 3–5 are the
//! same — the same waiter, the same report — with the requests-in figures taken from the rows
//! (the accepted items per second between the first and last upstream stamp) and the drain
//! measured from the last upstream stamp.
//!
//! `latency report` runs the same measurement ([`measure`]) for each `[[pipeline]]` of its
//! targets file, and writes the same files ([`Measurement::write`]) under its own out dir.
//!
//! # `--local`: `.local/pipeline.toml`
//! `scripts/local up` writes it (in `$LOCAL_STACK_STATE` when set, else `<checkout>/.local`);
//! `--local` reads it instead of `--url`, `--results-table`, `--items-table` and
//! `--failure-queue-url`:
//!
//! ```toml
//! # Written by scripts/local up.
//! url = "http://127.0.0.1:9030/lambda-url/pipeline-upstream/items"   # where to POST the items
//! results_table = "local-pipelineresultstable"   # the downstream function's table
//! items_table = "local-pipelineitemstable"       # the midstream function's table
//! failure_queue_url = "http://127.0.0.1:PORT/123456789012/local-pipelinefailurequeue"   # optional
//! endpoint = "http://127.0.0.1:PORT"           # optional: the emulator (moto); AWS clients use it
//! region = "eu-west-2"                         # optional [default: the environment's]
//! ```
//!
//! Other keys are ignored, so the writer can add some without breaking older readers.

mod aws;
mod config;
mod ids;
mod seed;
mod source;
mod stats;
mod summary;
mod wait;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use config::Setup;
use source::{ResultsSource, Row};
pub use summary::PipelineReport;
use wait::{Stuck, wait_for};

use crate::error::Error;
use crate::load_cmd::{self, Shape, flag_error};

/// Seed 003's item with the send time in milliseconds: the upstream function takes a
/// `timestamp` of 1e11 or more as epoch milliseconds (below, as the seed's seconds).
const ITEM_MS: &str = r#"{"id":"{{id}}","message":"Hello World","timestamp":{{now_ms}}}"#;

/// The load's flags ([`Shape`]'s arguments), which `--ids-from` conflicts with: named one by one
/// so that clap's error names the one given, not all of them.
const LOAD_FLAGS: [&str; 14] = [
    "preset",
    "method",
    "headers",
    "body",
    "body_file",
    "bodies",
    "expect",
    "vus",
    "rate",
    "max_vus",
    "duration",
    "iterations",
    "stages",
    "timeout",
];

#[derive(clap::Args)]
pub struct Args {
    /// Where to POST the items: the stack's PipelineUrl (…/items). With --ids-from, optional:
    /// only named in the report.
    #[arg(long, required_unless_present_any = ["local", "ids_from"], conflicts_with = "local")]
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
    /// No load of ours: trace the items another tool sent, by their ids, one per line (a k6
    /// script's console.log of each accepted id, with --log-output=file=FILE --log-format=raw).
    #[arg(long, value_name = "FILE", conflicts_with_all = LOAD_FLAGS)]
    ids_from: Option<PathBuf>,
    /// How long to wait, after the last request (with --ids-from: from the start), for every
    /// accepted item to come through.
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
        true => local_setup()?,
        false => Setup {
            url: args.url.clone(),
            results_table: args.results_table.clone().unwrap_or_default(),
            items_table: args.items_table.clone().unwrap_or_default(),
            failure_queue_url: args.failure_queue_url.clone(),
            endpoint: None,
            region: None,
        },
    };
    setup.check()?;
    // What is sent: our load, or (--ids-from) nothing — the file says what another tool sent.
    let plan = match &args.ids_from {
        Some(path) => Plan::External { ids: ids::read(path)?, file: path.display().to_string() },
        None => {
            let url =
                setup.url.as_deref().ok_or_else(|| Error::Invalid("--url: required for a load".into()))?;
            Plan::Load(Box::new(load_input(&args.shape, url)?.validate().map_err(spec_error)?))
        }
    };
    let options = Options {
        drain_timeout: args.drain_timeout,
        poll: args.poll,
        show: !args.quiet && std::io::stderr().is_terminal(),
    };
    let measured = measure(&setup, plan, &options).await?;
    measured.write(&args.out)?;
    let report = &measured.report;
    if args.json {
        println!("{}", to_json(report)?);
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

/// `.local/pipeline.toml` (in `$LOCAL_STACK_STATE` when set), as `--local` reads it.
pub fn local_setup() -> Result<Setup, Error> {
    let root = crate::local_state::workspace_root()?;
    config::load_local(&crate::local_state::local_state_dir(&root).join("pipeline.toml"))
}

/// How long to wait for the items, how often to look, and whether to show progress.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub drain_timeout: Duration,
    pub poll: Duration,
    pub show: bool,
}

impl Default for Options {
    /// The flags' defaults: 60 s, every 250 ms, no progress line.
    fn default() -> Self {
        Options { drain_timeout: Duration::from_secs(60), poll: Duration::from_millis(250), show: false }
    }
}

/// A measured run: its report and the rows read back (for items.csv and the charts).
pub struct Measurement {
    pub report: PipelineReport,
    rows: Vec<Row>,
}

impl Measurement {
    /// pipeline.md, pipeline.json, timeline.svg, cdf.svg and items.csv in `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        write_out(dir, &self.report, &self.rows)
    }
}

/// One measurement of the pipeline at `setup` (already checked): steps 1–4 of the module docs —
/// the load (or another tool's ids), the wait, the figures. Items that did not come through are
/// in the report (`stuck`), not an error: the caller decides. An error: a wrong table or queue
/// (before any request), or no request accepted.
pub async fn measure(setup: &Setup, plan: Plan, options: &Options) -> Result<Measurement, Error> {
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

    let show = options.show;
    let wait_words = format!(
        "waiting up to {} for every accepted item in {}",
        probe::load::format_duration(options.drain_timeout),
        source.describe()
    );
    let (ids, load, ids_from) = match plan {
        Plan::Load(spec) => {
            let url = setup.url.as_deref().unwrap_or_default();
            eprintln!("latency: {} → {url}; then {wait_words}", probe::load::scenario(&spec));
            let mut load = load_cmd::from_here(&spec, show).await?;
            let ids = load.ids.take().unwrap_or_default();
            if ids.is_empty() {
                return Err(Error::Unfinished(format!(
                    "no request was accepted (status 200) of {} sent: statuses {:?}, failures {:?}",
                    load.requests, load.statuses, load.errors
                )));
            }
            (ids, Some(load), None)
        }
        Plan::External { ids, file } => {
            eprintln!("latency: {} ids from {file}, sent by another tool; {wait_words}", ids.len());
            (ids, None, Some(file))
        }
    };

    let waiting = tokio::time::Instant::now();
    let mut stderr = std::io::stderr();
    // The load's Ctrl-C handler stays installed: a Ctrl-C now ends the wait, not the process.
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let waited =
        wait_for(&source, &ids, waiting + options.drain_timeout, options.poll, stop, |found, total| {
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

    let sent = Sent::of(load.as_ref(), ids_from.as_deref(), ids.len(), &waited.rows);
    let report = PipelineReport {
        url: setup.url.clone(),
        scenario: sent.scenario,
        run_id: load.as_ref().map(|l| l.run_id.clone()),
        started_at_ms: sent.started_at_ms,
        sent_s: sent.elapsed_s,
        ids_from,
        read_from: source.describe(),
        requests: load.as_ref().map(|l| l.requests),
        accepted: ids.len(),
        failed: load.as_ref().map(|l| l.failed),
        flow: stats::flow(&waited.rows, sent.requests, ids.len(), sent.started_at_ms, sent.elapsed_s),
        latencies: stats::latencies(&waited.rows),
        waited_s,
        complete: stuck.is_none(),
        stuck,
        seed: seed::SEED,
        seed_label: seed::LABEL,
        load,
    };
    Ok(Measurement { report, rows: waited.rows })
}

/// What a run sends: a load of ours, or nothing — the ids of what another tool sent.
pub enum Plan {
    Load(Box<probe::load::LoadSpec>),
    External { ids: Vec<String>, file: String },
}

/// Who sent the items and over which window — the figures requests in, items through and the
/// drain are computed over.
#[derive(Debug, PartialEq)]
struct Sent {
    scenario: String,
    /// Requests sent (by another tool: the accepted ones, all that is known).
    requests: u64,
    started_at_ms: u64,
    elapsed_s: f64,
}

impl Sent {
    /// Our load's figures, or (`load` None) the window of the rows' upstream stamps: the first
    /// one to the last (no stamp at all: nothing came through, an empty window now).
    fn of(
        load: Option<&probe::load::LoadReport>,
        ids_from: Option<&str>,
        accepted: usize,
        rows: &[Row],
    ) -> Sent {
        match load {
            Some(load) => Sent {
                scenario: load.scenario.clone(),
                requests: load.requests,
                started_at_ms: load.started_at_ms,
                elapsed_s: load.elapsed_s,
            },
            None => {
                let (started_at_ms, elapsed_s) =
                    stats::upstream_window(rows).unwrap_or_else(|| (crate::time::now_ms(), 0.0));
                Sent {
                    scenario: format!(
                        "sent by another tool; {accepted} ids from {}",
                        ids_from.unwrap_or("the file")
                    ),
                    requests: accepted as u64,
                    started_at_ms,
                    elapsed_s,
                }
            }
        }
    }
}

/// The load input of these flags: the seed-003 preset unless another is named, and its item
/// with the send time in ms unless a body is given. Asks the load for the accepted ids.
fn load_input(shape: &Shape, url: &str) -> Result<probe::load::LoadInput, Error> {
    Ok(item_load(shape.input(url, true)?))
}

/// A load input made the pipeline's: the seed-003 preset unless another is named, its item with
/// the send time in ms unless a body is given, and the accepted ids kept.
pub fn item_load(mut input: probe::load::LoadInput) -> probe::load::LoadInput {
    input.ids = true;
    let preset = input.preset.get_or_insert_with(|| "seed-003".to_owned());
    let seeds_item = matches!(preset.as_str(), "seed-003" | "items");
    if seeds_item && input.body.is_none() && input.bodies.is_none() {
        input.body = Some(ITEM_MS.to_owned());
    }
    input
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
    let title = format!("{} — end-to-end latency against send time ({})", report.target(), report.scenario);
    match crate::chart::latency_over_time_svg(&title, &points, report.sent_s) {
        Ok(svg) => write("timeline.svg", &svg)?,
        Err(err) => eprintln!("latency: no timeline chart: {err}"),
    }
    let samples = stats::samples(rows);
    let lines = samples.iter().map(|(name, ms)| (*name, crate::chart::cdf_points(ms))).collect();
    match crate::chart::cdf_svg(&format!("{} — latency CDF", report.target()), lines) {
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn ids_from_needs_no_url_and_conflicts_with_every_load_flag_by_name() {
        use clap::{Args as _, CommandFactory as _, Parser as _};
        let shape: Vec<String> = Shape::augment_args(clap::Command::new("shape"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        assert_eq!(shape, LOAD_FLAGS, "LOAD_FLAGS names every flag of the load");
        Cli::command().debug_assert();
        let traced =
            Cli::try_parse_from(["x", "--ids-from", "k6.log", "--results-table", "r", "--items-table", "i"])
                .expect("no --url needed");
        assert_eq!(traced.args.ids_from.as_deref(), Some(Path::new("k6.log")));
        for flag in
            [&["--vus", "5"][..], &["--duration", "10s"], &["--preset", "seed-003"], &["--stage", "1s:2"]]
        {
            let argv = [&["x", "--local", "--ids-from", "k6.log"][..], flag].concat();
            let err = Cli::try_parse_from(argv).map(|_| ()).expect_err("conflict");
            assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{flag:?}");
            assert!(err.to_string().contains(&format!("'{} <", flag[0])), "{err}");
        }
        let err = Cli::try_parse_from(["x", "--results-table", "r", "--items-table", "i"]).map(|_| ());
        assert!(err.expect_err("a load needs --url").to_string().contains("--url"));
    }

    #[test]
    fn items_another_tool_sent_are_measured_over_their_upstream_stamps() {
        let rows = vec![
            Row { id: "b".into(), upstream_ms: Some(1_700_000_003_000.0), ..Row::default() },
            Row { id: "a".into(), upstream_ms: Some(1_700_000_000_500.0), ..Row::default() },
        ];
        let sent = Sent::of(None, Some("k6-ids.log"), 3, &rows);
        assert_eq!(
            sent,
            Sent {
                scenario: "sent by another tool; 3 ids from k6-ids.log".into(),
                requests: 3,
                started_at_ms: 1_700_000_000_500,
                elapsed_s: 2.5,
            }
        );
        // Nothing came through: an empty window, starting about now.
        let before = crate::time::now_ms();
        let none = Sent::of(None, Some("k6-ids.log"), 3, &[]);
        assert!(none.started_at_ms >= before && none.elapsed_s == 0.0, "{none:?}");
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
