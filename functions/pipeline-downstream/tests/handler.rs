//! The downstream handler on real DynamoDB stream events (the fixture: INSERT records of the
//! items table as Lambda delivers them), writing into a results table in moto: every stamp in
//! the results row, one EMF line per invocation, a redelivered batch neither written nor counted
//! again, a failing table reported and nothing lost on the retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event;
use pipeline::SharedTable;
use pipeline_downstream::{Handled, Outcome, handle};
use serde_json::{Value, json};
use testkit::moto;

fn fixture() -> Value {
    let path = format!("{}/tests/fixtures/dynamodb-stream-event.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn parse(event: &Value) -> Event {
    serde_json::from_value(event.clone()).expect("a DynamoDB stream event")
}

fn sequence(i: usize) -> String {
    format!("11704{i:020}")
}

/// The fixture's first record once per id, each with its own key and sequence number.
fn event(ids: &[String]) -> Value {
    let mut event = fixture();
    let template = event["Records"][0].clone();
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut record = template.clone();
            record["dynamodb"]["Keys"]["id"]["S"] = id.as_str().into();
            record["dynamodb"]["NewImage"]["id"]["S"] = id.as_str().into();
            record["dynamodb"]["SequenceNumber"] = sequence(i).into();
            record
        })
        .collect();
    event["Records"] = records.into();
    event
}

fn failures(handled: &Handled) -> Vec<String> {
    handled.response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect()
}

fn lines(handled: &Handled) -> Vec<Value> {
    handled.lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `Items` over the lines: what CloudWatch's Sum of the metric will be.
fn counted(handled: &Handled) -> u64 {
    lines(handled).iter().filter_map(|l| l["Items"].as_u64()).sum()
}

async fn table() -> Option<(SharedTable, aws_sdk_dynamodb::Client, String)> {
    let config = moto::config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let name = moto::pipeline_table(&dynamodb, "pipeline-results").await;
    let table = pipeline::open_table(&name, &aws_setup::Aws::loaded(config)).await.unwrap();
    Some((table, dynamodb, name))
}

async fn count(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    let mut n = 0;
    let mut start = None;
    loop {
        let out = dynamodb.scan().table_name(table).set_exclusive_start_key(start).send().await.unwrap();
        n += out.items().len();
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return n;
        }
    }
}

fn ids(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn the_fixture_becomes_results_rows_with_every_stamp_and_one_emf_line() {
    let memory = Arc::new(pipeline::memory::MemoryTable::new());
    let table: SharedTable = memory.clone();
    let before = pipeline::stamps::now_ms();
    let handled = handle(&table, parse(&fixture()), "Pipeline", "req-1").await.unwrap();
    assert!(failures(&handled).is_empty());
    let row = memory.get("k6-1-0001").expect("the first item's result");
    assert_eq!(row.number("client_ms"), Some(1_796_525_120_004.0));
    assert_eq!(row.number("kinesis_ms"), Some(1_796_525_120_052.0));
    assert_eq!(row.number("midstream_ms"), Some(1_796_525_120_088.0));
    assert_eq!(row.number("stream_ms"), Some(1_796_525_120_000.0), "whole seconds, as AWS sends them");
    let downstream_ms = row.number("downstream_ms").unwrap();
    assert!(downstream_ms >= before as f64);
    let [line] = &lines(&handled)[..] else { panic!("one line: {:?}", handled.lines) };
    assert_eq!(line["Items"], json!(2));
    assert_eq!(line["requestId"], json!("req-1"));
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], json!("Pipeline"));
    assert_eq!(line["_aws"]["Timestamp"].as_f64(), Some(downstream_ms));
    assert_eq!(line["EndToEnd"][0].as_f64(), Some(downstream_ms - 1_796_525_120_004.0));
    assert_eq!(line["UpstreamToKinesis"], json!([21.0, 17.0]));
    assert_eq!(line["KinesisToMidstream"], json!([36.0, 30.0]));
    assert_eq!(line["MidstreamToStream"], json!([-88.0, -91.0]));
}

#[tokio::test]
async fn the_same_batch_twice_writes_the_results_once_and_counts_them_once() {
    let Some((table, dynamodb, name)) = table().await else { return };
    let batch = event(&ids(150, "twice"));
    let first = handle(&table, parse(&batch), "Pipeline", "r1").await.unwrap();
    let again = handle(&table, parse(&batch), "Pipeline", "r2").await.unwrap();
    assert!(failures(&first).is_empty() && failures(&again).is_empty());
    assert_eq!(counted(&first), 150);
    let sizes: Vec<usize> = lines(&first).iter().map(|l| l["EndToEnd"].as_array().unwrap().len()).collect();
    assert_eq!(sizes, [100, 50], "at most 100 values per metric a line");
    assert!(again.lines.is_empty(), "a redelivery is not counted again: {:?}", again.lines);
    assert!(again.outcomes.iter().all(|o| *o == Outcome::AlreadyThere));
    assert_eq!(count(&dynamodb, &name).await, 150);
}

#[tokio::test]
async fn a_failing_results_table_reports_the_records_and_the_retry_counts_them_once() {
    let endpoint = testkit::stalled::Endpoint::start();
    let Some(aws) = endpoint.aws(testkit::stalled::SHORT) else { return };
    let Some((table, dynamodb, name)) = table().await else { return };
    let stalled = pipeline::open_table(&name, &aws).await.unwrap();
    let batch = event(&ids(5, "retry"));
    let started = Instant::now();
    let handled = handle(&stalled, parse(&batch), "Pipeline", "r1").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(failures(&handled), (0..5).map(sequence).collect::<Vec<_>>());
    assert!(handled.lines.is_empty(), "nothing inserted, nothing counted");
    let retried = handle(&table, parse(&batch), "Pipeline", "r2").await.unwrap();
    assert!(failures(&retried).is_empty());
    assert_eq!(counted(&retried), 5);
    assert_eq!(count(&dynamodb, &name).await, 5);
}

#[tokio::test]
async fn a_bad_image_is_reported_and_records_other_than_inserts_are_skipped() {
    let table: SharedTable = Arc::new(pipeline::memory::MemoryTable::new());
    let mut batch = event(&ids(3, "mixed"));
    batch["Records"][1]["dynamodb"]["NewImage"]["kinesis_ms"] = json!({"S": "soon"});
    batch["Records"][2]["eventName"] = "MODIFY".into();
    let handled = handle(&table, parse(&batch), "Pipeline", "r").await.unwrap();
    assert_eq!(failures(&handled), [sequence(1)]);
    assert!(matches!(&handled.outcomes[1], Outcome::Poison(e) if e.to_string().contains("kinesis_ms")));
    assert_eq!(handled.outcomes[2], Outcome::Skipped);
    assert_eq!(counted(&handled), 1);
}

#[tokio::test]
async fn a_record_to_report_without_a_sequence_number_fails_the_whole_batch() {
    let table: SharedTable = Arc::new(pipeline::memory::MemoryTable::new());
    let mut batch = event(&ids(1, "noseq"));
    batch["Records"][0]["dynamodb"].as_object_mut().unwrap().remove("SequenceNumber");
    batch["Records"][0]["dynamodb"]["NewImage"].as_object_mut().unwrap().remove("client_ms");
    assert!(handle(&table, parse(&batch), "Pipeline", "r").await.is_err());
}

#[tokio::test]
async fn the_response_serialises_as_lambda_expects() {
    let table: SharedTable = Arc::new(pipeline::memory::MemoryTable::new());
    let mut batch = event(&ids(2, "wire"));
    batch["Records"][0]["dynamodb"]["NewImage"] = json!({});
    let handled = handle(&table, parse(&batch), "Pipeline", "r").await.unwrap();
    assert_eq!(
        serde_json::to_value(&handled.response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": sequence(0)}]})
    );
}
