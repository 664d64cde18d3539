//! Counters, gauges and the flush-latency histogram of an ingest host. [`crate::Ingest`] hands
//! out a [`MetricsSnapshot`] of plain numbers; how they are shown (Prometheus text on
//! `GET /metrics`) is the host's business.
//!
//! Everything is a relaxed atomic: the hot path (one submission) adds to a counter or two and
//! never takes a lock for metrics. A scrape reads each value on its own, so values may be a
//! few operations apart from each other, which metrics scrapers tolerate by design.

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
    buffer_peak_bytes: AtomicU64,
    in_flight_flushes: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is for calls slower than every bound.
    flush_buckets: [AtomicU64; FLUSH_BUCKETS.len() + 1],
    flush_nanos: AtomicU64,
    /// Sink calls: both the `flush_calls_total` counter and the histogram's `_count`.
    flush_calls: AtomicU64,
}

/// A plain copy of every value: what [`crate::Ingest::metrics_snapshot`] returns, for the hosts
/// to render, and for tests and logs.
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
    /// The most `buffer_bytes` ever held at once since start.
    pub buffer_peak_bytes: u64,
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

    /// Lines (one event each: the spill file's records) read back from the spill file and
    /// queued again.
    pub fn add_replayed(&self, lines: usize) {
        self.replayed_records.fetch_add(lines as u64, Relaxed);
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
        let before = self
            .buffer_bytes
            .fetch_update(Relaxed, Relaxed, |now| now.checked_add(bytes).filter(|after| *after <= limit))?;
        self.raise_peak(before + bytes);
        Ok(())
    }

    /// Takes `bytes` into the buffer whatever the limit (a spilled line larger than the whole
    /// buffer, replayed alone).
    pub fn reserve_buffer(&self, bytes: usize) {
        let before = self.buffer_bytes.fetch_add(bytes as u64, Relaxed);
        self.raise_peak(before.saturating_add(bytes as u64));
    }

    /// A load first: the peak only moves while the buffer fills, so the hot path rarely writes.
    fn raise_peak(&self, now: u64) {
        if now > self.buffer_peak_bytes.load(Relaxed) {
            self.buffer_peak_bytes.fetch_max(now, Relaxed);
        }
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
            buffer_peak_bytes: self.buffer_peak_bytes.load(Relaxed),
            in_flight_flushes: self.in_flight_flushes.load(Relaxed),
            flush_buckets: std::array::from_fn(|i| self.flush_buckets[i].load(Relaxed)),
            flush_nanos: self.flush_nanos.load(Relaxed),
        }
    }
}

fn saturating_sub(gauge: &AtomicU64, by: u64) {
    let _ = gauge.fetch_update(Relaxed, Relaxed, |now| Some(now.saturating_sub(by)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value set to something distinct (the hosts' renderers test the same snapshot).
    #[test]
    fn known_calls_land_in_these_counters_and_buckets() {
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
        let _in_flight = m.start_flush();
        m.observe_flush(Duration::from_micros(500));
        m.observe_flush(Duration::from_millis(3));
        m.observe_flush(Duration::from_millis(5));
        m.observe_flush(Duration::from_secs(60));
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
                buffer_peak_bytes: 1234,
                in_flight_flushes: 1,
                flush_buckets: [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                flush_nanos: 60_008_500_000,
            }
        );
    }

    #[test]
    fn the_buffer_never_reserves_past_its_limit() {
        let m = Metrics::default();
        assert_eq!(m.try_reserve_buffer(60, 100), Ok(()));
        assert_eq!(m.try_reserve_buffer(41, 100), Err(60));
        assert_eq!(m.try_reserve_buffer(40, 100), Ok(()));
        m.release_buffer(150);
        assert_eq!(m.buffer_bytes(), 0);
        assert_eq!(m.try_reserve_buffer(30, 100), Ok(()));
        assert_eq!(m.snapshot().buffer_peak_bytes, 100, "the most held at once, not the latest");
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
