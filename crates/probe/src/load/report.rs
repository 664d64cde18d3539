//! The report of a load run: k6's summary (requests, rate, failed share, duration trend, data
//! sent and received), the open loop's latency from the scheduled start, and a per-second
//! timeline. Serialisable both ways: the probe Lambda sends it, the CLI reads it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::spec::LoadInput;

/// A distribution in milliseconds, from an HDR histogram (three significant figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub count: u64,
    pub min: f64,
    pub avg: f64,
    pub med: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// One second of the run: what ended in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds from the start.
    pub t: u64,
    pub requests: u64,
    pub failed: u64,
    /// Latency of the answers that ended in this second (from the scheduled start in an open
    /// loop), ms; `None` when none did.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// Its duration, iterations or stages were done.
    Finished,
    /// Stopped by hand (Ctrl-C): the figures are the run so far.
    Interrupted,
    /// Stopped early to answer before a deadline (the probe Lambda's timeout).
    Deadline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub url: String,
    pub method: String,
    /// In words: `closed loop, 10 VUs for 60s` or `open loop, 500/s for 30s (at most 100 in flight)`.
    pub scenario: String,
    /// What was asked (preset filled in).
    pub input: LoadInput,
    /// The random part of every `{{id}}` of this run.
    pub run_id: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    pub ending: Ending,
    pub elapsed_s: f64,
    /// Requests that ended: answered, failed or timed out.
    pub requests: u64,
    /// Requests whose answer passed the check.
    pub passed: u64,
    pub failed: u64,
    pub failed_pct: f64,
    /// `requests / elapsed_s`.
    pub rate_per_s: f64,
    pub statuses: BTreeMap<String, u64>,
    /// Failures by kind: `status_503`, `timeout`, `connect`, `closed`, …
    pub errors: BTreeMap<String, u64>,
    /// Send → last byte of every answered request (k6's `http_req_duration`).
    pub duration_ms: Option<Trend>,
    /// Open loop: scheduled start → last byte (coordinated omission corrected: a stall counts
    /// against every request that should have started during it).
    pub latency_ms: Option<Trend>,
    /// Open loop: scheduled start → actual start.
    pub start_lag_ms: Option<Trend>,
    /// Open loop: starts 5 ms or more behind schedule.
    pub late: u64,
    /// Open loop: scheduled starts that never went out (no free slot before the end).
    pub dropped: u64,
    /// Requests in flight when the run was stopped (not counted in `requests`).
    pub interrupted: u64,
    pub max_in_flight: u64,
    pub connections: u64,
    pub data_sent: u64,
    pub data_received: u64,
    pub timeline: Vec<Second>,
    /// The `{{id}}` of every request that passed its check, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

impl LoadReport {
    /// The headline trend: latency from the scheduled start in an open loop, the request
    /// duration in a closed one.
    pub fn headline(&self) -> Option<&Trend> {
        self.latency_ms.as_ref().or(self.duration_ms.as_ref())
    }
}

/// `272 kB`, as k6 prints data (decimal units).
fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

/// A duration in ms as k6 prints one: `350.92ms`, `84µs`, `1.2s`.
fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 1.0 {
        format!("{v:.2}ms")
    } else {
        format!("{:.0}µs", v * 1000.0)
    }
}

fn trend_line(f: &mut fmt::Formatter<'_>, name: &str, t: &Trend) -> fmt::Result {
    writeln!(
        f,
        "  {name:.<28}: avg={} min={} med={} max={} p(90)={} p(95)={} p(99)={} p(99.9)={}",
        ms(t.avg),
        ms(t.min),
        ms(t.med),
        ms(t.max),
        ms(t.p90),
        ms(t.p95),
        ms(t.p99),
        ms(t.p999)
    )
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  {} {}", self.method, self.url)?;
        writeln!(f, "  scenario: {}", self.scenario)?;
        match self.ending {
            Ending::Finished => {}
            Ending::Interrupted => {
                writeln!(
                    f,
                    "  stopped by hand after {:.1}s: the figures are the run so far",
                    self.elapsed_s
                )?;
            }
            Ending::Deadline => writeln!(f, "  stopped early to answer before the function's timeout")?,
        }
        writeln!(f)?;
        let checked = self.requests.max(1) as f64;
        writeln!(
            f,
            "  {:.<28}: {:.2}% ✓ {} ✗ {}",
            "checks",
            100.0 * self.passed as f64 / checked,
            self.passed,
            self.failed
        )?;
        let per_s = |n: u64| if self.elapsed_s > 0.0 { n as f64 / self.elapsed_s } else { 0.0 };
        writeln!(
            f,
            "  {:.<28}: {} {}/s",
            "data_received",
            bytes(self.data_received),
            bytes(per_s(self.data_received) as u64)
        )?;
        writeln!(
            f,
            "  {:.<28}: {} {}/s",
            "data_sent",
            bytes(self.data_sent),
            bytes(per_s(self.data_sent) as u64)
        )?;
        if let Some(t) = &self.duration_ms {
            trend_line(f, "http_req_duration", t)?;
        }
        if let Some(t) = &self.latency_ms {
            trend_line(f, "latency (from schedule)", t)?;
        }
        if let Some(t) = &self.start_lag_ms {
            trend_line(f, "start lag", t)?;
        }
        writeln!(
            f,
            "  {:.<28}: {:.2}% ✓ {} ✗ {}",
            "http_req_failed", self.failed_pct, self.failed, self.passed
        )?;
        writeln!(f, "  {:.<28}: {} {:.2}/s", "http_reqs", self.requests, self.rate_per_s)?;
        if !self.errors.is_empty() {
            let errors: Vec<String> = self.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  {:.<28}: {}", "errors", errors.join(" "))?;
        }
        if self.latency_ms.is_some() || self.start_lag_ms.is_some() {
            writeln!(
                f,
                "  {:.<28}: {} late (≥ 5 ms behind schedule), {} dropped (never sent)",
                "starts", self.late, self.dropped
            )?;
        }
        writeln!(
            f,
            "  {:.<28}: {} max in flight, {} connections opened",
            "vus", self.max_in_flight, self.connections
        )?;
        if self.interrupted > 0 {
            writeln!(
                f,
                "  {:.<28}: {} (in flight when stopped, not counted)",
                "interrupted", self.interrupted
            )?;
        }
        write!(f, "  running ({:.1}s), {} requests", self.elapsed_s, self.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_durations_read_like_k6() {
        assert_eq!(bytes(272_000), "272 kB");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_400_000), "3.4 MB");
        assert_eq!(ms(350.92), "350.92ms");
        assert_eq!(ms(0.084), "84µs");
        assert_eq!(ms(1234.0), "1.23s");
    }
}
