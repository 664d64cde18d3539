//! The run's report: what `pipeline.json` holds and `pipeline.md` (also printed) says.

use std::fmt::Write as _;

use probe::load::LoadReport;
use serde::Serialize;

use super::seed::{LABEL, SEED, SeedFigures};
use super::stats::{Flow, Latency};
use super::wait::Stuck;

#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub url: String,
    /// The load in words: `closed loop, 10 VUs for 1m`.
    pub scenario: String,
    pub run_id: String,
    pub started_at_ms: u64,
    /// Where the items were read back from.
    pub read_from: String,
    /// Requests sent, accepted (passed the check: status 200) and failed.
    pub requests: u64,
    pub accepted: usize,
    pub failed: u64,
    pub flow: Flow,
    /// End to end, server and per hop.
    pub latencies: Vec<Latency>,
    /// From the end of the load until the last lookup, in seconds.
    pub waited_s: f64,
    /// Every accepted item came through.
    pub complete: bool,
    /// Where the others are, when some did not come through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stuck: Option<Stuck>,
    /// Seed 003's figures, [`LABEL`].
    pub seed: SeedFigures,
    pub seed_label: &'static str,
    /// The load run's own report (k6's figures, the per-second timeline), without the ids.
    pub load: LoadReport,
}

impl PipelineReport {
    fn latency(&self, name: &str) -> Option<&Latency> {
        self.latencies.iter().find(|l| l.name == name)
    }

    /// `pipeline.md`: the figures beside the seed's, the latency table, the charts and what did
    /// not come through.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let started = crate::time::utc(self.started_at_ms / 1000);
        let _ = writeln!(md, "# Pipeline: {}\n", self.url);
        let _ = writeln!(
            md,
            "{}, run `{}`, started {started}; read back from {}.\n",
            self.scenario, self.run_id, self.read_from
        );
        let flow = &self.flow;
        let through = if self.complete {
            format!("all {} accepted items came through", self.accepted)
        } else {
            format!("{} of {} accepted items came through", flow.items_through, self.accepted)
        };
        let _ = writeln!(
            md,
            "{} requests sent, {} accepted (status 200), {} failed; {through}; busiest second {} items.\n",
            self.requests, self.accepted, self.failed, flow.peak_through_per_s
        );
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
        let _ = writeln!(
            md,
            "\nRequests in: sent per second of the load ({:.1}/s accepted). Items through: per second \
             from the start of the load to the last item's downstream stamp. Drain: from the end of the load \
             to the last item's downstream stamp.\n",
            flow.accepted_in_per_s
        );

        let _ = writeln!(md, "## Latency (ms, nearest rank)\n");
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
        let _ = writeln!(md, "![End-to-end latency against send time](timeline.svg)\n");
        let _ = writeln!(md, "![Latency CDF](cdf.svg)\n");
        if let Some(stuck) = &self.stuck {
            let _ = writeln!(md, "## Not through\n\n```\n{}\n```\n", stuck.describe());
        }
        md
    }
}
