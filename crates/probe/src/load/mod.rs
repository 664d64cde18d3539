//! Load: drive an endpoint the way k6 and wrk2 do, and report percentiles that do not lie.
//!
//! ```no_run
//! # async fn demo() -> Result<(), probe::ProbeError> {
//! let spec = probe::load::LoadInput {
//!     url: Some("http://127.0.0.1:8000/items".into()),
//!     preset: Some("seed-003".into()), // 10 VUs × 60 s, the seed's JSON body, check 200
//!     ..Default::default()
//! }
//! .validate()?;
//! let report = probe::load::run(&spec, std::future::pending(), |_progress| {}).await?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! A run first resolves the URL and opens one connection (a target that is down or a wrong
//! URL is one clear [`ProbeError::Unreachable`] before any request), then runs the closed or the
//! open loop ([`Mode`]) in the caller's task, calling `on_tick` once a second, until the run is
//! over or `stop` resolves (Ctrl-C: the report is the run so far).

mod conn;
mod engine;
mod ramp;
mod recorder;
mod report;
mod spec;
mod template;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use engine::Progress;
pub use ramp::{Ramp, Stage, parse_duration};
pub use report::{Ending, LoadReport, Second, Trend};
pub use spec::{LoadInput, LoadSpec, MAX_DURATION, MAX_RATE, MAX_TIMEOUT, MAX_VUS, Mode, PRESETS, Preset};
pub use template::{Template, TemplateError, Vars};

use crate::ProbeError;
use crate::stats::round3;
use conn::Target;
use engine::Run;

/// Runs `spec`: see the module documentation.
pub async fn run(
    spec: &LoadSpec,
    stop: impl Future<Output = ()>,
    on_tick: impl FnMut(&Progress),
) -> Result<LoadReport, ProbeError> {
    let target = Target::reach(&spec.url, spec.timeout.min(Duration::from_secs(10))).await?;
    let started_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let span = tracing::info_span!("load", url = %spec.url, scenario = %scenario(spec));
    let _entered = span.enter();
    let (run, outcome) = match &spec.mode {
        Mode::Closed { vus } => {
            let run = Run::new(spec, &target, false);
            let outcome = run.closed(vus, stop, on_tick).await;
            (run, outcome)
        }
        Mode::Open { rate, max_vus } => {
            let run = Run::new(spec, &target, true);
            let outcome = run.open(rate, *max_vus, stop, on_tick).await;
            (run, outcome)
        }
    };
    let elapsed = run.started.elapsed().as_secs_f64();
    let recorder = run.recorder.lock();
    let wire = &target.wire;
    let load = std::sync::atomic::Ordering::Relaxed;
    let report = LoadReport {
        url: spec.url.to_string(),
        method: spec.method.to_string(),
        scenario: scenario(spec),
        input: spec.input.clone(),
        run_id: run.run_id.clone(),
        started_at_ms,
        ending: outcome.ending,
        elapsed_s: round3(elapsed),
        requests: recorder.requests,
        passed: recorder.passed,
        failed: recorder.failed(),
        failed_pct: if recorder.requests > 0 {
            (10_000.0 * recorder.failed() as f64 / recorder.requests as f64).round() / 100.0
        } else {
            0.0
        },
        rate_per_s: if elapsed > 0.0 {
            (recorder.requests as f64 / elapsed * 100.0).round() / 100.0
        } else {
            0.0
        },
        statuses: recorder.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        errors: recorder.errors.clone(),
        duration_ms: recorder.duration(),
        latency_ms: recorder.latency(),
        start_lag_ms: recorder.lag(),
        late: recorder.late,
        dropped: outcome.dropped,
        interrupted: outcome.interrupted,
        max_in_flight: recorder.max_in_flight,
        connections: wire.opened.load(load),
        data_sent: wire.sent.load(load),
        data_received: wire.received.load(load),
        timeline: recorder.timeline(),
        ids: recorder
            .ids
            .as_ref()
            .map(|seqs| seqs.iter().map(|seq| format!("{}-{seq}", run.run_id)).collect()),
    };
    tracing::info!(
        requests = report.requests,
        failed = report.failed,
        rate = report.rate_per_s,
        p99_ms = report.headline().map(|t| t.p99),
        "load finished"
    );
    Ok(report)
}

/// `10s`, `1m30s`, `500ms`: as k6 writes durations.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, (ms % 60_000) as f64 / 1000.0);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0.0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn targets(ramp: &Ramp, unit: &str) -> String {
    let mut values = vec![format!("{}", ramp.start())];
    values.extend(ramp.stages().iter().map(|s| format!("{}", s.target)));
    format!("{}{unit}", values.join(" → "))
}

/// The run in words, for the report.
pub fn scenario(spec: &LoadSpec) -> String {
    // A run of so many iterations has a duration only as a limit.
    let timed = spec.iterations.is_none() || spec.input.duration.is_some();
    let over = if timed {
        format_duration(spec.duration)
    } else {
        format!("at most {}", format_duration(spec.duration))
    };
    let mut text = match &spec.mode {
        Mode::Closed { vus } if vus.stages().len() == 1 && vus.start() == vus.max() => {
            format!("closed loop, {} VUs for {over}", vus.max())
        }
        Mode::Closed { vus } => format!("closed loop, VUs ramping {} over {over}", targets(vus, "")),
        Mode::Open { rate, max_vus } if rate.stages().len() == 1 && rate.start() == rate.max() => {
            format!("open loop, {}/s for {over} (at most {max_vus} in flight)", rate.max())
        }
        Mode::Open { rate, max_vus } => {
            format!(
                "open loop, rate ramping {} over {over} (at most {max_vus} in flight)",
                targets(rate, "/s")
            )
        }
    };
    if let Some(n) = spec.iterations {
        text.push_str(&format!(", {n} requests"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_k6_writes_them() {
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
