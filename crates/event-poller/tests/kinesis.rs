//! `event-poller kinesis` against a stream in moto and a stand-in for the function: the event
//! Lambda sends, order per shard, partial batch responses, bisect and the on-failure queue, and a
//! restart after `kill -9`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_kinesis::primitives::Blob;
use serde_json::{Value, json};
use testkit::eventually;

mod common;
use common::{Function, all_done, checkpoint_dir, drain, poller, queue};

/// A record as put: its shard, sequence number, key and data.
#[derive(Debug, Clone)]
struct Put {
    shard: String,
    sequence: String,
    key: String,
    data: String,
}

struct Stream {
    config: aws_config::SdkConfig,
    kinesis: aws_sdk_kinesis::Client,
    name: String,
    arn: String,
}

impl Stream {
    async fn new(prefix: &str, shards: i32) -> Option<Stream> {
        let config = testkit::moto::config().await?;
        let kinesis = aws_sdk_kinesis::Client::new(&config);
        let name = testkit::moto::kinesis_stream(&kinesis, prefix, shards).await;
        let summary = kinesis.describe_stream_summary().stream_name(&name).send().await.unwrap();
        let arn = summary.stream_description_summary().unwrap().stream_arn().to_owned();
        Some(Stream { config, kinesis, name, arn })
    }

    /// Puts one record at a time, so the order within a shard is the order here.
    async fn put(&self, records: impl IntoIterator<Item = (String, String)>) -> Vec<Put> {
        let mut put = Vec::new();
        for (key, data) in records {
            let out = self
                .kinesis
                .put_record()
                .stream_name(&self.name)
                .partition_key(&key)
                .data(Blob::new(data.clone().into_bytes()))
                .send()
                .await
                .unwrap();
            put.push(Put {
                shard: out.shard_id().to_owned(),
                sequence: out.sequence_number().to_owned(),
                key,
                data,
            });
        }
        put
    }
}

fn sequence(record: &Value) -> String {
    record["kinesis"]["sequenceNumber"].as_str().unwrap_or_default().to_owned()
}

/// A record's identity across shards (moto numbers each shard's records from 1; AWS's sequence
/// numbers are unique per stream): its eventID, `shardId:sequenceNumber`.
fn event_id(record: &Value) -> String {
    record["eventID"].as_str().unwrap_or_default().to_owned()
}

fn data(record: &Value) -> String {
    use base64::Engine;
    let encoded = record["kinesis"]["data"].as_str().unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_the_function_in_order_per_shard_in_lambdas_kinesis_event() {
    let Some(stream) = Stream::new("poller-order", 2).await else { return };
    let put = stream.put((0..40).map(|i| (format!("key-{}", i % 8), format!("{{\"n\":{i}}}")))).await;
    let shards: HashSet<&str> = put.iter().map(|p| p.shard.as_str()).collect();
    assert_eq!(shards.len(), 2, "the keys spread over both shards");
    let function = Function::start(Duration::ZERO, all_done).await;
    let dir = checkpoint_dir("order");
    let poller = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &["--starting-position", "trim-horizon", "--batch-size", "7"],
    );
    let all = eventually(Duration::from_secs(30), || async { function.done(event_id).len() >= 40 }).await;
    assert!(all, "{} of 40 delivered:\n{}", function.done(event_id).len(), poller.log());

    let by_id: HashMap<String, &Put> =
        put.iter().map(|p| (format!("{}:{}", p.shard, p.sequence), p)).collect();
    for invocation in function.invocations() {
        let event: KinesisEvent = serde_json::from_value(invocation.event.clone())
            .expect("a Kinesis event as aws_lambda_events reads it");
        assert!(!event.records.is_empty() && event.records.len() <= 7, "{} records", event.records.len());
        for (record, raw) in event.records.iter().zip(invocation.records()) {
            let put = by_id[record.event_id.as_deref().unwrap_or_default()];
            assert_eq!(record.kinesis.sequence_number, put.sequence);
            assert_eq!(record.event_source.as_deref(), Some("aws:kinesis"));
            assert_eq!(record.event_source_arn.as_deref(), Some(stream.arn.as_str()));
            assert_eq!(record.event_name.as_deref(), Some("aws:kinesis:record"));
            assert_eq!(record.kinesis.partition_key, put.key);
            assert_eq!(record.kinesis.data.0, put.data.as_bytes());
            let arrival = &raw["kinesis"]["approximateArrivalTimestamp"];
            assert!(arrival.is_number(), "epoch seconds as a number, as Lambda sends them: {arrival}");
            let arrival = arrival.as_f64().unwrap();
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
            assert!((now - 120.0..=now + 1.0).contains(&arrival), "arrival {arrival}, now {now}");
        }
    }
    let done = function.done(event_id);
    assert_eq!(done.iter().collect::<HashSet<_>>().len(), 40, "each record once");
    for shard in shards {
        let delivered: Vec<&String> = done.iter().filter(|id| by_id[id.as_str()].shard == shard).collect();
        let expected: Vec<String> =
            put.iter().filter(|p| p.shard == shard).map(|p| format!("{shard}:{}", p.sequence)).collect();
        let expected: Vec<&String> = expected.iter().collect();
        assert_eq!(delivered, expected, "shard {shard} in the order put");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_failure_is_retried_from_the_lowest_failed_record() {
    let Some(stream) = Stream::new("poller-partial", 1).await else { return };
    let put = stream.put((0..10).map(|i| ("k".to_owned(), format!("r{i}")))).await;
    let (sixth, eighth) = (put[6].sequence.clone(), put[8].sequence.clone());
    let reported = std::sync::atomic::AtomicBool::new(false);
    let function = Function::start(Duration::ZERO, move |event: &Value| {
        let has = event["Records"].as_array().unwrap().iter().any(|r| sequence(r) == sixth);
        if has && !reported.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // The higher one first: the poller must take the lowest.
            return (
                200,
                json!({"batchItemFailures": [{"itemIdentifier": eighth}, {"itemIdentifier": sixth}]}),
            );
        }
        all_done(event)
    })
    .await;
    let dir = checkpoint_dir("partial");
    let poller = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &["--starting-position", "trim-horizon", "--batch-size", "10"],
    );
    let all = eventually(Duration::from_secs(30), || async { function.done(sequence).len() >= 10 }).await;
    assert!(all, "{:?}\n{}", function.invocations(), poller.log());
    let invocations = function.invocations();
    let batches: Vec<Vec<String>> =
        invocations.iter().map(|i| i.records().iter().map(data).collect::<Vec<_>>()).collect();
    let names = |range: std::ops::Range<usize>| range.map(|i| format!("r{i}")).collect::<Vec<_>>();
    assert_eq!(batches, [names(0..10), names(6..10)], "the retry starts at the lowest reported record");
    let done: Vec<String> = function.done(sequence);
    assert_eq!(
        done,
        put.iter().map(|p| p.sequence.clone()).collect::<Vec<_>>(),
        "each record once, in order"
    );
    let settled =
        eventually(Duration::from_secs(5), || async { checkpoint(&dir) == Some(put[9].sequence.clone()) });
    assert!(settled.await, "the checkpoint ends after the last record: {:?}", checkpoint(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_bisect_a_poison_record_ends_alone_in_the_on_failure_queue_and_the_shard_moves_on() {
    let Some(stream) = Stream::new("poller-poison", 1).await else { return };
    let sqs = aws_sdk_sqs::Client::new(&stream.config);
    let on_failure = queue(&sqs, "poller-on-failure").await;
    let put = stream
        .put((0..12).map(|i| ("k".to_owned(), if i == 5 { "poison".to_owned() } else { format!("r{i}") })))
        .await;
    // A function that fails whole batches (an unhandled error) whenever the poison is in them.
    let function = Function::start(Duration::ZERO, |event: &Value| {
        if event["Records"].as_array().unwrap().iter().any(|r| data(r) == "poison") {
            return (500, json!({"errorType": "Poison", "errorMessage": "cannot take it"}));
        }
        all_done(event)
    })
    .await;
    let dir = checkpoint_dir("poison");
    let poller = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &[
            "--starting-position",
            "trim-horizon",
            "--batch-size",
            "12",
            "--bisect-on-error",
            "--maximum-retry-attempts",
            "2",
            "--on-failure-queue-url",
            &on_failure,
        ],
    );
    let taken = std::sync::Mutex::new(Vec::new());
    let (taken_ref, sqs_ref, queue_ref, function_ref) = (&taken, &sqs, on_failure.as_str(), &function);
    let settled = eventually(Duration::from_secs(60), || async move {
        let fetched = drain(sqs_ref, queue_ref).await;
        let mut taken = testkit::lock(taken_ref);
        taken.extend(fetched);
        !taken.is_empty() && function_ref.done(sequence).len() >= 11
    })
    .await;
    let mut given_up = taken.into_inner().unwrap();
    assert!(settled, "given up: {given_up:?}; done {:?}\n{}", function.done(sequence), poller.log());

    let rest = stream.put((12..15).map(|i| ("k".to_owned(), format!("r{i}")))).await;
    let moved_on =
        eventually(Duration::from_secs(30), || async { function.done(sequence).len() >= 14 }).await;
    assert!(moved_on, "the records after the poison one are delivered\n{}", poller.log());
    let expected: Vec<String> =
        put.iter().chain(&rest).filter(|p| p.data != "poison").map(|p| p.sequence.clone()).collect();
    assert_eq!(function.done(sequence), expected, "every other record once, in order");

    given_up.extend(drain(&sqs, &on_failure).await);
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    let record = &given_up[0];
    let poison = &put[5].sequence;
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3, "the first try and 2 retries");
    assert!(
        record["requestContext"]["functionArn"].as_str().unwrap().ends_with(":function:stub"),
        "{record}"
    );
    assert_eq!(record["responseContext"]["statusCode"], 500);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert!(record["timestamp"].as_str().unwrap().ends_with('Z'), "{record}");
    let info = &record["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1, "the poison record alone: {record}");
    assert_eq!(info["startSequenceNumber"], poison.as_str());
    assert_eq!(info["endSequenceNumber"], poison.as_str());
    assert_eq!(info["shardId"], put[5].shard.as_str());
    assert_eq!(info["streamArn"], stream.arn.as_str());
    assert!(info["approximateArrivalOfFirstRecord"].as_str().unwrap().ends_with('Z'), "{record}");
    let alone = function
        .invocations()
        .iter()
        .filter(|i| i.records().len() == 1 && data(&i.records()[0]) == "poison")
        .count();
    assert_eq!(alone, 3, "the poison record alone: the first try and 2 retries");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_killed_with_sigkill_and_restarted_resumes_from_its_checkpoints_without_losing_a_record() {
    let Some(stream) = Stream::new("poller-kill", 2).await else { return };
    let put = stream.put((0..120).map(|i| (format!("key-{}", i % 16), format!("r{i}")))).await;
    let shards: HashSet<String> = put.iter().map(|p| p.shard.clone()).collect();
    assert_eq!(shards.len(), 2, "the keys spread over both shards");
    // Slow enough that the kill lands mid-run.
    let function = Function::start(Duration::from_millis(30), all_done).await;
    let dir = checkpoint_dir("kill");
    let args = ["--batch-size", "5"];
    let mut first = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &[&args[..], &["--starting-position", "trim-horizon"]].concat(),
    );
    // Two invocations on a shard: the first one's checkpoint is written (one batch in flight
    // per shard, settled before the next).
    let both = eventually(Duration::from_secs(30), || async {
        let invocations = function.invocations();
        shards.iter().all(|shard| {
            invocations
                .iter()
                .filter(|i| {
                    i.records().first().is_some_and(|r| event_id(r).starts_with(&format!("{shard}:")))
                })
                .count()
                >= 2
        })
    })
    .await;
    assert!(both, "both shards delivered twice\n{}", first.log());
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).is_some(), "SIGKILL ends it");
    let before = function.done(event_id).len();
    assert!(before < 120, "killed mid-run ({before} of 120 delivered)");

    // LATEST now: only the checkpoints can bring the rest.
    let second = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &[&args[..], &["--starting-position", "latest"]].concat(),
    );
    let all = eventually(Duration::from_secs(60), || async {
        function.done(event_id).into_iter().collect::<HashSet<_>>().len() >= 120
    })
    .await;
    assert!(
        all,
        "{} of 120 delivered\n{}",
        function.done(event_id).into_iter().collect::<HashSet<_>>().len(),
        second.log()
    );
    let done = function.done(event_id);
    let again = done.len() - 120;
    assert!(again <= 5 * 2, "{again} delivered twice: at most the batch in flight on each shard");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_parallelization_factor_a_shard_runs_batches_concurrently_and_keeps_each_keys_order() {
    let Some(stream) = Stream::new("poller-lanes", 1).await else { return };
    let put = stream.put((0..48).map(|i| (format!("key-{}", i % 12), format!("r{i}")))).await;
    let function = Function::start(Duration::from_millis(200), all_done).await;
    let dir = checkpoint_dir("lanes");
    let poller = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &["--starting-position", "trim-horizon", "--batch-size", "4", "--parallelization-factor", "4"],
    );
    let all = eventually(Duration::from_secs(60), || async { function.done(sequence).len() >= 48 }).await;
    assert!(all, "{} of 48 delivered\n{}", function.done(sequence).len(), poller.log());
    assert!((2..=4).contains(&function.most_at_once()), "{} invocations at once", function.most_at_once());
    assert!(function.invocations().iter().all(|i| i.records().len() <= 4), "batches of 4 at most");
    let done = function.done(sequence);
    assert_eq!(done.iter().collect::<HashSet<_>>().len(), 48, "each record once");
    let key_of: HashMap<&str, &str> = put.iter().map(|p| (p.sequence.as_str(), p.key.as_str())).collect();
    for key in put.iter().map(|p| p.key.as_str()).collect::<HashSet<_>>() {
        let delivered: Vec<&str> = done.iter().map(String::as_str).filter(|s| key_of[s] == key).collect();
        let expected: Vec<&str> = put.iter().filter(|p| p.key == key).map(|p| p.sequence.as_str()).collect();
        assert_eq!(delivered, expected, "{key} in the order put");
    }
    let settled =
        eventually(Duration::from_secs(5), || async { checkpoint(&dir) == Some(put[47].sequence.clone()) });
    assert!(settled.await, "the checkpoint ends after the last record: {:?}", checkpoint(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_invocation_in_flight_settle_its_batch_then_exits_0() {
    let Some(stream) = Stream::new("poller-term", 1).await else { return };
    let put = stream.put((0..3).map(|i| ("k".to_owned(), format!("r{i}")))).await;
    let function = Function::start(Duration::from_millis(1500), all_done).await;
    let dir = checkpoint_dir("term");
    let mut poller = poller(
        &["kinesis", "--stream", &stream.name],
        &function,
        &dir,
        &["--starting-position", "trim-horizon", "--shutdown-timeout", "10"],
    );
    let in_flight = eventually(Duration::from_secs(30), || async { function.entered() >= 1 }).await;
    assert!(in_flight, "{}", poller.log());
    poller.signal("TERM");
    let status =
        poller.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| panic!("no exit\n{}", poller.log()));
    assert!(status.success(), "{status}\n{}", poller.log());
    assert_eq!(function.done(sequence).len(), 3, "the batch in flight was answered");
    assert_eq!(checkpoint(&dir), Some(put[2].sequence.clone()), "and settled before the exit");
    assert_eq!(function.entered(), 1, "nothing new after the signal");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sequence number of the (only) shard's checkpoint file.
fn checkpoint(dir: &std::path::Path) -> Option<String> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))?;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).ok()?).ok()?;
    saved["sequence_number"].as_str().map(str::to_owned)
}
