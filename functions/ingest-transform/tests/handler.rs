//! The handler on Firehose transformation events: AWS's example (records that are not our
//! events) and one of ours (packed NDJSON events, one record invalid), as Firehose sends them
//! from a DirectPut stream (no `kinesisRecordMetadata`).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

/// The fixture as JSON and as the event type.
fn fixture(name: &str) -> (Value, KinesisFirehoseEvent) {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (serde_json::from_str(&text).unwrap(), serde_json::from_str(&text).unwrap())
}

/// The tests that run the transform take turns. tracing caches, per log call site, whether any
/// subscriber wants it: a test running the transform with no subscriber at the same moment as
/// one that captures its logs could make the capturing one miss lines (seen once in CI).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    testkit::lock(&ONE_AT_A_TIME)
}

/// Runs [`ingest_transform::transform`] with its logs captured: (response, log text).
fn transform_logged(event: KinesisFirehoseEvent) -> (KinesisFirehoseResponse, String) {
    let _turn = one_at_a_time();
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let response = tracing::subscriber::with_default(subscriber, || ingest_transform::transform(event));
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (response, logs)
}

/// The response as Firehose reads it: `(recordId, result, data as base64)` per record.
fn wire(response: &KinesisFirehoseResponse) -> Vec<(String, String, String)> {
    let json = serde_json::to_value(response).unwrap();
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_else(|| panic!("{k} missing in {r}")).to_owned();
            (field("recordId"), field("result"), field("data"))
        })
        .collect()
}

/// `(recordId, data as base64)` per record of the event fixture.
fn sent(json: &Value) -> Vec<(String, String)> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["recordId"].as_str().unwrap().to_owned(), r["data"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn the_aws_example_records_are_not_our_events_so_each_fails_with_its_reason_logged() {
    let (json, event) = fixture("example-firehose-event.json");
    let (response, logs) = transform_logged(event);
    let answered = wire(&response);
    let expected: Vec<_> =
        sent(&json).into_iter().map(|(id, data)| (id, "ProcessingFailed".to_owned(), data)).collect();
    assert_eq!(answered, expected, "same ids, data unchanged (\"Hello World\"), every record failed");
    for id in ["record1", "record2"] {
        let line = logs.lines().find(|l| l.contains(&format!("record_id=\"{id}\""))).unwrap_or_else(|| {
            panic!("no log line for {id}:\n{logs}");
        });
        assert!(
            line.contains("WARN") && line.contains("line 0: not one JSON value: expected value"),
            "{line}"
        );
    }
    assert!(logs.contains("batch checked") && logs.contains("records=2 ok=0 failed=2"), "{logs}");
}

#[test]
fn our_valid_records_pass_unchanged_and_the_invalid_one_fails() {
    let (json, event) = fixture("events-firehose-event.json");
    let (response, logs) = transform_logged(event);
    let results: Vec<_> = sent(&json)
        .into_iter()
        .zip(["Ok", "Ok", "Ok", "ProcessingFailed"])
        .map(|((id, data), result)| (id, result.to_owned(), data))
        .collect();
    assert_eq!(wire(&response), results);
    let failed: Vec<_> = logs.lines().filter(|l| l.contains("record failed validation")).collect();
    assert_eq!(failed.len(), 1, "{logs}");
    assert!(
        failed[0].contains("785157") && failed[0].contains("line 0: `timestamp` is missing"),
        "{}",
        failed[0]
    );
    assert!(logs.contains("records=4 ok=3 failed=1"), "{logs}");
}

#[test]
fn every_response_record_carries_the_metadata_firehose_accepts_without_dynamic_partitioning() {
    let (_, event) = fixture("events-firehose-event.json");
    let json = {
        let _turn = one_at_a_time();
        serde_json::to_value(ingest_transform::transform(event)).unwrap()
    };
    for record in json["records"].as_array().unwrap() {
        assert_eq!(record["metadata"], serde_json::json!({"partitionKeys": {}}), "{record}");
    }
}

#[test]
fn the_handler_answers_an_invocation_and_an_empty_batch() {
    let _turn = one_at_a_time();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let (_, event) = fixture("events-firehose-event.json");
        let response = ingest_transform::handle(LambdaEvent::new(event, Context::default())).await.unwrap();
        assert_eq!(response.records.len(), 4);
        let empty: KinesisFirehoseEvent = serde_json::from_value(serde_json::json!({"records": []})).unwrap();
        let response = ingest_transform::handle(LambdaEvent::new(empty, Context::default())).await.unwrap();
        assert!(response.records.is_empty());
    });
}
