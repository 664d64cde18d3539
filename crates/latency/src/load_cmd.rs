//! `latency load`: load an endpoint — closed loop (virtual users) or open loop (an arrival
//! rate) — from this machine, or from inside the region through the probe function.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::ProgressBar;
use probe::ProbeError;
use probe::load::{LoadInput, LoadReport, PRESETS, Progress};

use crate::chart;
use crate::error::Error;
use crate::invoke;

#[derive(clap::Args)]
#[command(after_help = presets_help())]
pub struct Args {
    /// The URL to load, e.g. http://127.0.0.1:8000/hits
    url: String,
    #[command(flatten)]
    shape: Shape,
    /// Run the load inside the region: invoke this deployed probe function (the stack output
    /// ProbeFunctionName); the run is cut short to answer within the function's timeout.
    #[arg(long, value_name = "FUNCTION")]
    via_lambda: Option<String>,
    /// Print the report as JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Also write load.json (report + timeline), timeline.svg and summary.txt here.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the {{id}} of every request that passed its check to FILE, one per line (the
    /// pipeline driver traces them end to end).
    #[arg(long, value_name = "FILE")]
    ids: Option<PathBuf>,
    /// No live progress line.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// What to send and how: the load spec's fields, as flags.
#[derive(clap::Args, Clone, Default)]
pub struct Shape {
    /// Defaults for one of this product's endpoints (listed below); other flags override them.
    #[arg(long, short = 'p')]
    pub preset: Option<String>,
    /// HTTP method [default: GET, or POST with a body].
    #[arg(long, short = 'X')]
    pub method: Option<String>,
    /// A header, "Name: value" (the value may hold placeholders); repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The body: a template ({{id}}, {{vu}}, {{iter}}, {{seq}}, {{now_s}}, {{now_ms}}, {{uuid}},
    /// {{int A B}}, {{float A B}}).
    #[arg(long, short = 'b', conflicts_with_all = ["body_file", "bodies"])]
    pub body: Option<String>,
    /// The body template, from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "bodies")]
    pub body_file: Option<PathBuf>,
    /// A file of bodies, one per line (each a template), sent in turn.
    #[arg(long, value_name = "FILE")]
    pub bodies: Option<PathBuf>,
    /// Statuses that pass the check, e.g. 200 or 200-299,404 [default: 200-399].
    #[arg(long)]
    pub expect: Option<String>,
    /// Closed loop: virtual users, each sending when its last request answered [default: 1].
    #[arg(long, short = 'u')]
    pub vus: Option<i64>,
    /// Open loop: requests started per second, on schedule whatever the target does.
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Open loop: at most this many requests in flight [default: 100].
    #[arg(long)]
    pub max_vus: Option<i64>,
    /// How long to start requests: 60s, 1m30s [default: 10s].
    #[arg(long, short = 'd')]
    pub duration: Option<String>,
    /// Stop after this many requests.
    #[arg(long, short = 'i')]
    pub iterations: Option<i64>,
    /// Ramps, DURATION:TARGET comma-separated or repeated: virtual users (closed loop), or with
    /// --rate the arrival rate starting from --rate (open loop).
    #[arg(long = "stage", short = 's', value_name = "DURATION:TARGET")]
    pub stages: Vec<String>,
    /// Per request, from its (scheduled) start to the last byte [default: 30s].
    #[arg(long)]
    pub timeout: Option<String>,
}

fn presets_help() -> String {
    let mut help = String::from("Presets:\n");
    for preset in PRESETS {
        help.push_str(&format!("  {:<10} {}\n", preset.name, preset.about));
    }
    help
}

impl Shape {
    /// The load input these flags describe; `--body-file` and `--bodies` are read here.
    pub fn input(&self, url: &str, ids: bool) -> Result<LoadInput, Error> {
        let read = |path: &Path, flag: &str| {
            std::fs::read_to_string(path).map_err(Error::io(format!("--{flag} {}", path.display())))
        };
        let body = match (&self.body, &self.body_file) {
            (Some(body), _) => Some(body.clone()),
            (None, Some(path)) => Some(read(path, "body-file")?),
            (None, None) => None,
        };
        let bodies = match &self.bodies {
            Some(path) => Some(
                read(path, "bodies")?.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect(),
            ),
            None => None,
        };
        Ok(LoadInput {
            url: Some(url.to_owned()),
            preset: self.preset.clone(),
            method: self.method.clone(),
            headers: self.headers.clone(),
            body,
            bodies,
            expect: self.expect.clone(),
            vus: self.vus,
            rate: self.rate,
            max_vus: self.max_vus,
            duration: self.duration.clone(),
            iterations: self.iterations,
            stages: (!self.stages.is_empty()).then(|| self.stages.join(",")),
            timeout: self.timeout.clone(),
            ids,
        })
    }
}

/// A spec error as the flag it is about: `--max-vus: must be …`.
pub fn flag_error(err: ProbeError) -> Error {
    match err {
        ProbeError::Invalid { field, reason } => {
            Error::Invalid(format!("--{}: {reason}", field.replace('_', "-")))
        }
        other => Error::Probe(other),
    }
}

pub async fn run(args: Args) -> Result<(), Error> {
    let input = args.shape.input(&args.url, args.ids.is_some())?;
    // Every mistake is reported before a request is sent (or a function invoked).
    let spec = input.clone().validate().map_err(flag_error)?;
    let report = match &args.via_lambda {
        Some(function) => via_lambda(&invoke::client().await, function, &input).await?,
        None => {
            let show = !args.quiet && std::io::stderr().is_terminal();
            from_here(&spec, show).await?
        }
    };
    if let Some(path) = &args.ids {
        let ids = report.ids.as_deref().unwrap_or_default();
        let mut text = ids.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))?;
    }
    if let Some(dir) = &args.out {
        write_out(dir, &report)?;
    }
    if args.json {
        println!("{}", to_json(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// Runs `spec` from this machine; Ctrl-C stops it and the report is the run so far. With
/// `show`, a progress line on stderr once a second.
pub async fn from_here(spec: &probe::load::LoadSpec, show: bool) -> Result<LoadReport, Error> {
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut stderr = std::io::stderr();
    let report = probe::load::run(spec, stop, |progress| {
        if show {
            let _ = write!(stderr, "\r\x1b[2K{}", progress_line(progress));
            let _ = stderr.flush();
        }
    })
    .await?;
    if show {
        let _ = write!(stderr, "\r\x1b[2K");
    }
    Ok(report)
}

/// `  12s  12,345 reqs  1,023/s  0 failed  p99 1.23ms  10 in flight`
fn progress_line(p: &Progress) -> String {
    let (rate, p99) = match &p.last_second {
        Some(s) => (s.requests.to_string(), s.p99_ms.map_or_else(|| "-".into(), |v| format!("{v:.2}ms"))),
        None => ("-".into(), "-".into()),
    };
    format!(
        "{:>5.0}s  {} reqs  {rate}/s  {} failed  p99(1s) {p99}  {} in flight",
        p.elapsed_s, p.requests, p.failed, p.in_flight
    )
}

/// Runs the load inside the region: the deployed probe function takes `{"load": input}`.
pub async fn via_lambda(
    client: &aws_sdk_lambda::Client,
    function: &str,
    input: &LoadInput,
) -> Result<LoadReport, Error> {
    let event = serde_json::json!({ "load": input });
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!(
        "{function} loading {} from inside the region",
        input.url.as_deref().unwrap_or_default()
    ));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let result = invoke::invoke(client, function, &event).await;
    spinner.finish_and_clear();
    serde_json::from_value(result?).map_err(|e| Error::Lambda {
        function: function.to_owned(),
        kind: "InvalidResponse".into(),
        detail: format!("not a load report: {e}"),
    })
}

fn to_json(report: &LoadReport) -> Result<String, Error> {
    serde_json::to_string_pretty(report).map_err(|e| Error::Invalid(format!("report: {e}")))
}

/// load.json, timeline.svg and summary.txt in `dir`.
pub fn write_out(dir: &Path, report: &LoadReport) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(Error::io(format!("writing {}", path.display())))
    };
    write("load.json", &to_json(report)?)?;
    write("summary.txt", &format!("{report}\n"))?;
    let title = format!("{} {} — {}", report.method, report.url, report.scenario);
    match chart::timeline_svg(&title, &report.timeline) {
        Ok(svg) => write("timeline.svg", &svg)?,
        Err(err) => eprintln!("latency: no timeline chart: {err}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_the_load_input_and_errors_name_the_flag() {
        let shape = Shape {
            preset: Some("seed-003".into()),
            stages: vec!["10s:5".into(), "5s:0".into()],
            max_vus: Some(3),
            ..Shape::default()
        };
        let input = shape.input("http://x/items", false).unwrap();
        assert_eq!(input.stages.as_deref(), Some("10s:5,5s:0"));
        let err = input.validate().map_err(flag_error).unwrap_err().to_string();
        assert!(err.starts_with("--max-vus: "), "{err}");
    }

    #[test]
    fn bodies_come_one_per_line_from_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bodies.txt");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":{{seq}}}\n").unwrap();
        let input = Shape { bodies: Some(path), ..Shape::default() }.input("http://x/", false).unwrap();
        assert_eq!(
            input.bodies.as_deref(),
            Some(&["{\"a\":1}".to_owned(), "{\"a\":{{seq}}}".to_owned()][..])
        );
        let missing = Shape { body_file: Some(dir.path().join("nope")), ..Shape::default() };
        assert!(missing.input("http://x/", false).unwrap_err().to_string().contains("--body-file"));
    }
}
