//! Counters, gauges and the flush-latency histogram of an ingest host, rendered as Prometheus
//! text (exposition format 0.0.4).
//!
//! Everything is a relaxed atomic: the hot path (one submission) adds to a counter or two and
//! never takes a lock for metrics. A scrape reads each value on its own, so values may be a
//! few operations apart from each other, which Prometheus tolerates by design.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds, in seconds, of the flush-latency buckets: from a fast local sink (1 ms) to a
/// Firehose call that is being throttled (10 s).
pub const FLUSH_BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The metrics of one host, shared as `Arc<Metrics>` between the submit path, the flusher and
/// the `/metrics` handler.
///
/// The flush metrics (`flushed_*`, `flush_calls`, the histogram) count the calls to both sinks,
/// the event sink and the invalid-event sink: both cost time and money.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted_events: AtomicU64,
    invalid_events: AtomicU64,
    rejected_requests: AtomicU64,
    flushed_records: AtomicU64,
    flushed_events: AtomicU64,
    retried_records: AtomicU64,
    undelivered_events: AtomicU64,
    spilled_records: AtomicU64,
    replayed_records: AtomicU64,
    dropped_records: AtomicU64,
    buffer_bytes: AtomicU64,
    in_flight_flushes: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is for calls slower than every bound.
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len() + 1],
    flush_nanos: AtomicU64,
    /// Sink calls: both the `flush_calls_total` counter and the histogram's `_count`.
    flush_calls: AtomicU64,
}

/// A plain copy of every value, for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub accepted_events: u64,
    pub invalid_events: u64,
    pub rejected_requests: u64,
    pub flushed_records: u64,
    pub flushed_events: u64,
    pub flush_calls: u64,
    pub retried_records: u64,
    pub undelivered_events: u64,
    pub spilled_records: u64,
    pub replayed_records: u64,
    pub dropped_records: u64,
    pub buffer_bytes: u64,
    pub in_flight_flushes: u64,
    /// Per-bucket counts of [`FLUSH_BUCKETS`], then the count above the last bound.
    pub flush_buckets: [u64; FLUSH_BUCKETS.len() + 1],
    pub flush_nanos: u64,
}

/// Measures one sink call. Dropping it without [`FlushTimer::finish`] (the call's future was
/// cancelled) still lowers the in-flight gauge, so the gauge cannot drift upwards.
#[derive(Debug)]
#[must_use = "finish() records the call's latency"]
pub struct FlushTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
}

impl FlushTimer<'_> {
    /// Records the call in the histogram and in `flush_calls`.
    pub fn finish(self) {
        self.metrics.observe_flush(self.started.elapsed());
    }
}

impl Drop for FlushTimer<'_> {
    fn drop(&mut self) {
        saturating_sub(&self.metrics.in_flight_flushes, 1);
    }
}

impl Metrics {
    /// Valid events taken.
    pub fn add_accepted(&self, events: usize) {
        self.accepted_events.fetch_add(events as u64, Relaxed);
    }

    /// Invalid events routed to the invalid sink (or the log).
    pub fn add_invalid(&self, events: usize) {
        self.invalid_events.fetch_add(events as u64, Relaxed);
    }

    /// One request refused because the buffer was full (503).
    pub fn add_rejected(&self) {
        self.rejected_requests.fetch_add(1, Relaxed);
    }

    /// Records (holding `events` events) the sink acknowledged.
    pub fn add_flushed(&self, records: usize, events: usize) {
        self.flushed_records.fetch_add(records as u64, Relaxed);
        self.flushed_events.fetch_add(events as u64, Relaxed);
    }

    /// Records re-sent after a failed entry or a failed call.
    pub fn add_retried(&self, records: usize) {
        self.retried_records.fetch_add(records as u64, Relaxed);
    }

    /// Events the sink still refused when the retry budget ran out (the Lambda's async path).
    pub fn add_undelivered(&self, events: usize) {
        self.undelivered_events.fetch_add(events as u64, Relaxed);
    }

    /// Records written to the spill file at shutdown.
    pub fn add_spilled(&self, records: usize) {
        self.spilled_records.fetch_add(records as u64, Relaxed);
    }

    /// Records read back from the spill file at start.
    pub fn add_replayed(&self, records: usize) {
        self.replayed_records.fetch_add(records as u64, Relaxed);
    }

    /// Records that could be neither delivered nor spilled. The caller logs them.
    pub fn add_dropped(&self, records: usize) {
        self.dropped_records.fetch_add(records as u64, Relaxed);
    }

    /// Takes `bytes` into the buffer unless that would pass `limit`; on refusal returns the bytes
    /// buffered now. The check and the addition are one compare-and-swap, so concurrent
    /// submissions can never push the gauge over the limit together.
    pub fn try_reserve_buffer(&self, bytes: usize, limit: usize) -> Result<(), u64> {
        let (bytes, limit) = (bytes as u64, limit as u64);
        self.buffer_bytes
            .fetch_update(Relaxed, Relaxed, |now| now.checked_add(bytes).filter(|after| *after <= limit))
            .map(|_| ())
    }

    /// Takes `bytes` into the buffer whatever the limit (replay of the spill file at start).
    pub fn reserve_buffer(&self, bytes: usize) {
        self.buffer_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// `bytes` left the buffer: acknowledged by the sink, spilled or dropped.
    pub fn release_buffer(&self, bytes: usize) {
        saturating_sub(&self.buffer_bytes, bytes as u64);
    }

    /// Bytes accepted and not yet acknowledged (queued, in flight or waiting for a retry).
    pub fn buffer_bytes(&self) -> u64 {
        self.buffer_bytes.load(Relaxed)
    }

    /// Starts timing one sink call and counts it in flight until the timer is dropped.
    pub fn start_flush(&self) -> FlushTimer<'_> {
        self.in_flight_flushes.fetch_add(1, Relaxed);
        FlushTimer { metrics: self, started: Instant::now() }
    }

    /// Records one sink call that took `elapsed`.
    pub fn observe_flush(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = FLUSH_BUCKETS.iter().position(|le| seconds <= *le).unwrap_or(FLUSH_BUCKETS.len());
        if let Some(slot) = self.flush_buckets.get(bucket) {
            slot.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.flush_nanos.fetch_add(nanos, Relaxed);
        self.flush_calls.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            accepted_events: self.accepted_events.load(Relaxed),
            invalid_events: self.invalid_events.load(Relaxed),
            rejected_requests: self.rejected_requests.load(Relaxed),
            flushed_records: self.flushed_records.load(Relaxed),
            flushed_events: self.flushed_events.load(Relaxed),
            flush_calls: self.flush_calls.load(Relaxed),
            retried_records: self.retried_records.load(Relaxed),
            undelivered_events: self.undelivered_events.load(Relaxed),
            spilled_records: self.spilled_records.load(Relaxed),
            replayed_records: self.replayed_records.load(Relaxed),
            dropped_records: self.dropped_records.load(Relaxed),
            buffer_bytes: self.buffer_bytes.load(Relaxed),
            in_flight_flushes: self.in_flight_flushes.load(Relaxed),
            flush_buckets: std::array::from_fn(|i| self.flush_buckets[i].load(Relaxed)),
            flush_nanos: self.flush_nanos.load(Relaxed),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, names prefixed `ingest_`.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let counters: [(&str, &str, u64); 11] = [
            ("accepted_events", "Valid events taken.", s.accepted_events),
            ("invalid_events", "Invalid events routed to the invalid sink or the log.", s.invalid_events),
            (
                "rejected_requests",
                "Requests refused with 503 because the buffer was full.",
                s.rejected_requests,
            ),
            ("flushed_records", "Records acknowledged by the sink.", s.flushed_records),
            ("flushed_events", "Events in the records acknowledged by the sink.", s.flushed_events),
            ("flush_calls", "Calls to the sink.", s.flush_calls),
            ("retried_records", "Records re-sent after a failed entry or a failed call.", s.retried_records),
            (
                "undelivered_events",
                "Events the sink still refused when the retry budget ran out.",
                s.undelivered_events,
            ),
            ("spilled_records", "Records written to the spill file at shutdown.", s.spilled_records),
            ("replayed_records", "Records read back from the spill file at start.", s.replayed_records),
            ("dropped_records", "Records that could be neither delivered nor spilled.", s.dropped_records),
        ];
        let gauges: [(&str, &str, u64); 2] = [
            ("buffer_bytes", "Bytes accepted and not yet acknowledged by the sink.", s.buffer_bytes),
            ("in_flight_flushes", "Calls to the sink under way.", s.in_flight_flushes),
        ];
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; the results are ignored rather than unwrapped.
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP ingest_{name}_total {help}\n# TYPE ingest_{name}_total counter\ningest_{name}_total {value}\n"
            );
        }
        for (name, help, value) in gauges {
            let _ = write!(
                out,
                "# HELP ingest_{name} {help}\n# TYPE ingest_{name} gauge\ningest_{name} {value}\n"
            );
        }
        out.push_str("# HELP ingest_flush_seconds Latency of one call to the sink.\n");
        out.push_str("# TYPE ingest_flush_seconds histogram\n");
        let mut cumulative = 0u64;
        for (le, count) in FLUSH_BUCKETS.iter().zip(s.flush_buckets) {
            cumulative = cumulative.saturating_add(count);
            let _ = writeln!(out, "ingest_flush_seconds_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let total = cumulative.saturating_add(s.flush_buckets[FLUSH_BUCKETS.len()]);
        let _ = writeln!(out, "ingest_flush_seconds_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "ingest_flush_seconds_sum {}", s.flush_nanos as f64 / 1e9);
        let _ = writeln!(out, "ingest_flush_seconds_count {total}");
        out
    }
}

fn saturating_sub(gauge: &AtomicU64, by: u64) {
    let _ = gauge.fetch_update(Relaxed, Relaxed, |now| Some(now.saturating_sub(by)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> String {
        let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
        line.unwrap_or_else(|| panic!("{series} missing in\n{text}"))[series.len() + 1..].to_owned()
    }

    #[test]
    fn counters_are_prefixed_and_suffixed_with_help_and_type() {
        let m = Metrics::default();
        m.add_accepted(3);
        m.add_rejected();
        m.add_flushed(2, 5);
        let text = m.render();
        assert!(text.contains("# HELP ingest_accepted_events_total "));
        assert!(text.contains("# TYPE ingest_accepted_events_total counter\n"));
        assert_eq!(value(&text, "ingest_accepted_events_total"), "3");
        assert_eq!(value(&text, "ingest_rejected_requests_total"), "1");
        assert_eq!(value(&text, "ingest_flushed_records_total"), "2");
        assert_eq!(value(&text, "ingest_flushed_events_total"), "5");
        assert!(text.contains("# TYPE ingest_buffer_bytes gauge\n"));
        assert!(text.ends_with('\n'));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("ingest_"), "{line}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = Metrics::default();
        m.observe_flush(Duration::from_micros(500));
        m.observe_flush(Duration::from_millis(3));
        m.observe_flush(Duration::from_millis(5));
        m.observe_flush(Duration::from_secs(60));
        let text = m.render();
        assert_eq!(value(&text, "ingest_flush_seconds_bucket{le=\"0.001\"}"), "1");
        assert_eq!(value(&text, "ingest_flush_seconds_bucket{le=\"0.0025\"}"), "1");
        assert_eq!(value(&text, "ingest_flush_seconds_bucket{le=\"0.005\"}"), "3");
        assert_eq!(value(&text, "ingest_flush_seconds_bucket{le=\"10\"}"), "3");
        assert_eq!(value(&text, "ingest_flush_seconds_bucket{le=\"+Inf\"}"), "4");
        assert_eq!(value(&text, "ingest_flush_seconds_count"), "4");
        assert_eq!(value(&text, "ingest_flush_calls_total"), "4");
        let sum: f64 = value(&text, "ingest_flush_seconds_sum").parse().unwrap();
        assert!((sum - 60.0085).abs() < 1e-9, "{sum}");
    }

    /// Every value set to something distinct, so a swapped or missing series shows.
    fn known() -> Metrics {
        let m = Metrics::default();
        m.add_accepted(3);
        m.add_invalid(2);
        m.add_rejected();
        m.add_flushed(4, 5);
        m.add_retried(6);
        m.add_undelivered(7);
        m.add_spilled(8);
        m.add_replayed(9);
        m.add_dropped(10);
        m.reserve_buffer(1234);
        std::mem::forget(m.start_flush());
        m.observe_flush(Duration::from_micros(500));
        m.observe_flush(Duration::from_millis(3));
        m.observe_flush(Duration::from_millis(5));
        m.observe_flush(Duration::from_secs(60));
        m
    }

    #[test]
    fn the_text_of_a_known_snapshot_is_exactly_this() {
        let m = known();
        assert_eq!(
            m.snapshot(),
            MetricsSnapshot {
                accepted_events: 3,
                invalid_events: 2,
                rejected_requests: 1,
                flushed_records: 4,
                flushed_events: 5,
                flush_calls: 4,
                retried_records: 6,
                undelivered_events: 7,
                spilled_records: 8,
                replayed_records: 9,
                dropped_records: 10,
                buffer_bytes: 1234,
                in_flight_flushes: 1,
                flush_buckets: [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                flush_nanos: 60_008_500_000,
            }
        );
        assert_eq!(m.render(), KNOWN_TEXT);
    }

    const KNOWN_TEXT: &str = r#"# HELP ingest_accepted_events_total Valid events taken.
# TYPE ingest_accepted_events_total counter
ingest_accepted_events_total 3
# HELP ingest_invalid_events_total Invalid events routed to the invalid sink or the log.
# TYPE ingest_invalid_events_total counter
ingest_invalid_events_total 2
# HELP ingest_rejected_requests_total Requests refused with 503 because the buffer was full.
# TYPE ingest_rejected_requests_total counter
ingest_rejected_requests_total 1
# HELP ingest_flushed_records_total Records acknowledged by the sink.
# TYPE ingest_flushed_records_total counter
ingest_flushed_records_total 4
# HELP ingest_flushed_events_total Events in the records acknowledged by the sink.
# TYPE ingest_flushed_events_total counter
ingest_flushed_events_total 5
# HELP ingest_flush_calls_total Calls to the sink.
# TYPE ingest_flush_calls_total counter
ingest_flush_calls_total 4
# HELP ingest_retried_records_total Records re-sent after a failed entry or a failed call.
# TYPE ingest_retried_records_total counter
ingest_retried_records_total 6
# HELP ingest_undelivered_events_total Events the sink still refused when the retry budget ran out.
# TYPE ingest_undelivered_events_total counter
ingest_undelivered_events_total 7
# HELP ingest_spilled_records_total Records written to the spill file at shutdown.
# TYPE ingest_spilled_records_total counter
ingest_spilled_records_total 8
# HELP ingest_replayed_records_total Records read back from the spill file at start.
# TYPE ingest_replayed_records_total counter
ingest_replayed_records_total 9
# HELP ingest_dropped_records_total Records that could be neither delivered nor spilled.
# TYPE ingest_dropped_records_total counter
ingest_dropped_records_total 10
# HELP ingest_buffer_bytes Bytes accepted and not yet acknowledged by the sink.
# TYPE ingest_buffer_bytes gauge
ingest_buffer_bytes 1234
# HELP ingest_in_flight_flushes Calls to the sink under way.
# TYPE ingest_in_flight_flushes gauge
ingest_in_flight_flushes 1
# HELP ingest_flush_seconds Latency of one call to the sink.
# TYPE ingest_flush_seconds histogram
ingest_flush_seconds_bucket{le="0.001"} 1
ingest_flush_seconds_bucket{le="0.0025"} 1
ingest_flush_seconds_bucket{le="0.005"} 3
ingest_flush_seconds_bucket{le="0.01"} 3
ingest_flush_seconds_bucket{le="0.025"} 3
ingest_flush_seconds_bucket{le="0.05"} 3
ingest_flush_seconds_bucket{le="0.1"} 3
ingest_flush_seconds_bucket{le="0.25"} 3
ingest_flush_seconds_bucket{le="0.5"} 3
ingest_flush_seconds_bucket{le="1"} 3
ingest_flush_seconds_bucket{le="2.5"} 3
ingest_flush_seconds_bucket{le="5"} 3
ingest_flush_seconds_bucket{le="10"} 3
ingest_flush_seconds_bucket{le="+Inf"} 4
ingest_flush_seconds_sum 60.0085
ingest_flush_seconds_count 4
"#;

    #[test]
    fn the_buffer_never_reserves_past_its_limit() {
        let m = Metrics::default();
        assert_eq!(m.try_reserve_buffer(60, 100), Ok(()));
        assert_eq!(m.try_reserve_buffer(41, 100), Err(60));
        assert_eq!(m.try_reserve_buffer(40, 100), Ok(()));
        m.release_buffer(150);
        assert_eq!(m.buffer_bytes(), 0);
    }

    #[test]
    fn a_dropped_flush_timer_still_leaves_the_in_flight_gauge() {
        let m = Metrics::default();
        let timer = m.start_flush();
        assert_eq!(m.snapshot().in_flight_flushes, 1);
        drop(timer);
        let s = m.snapshot();
        assert_eq!((s.in_flight_flushes, s.flush_calls), (0, 0));
        m.start_flush().finish();
        let s = m.snapshot();
        assert_eq!((s.in_flight_flushes, s.flush_calls), (0, 1));
    }
}
