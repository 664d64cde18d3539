//! What to load and how: [`LoadInput`] (raw, from the CLI's flags or a Lambda event) →
//! [`LoadSpec`] (validated). One validation path for both; every error names its field (the
//! CLI shows it as the flag of the same name).

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::ramp::{self, Ramp};
use super::template::Template;
use crate::ProbeError;

/// At most this many virtual users (connections) at once.
pub const MAX_VUS: u64 = 10_000;
/// The highest arrival rate, per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// The longest per-request timeout: Lambda's own limit.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// API Gateway's longest integration timeout: nothing of this product answers later.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_VUS: u64 = 100;
/// How long a run of `iterations` without a duration may take at most (k6's `maxDuration`).
const ITERATIONS_MAX_DURATION: Duration = Duration::from_secs(600);

/// A load run as given: every field optional. The CLI fills it from flags (reading `--body-file`
/// and `--bodies` files itself), the probe Lambda from the `load` object of its event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadInput {
    /// `http://` or `https://` URL. Required.
    pub url: Option<String>,
    /// Defaults for one of this product's endpoints ([`PRESETS`]); every other field overrides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Any HTTP method; default GET (POST when there is a body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `Name: value` headers; values are templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// The body, a template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Bodies taken in turn, request by request (each a template).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Vec<String>>,
    /// Statuses that pass the check: `200`, `200-299`, comma-separated; default 200-399.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Closed loop: this many virtual users, each sending when its last request answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vus: Option<i64>,
    /// Open loop: this many requests started per second, whatever the target does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open loop: at most this many requests in flight; default 100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_vus: Option<i64>,
    /// k6 duration (`60s`, `1m30s`); default 10 s, or at most 10 min with `iterations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Stop after this many requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterations: Option<i64>,
    /// `DURATION:TARGET,…`: ramp the virtual users (closed loop) or, with `rate`, the arrival
    /// rate from `rate` (open loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stages: Option<String>,
    /// Per request, from its (intended) start to the last body byte; k6 duration; default 30 s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Report the `{{id}}` of every request that passed its check.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ids: bool,
}

/// A preset: defaults for one of this product's endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    method: &'static str,
    content_type: Option<&'static str>,
    body: Option<&'static str>,
    expect: &'static str,
    /// (VUs, duration) when the run gives no shape of its own.
    shape: Option<(i64, &'static str)>,
}

/// The body of seed 003's k6 script: an id, a message and the send time in whole seconds.
const ITEM: &str = r#"{"id":"{{id}}","message":"Hello World","timestamp":{{now_s}}}"#;

/// This product's endpoints.
pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "hits",
        about: "GET /hits: count one hit",
        method: "GET",
        content_type: None,
        body: None,
        expect: "200",
        shape: None,
    },
    Preset {
        name: "events",
        about: "POST /events: one JSON event, as a page sends it",
        method: "POST",
        content_type: Some("application/json"),
        body: Some(r#"{"type":"load","timestamp":{{now_ms}},"id":"{{id}}"}"#),
        expect: "200-299",
        shape: None,
    },
    Preset {
        name: "calc",
        about: "POST /calc: calc(x) with x ~ U(0, 2) s, as the queue driver posts it",
        method: "POST",
        content_type: Some("application/json"),
        body: Some(r#"{"x":{{float 0 2}}}"#),
        expect: "200-299",
        shape: None,
    },
    Preset {
        name: "items",
        about: "POST /items: the pipeline's item, as seed 003's k6 script sends it",
        method: "POST",
        content_type: Some("application/json"),
        body: Some(ITEM),
        expect: "200",
        shape: None,
    },
    Preset {
        name: "seed-003",
        about: "seed 003's k6 run: 10 VUs for 60 s posting its item, check status 200",
        method: "POST",
        content_type: Some("application/json"),
        body: Some(ITEM),
        expect: "200",
        shape: Some((10, "60s")),
    },
];

/// How requests are started.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Each virtual user sends its next request when the last one answered; `vus` is the number
    /// of them over time (constant, or ramping with stages).
    Closed { vus: Ramp },
    /// Requests start on schedule (the arrival rate over time), at most `max_vus` in flight.
    Open { rate: Ramp, max_vus: u64 },
}

/// A validated load run. Build it with [`LoadInput::validate`].
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub(crate) url: Url,
    pub(crate) method: hyper::Method,
    pub(crate) headers: Vec<(hyper::header::HeaderName, Template)>,
    pub(crate) bodies: Vec<Template>,
    pub(crate) expect: Vec<RangeInclusive<u16>>,
    pub(crate) mode: Mode,
    pub(crate) duration: Duration,
    pub(crate) iterations: Option<u64>,
    pub(crate) timeout: Duration,
    pub(crate) ids: bool,
    pub(crate) stop_at: Option<Instant>,
    /// What was asked, for the report.
    pub(crate) input: LoadInput,
}

fn invalid(field: &str, reason: impl Into<String>) -> ProbeError {
    ProbeError::invalid(field, reason)
}

impl LoadInput {
    /// Checks every field and fills in the defaults (a preset's first); the first problem is
    /// the error.
    pub fn validate(self) -> Result<LoadSpec, ProbeError> {
        let input = self.with_preset()?;
        let url = crate::spec::parse_url(input.url.clone())?;
        let has_body = input.body.is_some() || input.bodies.is_some();
        let method = match input.method.as_deref() {
            None if has_body => hyper::Method::POST,
            None => hyper::Method::GET,
            Some(m) => hyper::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| invalid("method", format!("{m:?} is not an HTTP method")))?,
        };
        let mut headers = Vec::with_capacity(input.headers.len());
        for header in &input.headers {
            let Some((name, value)) = header.split_once(':') else {
                return Err(invalid("header", format!("{header:?} is not \"Name: value\"")));
            };
            let name = hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid("header", format!("{:?} is not a header name", name.trim())))?;
            if name == hyper::header::HOST || name == hyper::header::CONTENT_LENGTH {
                return Err(invalid("header", format!("{name} is set from the URL and the body")));
            }
            let template = Template::parse(value.trim())
                .map_err(|e| invalid("header", format!("{}: {e}", name.as_str())))?;
            // Placeholders render header-safe text; the fixed parts must be too.
            let sample = template.render(&super::template::Vars { run_id: "0", seq: 0, vu: 0, iter: 0 });
            if hyper::header::HeaderValue::from_str(&sample).is_err() {
                return Err(invalid("header", format!("{}: {value:?} is not a header value", name.as_str())));
            }
            headers.push((name, template));
        }
        let bodies = match (&input.body, &input.bodies) {
            (Some(_), Some(_)) => return Err(invalid("bodies", "give body or bodies, not both")),
            (Some(body), None) => vec![Template::parse(body).map_err(|e| invalid("body", e.to_string()))?],
            (None, Some(bodies)) if bodies.is_empty() => {
                return Err(invalid("bodies", "is empty; give at least one body"));
            }
            (None, Some(bodies)) => bodies
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    Template::parse(b).map_err(|e| invalid("bodies", format!("body {}: {e}", i + 1)))
                })
                .collect::<Result<_, _>>()?,
            (None, None) => Vec::new(),
        };
        let expect = parse_expect(input.expect.as_deref().unwrap_or("200-399"))?;
        let timeout =
            match &input.timeout {
                None => DEFAULT_TIMEOUT,
                Some(t) => ramp::parse_duration(t).filter(|d| !d.is_zero() && *d <= MAX_TIMEOUT).ok_or_else(
                    || invalid("timeout", format!("must be a duration from 1ms to 5m like 30s, got {t:?}")),
                )?,
            };
        let iterations = match input.iterations {
            None => None,
            Some(n) if (1..=1_000_000_000).contains(&n) => Some(n as u64),
            Some(n) => return Err(invalid("iterations", format!("must be from 1 to 1000000000, got {n}"))),
        };
        let stages = match &input.stages {
            None => None,
            Some(text) => Some(ramp::parse_stages(text).map_err(|e| invalid("stages", e))?),
        };
        let duration = match (&input.duration, &stages, iterations) {
            (Some(_), Some(_), _) => {
                return Err(invalid("duration", "the stages set the duration; give one or the other"));
            }
            (Some(d), None, _) => ramp::parse_duration(d).filter(|d| !d.is_zero()).ok_or_else(|| {
                invalid("duration", format!("must be a duration like 60s or 1m30s, got {d:?}"))
            })?,
            (None, Some(stages), _) => stages.iter().map(|s| s.duration).sum(),
            (None, None, Some(_)) => ITERATIONS_MAX_DURATION,
            (None, None, None) => DEFAULT_DURATION,
        };
        if duration > MAX_DURATION || duration.is_zero() {
            return Err(invalid(
                "duration",
                format!("must be more than 0 and at most 24h, got {duration:?}"),
            ));
        }
        let mode = match (input.vus, input.rate) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "rate",
                    "give vus (closed loop: each user waits for its answer) or rate (open loop: \
                     requests start on schedule), not both; max_vus bounds an open loop",
                ));
            }
            (vus, None) => {
                if input.max_vus.is_some() {
                    return Err(invalid("max_vus", "bounds an open loop: give it with rate"));
                }
                let vus = match vus {
                    Some(v) if (1..=MAX_VUS as i64).contains(&v) => v as f64,
                    Some(v) if v == 0 && stages.is_some() => 0.0,
                    Some(v) => return Err(invalid("vus", format!("must be from 1 to {MAX_VUS}, got {v}"))),
                    None if stages.is_some() => 0.0,
                    None => 1.0,
                };
                let ramp = match stages {
                    Some(stages) => {
                        if let Some(s) = stages.iter().find(|s| s.target > MAX_VUS as f64) {
                            return Err(invalid(
                                "stages",
                                format!("at most {MAX_VUS} VUs, got {}", s.target),
                            ));
                        }
                        Ramp::new(vus, stages)
                    }
                    None => Ramp::constant(vus, duration),
                };
                if ramp.max() < 1.0 {
                    return Err(invalid("stages", "never reach one virtual user"));
                }
                Mode::Closed { vus: ramp }
            }
            (None, Some(rate)) => {
                let lowest = if stages.is_some() { 0.0 } else { f64::MIN_POSITIVE };
                if !(rate.is_finite() && rate >= lowest && rate <= MAX_RATE) {
                    return Err(invalid(
                        "rate",
                        format!("must be more than 0 and at most {MAX_RATE} per second, got {rate}"),
                    ));
                }
                let max_vus = match input.max_vus {
                    None => DEFAULT_MAX_VUS,
                    Some(m) if (1..=MAX_VUS as i64).contains(&m) => m as u64,
                    Some(m) => {
                        return Err(invalid("max_vus", format!("must be from 1 to {MAX_VUS}, got {m}")));
                    }
                };
                let ramp = match stages {
                    Some(stages) => {
                        if let Some(s) = stages.iter().find(|s| s.target > MAX_RATE) {
                            return Err(invalid("stages", format!("at most {MAX_RATE}/s, got {}", s.target)));
                        }
                        Ramp::new(rate, stages)
                    }
                    None => Ramp::constant(rate, duration),
                };
                if ramp.max() <= 0.0 {
                    return Err(invalid("stages", "the rate never rises above 0"));
                }
                Mode::Open { rate: ramp, max_vus }
            }
        };
        let spec = LoadSpec {
            url,
            method,
            headers,
            bodies,
            expect,
            mode,
            duration,
            iterations,
            timeout,
            ids: input.ids,
            stop_at: None,
            input,
        };
        if spec.ids && !spec.uses_id() {
            return Err(invalid("ids", "the requests carry no {{id}}: put one in the body or a header"));
        }
        Ok(spec)
    }

    /// This input with its preset's defaults filled in where it gives none.
    fn with_preset(mut self) -> Result<LoadInput, ProbeError> {
        let Some(name) = self.preset.clone() else { return Ok(self) };
        let Some(preset) = PRESETS.iter().find(|p| p.name == name) else {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            return Err(invalid(
                "preset",
                format!("unknown preset {name:?}; accepted: {}", names.join(", ")),
            ));
        };
        self.method.get_or_insert_with(|| preset.method.to_owned());
        if let Some(content_type) = preset.content_type {
            let given = self.headers.iter().any(|h| {
                h.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("content-type"))
            });
            if !given {
                self.headers.push(format!("Content-Type: {content_type}"));
            }
        }
        if self.body.is_none() && self.bodies.is_none() {
            self.body = preset.body.map(str::to_owned);
        }
        self.expect.get_or_insert_with(|| preset.expect.to_owned());
        if let Some((vus, duration)) = preset.shape {
            let shaped = self.vus.is_some() || self.rate.is_some() || self.stages.is_some();
            if !shaped {
                self.vus = Some(vus);
                if self.iterations.is_none() {
                    self.duration.get_or_insert_with(|| duration.to_owned());
                }
            }
        }
        Ok(self)
    }
}

/// `200`, `200-299`, comma-separated.
fn parse_expect(text: &str) -> Result<Vec<RangeInclusive<u16>>, ProbeError> {
    let status = |s: &str| s.trim().parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    let mut ranges = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let range = match item.split_once('-') {
            Some((low, high)) => status(low).zip(status(high)).filter(|(l, h)| l <= h).map(|(l, h)| l..=h),
            None => status(item).map(|c| c..=c),
        };
        ranges.push(range.ok_or_else(|| {
            invalid("expect", format!("{item:?} is not a status (100-599) or a range like 200-299"))
        })?);
    }
    if ranges.is_empty() {
        return Err(invalid("expect", "no statuses; give e.g. 200 or 200-299"));
    }
    Ok(ranges)
}

impl LoadSpec {
    /// Stop starting requests in time to return by `deadline` (the Lambda's): no request starts
    /// after `deadline - (timeout + 0.5 s)`, or after half the time left when that is shorter.
    pub fn with_deadline(mut self, deadline: Instant) -> LoadSpec {
        self.stop_at = Some(crate::spec::stop_before(deadline, self.timeout));
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// How long requests are started for (the stages' total when there are stages).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The input this spec was validated from, with its preset filled in.
    pub fn input(&self) -> &LoadInput {
        &self.input
    }

    /// Whether `status` passes the check.
    pub(crate) fn expects(&self, status: u16) -> bool {
        self.expect.iter().any(|r| r.contains(&status))
    }

    /// Whether any request carries an `{{id}}`.
    pub(crate) fn uses_id(&self) -> bool {
        self.bodies.iter().any(Template::uses_id) || self.headers.iter().any(|(_, t)| t.uses_id())
    }

    /// An upper bound of the requests the run can start, if it has one.
    pub fn expected_requests(&self) -> Option<u64> {
        let scheduled = match &self.mode {
            Mode::Open { rate, .. } => {
                let area: f64 = rate
                    .stages()
                    .iter()
                    .fold((rate.start(), 0.0), |(from, sum), s| {
                        (s.target, sum + s.duration.as_secs_f64() * (from + s.target) / 2.0)
                    })
                    .1;
                Some(area.ceil() as u64)
            }
            Mode::Closed { .. } => None,
        };
        match (scheduled, self.iterations) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> LoadInput {
        LoadInput { url: Some(url.into()), ..LoadInput::default() }
    }

    #[test]
    fn the_seed_003_preset_is_its_k6_script() {
        let spec =
            LoadInput { preset: Some("seed-003".into()), ..input("http://x/items") }.validate().unwrap();
        assert_eq!(spec.method, hyper::Method::POST);
        assert_eq!(spec.duration, Duration::from_secs(60));
        assert_eq!(spec.mode, Mode::Closed { vus: Ramp::constant(10.0, Duration::from_secs(60)) });
        assert!(spec.expects(200) && !spec.expects(201));
        assert!(spec.uses_id());
        let vars = super::super::template::Vars { run_id: "r", seq: 5, vu: 0, iter: 0 };
        let body: serde_json::Value = serde_json::from_str(&spec.bodies[0].render(&vars)).unwrap();
        assert_eq!(body["id"], "r-5");
        assert_eq!(body["message"], "Hello World");
        assert!(body["timestamp"].as_u64().unwrap() > 1_700_000_000, "epoch seconds as the seed sends");
        assert_eq!(spec.headers[0].0, hyper::header::CONTENT_TYPE);
    }

    #[test]
    fn a_preset_gives_way_to_what_the_run_asks_for() {
        let spec = LoadInput {
            preset: Some("seed-003".into()),
            rate: Some(50.0),
            duration: Some("5s".into()),
            expect: Some("200-299".into()),
            ..input("http://x/items")
        }
        .validate()
        .unwrap();
        assert!(matches!(spec.mode, Mode::Open { max_vus: 100, .. }));
        assert_eq!(spec.duration, Duration::from_secs(5));
        assert!(spec.expects(201));
        assert_eq!(spec.expected_requests(), Some(250));
    }

    #[test]
    fn stages_ramp_vus_or_with_a_rate_the_arrival_rate() {
        let closed =
            LoadInput { stages: Some("10s:20,10s:0".into()), ..input("http://x/") }.validate().unwrap();
        assert_eq!(closed.duration, Duration::from_secs(20));
        let Mode::Closed { vus } = &closed.mode else { panic!("closed") };
        assert_eq!(vus.max(), 20.0);
        let open = LoadInput { rate: Some(0.0), stages: Some("10s:100".into()), ..input("http://x/") }
            .validate()
            .unwrap();
        assert_eq!(open.expected_requests(), Some(500));
    }

    #[test]
    fn bad_input_names_the_field_and_what_is_accepted() {
        let cases = [
            (LoadInput::default(), "url", "missing"),
            (
                LoadInput { preset: Some("nope".into()), ..input("http://x") },
                "preset",
                "accepted: hits, events",
            ),
            (LoadInput { vus: Some(2), rate: Some(2.0), ..input("http://x") }, "rate", "not both"),
            (LoadInput { vus: Some(0), ..input("http://x") }, "vus", "from 1 to"),
            (LoadInput { rate: Some(0.0), ..input("http://x") }, "rate", "more than 0"),
            (LoadInput { rate: Some(f64::NAN), ..input("http://x") }, "rate", "more than 0"),
            (LoadInput { max_vus: Some(3), ..input("http://x") }, "max_vus", "with rate"),
            (LoadInput { duration: Some("10x".into()), ..input("http://x") }, "duration", "like 60s"),
            (LoadInput { duration: Some("48h".into()), ..input("http://x") }, "duration", "at most 24h"),
            (LoadInput { stages: Some("5s".into()), ..input("http://x") }, "stages", "DURATION:TARGET"),
            (LoadInput { stages: Some("5s:0".into()), ..input("http://x") }, "stages", "never reach"),
            (
                LoadInput { duration: Some("5s".into()), stages: Some("5s:1".into()), ..input("http://x") },
                "duration",
                "one or the other",
            ),
            (LoadInput { timeout: Some("0s".into()), ..input("http://x") }, "timeout", "1ms to 5m"),
            (LoadInput { expect: Some("2xx".into()), ..input("http://x") }, "expect", "range like 200-299"),
            (LoadInput { headers: vec!["NoColon".into()], ..input("http://x") }, "header", "Name: value"),
            (LoadInput { headers: vec!["Host: a".into()], ..input("http://x") }, "header", "from the URL"),
            (LoadInput { body: Some("{{what}}".into()), ..input("http://x") }, "body", "unknown placeholder"),
            (
                LoadInput { bodies: Some(vec!["ok".into(), "{{int 2 1}}".into()]), ..input("http://x") },
                "bodies",
                "body 2",
            ),
            (LoadInput { method: Some("GE T".into()), ..input("http://x") }, "method", "not an HTTP method"),
            (LoadInput { iterations: Some(0), ..input("http://x") }, "iterations", "from 1"),
            (input("ftp://x"), "url", "http or https"),
        ];
        for (input, field, reason) in cases {
            let err = input.clone().validate().expect_err(&format!("{input:?}"));
            assert_eq!(err.field(), Some(field), "{err}");
            assert!(err.to_string().contains(reason), "{field}: {err}");
        }
    }

    #[test]
    fn an_event_with_an_unknown_field_is_refused_by_name() {
        let err =
            serde_json::from_value::<LoadInput>(serde_json::json!({"url": "http://x", "vu": 3})).unwrap_err();
        assert!(err.to_string().contains("unknown field `vu`"), "{err}");
        let back: LoadInput = serde_json::from_value(
            serde_json::to_value(LoadInput { preset: Some("hits".into()), ..input("http://x") }).unwrap(),
        )
        .unwrap();
        assert_eq!(back.preset.as_deref(), Some("hits"));
    }
}
