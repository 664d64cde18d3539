//! The result of a run: the Lambda's JSON answer, the CLI's `--json`, and (through `Display`)
//! the short text summary both print.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Method;

/// One probe run. Times are milliseconds rounded to 2 decimals (samples: 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub url: String,
    pub method: Method,
    /// Measured requests asked for.
    pub count: u64,
    pub concurrency: u32,
    /// Requests sent after the first and discarded.
    pub warmup: u64,
    /// Measured requests sent: `count`, unless a deadline stopped the run early.
    pub completed: u64,
    /// Measured requests answered 2xx in time (the stats cover these only).
    pub ok: u64,
    /// Failed measured requests by kind: `status_<code>` (a non-2xx answer), `timeout`,
    /// `connect`, `redirect_off_host`, `too_many_redirects`, `redirect`, `body`, `request`.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// TCP connections the client opened during the run (first, warmup and measured
    /// requests; not the setup probe's); 0 when every request found a pooled one. Usually
    /// `concurrency`, sometimes a spare or two more: when a request finds no idle connection
    /// because the one its worker just used is not back in hyper's pool yet, hyper starts a
    /// connect anyway and keeps it if the pooled one wins (hyperium/hyper#4134). The request
    /// itself does not wait for that connect.
    pub connections: u64,
    pub setup: Setup,
    pub first: First,
    /// Over the `ok` measured requests; `None` when there were none.
    pub stats: Option<Stats>,
    /// Non-empty log-spaced buckets of the `ok` measured requests (see [`crate::stats`]).
    #[serde(default)]
    pub histogram: Vec<Bucket>,
    /// Wall time of the measured phase, in seconds.
    pub elapsed_s: f64,
    /// `completed / elapsed_s`.
    pub requests_per_s: f64,
    /// Every `ok` measured request's duration in ms, in the order they were started; only when
    /// the spec asked for samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_ms: Option<Vec<f64>>,
}

/// Connection setup, timed apart from any request: a DNS lookup of the URL's host, then a TCP
/// connect to the first address that accepts (closed again without sending anything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    /// The address connected to.
    #[serde(default)]
    pub address: Option<String>,
    /// Why the lookup or every connect failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The first request of the run, alone: the cold path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct First {
    pub ms: f64,
    /// The final status (after same-host redirects); `None` when there was no answer.
    pub status: Option<u16>,
    /// Whether it opened a TCP connection or reused one this prober kept from an earlier run.
    pub connection: Connection,
    /// The error kind when it failed (as in [`Report::errors`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    New,
    Reused,
}

/// Latency statistics in ms; percentiles by nearest rank (see [`crate::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Samples with a duration ≤ `le_ms` and above the previous bucket's bound; `le_ms: null` is
/// the overflow bucket (above the last bound, 10 s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub le_ms: Option<f64>,
    pub count: u64,
}

impl Report {
    /// Failed measured requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// A few lines for people:
///
/// ```text
/// GET https://example.com/hits: 1000 requests, concurrency 4, warmup 4
///   setup      DNS 1.20 ms, TCP connect 0.85 ms (93.184.216.34:443)
///   first      31.52 ms, 200, new connection
///   steady     1000 ok, 0 errors in 6.41 s (156.0 req/s); 4 new connections
///   latency    mean 25.61  min 22.10  p50 25.02  p90 27.85  p99 41.30  max 63.11 ms
/// ```
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {}: {} requests, concurrency {}, warmup {}",
            self.method, self.url, self.count, self.concurrency, self.warmup
        )?;
        let ms = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2} ms"));
        write!(f, "  setup      DNS {}, TCP connect {}", ms(self.setup.dns_ms), ms(self.setup.connect_ms))?;
        if let Some(address) = &self.setup.address {
            write!(f, " ({address})")?;
        }
        if let Some(error) = &self.setup.error {
            write!(f, "; {error}")?;
        }
        writeln!(f)?;
        let answer = match (self.first.status, &self.first.error) {
            (_, Some(error)) => error.clone(),
            (Some(status), None) => status.to_string(),
            (None, None) => "no answer".to_owned(),
        };
        let connection = match self.first.connection {
            Connection::New => "new connection",
            Connection::Reused => "reused connection",
        };
        writeln!(f, "  first      {:.2} ms, {answer}, {connection}", self.first.ms)?;
        write!(f, "  steady     {} ok, {} errors", self.ok, self.error_count())?;
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        write!(
            f,
            " in {:.2} s ({:.1} req/s); {} new connection{}",
            self.elapsed_s,
            self.requests_per_s,
            self.connections,
            if self.connections == 1 { "" } else { "s" }
        )?;
        if self.completed < self.count {
            write!(f, "; stopped at the deadline after {} of {}", self.completed, self.count)?;
        }
        writeln!(f)?;
        match &self.stats {
            Some(s) => write!(
                f,
                "  latency    mean {:.2}  min {:.2}  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
                s.mean, s.min, s.p50, s.p90, s.p99, s.max
            ),
            None => write!(f, "  latency    - (no successful requests)"),
        }
    }
}
