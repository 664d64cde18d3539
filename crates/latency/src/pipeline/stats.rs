//! The figures of a run, from the load report and the rows read back: requests in and items
//! through per second, the drain after the last request, and the latencies — end to end, server
//! and per hop — with count, mean and nearest-rank percentiles (`probe::stats::percentile`: each
//! one a measured value).

use probe::stats::{mean, percentile, round2};
use serde::Serialize;

use super::source::Row;

/// One latency over the items that have both stamps, in ms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// The downstream function's metric name: `EndToEnd`, `Server`, `UpstreamToKinesis`, …
    pub name: &'static str,
    /// What it spans, in words.
    pub spans: &'static str,
    pub count: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// Why these figures are coarser than a millisecond, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

type Stamp = fn(&Row) -> Option<f64>;

/// The latencies: (name, what it spans, from, to, second-precise on AWS).
const LATENCIES: [(&str, &str, Stamp, Stamp, bool); 7] = [
    ("EndToEnd", "client send → downstream", |r| r.client_ms, |r| r.downstream_ms, false),
    ("Server", "upstream receive → downstream", |r| r.upstream_ms, |r| r.downstream_ms, false),
    ("UpstreamToKinesis", "upstream receive → Kinesis arrival", |r| r.upstream_ms, |r| r.kinesis_ms, false),
    ("KinesisToMidstream", "Kinesis arrival → midstream", |r| r.kinesis_ms, |r| r.midstream_ms, false),
    ("MidstreamToDownstream", "midstream → downstream", |r| r.midstream_ms, |r| r.downstream_ms, false),
    ("MidstreamToStream", "midstream → DynamoDB stream record", |r| r.midstream_ms, |r| r.stream_ms, true),
    ("StreamToDownstream", "DynamoDB stream record → downstream", |r| r.stream_ms, |r| r.downstream_ms, true),
];

const SECOND_PRECISE: &str =
    "second-precise: the DynamoDB stream record's creation time is whole seconds on AWS";
const CLIENT_SECONDS: &str =
    "second-precise: the items' timestamps were whole seconds (send {{now_ms}} for milliseconds)";

/// Every latency of [`LATENCIES`] over `rows`; those no row has both stamps of are left out.
pub fn latencies(rows: &[Row]) -> Vec<Latency> {
    // Whole-second client timestamps (the seed's body) make end to end second-precise.
    let client_seconds = {
        let mut stamps = rows.iter().filter_map(|r| r.client_ms).peekable();
        stamps.peek().is_some() && stamps.all(|ms| ms % 1000.0 == 0.0)
    };
    LATENCIES
        .iter()
        .filter_map(|&(name, spans, from, to, coarse)| {
            let samples: Vec<f64> = rows.iter().filter_map(|r| Some(to(r)? - from(r)?)).collect();
            let note = if coarse {
                Some(SECOND_PRECISE.to_owned())
            } else if name == "EndToEnd" && client_seconds {
                Some(CLIENT_SECONDS.to_owned())
            } else {
                None
            };
            summarize(name, spans, &samples, note)
        })
        .collect()
}

/// The samples of each millisecond-precise latency (not the second-precise stream hops), for the
/// CDF chart: `(name, ms)`.
pub fn samples(rows: &[Row]) -> Vec<(&'static str, Vec<f64>)> {
    LATENCIES
        .iter()
        .filter(|(.., coarse)| !coarse)
        .map(|&(name, _, from, to, _)| (name, rows.iter().filter_map(|r| Some(to(r)? - from(r)?)).collect()))
        .collect()
}

/// count, mean, p50, p90, p95, p99, max of `samples` (nearest rank), rounded to 2 decimals.
pub fn summarize(
    name: &'static str,
    spans: &'static str,
    samples: &[f64],
    note: Option<String>,
) -> Option<Latency> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |p: f64| percentile(&sorted, p).map(round2);
    Some(Latency {
        name,
        spans,
        count: sorted.len(),
        mean: round2(mean(&sorted)?),
        p50: at(50.0)?,
        p90: at(90.0)?,
        p95: at(95.0)?,
        p99: at(99.0)?,
        max: round2(*sorted.last()?),
        note,
    })
}

/// The end-to-end latency of each item against its send time, for the timeline chart:
/// `(seconds since the run started, ms)`.
pub fn end_to_end_over_time(rows: &[Row], started_at_ms: u64) -> Vec<(f64, f64)> {
    let start = started_at_ms as f64;
    let mut points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some(((r.client_ms? - start) / 1000.0, r.downstream_ms? - r.client_ms?)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// When items another tool sent arrived: the first upstream stamp (ms since the epoch, floored)
/// and the seconds to the last one — the window the requests-in figures are over when the load
/// was not ours. `None` when no row has an upstream stamp.
pub fn upstream_window(rows: &[Row]) -> Option<(u64, f64)> {
    let stamps = rows.iter().filter_map(|r| r.upstream_ms).filter(|ms| ms.is_finite() && *ms >= 0.0);
    let (first, last) = stamps.fold(None, |span: Option<(f64, f64)>, ms| match span {
        None => Some((ms, ms)),
        Some((lo, hi)) => Some((lo.min(ms), hi.max(ms))),
    })?;
    let first_ms = first.floor();
    Some((first_ms as u64, (last - first_ms) / 1000.0))
}

/// Requests in and items through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    /// Requests sent, per second of the load.
    pub requests_in_per_s: f64,
    /// Requests accepted (passed the check: 200), per second of the load.
    pub accepted_in_per_s: f64,
    /// Items that came through.
    pub items_through: usize,
    /// Items through per second, from the start of the load to the last item's
    /// `downstream_ms` (the load's seconds and the drain): equal to the accepted requests per
    /// second when nothing backs up.
    pub items_through_per_s: f64,
    /// The busiest second's items.
    pub peak_through_per_s: u64,
    /// Items through in each second since the run started (by `downstream_ms`), from second 0
    /// to the last item's.
    pub through_timeline: Vec<u64>,
    /// From the end of the load to the last item's `downstream_ms`, in seconds (0 when the last
    /// one came through before the load ended).
    pub drain_s: Option<f64>,
}

/// `elapsed_s`: how long the load ran; `started_at_ms`: when.
pub fn flow(rows: &[Row], requests: u64, accepted: usize, started_at_ms: u64, elapsed_s: f64) -> Flow {
    let per_s = |n: f64| if elapsed_s > 0.0 { round2(n / elapsed_s) } else { 0.0 };
    let start = started_at_ms as f64;
    let downstream: Vec<f64> = rows.iter().filter_map(|r| r.downstream_ms).collect();
    // The second of the run each item came through in; one before the start counts in second 0.
    let seconds: Vec<usize> = downstream.iter().map(|ms| ((ms - start).max(0.0) / 1000.0) as usize).collect();
    let mut through_timeline = vec![0u64; seconds.iter().max().map_or(0, |s| s + 1)];
    for &s in &seconds {
        through_timeline[s] += 1;
    }
    let last_ms = downstream.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let window_s = if last_ms.is_finite() { ((last_ms - start) / 1000.0).max(elapsed_s) } else { 0.0 };
    Flow {
        requests_in_per_s: per_s(requests as f64),
        accepted_in_per_s: per_s(accepted as f64),
        items_through: rows.len(),
        items_through_per_s: if window_s > 0.0 { round2(downstream.len() as f64 / window_s) } else { 0.0 },
        peak_through_per_s: through_timeline.iter().copied().max().unwrap_or(0),
        through_timeline,
        drain_s: last_ms.is_finite().then(|| round2(((last_ms - start) / 1000.0 - elapsed_s).max(0.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: usize, client: f64, upstream: f64, downstream: f64) -> Row {
        Row {
            id: id.to_string(),
            client_ms: Some(client),
            upstream_ms: Some(upstream),
            kinesis_ms: Some(upstream + 5.0),
            midstream_ms: Some(upstream + 20.0),
            stream_ms: Some(((upstream + 20.0) / 1000.0).floor() * 1000.0 + 1000.0),
            downstream_ms: Some(downstream),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_each_a_measured_latency() {
        // End to end 1, 2, …, 100 ms: p50 is the 50th, p90 the 90th, p95 the 95th, p99 the 99th.
        let rows: Vec<Row> =
            (1..=100).map(|i| row(i, 1_000_000.0, 1_000_000.0, 1_000_000.0 + i as f64)).collect();
        let all = latencies(&rows);
        let e2e = all.iter().find(|l| l.name == "EndToEnd").expect("end to end");
        assert_eq!(
            (e2e.count, e2e.mean, e2e.p50, e2e.p90, e2e.p95, e2e.p99, e2e.max),
            (100, 50.5, 50.0, 90.0, 95.0, 99.0, 100.0)
        );
        // Ten samples: ⌈0.99 × 10⌉ = 10th, ⌈0.5 × 10⌉ = 5th; never an interpolation.
        let ten: Vec<f64> = [7.0, 1.0, 9.0, 3.0, 5.0, 2.0, 10.0, 4.0, 8.0, 6.0].to_vec();
        let s = summarize("x", "x", &ten, None).expect("samples");
        assert_eq!((s.p50, s.p90, s.p95, s.p99, s.max), (5.0, 9.0, 10.0, 10.0, 10.0));
        assert!(summarize("x", "x", &[], None).is_none());
    }

    #[test]
    fn every_hop_is_measured_and_the_stream_hops_say_they_are_second_precise() {
        let rows =
            vec![row(1, 999_990.0, 1_000_000.0, 1_000_050.0), row(2, 1_000_000.0, 1_000_010.0, 1_000_040.0)];
        let all = latencies(&rows);
        let names: Vec<&str> = all.iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            [
                "EndToEnd",
                "Server",
                "UpstreamToKinesis",
                "KinesisToMidstream",
                "MidstreamToDownstream",
                "MidstreamToStream",
                "StreamToDownstream"
            ]
        );
        let get = |name| all.iter().find(|l| l.name == name).expect(name);
        assert_eq!((get("EndToEnd").p50, get("EndToEnd").max), (40.0, 60.0));
        assert_eq!((get("Server").p50, get("Server").max), (30.0, 50.0));
        assert_eq!(get("UpstreamToKinesis").max, 5.0);
        assert_eq!(get("KinesisToMidstream").max, 15.0);
        assert_eq!((get("MidstreamToDownstream").p50, get("MidstreamToDownstream").max), (10.0, 30.0));
        assert!(get("MidstreamToStream").note.as_deref().is_some_and(|n| n.contains("second-precise")));
        assert!(get("StreamToDownstream").note.is_some() && get("EndToEnd").note.is_none());
        // A row without the stream stamp (an emulator that gives none) leaves those two out.
        let bare: Vec<Row> = rows.into_iter().map(|r| Row { stream_ms: None, ..r }).collect();
        assert_eq!(latencies(&bare).len(), 5);
    }

    #[test]
    fn whole_second_client_timestamps_mark_end_to_end_second_precise() {
        let rows = vec![
            row(1, 1_000_000.0, 1_000_400.0, 1_000_450.0),
            row(2, 1_001_000.0, 1_001_200.0, 1_001_260.0),
        ];
        let e2e = latencies(&rows).into_iter().find(|l| l.name == "EndToEnd").expect("end to end");
        assert!(e2e.note.is_some_and(|n| n.contains("whole seconds")));
    }

    #[test]
    fn items_through_are_counted_by_the_second_they_came_through_and_the_drain_after_the_load() {
        let start = 1_700_000_000_000u64;
        let t = |s: f64| start as f64 + s * 1000.0;
        // Load of 2 s, 6 requests, 5 accepted; items through in seconds 0, 1, 1, 2 and 3.5.
        let rows: Vec<Row> = [0.5, 1.2, 1.9, 2.4, 3.5]
            .iter()
            .enumerate()
            .map(|(i, &s)| row(i, t(s - 0.1), t(s - 0.1), t(s)))
            .collect();
        let flow = flow(&rows, 6, 5, start, 2.0);
        assert_eq!((flow.requests_in_per_s, flow.accepted_in_per_s), (3.0, 2.5));
        assert_eq!(flow.through_timeline, vec![1, 2, 1, 1]);
        // 5 items over the 3.5 s from the start to the last one.
        assert_eq!((flow.items_through, flow.items_through_per_s, flow.peak_through_per_s), (5, 1.43, 2));
        assert_eq!(flow.drain_s, Some(1.5));
        // The last item through before the load ended: no drain, and the load's 2 s the window.
        let early = super::flow(&rows[..2], 6, 5, start, 2.0);
        assert_eq!((early.drain_s, early.items_through_per_s), (Some(0.0), 1.0));
        let none = super::flow(&[], 6, 5, start, 2.0);
        assert_eq!((none.drain_s, none.items_through_per_s, none.through_timeline.len()), (None, 0.0, 0));
    }

    #[test]
    fn the_window_of_items_another_tool_sent_runs_from_the_first_to_the_last_upstream_stamp() {
        let start = 1_700_000_000_000.0;
        let rows = vec![
            row(1, start + 400.0, start + 2_500.0, start + 2_600.0),
            row(2, start - 600.0, start, start + 90.0),
            row(3, start + 900.0, start + 1_000.0, start + 1_050.0),
            Row { id: "no stamps".into(), ..Row::default() },
        ];
        assert_eq!(upstream_window(&rows), Some((1_700_000_000_000, 2.5)));
        // Fed to `flow` as the load's window: requests in are the accepted items over it, and the
        // drain runs from the last upstream stamp to the last downstream one.
        let (started, elapsed) = upstream_window(&rows).expect("window");
        let flow = flow(&rows[..3], 3, 3, started, elapsed);
        assert_eq!((flow.requests_in_per_s, flow.accepted_in_per_s), (1.2, 1.2));
        assert_eq!(flow.drain_s, Some(0.1));
        assert_eq!(upstream_window(&rows[3..]), None);
        assert_eq!(upstream_window(&[]), None);
    }

    #[test]
    fn the_timeline_points_are_send_time_and_end_to_end_latency_in_send_order() {
        let start = 1_700_000_000_000u64;
        let rows = vec![
            row(2, start as f64 + 2000.0, start as f64 + 2001.0, start as f64 + 2100.0),
            row(1, start as f64 + 500.0, start as f64 + 501.0, start as f64 + 530.0),
        ];
        assert_eq!(end_to_end_over_time(&rows, start), vec![(0.5, 30.0), (2.0, 100.0)]);
    }
}
