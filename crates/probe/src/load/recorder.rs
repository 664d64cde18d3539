//! What a run records: every answer into HDR histograms (exact to three significant figures at
//! any rate, in constant memory), per-second rows for the timeline, statuses, error kinds, and
//! the ids of requests that passed their check when asked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::conn::Failure;
use super::report::{Second, Trend};

/// Significant figures of every histogram: values within 0.1 %.
const SIGNIFICANT_FIGURES: u8 = 3;
/// A start this long after its scheduled time is late.
pub(crate) const LATE: Duration = Duration::from_millis(5);

fn histogram() -> Histogram<u64> {
    // Auto-resizing from 1 µs; 3 significant figures is always in range.
    Histogram::new(SIGNIFICANT_FIGURES).expect("3 significant figures are supported")
}

/// Records `value`, growing the histogram to hold it (it only fails past `u64` range, then clamps).
fn put(h: &mut Histogram<u64>, value: u64) {
    if h.record(value).is_err() {
        h.saturating_record(value);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One request's times and outcome.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) seq: u64,
    /// When it should have started (open loop), or when it started (closed loop).
    pub(crate) intended: Instant,
    pub(crate) sent: Instant,
    pub(crate) done: Instant,
    pub(crate) outcome: Result<u16, Failure>,
    pub(crate) passed: bool,
}

#[derive(Debug)]
struct SecondRow {
    requests: u64,
    failed: u64,
    latency: Histogram<u64>,
}

#[derive(Debug)]
pub(crate) struct Recorder {
    started: Instant,
    /// Open loop: latency counts from the scheduled start.
    open: bool,
    /// Send → last byte, every answered request.
    duration: Histogram<u64>,
    /// Scheduled start → last byte (open loop).
    latency: Histogram<u64>,
    /// Scheduled start → actual start (open loop).
    lag: Histogram<u64>,
    seconds: Vec<SecondRow>,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) requests: u64,
    pub(crate) passed: u64,
    pub(crate) late: u64,
    pub(crate) max_in_flight: u64,
    pub(crate) ids: Option<Vec<u64>>,
}

impl Recorder {
    pub(crate) fn new(started: Instant, open: bool, ids: bool) -> Recorder {
        Recorder {
            started,
            open,
            duration: histogram(),
            latency: histogram(),
            lag: histogram(),
            seconds: Vec::new(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
            requests: 0,
            passed: 0,
            late: 0,
            max_in_flight: 0,
            ids: ids.then(Vec::new),
        }
    }

    pub(crate) fn record(&mut self, sample: &Sample) {
        self.requests += 1;
        let second = usize::try_from(sample.done.saturating_duration_since(self.started).as_secs())
            .unwrap_or(usize::MAX);
        while self.seconds.len() <= second.min(48 * 3600) {
            self.seconds.push(SecondRow { requests: 0, failed: 0, latency: histogram() });
        }
        let latency = micros(sample.done.saturating_duration_since(sample.intended));
        if self.open {
            let lag = sample.sent.saturating_duration_since(sample.intended);
            put(&mut self.lag, micros(lag));
            if lag >= LATE {
                self.late += 1;
            }
        }
        let row = self.seconds.get_mut(second.min(48 * 3600));
        match sample.outcome {
            Ok(status) => {
                *self.statuses.entry(status).or_default() += 1;
                put(&mut self.duration, micros(sample.done.saturating_duration_since(sample.sent)));
                if self.open {
                    put(&mut self.latency, latency);
                }
                if !sample.passed {
                    *self.errors.entry(format!("status_{status}")).or_default() += 1;
                }
                if let Some(row) = row {
                    put(&mut row.latency, latency);
                    row.requests += 1;
                    row.failed += u64::from(!sample.passed);
                }
            }
            Err(failure) => {
                *self.errors.entry(failure.as_str().to_owned()).or_default() += 1;
                if let Some(row) = row {
                    row.requests += 1;
                    row.failed += 1;
                }
            }
        }
        if sample.passed {
            self.passed += 1;
            if let Some(ids) = &mut self.ids {
                ids.push(sample.seq);
            }
        }
    }

    pub(crate) fn failed(&self) -> u64 {
        self.requests - self.passed
    }

    /// The timeline row of second `index` (counted from the start), if anything ended in it.
    pub(crate) fn second(&self, index: usize) -> Option<Second> {
        let row = self.seconds.get(index)?;
        Some(Second {
            t: index as u64,
            requests: row.requests,
            failed: row.failed,
            p50_ms: quantile_ms(&row.latency, 0.5),
            p99_ms: quantile_ms(&row.latency, 0.99),
            max_ms: (!row.latency.is_empty()).then(|| ms(row.latency.max())),
        })
    }

    pub(crate) fn timeline(&self) -> Vec<Second> {
        (0..self.seconds.len()).filter_map(|i| self.second(i)).collect()
    }

    pub(crate) fn duration(&self) -> Option<Trend> {
        trend(&self.duration)
    }

    pub(crate) fn latency(&self) -> Option<Trend> {
        if self.open { trend(&self.latency) } else { None }
    }

    pub(crate) fn lag(&self) -> Option<Trend> {
        if self.open { trend(&self.lag) } else { None }
    }
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn quantile_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q)))
}

fn trend(h: &Histogram<u64>) -> Option<Trend> {
    if h.is_empty() {
        return None;
    }
    let q = |q: f64| ms(h.value_at_quantile(q));
    Some(Trend {
        count: h.len(),
        min: ms(h.min()),
        avg: (h.mean() * 10.0).round() / 10_000.0,
        med: q(0.5),
        p90: q(0.9),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: ms(h.max()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, start: Instant, sent_ms: u64, done_ms: u64, outcome: Result<u16, Failure>) -> Sample {
        Sample {
            seq,
            intended: start,
            sent: start + Duration::from_millis(sent_ms),
            done: start + Duration::from_millis(done_ms),
            passed: outcome == Ok(200),
            outcome,
        }
    }

    #[test]
    fn percentiles_are_exact_to_three_figures_over_a_million_samples() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, false, false);
        // 1..=1000 µs, a thousand times each: p50 = 500 µs, p99 = 990 µs.
        for round in 0..1000_u64 {
            for us in 1..=1000_u64 {
                let at = start + Duration::from_micros(round);
                recorder.record(&Sample {
                    seq: 0,
                    intended: at,
                    sent: at,
                    done: at + Duration::from_micros(us),
                    outcome: Ok(200),
                    passed: true,
                });
            }
        }
        let trend = recorder.duration().unwrap();
        assert_eq!(trend.count, 1_000_000);
        assert!((trend.med - 0.5).abs() <= 0.0005, "{trend:?}");
        assert!((trend.p99 - 0.99).abs() <= 0.001, "{trend:?}");
        assert!((trend.max - 1.0).abs() <= 0.001, "{trend:?}");
        assert!((trend.avg - 0.5005).abs() <= 0.001, "{trend:?}");
    }

    #[test]
    fn open_loop_latency_counts_from_the_scheduled_start() {
        let start = Instant::now();
        let mut recorder = Recorder::new(start, true, true);
        // Sent 400 ms late (no free slot), answered 10 ms later.
        recorder.record(&sample(7, start, 400, 410, Ok(200)));
        recorder.record(&sample(8, start, 0, 1500, Ok(503)));
        recorder.record(&sample(9, start, 0, 30, Err(Failure::Timeout)));
        assert!((recorder.duration().unwrap().min - 10.0).abs() < 0.01, "{:?}", recorder.duration());
        assert!((recorder.latency().unwrap().min - 410.0).abs() < 0.5);
        assert_eq!(recorder.late, 1);
        assert_eq!(recorder.failed(), 2);
        assert_eq!(recorder.errors.get("status_503"), Some(&1));
        assert_eq!(recorder.errors.get("timeout"), Some(&1));
        assert_eq!(recorder.ids.as_deref(), Some(&[7][..]), "only requests that passed");
        let timeline = recorder.timeline();
        assert_eq!(timeline.len(), 2, "answers in second 0 and second 1");
        assert_eq!((timeline[0].requests, timeline[0].failed), (2, 1));
        assert_eq!((timeline[1].requests, timeline[1].failed), (1, 1));
    }
}
