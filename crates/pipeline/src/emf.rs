//! CloudWatch metrics as Embedded Metric Format (EMF) lines: downstream writes one line per
//! invocation (more when a metric has over [`MAX_VALUES`] values), never an API call per record.
//! Every latency metric carries **all** of the invocation's values as an array (EMF's values
//! arrays), unit `Milliseconds`, `StorageResolution` 1 (high resolution: per-second
//! statistics); `Items` (Count) is the number of items the invocation inserted.
//!
//! No dimensions (`"Dimensions": [[]]`): one metric per name in the namespace.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// The most values EMF takes for one metric on one line.
pub const MAX_VALUES: usize = 100;
/// The default namespace (`PIPELINE_METRICS_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "Pipeline";

/// The metrics of one invocation, gathered value by value, then written as lines.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Milliseconds per metric, in the order names first appear.
    latencies: Vec<(&'static str, Vec<f64>)>,
    items: u64,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// One item's latencies (`Stamps::latencies`), and one more item.
    pub fn add_item(&mut self, latencies: &[(&'static str, f64)]) {
        self.items += 1;
        for &(name, value) in latencies {
            match self.latencies.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => self.latencies.push((name, vec![value])),
            }
        }
    }

    /// Items added.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The lines (each ending in `\n`): none when no item was added; otherwise as many as the
    /// longest metric needs at [`MAX_VALUES`] values a line. `Items` is on the first line only,
    /// so that its `Sum` is the items inserted.
    pub fn lines(&self, namespace: &str, timestamp_ms: u64, properties: &Map<String, Value>) -> Vec<String> {
        if self.items == 0 {
            return Vec::new();
        }
        let longest = self.latencies.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let count = longest.div_ceil(MAX_VALUES).max(1);
        (0..count)
            .map(|i| {
                let mut definitions = Vec::new();
                let mut fields: BTreeMap<String, Value> = BTreeMap::new();
                if i == 0 {
                    definitions.push(json!({"Name": "Items", "Unit": "Count", "StorageResolution": 1}));
                    fields.insert("Items".into(), self.items.into());
                }
                for (name, values) in &self.latencies {
                    let chunk: Vec<f64> =
                        values.iter().skip(i * MAX_VALUES).take(MAX_VALUES).copied().collect();
                    if chunk.is_empty() {
                        continue;
                    }
                    definitions.push(json!({"Name": name, "Unit": "Milliseconds", "StorageResolution": 1}));
                    fields.insert((*name).to_owned(), chunk.into());
                }
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": namespace,
                            "Dimensions": [[]],
                            "Metrics": definitions,
                        }],
                    }),
                );
                for (k, v) in properties {
                    line.insert(k.clone(), v.clone());
                }
                line.extend(fields);
                let mut text = Value::Object(line).to_string();
                text.push('\n');
                text
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Value {
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'), "one line: {line:?}");
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn an_invocation_is_one_line_with_every_value_of_each_metric() {
        let mut batch = Batch::new();
        batch.add_item(&[("EndToEnd", 900.0), ("Server", 860.0)]);
        batch.add_item(&[("EndToEnd", 120.5), ("Server", 100.0)]);
        let mut properties = Map::new();
        properties.insert("requestId".into(), "r-1".into());
        let lines = batch.lines("Pipeline", 1_733_450_000_000, &properties);
        assert_eq!(lines.len(), 1);
        let line = parse(&lines[0]);
        assert_eq!(line["EndToEnd"], json!([900.0, 120.5]));
        assert_eq!(line["Server"], json!([860.0, 100.0]));
        assert_eq!(line["Items"], json!(2));
        assert_eq!(line["requestId"], json!("r-1"));
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], json!(1_733_450_000_000_u64));
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], json!("Pipeline"));
        assert_eq!(directive["Dimensions"], json!([[]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Items", "Unit": "Count", "StorageResolution": 1},
                {"Name": "EndToEnd", "Unit": "Milliseconds", "StorageResolution": 1},
                {"Name": "Server", "Unit": "Milliseconds", "StorageResolution": 1},
            ])
        );
    }

    #[test]
    fn past_a_hundred_values_a_metric_splits_over_lines_and_items_is_counted_once() {
        let mut batch = Batch::new();
        for i in 0..250 {
            batch.add_item(&[("EndToEnd", f64::from(i))]);
        }
        let lines: Vec<Value> = batch.lines("P", 1, &Map::new()).iter().map(|l| parse(l)).collect();
        assert_eq!(lines.len(), 3);
        let sizes: Vec<usize> = lines.iter().map(|l| l["EndToEnd"].as_array().unwrap().len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let all: Vec<f64> = lines
            .iter()
            .flat_map(|l| l["EndToEnd"].as_array().unwrap().clone())
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(all, (0..250).map(f64::from).collect::<Vec<_>>());
        assert_eq!(lines[0]["Items"], json!(250));
        assert!(lines[1].get("Items").is_none() && lines[2].get("Items").is_none());
        let names = |l: &Value| l["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len();
        assert_eq!((names(&lines[0]), names(&lines[1])), (2, 1));
    }

    #[test]
    fn no_items_no_line() {
        assert!(Batch::new().lines("P", 1, &Map::new()).is_empty());
    }
}
