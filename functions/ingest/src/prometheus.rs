//! `GET /metrics`: an [`Ingest`](ingest::Ingest)'s [`MetricsSnapshot`] as Prometheus text
//! (exposition format 0.0.4). The numbers are the domain's; their presentation is the host's.

use std::fmt::Write as _;

use ingest::metrics::{FLUSH_BUCKETS, MetricsSnapshot};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text exposition (format 0.0.4) of every metric, names prefixed `ingest_`.
pub fn render(s: &MetricsSnapshot) -> String {
    let counters: [(&str, &str, u64); 11] = [
        ("accepted_events", "Valid events taken.", s.accepted_events),
        ("invalid_events", "Invalid events routed to the invalid sink or the log.", s.invalid_events),
        ("rejected_requests", "Requests refused with 503 because the buffer was full.", s.rejected_requests),
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
        (
            "replayed_records",
            "Lines (events) read back from the spill file and queued again.",
            s.replayed_records,
        ),
        ("dropped_records", "Records that could be neither delivered nor spilled.", s.dropped_records),
    ];
    let gauges: [(&str, &str, u64); 3] = [
        ("buffer_bytes", "Bytes accepted and not yet acknowledged by the sink.", s.buffer_bytes),
        ("buffer_peak_bytes", "The most bytes the buffer held at once since start.", s.buffer_peak_bytes),
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
        let _ =
            write!(out, "# HELP ingest_{name} {help}\n# TYPE ingest_{name} gauge\ningest_{name} {value}\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> String {
        let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '));
        line.unwrap_or_else(|| panic!("{series} missing in\n{text}"))[series.len() + 1..].to_owned()
    }

    #[test]
    fn counters_are_prefixed_and_suffixed_with_help_and_type() {
        let s = MetricsSnapshot {
            accepted_events: 3,
            rejected_requests: 1,
            flushed_records: 2,
            flushed_events: 5,
            ..MetricsSnapshot::default()
        };
        let text = render(&s);
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
        // 0.5 ms, 3 ms, 5 ms and 60 s.
        let s = MetricsSnapshot {
            flush_calls: 4,
            flush_buckets: [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            flush_nanos: 60_008_500_000,
            ..MetricsSnapshot::default()
        };
        let text = render(&s);
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

    /// The snapshot of `ingest::metrics`' `known_calls_land_in_these_counters_and_buckets`: every
    /// value distinct, so a swapped or missing series shows.
    #[test]
    fn the_text_of_a_known_snapshot_is_exactly_this() {
        let s = MetricsSnapshot {
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
        };
        assert_eq!(render(&s), KNOWN_TEXT);
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
# HELP ingest_replayed_records_total Lines (events) read back from the spill file and queued again.
# TYPE ingest_replayed_records_total counter
ingest_replayed_records_total 9
# HELP ingest_dropped_records_total Records that could be neither delivered nor spilled.
# TYPE ingest_dropped_records_total counter
ingest_dropped_records_total 10
# HELP ingest_buffer_bytes Bytes accepted and not yet acknowledged by the sink.
# TYPE ingest_buffer_bytes gauge
ingest_buffer_bytes 1234
# HELP ingest_buffer_peak_bytes The most bytes the buffer held at once since start.
# TYPE ingest_buffer_peak_bytes gauge
ingest_buffer_peak_bytes 1234
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
}
