//! The Lambda path against the in-memory doubles: retries of failed entries and calls, the
//! request budget, and the routing of invalid events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ingest::direct::{Direct, DirectConfig, RetryPolicy, deliver};
use ingest::metrics::Metrics;
use ingest::sinks::{FaultSink, MemorySink};
use ingest::{Ingest, IngestError, Mode, Record, SharedSink, Submission, pack};
use tokio::time::Instant;

fn event(id: usize) -> Bytes {
    Bytes::from(format!(r#"{{"type":"t","timestamp":1,"id":{id}}}"#))
}

fn events(ids: std::ops::Range<usize>) -> Vec<Bytes> {
    ids.map(event).collect()
}

fn submission(mode: Mode, valid: Vec<Bytes>) -> Submission {
    Submission { mode, valid, invalid: Vec::new() }
}

fn quick_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_attempts,
    }
}

fn faulty(faults: FaultSink<MemorySink>) -> (Arc<FaultSink<MemorySink>>, SharedSink) {
    let sink = Arc::new(faults);
    let shared: SharedSink = sink.clone();
    (sink, shared)
}

fn sorted(mut events: Vec<Bytes>) -> Vec<Bytes> {
    events.sort();
    events
}

#[tokio::test]
async fn failed_entries_are_retried_alone_until_delivered() {
    let (sink, shared) = faulty(FaultSink::new(MemorySink::new()).fail_every_kth_entry(3, 2));
    let config = DirectConfig { pack_cap: 0, retry: quick_retries(8), ..DirectConfig::default() };
    let direct = Direct::new(shared, None, config);
    let receipt = direct.submit(submission(Mode::Sync, events(0..100))).await.unwrap();
    assert_eq!((receipt.accepted, receipt.undelivered), (100, 0));
    assert_eq!(sorted(sink.inner().events()), sorted(events(0..100)));
    let m = direct.metrics().snapshot();
    assert_eq!(m.retried_records, sink.entry_failures() as u64);
    assert_eq!((m.flushed_records, m.flushed_events, m.accepted_events), (100, 100, 100));
    assert_eq!(sink.calls(), 3, "the failed entries are re-sent alone, twice");
}

#[tokio::test]
async fn whole_failed_calls_are_retried() {
    let (sink, shared) = faulty(FaultSink::new(MemorySink::new()).fail_calls(2));
    let config = DirectConfig { retry: quick_retries(8), ..DirectConfig::default() };
    let direct = Direct::new(shared, None, config);
    let receipt = direct.submit(submission(Mode::Async, events(0..10))).await.unwrap();
    assert_eq!((receipt.accepted, receipt.undelivered), (10, 0));
    assert_eq!(sink.inner().events(), events(0..10));
    assert_eq!(sink.inner().records().len(), 1, "small events are packed into one record");
}

#[tokio::test]
async fn a_down_sink_makes_a_sync_submission_undelivered_within_the_budget() {
    let (sink, shared) = faulty(FaultSink::new(MemorySink::new()));
    sink.down();
    let retry = RetryPolicy {
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_attempts: 1000,
    };
    let config = DirectConfig { budget: Duration::from_millis(200), retry, ..DirectConfig::default() };
    let direct = Direct::new(shared, None, config);
    let start = Instant::now();
    let err = direct.submit(submission(Mode::Sync, events(0..5))).await.unwrap_err();
    let spent = start.elapsed();
    assert!(matches!(err, IngestError::Undelivered { undelivered: 5, total: 5, .. }), "{err:?}");
    assert!(spent <= Duration::from_millis(300), "{spent:?}");
    assert!(sink.calls() > 1, "it should have retried");
    let m = direct.metrics().snapshot();
    assert_eq!((m.accepted_events, m.undelivered_events, m.flushed_records), (0, 0, 0));
}

#[tokio::test]
async fn a_down_sink_leaves_an_async_receipt_with_the_undelivered_events_counted() {
    let (sink, shared) = faulty(FaultSink::new(MemorySink::new()));
    sink.down();
    let config = DirectConfig {
        budget: Duration::from_millis(100),
        retry: quick_retries(1000),
        ..DirectConfig::default()
    };
    let direct = Direct::new(shared, None, config);
    let receipt = direct.submit(submission(Mode::Async, events(0..5))).await.unwrap();
    assert_eq!((receipt.accepted, receipt.undelivered), (0, 5));
    let m = direct.metrics().snapshot();
    assert_eq!((m.undelivered_events, m.accepted_events), (5, 0));
    assert_eq!(direct.metrics_snapshot(), m, "the port hands out the same numbers");
}

#[tokio::test]
async fn attempts_are_bounded_by_the_policy() {
    let (sink, shared) = faulty(FaultSink::new(MemorySink::new()));
    sink.down();
    let config =
        DirectConfig { budget: Duration::from_secs(30), retry: quick_retries(3), ..DirectConfig::default() };
    let direct = Direct::new(shared, None, config);
    let start = Instant::now();
    let receipt = direct.submit(submission(Mode::Async, events(0..2))).await.unwrap();
    assert_eq!(receipt.undelivered, 2);
    assert_eq!(sink.calls(), 3);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_call_slower_than_the_budget_is_abandoned_at_the_deadline() {
    let (_sink, shared) = faulty(FaultSink::new(MemorySink::new()).delay(Duration::from_secs(10)));
    let config = DirectConfig { budget: Duration::from_millis(100), ..DirectConfig::default() };
    let direct = Direct::new(shared, None, config);
    let start = Instant::now();
    let err = direct.submit(submission(Mode::Sync, events(0..1))).await.unwrap_err();
    assert!(matches!(err, IngestError::Undelivered { undelivered: 1, .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(direct.metrics().snapshot().in_flight_flushes, 0);
}

#[tokio::test]
async fn invalid_events_go_to_the_invalid_sink_as_lines_with_index_error_and_event() {
    let memory = Arc::new(MemorySink::new());
    let invalid = Arc::new(MemorySink::new());
    let direct = Direct::new(memory.clone(), Some(invalid.clone()), DirectConfig::default());
    let parsed =
        ingest::event::parse(br#"[{"type":"a","timestamp":1},{"timestamp":2},{"type":"","timestamp":3}]"#)
            .unwrap();
    let receipt = direct
        .submit(Submission { mode: Mode::Async, valid: parsed.valid, invalid: parsed.invalid })
        .await
        .unwrap();
    assert_eq!((receipt.accepted, receipt.invalid, receipt.undelivered), (1, 2, 0));
    assert_eq!(memory.events(), [Bytes::from(r#"{"type":"a","timestamp":1}"#)]);
    let lines: Vec<serde_json::Value> =
        invalid.events().iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["index"], 1);
    assert_eq!(lines[0]["error"], "`type` is missing");
    assert_eq!(lines[0]["event"], serde_json::json!({"timestamp": 2}));
    assert_eq!(lines[1]["index"], 2);
    assert_eq!(lines[1]["error"], "`type` is empty");
    assert_eq!(direct.metrics().snapshot().invalid_events, 2);
}

#[tokio::test]
async fn events_are_packed_up_to_the_cap() {
    let memory = Arc::new(MemorySink::new());
    let config = DirectConfig { pack_cap: 200, ..DirectConfig::default() };
    let direct = Direct::new(memory.clone(), None, config);
    direct.submit(submission(Mode::Async, events(0..40))).await.unwrap();
    let records = memory.records();
    assert!(records.len() > 1 && records.iter().all(|r| r.len() <= 200), "{records:?}");
    assert_eq!(memory.events(), events(0..40));
    assert_eq!(direct.describe(), "memory");
}

#[tokio::test]
async fn deliver_splits_records_into_calls_that_respect_the_limits() {
    let memory = MemorySink::new();
    let records: Vec<Record> = (0..1200).map(|id| pack::single(&event(id))).collect();
    let metrics = Metrics::default();
    let deadline = Instant::now() + Duration::from_secs(1);
    let delivery = deliver(&memory, records, deadline, &RetryPolicy::default(), &metrics).await;
    assert_eq!((delivery.delivered, delivery.failed.len()), (1200, 0));
    assert_eq!(memory.call_sizes(), [500, 500, 200]);
    let m = metrics.snapshot();
    assert_eq!((m.flush_calls, m.flushed_records), (3, 1200));
}
