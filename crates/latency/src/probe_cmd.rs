//! `latency probe`: latency stats for a URL, from this machine or from the deployed probe Lambda.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use probe::{Prober, Report, SpecInput};

use crate::error::Error;
use crate::invoke;

#[derive(clap::Args)]
pub struct Args {
    /// The URL to measure, e.g. https://abc.execute-api.eu-west-2.amazonaws.com/hits
    url: String,
    #[command(flatten)]
    run: RunArgs,
    /// Run the probe inside the region: invoke this deployed probe function (name or ARN; the
    /// stack output ProbeFunctionName) instead of measuring from here.
    #[arg(long, value_name = "FUNCTION")]
    via_lambda: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// With --json: include every measured request's duration.
    #[arg(long, requires = "json")]
    samples: bool,
}

/// How many requests, how, and how patiently: shared with `latency report`.
#[derive(clap::Args, Clone, Default)]
pub struct RunArgs {
    /// Measured requests (the first request and the warm-up are not among them) [default: 100].
    #[arg(long, short = 'n')]
    pub count: Option<i64>,
    /// Requests in flight at once, each worker on its own keep-alive connection [default: 1].
    #[arg(long, short = 'c')]
    pub concurrency: Option<i64>,
    /// Requests sent and discarded before measuring [default: the concurrency, so that every
    /// connection is open].
    #[arg(long)]
    pub warmup: Option<i64>,
    /// GET, or HEAD (hits answers HEAD without counting).
    #[arg(long)]
    pub method: Option<String>,
    /// Per-request timeout in ms [default: 10000].
    #[arg(long)]
    pub timeout_ms: Option<i64>,
}

impl RunArgs {
    pub fn input(&self, url: &str, samples: bool) -> SpecInput {
        SpecInput {
            url: Some(url.to_owned()),
            count: self.count,
            concurrency: self.concurrency,
            warmup: self.warmup,
            method: self.method.clone(),
            timeout_ms: self.timeout_ms,
            samples,
        }
    }
}

pub async fn run(args: Args) -> Result<(), Error> {
    let input = args.run.input(&args.url, args.samples);
    let report = match &args.via_lambda {
        Some(function) => via_lambda(&invoke::client().await, function, input).await?,
        None => from_here(&Prober::new()?, input).await?,
    };
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Invalid(format!("report: {e}")))?;
        println!("{json}");
    } else {
        println!("{report}");
    }
    Ok(())
}

/// Measures from this machine, with a progress bar on stderr when it is a terminal.
pub async fn from_here(prober: &Prober, input: SpecInput) -> Result<Report, Error> {
    let spec = input.validate()?;
    let bar = ProgressBar::new(spec.count());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(spec.url().to_string());
    let report = prober.run_with_progress(&spec, || bar.inc(1)).await;
    bar.finish_and_clear();
    Ok(report)
}

/// Measures from inside the region: the deployed probe function runs the same spec.
pub async fn via_lambda(
    client: &aws_sdk_lambda::Client,
    function: &str,
    input: SpecInput,
) -> Result<Report, Error> {
    // Validate here first: a typo should not cost an invocation.
    input.clone().validate()?;
    let event = event(&input);
    let spinner = ProgressBar::new_spinner();
    spinner
        .set_message(format!("{function} probing {} from inside the region", input.url.unwrap_or_default()));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let result = invoke::invoke(client, function, &event).await;
    spinner.finish_and_clear();
    serde_json::from_value(result?).map_err(|e| Error::Lambda {
        function: function.to_owned(),
        kind: "InvalidResponse".into(),
        detail: format!("not a probe report: {e}"),
    })
}

/// The probe function's event for `input` (the fields `Spec::from_event` reads).
fn event(input: &SpecInput) -> serde_json::Value {
    let mut event = serde_json::Map::new();
    event.insert("url".into(), input.url.clone().into());
    let numbers = [
        ("count", input.count),
        ("concurrency", input.concurrency),
        ("warmup", input.warmup),
        ("timeout_ms", input.timeout_ms),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            event.insert(key.into(), value.into());
        }
    }
    if let Some(method) = &input.method {
        event.insert("method".into(), method.clone().into());
    }
    if input.samples {
        event.insert("samples".into(), true.into());
    }
    event.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_event_carries_only_what_was_given_and_validates_as_the_same_spec() {
        let input = RunArgs { count: Some(10), method: Some("HEAD".into()), ..RunArgs::default() }
            .input("http://example.com/hits", true);
        let event = event(&input);
        assert_eq!(
            event,
            serde_json::json!({"url": "http://example.com/hits", "count": 10, "method": "HEAD", "samples": true})
        );
        assert_eq!(probe::Spec::from_event(event).expect("valid"), input.validate().expect("valid"));
    }
}
