//! The results: each run's times (init, first call, warm call), their median, min and max, the
//! targets they are held against, and the table or JSON `latency cold-start` prints.

use std::time::Duration;

use serde::Serialize;

use super::cgroup::{CpuLimit, MB_PER_VCPU, Throttling};
use super::plan::Plan;

/// Targets the figures are shown against.
const INIT_TARGET_MS: f64 = 20.0;
const FIRST_CALL_TARGET_MS: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub(super) struct RunTimes {
    #[serde(serialize_with = "as_ms")]
    pub(super) init: Duration,
    #[serde(serialize_with = "as_ms")]
    pub(super) first: Duration,
    #[serde(serialize_with = "as_ms")]
    pub(super) warm: Duration,
    pub(super) first_count: u64,
    pub(super) warm_count: u64,
    /// `warm_ms=` as the hits bootstrap logs it at init: how long its store pre-connect took.
    pub(super) preconnect_ms: Option<f64>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Debug, Serialize)]
struct Stats {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl Stats {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stats { median_ms: median, min_ms: v[0], max_ms: v[n - 1] })
    }
}

#[derive(Debug, Serialize)]
struct CpuSummary {
    percent: f64,
    quota_us: u64,
    period_us: u64,
    mechanism: String,
    /// `exec`, or `first invocation` with `--quota-after-init`.
    applied_from: &'static str,
    throttling: Option<Throttling>,
}

#[derive(Debug, Serialize)]
struct Target {
    what: String,
    limit_ms: f64,
    median_ms: f64,
    met: bool,
    note: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    bootstrap: String,
    event: String,
    store: String,
    memory_mb: u32,
    runs: usize,
    cpu_quota: Option<CpuSummary>,
    init: Stats,
    first_call: Stats,
    warm_call: Stats,
    /// The hits bootstrap's own `warm_ms` log field: its store pre-connect inside init.
    preconnect: Option<Stats>,
    targets: Vec<Target>,
    samples: Vec<RunTimes>,
}

impl Summary {
    pub(super) fn new(plan: &Plan, cpu: Option<&CpuLimit>, runs: &[RunTimes]) -> Summary {
        let stats = |f: fn(&RunTimes) -> f64| {
            Stats::of(runs.iter().map(f)).unwrap_or(Stats { median_ms: 0.0, min_ms: 0.0, max_ms: 0.0 })
        };
        let init = stats(|r| ms(r.init));
        let first_call = stats(|r| ms(r.first));
        let warm_call = stats(|r| ms(r.warm));
        let store = plan.store();
        let sdk = ["dynamodb:", "s3:"].iter().any(|p| store.starts_with(p));
        let lambda_128 = f64::from(128u32) / MB_PER_VCPU * 100.0;
        let first_note = match plan.cpu_percent {
            None => Some(
                "this run had no CPU quota; the target is for the 128 MB quota (--cpu-quota lambda)"
                    .to_owned(),
            ),
            Some(p) if (p - lambda_128).abs() > 0.05 => {
                Some(format!("this run's quota is {p:.1}%, the target is for 128 MB ({lambda_128:.1}%)"))
            }
            Some(_) => None,
        };
        let targets = vec![
            Target {
                what: "init".into(),
                limit_ms: INIT_TARGET_MS,
                median_ms: init.median_ms,
                met: init.median_ms <= INIT_TARGET_MS,
                note: (!sdk).then(|| {
                    format!("the target is for a store with an SDK client; this run's store is {store}")
                }),
            },
            Target {
                what: "first call".into(),
                limit_ms: FIRST_CALL_TARGET_MS,
                median_ms: first_call.median_ms,
                met: first_call.median_ms <= FIRST_CALL_TARGET_MS,
                note: first_note,
            },
        ];
        Summary {
            bootstrap: plan.bootstrap.display().to_string(),
            event: plan.event_source.clone(),
            store,
            memory_mb: plan.memory_mb,
            runs: runs.len(),
            cpu_quota: cpu.map(|c| CpuSummary {
                percent: c.percent,
                quota_us: c.quota_us,
                period_us: c.period_us,
                mechanism: c.mechanism.clone(),
                applied_from: if plan.quota_after_init { "first invocation" } else { "exec" },
                throttling: c.throttling(),
            }),
            init,
            first_call,
            warm_call,
            preconnect: Stats::of(runs.iter().filter_map(|r| r.preconnect_ms)),
            targets,
            samples: runs.to_vec(),
        }
    }

    pub(super) fn table(&self) -> String {
        let mut out = String::new();
        let quota = match &self.cpu_quota {
            Some(c) => format!("CPU quota {:.1}% from {}", c.percent, c.applied_from),
            None => "no CPU quota".to_owned(),
        };
        out.push_str(&format!("\n{} cold starts, {}, store {}\n", self.runs, quota, self.store));
        out.push_str(&format!("{:<32}{:>10}{:>10}{:>10}\n", "", "median", "min", "max"));
        let mut row = |name: &str, s: &Stats| {
            out.push_str(&format!(
                "{name:<32}{:>7.2} ms{:>7.2} ms{:>7.2} ms\n",
                s.median_ms, s.min_ms, s.max_ms
            ));
        };
        row("init (exec → first /next)", &self.init);
        row("first call (/next → response)", &self.first_call);
        row("warm call", &self.warm_call);
        if let Some(p) = &self.preconnect {
            row("  of init: store pre-connect", p);
        }
        if let Some(t) = self.cpu_quota.as_ref().and_then(|c| c.throttling.as_ref()) {
            out.push_str(&format!(
                "cgroup cpu.stat: throttled in {} of {} periods, {:.0} ms in all; every bootstrap was checked to be in the cgroup\n",
                t.throttled_periods, t.periods, t.throttled_ms
            ));
        }
        for t in &self.targets {
            out.push_str(&format!(
                "target {} ≤ {:.0} ms: {} (median {:.2} ms){}\n",
                t.what,
                t.limit_ms,
                if t.met { "met" } else { "NOT met" },
                t.median_ms,
                t.note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Stats::of([4.0, 1.0, 3.0, 2.0]).expect("stats");
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (2.5, 1.0, 4.0));
        assert!(Stats::of([]).is_none());
    }
}
