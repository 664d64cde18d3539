//! What to probe and how: [`SpecInput`] (raw, from an event or the CLI) → [`Spec`] (validated).

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProbeError;

/// At most this many measured requests per run (the Lambda has 5 minutes).
pub const MAX_COUNT: i64 = 100_000;
/// At most this many concurrent workers (and so pooled connections) per run.
pub const MAX_CONCURRENCY: i64 = 256;
/// At most this many warmup requests per run.
pub const MAX_WARMUP: i64 = 100_000;
/// The longest per-request timeout: the Lambda's own limit, 5 minutes.
pub const MAX_TIMEOUT_MS: i64 = 300_000;

const DEFAULT_COUNT: i64 = 100;
const DEFAULT_TIMEOUT_MS: i64 = 10_000;
/// Once a deadline is set, requests stop this long before `deadline - timeout` so the report
/// still gets out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// The event's fields; `hits` is the original's name for `count`.
const FIELDS: [&str; 8] =
    ["url", "count", "hits", "concurrency", "warmup", "method", "timeout_ms", "samples"];

/// The HTTP method of every request of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    /// For monitors: the hits app answers HEAD without incrementing.
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }

    pub(crate) fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A spec as given, before validation: every field optional, numbers signed so that a negative
/// value reaches [`SpecInput::validate`] and gets its own message. The CLI fills this from its
/// arguments; [`Spec::from_event`] fills it from a Lambda event. One validation path for both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecInput {
    /// `http://` or `https://` URL. Required.
    pub url: Option<String>,
    /// Measured requests, 1..=[`MAX_COUNT`]; default 100.
    pub count: Option<i64>,
    /// Workers sending at once, 1..=[`MAX_CONCURRENCY`] and at most `count`; default 1.
    pub concurrency: Option<i64>,
    /// Discarded requests before measuring, 0..=[`MAX_WARMUP`]; default `concurrency`.
    pub warmup: Option<i64>,
    /// `GET` or `HEAD` (any case); default `GET`.
    pub method: Option<String>,
    /// Per-request timeout (connect to last body byte), 1..=[`MAX_TIMEOUT_MS`]; default 10 000.
    pub timeout_ms: Option<i64>,
    /// Include every successful measured request's duration in the report.
    pub samples: bool,
}

/// A validated probe run. Build it with [`SpecInput::validate`] or [`Spec::from_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    url: Url,
    count: u64,
    concurrency: u32,
    warmup: u64,
    method: Method,
    timeout: Duration,
    samples: bool,
    stop_at: Option<Instant>,
}

impl SpecInput {
    /// Checks every field (in the order url, count, concurrency, warmup, method, timeout_ms) and
    /// fills in the defaults; the first problem is the error.
    pub fn validate(self) -> Result<Spec, ProbeError> {
        let url = parse_url(self.url)?;
        let count = in_range("count", self.count.unwrap_or(DEFAULT_COUNT), 1, MAX_COUNT)?;
        let concurrency = in_range("concurrency", self.concurrency.unwrap_or(1), 1, MAX_CONCURRENCY)?;
        if concurrency > count {
            return Err(ProbeError::invalid(
                "concurrency",
                format!("must be at most count ({count}), got {concurrency}"),
            ));
        }
        let warmup = in_range("warmup", self.warmup.unwrap_or(concurrency), 0, MAX_WARMUP)?;
        let method = match self.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("GET") => Method::Get,
            Some("HEAD") => Method::Head,
            Some(_) => {
                let given = self.method.unwrap_or_default();
                return Err(ProbeError::invalid("method", format!("must be GET or HEAD, got {given:?}")));
            }
        };
        let timeout_ms =
            in_range("timeout_ms", self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS), 1, MAX_TIMEOUT_MS)?;
        Ok(Spec {
            url,
            count: count as u64,
            concurrency: concurrency as u32,
            warmup: warmup as u64,
            method,
            timeout: Duration::from_millis(timeout_ms as u64),
            samples: self.samples,
            stop_at: None,
        })
    }
}

pub(crate) fn parse_url(url: Option<String>) -> Result<Url, ProbeError> {
    let Some(url) = url else {
        return Err(ProbeError::invalid(
            "url",
            "missing; give the URL to probe, e.g. \"https://example.com/hits\"",
        ));
    };
    let parsed =
        Url::parse(&url).map_err(|e| ProbeError::invalid("url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ProbeError::invalid(
            "url",
            format!("scheme must be http or https, got {:?} in {url:?}", parsed.scheme()),
        ));
    }
    if parsed.host().is_none() {
        return Err(ProbeError::invalid("url", format!("{url:?} has no host")));
    }
    Ok(parsed)
}

fn in_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, ProbeError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ProbeError::invalid(field, format!("must be from {min} to {max}, got {value}")))
    }
}

impl Spec {
    /// A spec from a Lambda event, in either shape:
    ///
    /// - the original's `{"url": "...", "hits": N}` (`hits` is `count`);
    /// - `{"url", "count", "concurrency", "warmup", "method", "timeout_ms", "samples"}`, all but
    ///   `url` optional.
    ///
    /// A field set to `null` counts as absent. Unknown fields are rejected (a misspelt
    /// `concurency` would otherwise silently run with the default), as are `count` and `hits`
    /// together. Every error names its field.
    pub fn from_event(event: Value) -> Result<Spec, ProbeError> {
        let Value::Object(fields) = event else {
            return Err(ProbeError::invalid(
                "event",
                format!(
                    "must be a JSON object like {{\"url\": \"https://example.com/hits\", \"count\": 100}}, got {}",
                    kind(&event)
                ),
            ));
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ProbeError::invalid(
                unknown.as_str(),
                format!("unknown field; accepted: {}", FIELDS.join(", ")),
            ));
        }
        let get = |name: &str| fields.get(name).filter(|v| !v.is_null());
        let count = match (get("count"), get("hits")) {
            (Some(_), Some(_)) => {
                return Err(ProbeError::invalid(
                    "hits",
                    "give count or hits (the original's name for it), not both",
                ));
            }
            (Some(v), None) => Some(integer("count", v)?),
            (None, Some(v)) => Some(integer("hits", v)?),
            (None, None) => None,
        };
        let input = SpecInput {
            url: get("url").map(|v| string("url", v)).transpose()?,
            count,
            concurrency: get("concurrency").map(|v| integer("concurrency", v)).transpose()?,
            warmup: get("warmup").map(|v| integer("warmup", v)).transpose()?,
            method: get("method").map(|v| string("method", v)).transpose()?,
            timeout_ms: get("timeout_ms").map(|v| integer("timeout_ms", v)).transpose()?,
            samples: match get("samples") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ProbeError::invalid(
                        "samples",
                        format!("must be true or false, got {}", kind(other)),
                    ));
                }
            },
        };
        // `hits` is validated under its own name, so its message names the field that was sent.
        match input.validate() {
            Err(ProbeError::Invalid { field, reason }) if field == "count" && get("hits").is_some() => {
                Err(ProbeError::Invalid { field: "hits".into(), reason })
            }
            other => other,
        }
    }

    /// Stop starting requests in time to return by `deadline`: no request starts after
    /// `deadline - (timeout + 0.5 s)`, so even the last one ends (or times out) before it — or,
    /// when the time left is shorter than that, after half the time left. A run cut short this
    /// way reports `completed < count`. The Lambda sets this from its invocation's deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Spec {
        self.stop_at = Some(stop_before(deadline, self.timeout));
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Measured requests.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Workers sending at once, each taking the next request when its previous one is done.
    pub fn concurrency(&self) -> u32 {
        self.concurrency
    }

    /// Requests sent after the first and thrown away, `min(warmup, concurrency)` at a time.
    ///
    /// The default is `concurrency`, not `concurrency - 1`: to open N pooled connections, N
    /// requests must be in flight at once, and the first request's connection is idle in the
    /// pool by then, so one of them reuses it. With `concurrency` warmup requests every worker
    /// of the measured phase finds an open connection; with one fewer, one of the measured
    /// requests would pay for a connect.
    pub fn warmup(&self) -> u64 {
        self.warmup
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Per request, from the start of connecting to the last body byte.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the report lists every successful measured request's duration.
    pub fn samples(&self) -> bool {
        self.samples
    }

    /// When the run stops starting requests, if [`Spec::with_deadline`] set one.
    pub fn stop_at(&self) -> Option<Instant> {
        self.stop_at
    }
}

/// When to stop starting requests of `timeout` each to answer by `deadline`: `deadline -
/// (timeout + 0.5 s)`, or half the time left when that is shorter. The probe's and the load's.
pub(crate) fn stop_before(deadline: Instant, timeout: Duration) -> Instant {
    let now = Instant::now();
    let left = deadline.saturating_duration_since(now);
    let keep = (timeout + DEADLINE_MARGIN).min(left / 2);
    deadline.checked_sub(keep).unwrap_or(now)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string(field: &str, value: &Value) -> Result<String, ProbeError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(ProbeError::invalid(field, format!("must be a string, got {}", kind(other)))),
    }
}

fn integer(field: &str, value: &Value) -> Result<i64, ProbeError> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(i),
            None if n.is_u64() => Err(ProbeError::invalid(field, format!("{n} is far too large"))),
            None => Err(ProbeError::invalid(field, format!("must be a whole number, got {n}"))),
        },
        other => Err(ProbeError::invalid(field, format!("must be a whole number, got {}", kind(other)))),
    }
}
