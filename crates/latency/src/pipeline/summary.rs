//! The run's report: what `pipeline.json` holds and `pipeline.md` (also printed) says.

use std::fmt::Write as _;

use probe::load::LoadReport;
use serde::Serialize;

use super::seed::{LABEL, SEED, SeedFigures};
use super::stats::{Flow, Latency};
use super::wait::Stuck;

#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Where the items were posted (absent: `--ids-from` without `--url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who sent the items, in words: the load's `closed loop, 10 VUs for 1m`, or `sent by
    /// another tool; 50 ids from k6-ids.log`.
    pub scenario: String,
    /// The random part of every `{{id}}` of our load (absent when another tool sent the items).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When the requests began, ms since the epoch: the load's start, or (`--ids-from`) the
    /// first upstream stamp.
    pub started_at_ms: u64,
    /// How long the requests went on, in seconds: the load's, or (`--ids-from`) from the first
    /// to the last upstream stamp.
    pub sent_s: f64,
    /// The file the ids were read from, when another tool sent the items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids_from: Option<String>,
    /// Where the items were read back from.
    pub read_from: String,
    /// Requests sent and failed, by our load (unknown when another tool sent them); accepted:
    /// passed the check (status 200), or the ids in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    pub accepted: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    pub flow: Flow,
    /// End to end, server and per hop.
    pub latencies: Vec<Latency>,
    /// From the start of the wait until the last lookup, in seconds.
    pub waited_s: f64,
    /// Every accepted item came through.
    pub complete: bool,
    /// Where the others are, when some did not come through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck: Option<Stuck>,
    /// Seed 003's figures, [`LABEL`].
    pub seed: SeedFigures,
    pub seed_label: &'static str,
    /// Our load run's own report (k6's figures, the per-second timeline), without the ids;
    /// absent when another tool sent the items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadReport>,
}

impl PipelineReport {
    fn latency(&self, name: &str) -> Option<&Latency> {
        self.latencies.iter().find(|l| l.name == name)
    }

    /// What the run is named by in titles: the URL, or where the items were read back from.
    pub fn target(&self) -> &str {
        self.url.as_deref().unwrap_or(&self.read_from)
    }

    /// `pipeline.md`: the figures beside the seed's, the latency table, the charts and what did
    /// not come through.
    pub fn markdown(&self) -> String {
        self.section(&format!("Pipeline: {}", self.target()), 1, "")
    }

    /// [`markdown`](Self::markdown) as a section of another document: `title` at heading `level`
    /// (its subsections one below), the charts linked at `files` + their name (`files` is the
    /// directory the report's files are in, relative to the document, ending in `/`; or empty).
    pub fn section(&self, title: &str, level: usize, files: &str) -> String {
        let mut md = String::new();
        let started = crate::time::utc(self.started_at_ms / 1000);
        let sub = "#".repeat(level + 1);
        let _ = writeln!(md, "{} {title}\n", "#".repeat(level));
        let flow = &self.flow;
        let through = if self.complete {
            format!("all {} accepted items came through", self.accepted)
        } else {
            format!("{} of {} accepted items came through", flow.items_through, self.accepted)
        };
        match (&self.run_id, self.requests, self.failed) {
            (Some(run_id), Some(requests), Some(failed)) => {
                let _ = writeln!(
                    md,
                    "{}, run `{run_id}`, started {started}; read back from {}.\n",
                    self.scenario, self.read_from
                );
                let _ = writeln!(
                    md,
                    "{requests} requests sent, {} accepted (status 200), {failed} failed; {through}; busiest \
                     second {} items.\n",
                    self.accepted, flow.peak_through_per_s
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "The load was external: {}; the first arrived at upstream {started}; read back from {}.\n",
                    self.scenario, self.read_from
                );
                let _ = writeln!(
                    md,
                    "{} ids accepted by the sender (status 200), arriving over {:.2} s; {through}; busiest \
                     second {} items.\n",
                    self.accepted, self.sent_s, flow.peak_through_per_s
                );
            }
        }
        let e2e = self.latency("EndToEnd");
        let seconds = |pick: fn(&Latency) -> f64| {
            e2e.map_or_else(|| "–".to_owned(), |l| format!("{:.3} s", pick(l) / 1000.0))
        };
        let drain = flow.drain_s.map_or_else(|| "–".to_owned(), |s| format!("{s:.2} s"));
        let _ = writeln!(md, "| | this run | {LABEL} |\n|---|---:|---:|");
        let rows = [
            (
                "requests in per second",
                format!("{:.1}", flow.requests_in_per_s),
                format!("{}", SEED.requests_in_per_s),
            ),
            (
                "items through per second",
                format!("{:.1}", flow.items_through_per_s),
                format!("{}", SEED.items_through_per_s),
            ),
            ("end-to-end mean", seconds(|l| l.mean), format!("{} s", SEED.end_to_end_mean_s)),
            ("end-to-end p99", seconds(|l| l.p99), format!("{} s", SEED.end_to_end_p99_s)),
            ("end-to-end max", seconds(|l| l.max), format!("{} s", SEED.end_to_end_max_s)),
            ("drain after the last request", drain, "never, during its run".to_owned()),
        ];
        for (what, ours, seed) in rows {
            let _ = writeln!(md, "| {what} | {ours} | {seed} |");
        }
        if self.load.is_some() {
            let _ = writeln!(
                md,
                "\nRequests in: sent per second of the load ({:.1}/s accepted). Items through: per second \
                 from the start of the load to the last item's downstream stamp. Drain: from the end of the \
                 load to the last item's downstream stamp.\n",
                flow.accepted_in_per_s
            );
        } else {
            let _ = writeln!(
                md,
                "\nRequests in: the accepted items per second between the first and the last upstream stamp \
                 (another tool sent them: only those it got a 200 for are known). Items through: per second \
                 from the first upstream stamp to the last item's downstream stamp. Drain: from the last \
                 upstream stamp to the last item's downstream stamp.\n"
            );
        }

        let _ = writeln!(md, "{sub} Latency (ms, nearest rank)\n");
        let _ = writeln!(md, "| latency | spans | count | mean | p50 | p90 | p95 | p99 | max |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut notes: Vec<&str> = Vec::new();
        for l in &self.latencies {
            let mark = match &l.note {
                Some(note) => {
                    if !notes.contains(&note.as_str()) {
                        notes.push(note);
                    }
                    let n = notes.iter().position(|n| *n == note.as_str()).map_or(0, |i| i + 1);
                    format!(" ({n})")
                }
                None => String::new(),
            };
            let _ = writeln!(
                md,
                "| {}{mark} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                l.name, l.spans, l.count, l.mean, l.p50, l.p90, l.p95, l.p99, l.max
            );
        }
        if self.latencies.is_empty() {
            let _ = writeln!(md, "| (no item came through) | | 0 | | | | | | |");
        }
        md.push('\n');
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(md, "({}) {note}.  ", i + 1);
        }
        let _ = writeln!(
            md,
            "End to end runs from the client's clock (the item's `timestamp`) to the downstream \
             function's; server and the hops use the functions' and Kinesis' clocks only.\n"
        );
        let _ = writeln!(md, "![End-to-end latency against send time]({files}timeline.svg)\n");
        let _ = writeln!(md, "![Latency CDF]({files}cdf.svg)\n");
        if let Some(stuck) = &self.stuck {
            let _ = writeln!(md, "{sub} Not through\n\n```\n{}\n```\n", stuck.describe());
        }
        md
    }
}

#[cfg(test)]
impl PipelineReport {
    /// A fabricated run of ours: 10 items sent to `http://x/items` over 2 s, each 100 ms client →
    /// downstream in 5 hops; with `stuck`, the last two never came through.
    pub fn fabricated(stuck: bool) -> PipelineReport {
        use super::source::Row;
        use super::stats;
        let start = 1_796_525_120_000.0;
        let through = if stuck { 8 } else { 10 };
        let rows: Vec<Row> = (0..through)
            .map(|i| {
                let t = start + 200.0 * f64::from(i);
                Row {
                    id: format!("run-{i}"),
                    client_ms: Some(t),
                    upstream_ms: Some(t + 10.0),
                    kinesis_ms: Some(t + 20.0),
                    midstream_ms: Some(t + 50.0),
                    stream_ms: None,
                    downstream_ms: Some(t + 100.0),
                }
            })
            .collect();
        let missing = stuck.then(|| Stuck {
            between_midstream_and_downstream: vec!["run-8".into()],
            between_upstream_and_midstream: vec!["run-9".into()],
            ..Stuck::default()
        });
        PipelineReport {
            url: Some("http://x/items".into()),
            scenario: "closed loop, 5 VUs for 2s".into(),
            run_id: Some("run".into()),
            started_at_ms: start as u64,
            sent_s: 2.0,
            ids_from: None,
            read_from: "results table r, items table i".into(),
            requests: Some(10),
            accepted: 10,
            failed: Some(0),
            flow: stats::flow(&rows, 10, 10, start as u64, 2.0),
            latencies: stats::latencies(&rows),
            waited_s: 0.5,
            complete: !stuck,
            stuck: missing,
            seed: SEED,
            seed_label: LABEL,
            load: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stats;

    #[test]
    fn a_report_of_items_another_tool_sent_says_the_load_was_external_and_has_no_load_part() {
        let report = PipelineReport {
            url: None,
            scenario: "sent by another tool; 3 ids from k6-ids.log".into(),
            run_id: None,
            started_at_ms: 1_796_525_120_000,
            sent_s: 2.5,
            ids_from: Some("k6-ids.log".into()),
            read_from: "results table r, items table i".into(),
            requests: None,
            accepted: 3,
            failed: None,
            flow: stats::flow(&[], 3, 3, 1_796_525_120_000, 2.5),
            latencies: Vec::new(),
            waited_s: 1.0,
            complete: false,
            stuck: None,
            seed: SEED,
            seed_label: LABEL,
            load: None,
        };
        let md = report.markdown();
        for expected in [
            "# Pipeline: results table r, items table i\n",
            "The load was external: sent by another tool; 3 ids from k6-ids.log; the first arrived at upstream 2026-12-06",
            "3 ids accepted by the sender (status 200), arriving over 2.50 s; 0 of 3 accepted items came through",
            "| requests in per second | 1.2 | 28 |",
            "Requests in: the accepted items per second between the first and the last upstream stamp",
            "Drain: from the last upstream stamp",
        ] {
            assert!(md.contains(expected), "{expected:?} not in:\n{md}");
        }
        assert!(!md.contains("requests sent"), "{md}");
        let json = serde_json::to_value(&report).expect("json");
        for absent in ["load", "requests", "failed", "run_id", "url"] {
            assert!(json.get(absent).is_none(), "{absent} in {json}");
        }
        assert_eq!((json["ids_from"].as_str(), json["accepted"].as_u64()), (Some("k6-ids.log"), Some(3)));
    }
}
