//! CloudWatch metrics as Embedded Metric Format (EMF) lines: one JSON line on stdout per
//! `GET /hits` (and per warmer run) on Lambda, which CloudWatch Logs turns into metrics. No
//! API call on the hot path, nothing to batch or flush.
//!
//! Namespace `hits`, dimension `Store` (`dynamodb`, `s3`, `file`, `memory`):
//!
//! | metric | unit | line | value |
//! |---|---|---|---|
//! | `Hits` | Count | hit | 1 when the increment succeeded, 0 when it failed |
//! | `StoreErrors` | Count | hit | 1 when the increment failed (the client got a 503), else 0 |
//! | `StoreLatency` | Milliseconds | hit | how long the increment took, failed or not |
//! | `Warmer` | Count | warmer | 1 per warmer run (it never touches the count) |
//! | `WarmerErrors` | Count | warmer | 1 when the warmer could not reach the store |
//! | `ColdStart` | Count | both | 1 on the process's first invocation, 0 after |
//!
//! `requestId` and, on a successful hit, `count` are properties, not metrics (one value per
//! request would be one CloudWatch metric each): they are searchable in Logs Insights.
//!
//! Formatting only: [`hit_line`] and [`warmer_line`] return the line; the Lambda host
//! ([`crate::lambda`]) writes it. `hits-server` never does (its stdout is read by scripts).

use std::time::Duration;

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "hits";
/// The one dimension.
pub const DIMENSION: &str = "Store";

/// What one `GET /hits` did to the store. The router's `hits` handler attaches it to its
/// response as an extension; the Lambda host turns it into a line, other hosts ignore it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreCall {
    /// The store's kind (`dynamodb`, …).
    pub store: &'static str,
    /// How long the increment took.
    pub latency: Duration,
    /// The count it returned; `None` if it failed.
    pub count: Option<u64>,
}

/// What every line says about the invocation.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    pub request_id: &'a str,
    pub cold_start: bool,
    /// Milliseconds since the epoch (EMF's `Timestamp`).
    pub timestamp_ms: u64,
}

/// A metric of a line: name, unit, value.
type Metric = (&'static str, &'static str, Value);

/// The line (with its `\n`) for one `GET /hits`.
pub fn hit_line(call: &StoreCall, invocation: &Invocation<'_>) -> String {
    let ok = call.count.is_some();
    let metrics = [
        ("Hits", "Count", u8::from(ok).into()),
        ("StoreErrors", "Count", u8::from(!ok).into()),
        ("StoreLatency", "Milliseconds", milliseconds(call.latency)),
        ("ColdStart", "Count", u8::from(invocation.cold_start).into()),
    ];
    let mut properties = Map::new();
    if let Some(count) = call.count {
        properties.insert("count".into(), count.into());
    }
    line(call.store, &metrics, invocation, properties)
}

/// The line (with its `\n`) for one warmer run.
pub fn warmer_line(store: &str, warmed: bool, invocation: &Invocation<'_>) -> String {
    let metrics = [
        ("Warmer", "Count", 1.into()),
        ("WarmerErrors", "Count", u8::from(!warmed).into()),
        ("ColdStart", "Count", u8::from(invocation.cold_start).into()),
    ];
    line(store, &metrics, invocation, Map::new())
}

/// Milliseconds with three decimals (microseconds).
fn milliseconds(d: Duration) -> Value {
    ((d.as_secs_f64() * 1e6).round() / 1e3).into()
}

fn line(
    store: &str,
    metrics: &[Metric],
    invocation: &Invocation<'_>,
    properties: Map<String, Value>,
) -> String {
    let definitions: Vec<Value> =
        metrics.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": invocation.timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    root.insert(DIMENSION.into(), store.into());
    for (name, _, value) in metrics {
        root.insert((*name).into(), value.clone());
    }
    root.insert("requestId".into(), invocation.request_id.into());
    root.extend(properties);
    let mut line = Value::Object(root).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Invocation<'static> = Invocation {
        request_id: "8f5d2c1e-0000-4000-8000-000000000001",
        cold_start: true,
        timestamp_ms: 1_700_000_000_123,
    };

    /// The line as JSON, after checking it against the EMF specification: one line; `_aws`
    /// with a millisecond `Timestamp`; every metric it declares a top-level number; every
    /// dimension a top-level string.
    fn emf(line: &str) -> Value {
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "one complete line: {line:?}");
        let v: Value = serde_json::from_str(line).unwrap();
        let aws = &v["_aws"];
        let timestamp = aws["Timestamp"].as_u64().expect("Timestamp: an integer");
        assert!(timestamp > 1_000_000_000_000, "Timestamp in milliseconds: {timestamp}");
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert!(!directives.is_empty());
        for d in directives {
            assert_eq!(d["Namespace"], NAMESPACE);
            for set in d["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    let dim = dim.as_str().unwrap();
                    assert!(v[dim].is_string(), "dimension {dim} is a top-level string: {v}");
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().unwrap();
                assert!(v[name].is_number(), "metric {name} is a top-level number: {v}");
                assert!(
                    ["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()),
                    "a CloudWatch unit: {m}"
                );
            }
        }
        v
    }

    fn names(v: &Value) -> Vec<&str> {
        v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_hit_line_has_the_metrics_the_dimension_and_the_properties() {
        let call = StoreCall { store: "dynamodb", latency: Duration::from_micros(3210), count: Some(42) };
        let v = emf(&hit_line(&call, &AT));
        assert_eq!(names(&v), ["Hits", "StoreErrors", "StoreLatency", "ColdStart"]);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Store"]]));
        assert_eq!(v["Store"], "dynamodb");
        assert_eq!((v["Hits"].as_u64(), v["StoreErrors"].as_u64()), (Some(1), Some(0)));
        assert_eq!(v["StoreLatency"], 3.21);
        assert_eq!(v["ColdStart"], 1);
        assert_eq!(v["requestId"], AT.request_id);
        assert_eq!(v["count"], 42);
    }

    #[test]
    fn a_failed_hit_counts_a_store_error_and_no_hit() {
        let call = StoreCall { store: "s3", latency: Duration::from_millis(250), count: None };
        let v = emf(&hit_line(&call, &Invocation { cold_start: false, ..AT }));
        assert_eq!((v["Hits"].as_u64(), v["StoreErrors"].as_u64()), (Some(0), Some(1)));
        assert_eq!(v["StoreLatency"], 250.0);
        assert_eq!(v["ColdStart"], 0);
        assert!(v.get("count").is_none(), "{v}");
    }

    #[test]
    fn a_warmer_line_has_no_hits() {
        let v = emf(&warmer_line("memory", true, &AT));
        assert_eq!(names(&v), ["Warmer", "WarmerErrors", "ColdStart"]);
        assert!(v.get("Hits").is_none() && v.get("count").is_none(), "{v}");
        assert_eq!((v["Warmer"].as_u64(), v["WarmerErrors"].as_u64()), (Some(1), Some(0)));
        let failed = emf(&warmer_line("dynamodb", false, &AT));
        assert_eq!(failed["WarmerErrors"], 1);
    }

    #[test]
    fn a_request_id_with_quotes_stays_one_json_line() {
        let v = emf(&warmer_line("memory", true, &Invocation { request_id: "a\"b\nc", ..AT }));
        assert_eq!(v["requestId"], "a\"b\nc");
    }
}
