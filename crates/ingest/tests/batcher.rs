//! The server's buffer against the in-memory doubles: flush triggers, retries, backpressure,
//! sync acknowledgements, shutdown, spill and replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ingest::batcher::{BufferConfig, Buffered};
use ingest::direct::RetryPolicy;
use ingest::sinks::{FaultSink, MemorySink};
use ingest::{Ingest, IngestError, Limits, Mode, SharedSink, Submission};
use proptest::prelude::*;
use tokio::time::Instant;

/// An event with a unique id, so a lost or duplicated one can be told apart.
fn event(id: usize) -> Bytes {
    Bytes::from(format!(r#"{{"type":"t","timestamp":1,"id":{id}}}"#))
}

fn padded(id: usize, pad: usize) -> Bytes {
    Bytes::from(format!(r#"{{"type":"t","timestamp":1,"id":{id},"pad":"{}"}}"#, "x".repeat(pad)))
}

fn events(ids: std::ops::Range<usize>) -> Vec<Bytes> {
    ids.map(event).collect()
}

fn submission(mode: Mode, valid: Vec<Bytes>) -> Submission {
    Submission { mode, valid, invalid: Vec::new() }
}

fn fast(linger_ms: u64) -> BufferConfig {
    BufferConfig {
        linger: Duration::from_millis(linger_ms),
        retry: RetryPolicy {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(10),
            max_attempts: 8,
        },
        ..BufferConfig::default()
    }
}

async fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The two lists hold the same events as multisets; reports what is missing or extra.
fn assert_same_events(got: &[Bytes], expected: &[Bytes]) {
    let mut counts: HashMap<&Bytes, i64> = HashMap::new();
    expected.iter().for_each(|e| *counts.entry(e).or_default() += 1);
    got.iter().for_each(|e| *counts.entry(e).or_default() -= 1);
    let missing = counts.values().filter(|c| **c > 0).count();
    let extra = counts.values().filter(|c| **c < 0).count();
    assert_eq!((missing, extra), (0, 0), "{} events delivered, {} expected", got.len(), expected.len());
}

fn memory_behind_faults(faults: FaultSink<MemorySink>) -> (Arc<FaultSink<MemorySink>>, SharedSink) {
    let sink = Arc::new(faults);
    let shared: SharedSink = sink.clone();
    (sink, shared)
}

#[tokio::test]
async fn a_call_of_500_records_is_sent_without_waiting_for_linger() {
    let memory = Arc::new(MemorySink::new());
    let config =
        BufferConfig { pack_cap: Some(0), linger: Duration::from_secs(30), ..BufferConfig::default() };
    let buffer = Buffered::start(memory.clone(), None, config).unwrap();
    for id in 0..500 {
        buffer.submit(submission(Mode::Async, vec![event(id)])).await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(2), || memory.call_sizes() == [500]).await,
        "{:?}",
        memory.call_sizes()
    );
    let m = buffer.metrics().snapshot();
    assert_eq!((m.flush_calls, m.flushed_records, m.flushed_events, m.buffer_bytes), (1, 500, 500, 0));
}

#[tokio::test]
async fn a_call_worth_of_bytes_is_sent_without_waiting_for_linger() {
    let limits = Limits { max_records: 500, max_batch_bytes: 2000, max_record_bytes: 500 };
    let memory = Arc::new(MemorySink::with_limits(limits));
    let config = BufferConfig { linger: Duration::from_secs(30), ..BufferConfig::default() };
    let buffer = Buffered::start(memory.clone(), None, config).unwrap();
    // About 100 bytes per event: a few do not fill a call, so nothing is sent.
    let valid: Vec<Bytes> = (0..3).map(|id| padded(id, 60)).collect();
    buffer.submit(submission(Mode::Async, valid)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(memory.call_sizes().is_empty());
    let valid: Vec<Bytes> = (3..30).map(|id| padded(id, 60)).collect();
    buffer.submit(submission(Mode::Async, valid)).await.unwrap();
    assert!(eventually(Duration::from_secs(2), || !memory.call_sizes().is_empty()).await);
    let delivered: usize = memory.records().iter().map(Bytes::len).sum();
    assert!(delivered > 1000, "a call should be nearly full, got {delivered} bytes");
    assert_eq!(memory.violations(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_single_event_is_delivered_after_linger_and_not_before() {
    let memory = Arc::new(MemorySink::new());
    let buffer = Buffered::start(memory.clone(), None, fast(100)).unwrap();
    let start = Instant::now();
    buffer.submit(submission(Mode::Async, vec![event(1)])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(95)).await;
    assert!(memory.events().is_empty(), "sent before linger");
    assert!(eventually(Duration::from_secs(1), || memory.events() == [event(1)]).await);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(150), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kth_entry_failing_twice_with_concurrent_submitters_loses_nothing() {
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()).fail_every_kth_entry(7, 2));
    let config = BufferConfig { pack_cap: Some(2000), ..fast(5) };
    let buffer = Arc::new(Buffered::start(shared, None, config).unwrap());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let buffer = Arc::clone(&buffer);
        tasks.push(tokio::spawn(async move {
            // Per task: 500-event submissions and single events, interleaved.
            let base = task * 2000;
            let mut next = base;
            for round in 0..3 {
                buffer.submit(submission(Mode::Async, events(next..next + 500))).await.unwrap();
                next += 500;
                if round < 2 {
                    for _ in 0..250 {
                        buffer.submit(submission(Mode::Async, vec![event(next)])).await.unwrap();
                        next += 1;
                    }
                }
            }
            assert_eq!(next, base + 2000);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = buffer.shutdown(Duration::from_secs(10)).await;
    assert_eq!((report.spilled_records, report.dropped_records), (0, 0));
    assert_same_events(&sink.inner().events(), &events(0..16_000));
    let m = buffer.metrics().snapshot();
    assert!(m.retried_records > 0 && sink.entry_failures() > 0);
    assert_eq!((m.accepted_events, m.flushed_events, m.buffer_bytes), (16_000, 16_000, 0));
    assert_eq!(sink.inner().violations(), 0);
}

#[tokio::test]
async fn whole_calls_failing_lose_nothing() {
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()).fail_calls(5));
    let config = BufferConfig { pack_cap: Some(0), ..fast(2) };
    let buffer = Buffered::start(shared, None, config).unwrap();
    for chunk in 0..10 {
        buffer.submit(submission(Mode::Async, events(chunk * 100..chunk * 100 + 100))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(eventually(Duration::from_secs(5), || sink.inner().events().len() >= 1000).await);
    assert_same_events(&sink.inner().events(), &events(0..1000));
    assert_eq!(sink.call_failures(), 5);
    let m = buffer.metrics().snapshot();
    assert!(m.retried_records > 0);
    assert_eq!(m.buffer_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_buffer_refuses_whole_submissions_and_delivers_every_accepted_one() {
    let (sink, shared) =
        memory_behind_faults(FaultSink::new(MemorySink::new()).delay(Duration::from_millis(20)));
    let limit = 32 * 1024;
    let config = BufferConfig { max_buffer_bytes: limit, max_in_flight: 1, ..fast(5) };
    let buffer = Arc::new(Buffered::start(shared, None, config).unwrap());
    let metrics = buffer.metrics();
    let highest = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (metrics, highest) = (Arc::clone(&metrics), Arc::clone(&highest));
        tokio::spawn(async move {
            loop {
                highest.fetch_max(metrics.buffer_bytes(), Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let mut producers = Vec::new();
    for producer in 0..4 {
        let buffer = Arc::clone(&buffer);
        producers.push(tokio::spawn(async move {
            let (mut taken, mut refused) = (Vec::new(), 0);
            for n in 0..400 {
                let first = (producer * 400 + n) * 10;
                match buffer.submit(submission(Mode::Async, events(first..first + 10))).await {
                    Ok(receipt) => {
                        assert_eq!(receipt.accepted, 10);
                        taken.extend(events(first..first + 10));
                    }
                    Err(IngestError::Overloaded { limit_bytes, retry_after, .. }) => {
                        assert_eq!(limit_bytes, limit);
                        assert_eq!(retry_after, Duration::from_secs(1));
                        refused += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
            (taken, refused)
        }));
    }
    let (mut taken, mut refused) = (Vec::new(), 0);
    for producer in producers {
        let (t, r) = producer.await.unwrap();
        taken.extend(t);
        refused += r;
    }
    let report = buffer.shutdown(Duration::from_secs(10)).await;
    sampler.abort();
    assert!(refused > 0, "the producers should have filled the buffer");
    assert!(!taken.is_empty());
    assert!(highest.load(Ordering::Relaxed) <= limit as u64, "{} > {limit}", highest.load(Ordering::Relaxed));
    assert_eq!((report.spilled_records, report.dropped_records), (0, 0));
    assert_same_events(&sink.inner().events(), &taken);
    let m = metrics.snapshot();
    assert_eq!(m.rejected_requests, refused as u64);
    assert_eq!(m.buffer_bytes, 0);
}

#[tokio::test]
async fn a_sync_submission_returns_only_after_the_sink_holds_its_events() {
    let memory = Arc::new(MemorySink::new());
    let buffer = Buffered::start(memory.clone(), None, fast(20)).unwrap();
    buffer.submit(submission(Mode::Async, events(0..5))).await.unwrap();
    let receipt = buffer.submit(submission(Mode::Sync, events(5..8))).await.unwrap();
    assert_eq!(receipt.accepted, 3);
    let held = memory.events();
    assert!(events(5..8).iter().all(|e| held.contains(e)), "returned before the sink held the events");
}

#[tokio::test]
async fn a_sync_submission_to_a_down_sink_is_undelivered_after_the_timeout_and_delivered_later() {
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()));
    sink.down();
    let config = BufferConfig { sync_timeout: Duration::from_millis(100), ..fast(5) };
    let buffer = Buffered::start(shared, None, config).unwrap();
    let start = Instant::now();
    let err = buffer.submit(submission(Mode::Sync, events(0..3))).await.unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, IngestError::Undelivered { undelivered: 3, total: 3, .. }), "{err:?}");
    assert!(waited >= Duration::from_millis(100) && waited < Duration::from_secs(1), "{waited:?}");
    sink.up();
    assert!(eventually(Duration::from_secs(2), || sink.inner().events() == events(0..3)).await);
}

#[tokio::test]
async fn shutdown_flushes_everything_buffered_and_counts_it() {
    let memory = Arc::new(MemorySink::new());
    let config = BufferConfig { linger: Duration::from_secs(30), ..BufferConfig::default() };
    let buffer = Buffered::start(memory.clone(), None, config).unwrap();
    for chunk in 0..10 {
        buffer.submit(submission(Mode::Async, events(chunk * 10..chunk * 10 + 10))).await.unwrap();
    }
    assert!(memory.events().is_empty());
    let report = buffer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.delivered_records, memory.records().len());
    assert!(report.delivered_records > 0);
    assert_eq!((report.spilled_records, report.dropped_records), (0, 0));
    assert_same_events(&memory.events(), &events(0..100));
}

#[tokio::test]
async fn submissions_after_shutdown_are_refused() {
    let buffer = Buffered::start(Arc::new(MemorySink::new()), None, fast(5)).unwrap();
    buffer.shutdown(Duration::from_secs(1)).await;
    let err = buffer.submit(submission(Mode::Async, events(0..1))).await.unwrap_err();
    assert!(matches!(err, IngestError::ShuttingDown), "{err:?}");
    assert_eq!(buffer.shutdown(Duration::from_secs(1)).await, Default::default());
}

#[tokio::test]
async fn a_shutdown_with_the_sink_down_spills_and_the_next_start_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()));
    sink.down();
    let config = BufferConfig { spill_path: Some(path.clone()), pack_cap: Some(300), ..fast(5) };
    let buffer = Arc::new(Buffered::start(shared, None, config.clone()).unwrap());
    for chunk in 0..5 {
        buffer.submit(submission(Mode::Async, events(chunk * 10..chunk * 10 + 10))).await.unwrap();
    }
    let waiter = {
        let buffer = Arc::clone(&buffer);
        tokio::spawn(async move { buffer.submit(submission(Mode::Sync, events(50..53))).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let report = buffer.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.delivered_records, 0);
    assert!(report.spilled_records > 0);
    assert_eq!(report.dropped_records, 0);
    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, IngestError::Undelivered { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 53);
    assert_eq!(buffer.metrics().snapshot().buffer_bytes, 0);

    let memory = Arc::new(MemorySink::new());
    let restarted = Buffered::start(memory.clone(), None, config).unwrap();
    assert!(eventually(Duration::from_secs(2), || memory.events().len() >= 53).await);
    assert_eq!(restarted.metrics().snapshot().replayed_records, 53, "one per line of the spill file");
    assert_same_events(&memory.events(), &events(0..53));
    let replaying = dir.path().join("spill.ndjson.replaying");
    assert!(eventually(Duration::from_secs(2), || !path.exists() && !replaying.exists()).await);
    let report = restarted.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.spilled_records, 0);
    assert!(!path.exists());
}

/// A spill file of `events` (written as a shutdown would).
fn write_spill(path: &std::path::Path, events: &[Bytes]) {
    let records: Vec<Bytes> = events.iter().map(|e| Bytes::from([e.as_ref(), b"\n"].concat())).collect();
    ingest::spill::append(path, &records).unwrap();
}

/// 2,000 events of about 500 bytes: about 1 MB, sixteen times the 64 KiB buffer of these tests.
fn big_spill() -> Vec<Bytes> {
    (0..2000).map(|id| padded(id, 450)).collect()
}

const SMALL_BUFFER: usize = 64 * 1024;

fn small_buffer(path: &std::path::Path) -> BufferConfig {
    BufferConfig {
        spill_path: Some(path.to_owned()),
        max_buffer_bytes: SMALL_BUFFER,
        pack_cap: Some(4096),
        ..fast(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spill_larger_than_the_buffer_is_replayed_under_its_cap_with_room_for_new_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let spilled = big_spill();
    write_spill(&path, &spilled);
    // The sink is down at first: the replay fills its share of the buffer and waits there.
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()));
    sink.down();
    let buffer = Buffered::start(shared, None, small_buffer(&path)).unwrap();
    let metrics = buffer.metrics();
    assert!(eventually(Duration::from_secs(5), || metrics.snapshot().replayed_records > 0).await);
    // New requests are taken meanwhile: the replay keeps to half of the buffer.
    let fresh: Vec<Bytes> = (10_000..10_040).map(|id| padded(id, 450)).collect();
    for chunk in fresh.chunks(10) {
        buffer.submit(submission(Mode::Async, chunk.to_vec())).await.unwrap();
    }
    assert!(metrics.snapshot().replayed_records < 2000, "it cannot all be in a 64 KiB buffer");
    sink.up();
    let memory = sink.inner();
    assert!(eventually(Duration::from_secs(20), || memory.events().len() >= 2040).await);
    let expected: Vec<Bytes> = spilled.iter().chain(&fresh).cloned().collect();
    assert_same_events(&memory.events(), &expected);
    let snapshot = metrics.snapshot();
    assert!(snapshot.buffer_peak_bytes <= SMALL_BUFFER as u64, "peak {} bytes", snapshot.buffer_peak_bytes);
    assert_eq!(snapshot.replayed_records, 2000);
    let gone = || std::fs::read_dir(dir.path()).unwrap().next().is_none();
    assert!(eventually(Duration::from_secs(2), gone).await, "the replayed file and its offset go");
    let report = buffer.shutdown(Duration::from_secs(1)).await;
    assert_eq!((report.spilled_records, report.dropped_records), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_replay_leaves_the_unread_rest_on_disk_and_the_next_start_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let spilled = big_spill();
    write_spill(&path, &spilled);
    let (sink, shared) = memory_behind_faults(FaultSink::new(MemorySink::new()));
    sink.down();
    let buffer = Buffered::start(shared, None, small_buffer(&path)).unwrap();
    let metrics = buffer.metrics();
    assert!(eventually(Duration::from_secs(5), || metrics.snapshot().replayed_records > 0).await);
    let report = buffer.shutdown(Duration::from_millis(300)).await;
    assert!(report.spilled_records > 0, "what the buffer held goes to a new spill file");
    assert_eq!(report.dropped_records, 0);
    // On disk: the new spill, and the claimed file with the offset of what is left of it.
    let claimed = dir.path().join("spill.ndjson.replaying");
    let offset: u64 = std::fs::read_to_string(ingest::spill::offset_path(&claimed)).unwrap().parse().unwrap();
    assert!(offset > 0 && offset < std::fs::metadata(&claimed).unwrap().len(), "offset {offset}");
    let on_disk = ingest::spill::read(&path).unwrap().len() + {
        let mut rest = ingest::spill::Reader::open(&claimed).unwrap();
        let mut lines = 0;
        while let Some(chunk) = rest.next_chunk(usize::MAX).unwrap() {
            lines += chunk.lines.len();
        }
        lines
    };
    assert_eq!(on_disk, spilled.len(), "every event is in one of the two files, once");

    let memory = Arc::new(MemorySink::new());
    let restarted = Buffered::start(memory.clone(), None, small_buffer(&path)).unwrap();
    assert!(eventually(Duration::from_secs(20), || memory.events().len() >= spilled.len()).await);
    assert_same_events(&memory.events(), &spilled);
    let gone = || std::fs::read_dir(dir.path()).unwrap().next().is_none();
    assert!(eventually(Duration::from_secs(2), gone).await);
    assert!(restarted.metrics().snapshot().buffer_peak_bytes <= SMALL_BUFFER as u64);
    restarted.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn a_crash_during_a_replay_loses_nothing_and_repeats_only_what_came_after_the_last_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spill.ndjson");
    let spilled = big_spill();
    write_spill(&path, &spilled);
    let claimed = dir.path().join("spill.ndjson.replaying");
    let offset = ingest::spill::offset_path(&claimed);
    // A slow sink; the process "crashes" (its runtime is dropped, no shutdown) once some of the
    // replay was acknowledged and its offset written.
    let first = Arc::new(FaultSink::new(MemorySink::new()).delay(Duration::from_millis(5)));
    {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let _buffer = Buffered::start(first.clone(), None, small_buffer(&path)).unwrap();
            assert!(eventually(Duration::from_secs(10), || offset.exists()).await);
        });
    }
    let before_crash = first.inner().events();
    assert!(before_crash.len() < spilled.len(), "the crash came before the end");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let second = Arc::new(MemorySink::new());
    runtime.block_on(async {
        let buffer = Buffered::start(second.clone(), None, small_buffer(&path)).unwrap();
        let gone = || std::fs::read_dir(dir.path()).unwrap().next().is_none();
        assert!(eventually(Duration::from_secs(20), gone).await);
        buffer.shutdown(Duration::from_secs(1)).await;
    });
    let after = second.events();
    assert!(after.len() < spilled.len(), "the restart began at the offset, not at the start");
    let mut all: Vec<Bytes> = before_crash.iter().chain(&after).cloned().collect();
    all.sort();
    all.dedup();
    assert_same_events(&all, &spilled);
}

#[test]
fn the_spill_write_keeps_a_share_of_the_deadline_that_grows_with_what_is_buffered() {
    use ingest::batcher::spill_reserve;
    let deadline = Duration::from_secs(25);
    assert_eq!(spill_reserve(0, deadline), Duration::from_millis(200));
    let full = spill_reserve(64 * 1024 * 1024, deadline);
    assert_eq!(full, Duration::from_millis(1200), "64 MiB at 64 MiB/s, plus 200 ms");
    assert_eq!(
        spill_reserve(64 * 1024 * 1024, Duration::from_secs(1)),
        Duration::from_millis(500),
        "at most half"
    );
}

#[tokio::test]
async fn invalid_events_go_to_the_invalid_sink_as_lines() {
    let memory = Arc::new(MemorySink::new());
    let invalid = Arc::new(MemorySink::new());
    let buffer = Buffered::start(memory.clone(), Some(invalid.clone()), fast(5)).unwrap();
    let parsed =
        ingest::event::parse(br#"[{"type":"a","timestamp":1},{"timestamp":2},{"type":"b"}]"#).unwrap();
    let receipt = buffer
        .submit(Submission { mode: Mode::Async, valid: parsed.valid, invalid: parsed.invalid })
        .await
        .unwrap();
    assert_eq!((receipt.accepted, receipt.invalid), (1, 2));
    assert!(
        eventually(Duration::from_secs(1), || invalid.events().len() == 2 && memory.events().len() == 1)
            .await
    );
    let lines: Vec<serde_json::Value> =
        invalid.events().iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines[0]["index"], 1);
    assert_eq!(lines[0]["error"], "`type` is missing");
    assert_eq!(lines[0]["event"]["timestamp"], 2);
    assert_eq!(lines[1]["index"], 2);
    assert_eq!(buffer.metrics().snapshot().invalid_events, 2);
    assert_eq!(buffer.metrics_snapshot().invalid_events, 2, "the port hands out the same numbers");
    buffer.shutdown(Duration::from_secs(1)).await;
    assert_eq!(buffer.metrics().snapshot().buffer_bytes, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_lost_through_the_buffer(
        shape in prop::collection::vec((1usize..40, 0usize..300), 1..20),
        k in 0usize..8,
        times in 1u32..3,
        failing_calls in 0usize..3,
        pack_cap in prop::option::of(0usize..3000),
        max_records in 2usize..50,
        max_batch_bytes in 1000usize..20_000,
        max_in_flight in 1usize..4,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let limits = Limits { max_records, max_batch_bytes, max_record_bytes: 1000 };
            let faults = FaultSink::new(MemorySink::with_limits(limits)).fail_every_kth_entry(k, times).fail_calls(failing_calls);
            let (sink, shared) = memory_behind_faults(faults);
            let config = BufferConfig { pack_cap, max_in_flight, ..fast(1) };
            let buffer = Buffered::start(shared, None, config).unwrap();
            let mut expected = Vec::new();
            for (count, pad) in shape {
                let valid: Vec<Bytes> = (expected.len()..expected.len() + count).map(|id| padded(id, pad)).collect();
                expected.extend(valid.iter().cloned());
                buffer.submit(submission(Mode::Async, valid)).await.unwrap();
            }
            let report = buffer.shutdown(Duration::from_secs(10)).await;
            assert_eq!((report.spilled_records, report.dropped_records), (0, 0));
            assert_same_events(&sink.inner().events(), &expected);
            assert_eq!(sink.inner().violations(), 0);
            assert_eq!(buffer.metrics().snapshot().buffer_bytes, 0);
        });
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement: cargo test -p ingest --test batcher -- --ignored --nocapture"]
async fn single_event_submissions_are_cheap() {
    let buffer = Buffered::start(Arc::new(ingest::sinks::NullSink), None, BufferConfig::default()).unwrap();
    let n = 200_000;
    let valid: Vec<Bytes> = events(0..n);
    let start = std::time::Instant::now();
    for event in valid {
        buffer.submit(submission(Mode::Async, vec![event])).await.unwrap();
    }
    let elapsed = start.elapsed();
    buffer.shutdown(Duration::from_secs(5)).await;
    let rate = n as f64 / elapsed.as_secs_f64();
    println!("{rate:.0} single-event submissions/s on one thread ({elapsed:?} for {n})");
    assert_eq!(buffer.metrics().snapshot().flushed_events, n as u64);
}

#[tokio::test]
async fn a_sync_submission_is_sent_at_once_not_after_linger() {
    let memory = Arc::new(MemorySink::new());
    let config = BufferConfig { linger: Duration::from_secs(30), ..BufferConfig::default() };
    let buffer = Buffered::start(memory.clone(), None, config).unwrap();
    buffer.submit(submission(Mode::Async, events(0..2))).await.unwrap();
    let start = Instant::now();
    let receipt = buffer.submit(submission(Mode::Sync, events(2..4))).await.unwrap();
    assert_eq!(receipt.accepted, 2);
    assert!(start.elapsed() < Duration::from_secs(5), "waited {:?} for a 30 s linger", start.elapsed());
    assert_eq!(memory.events(), events(0..4), "what was buffered before goes along, in order");
}
