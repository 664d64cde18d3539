//! The midstream handler on real Kinesis events (the fixture: records as Lambda delivers them,
//! our record data in them), writing into an items table in moto: poison reported alone,
//! redeliveries written once, an unavailable table reported and nothing lost on the retry.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::kinesis::KinesisEvent;
use pipeline::SharedTable;
use pipeline_midstream::{Outcome, handle};
use testkit::moto;

fn fixture() -> KinesisEvent {
    let path = format!("{}/tests/fixtures/kinesis-event.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the fixture is a Kinesis event")
}

fn sequence(i: usize) -> String {
    format!("4965823615432749573017139143794606391495885340513357{i:04}")
}

/// Record data upstream would have put for item `id`.
fn data(id: &str) -> Vec<u8> {
    let body = format!(r#"{{"id":"{id}","message":"Hello World","timestamp":1796525120.5}}"#);
    pipeline::record::encode(&pipeline::item::parse(body.as_bytes()).unwrap(), 1_796_525_120_600).unwrap()
}

/// The fixture's first record as a template, once per data, with sequence numbers in order.
fn event(datas: &[Vec<u8>]) -> KinesisEvent {
    let mut event = fixture();
    let template = event.records[0].clone();
    event.records = datas
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut record = template.clone();
            record.kinesis.sequence_number = sequence(i);
            record.kinesis.data.0 = data.clone();
            record
        })
        .collect();
    event
}

fn failures(response: &aws_lambda_events::event::streams::KinesisEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect()
}

/// An items table in moto: `(adapter, client, name)`.
async fn table() -> Option<(SharedTable, aws_sdk_dynamodb::Client, String)> {
    let config = moto::config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let name = moto::pipeline_table(&dynamodb, "pipeline-items").await;
    let table = pipeline::open_table(&name, &aws_setup::Aws::loaded(config)).await.unwrap();
    Some((table, dynamodb, name))
}

/// Every id in the table.
async fn ids(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut start = None;
    loop {
        let out = dynamodb.scan().table_name(table).set_exclusive_start_key(start).send().await.unwrap();
        ids.extend(out.items().iter().map(|i| i["id"].as_s().unwrap().clone()));
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            return ids;
        }
    }
}

#[tokio::test]
async fn the_fixture_becomes_rows_with_the_kinesis_arrival_time_and_both_stamps() {
    let memory = Arc::new(pipeline::memory::MemoryTable::new());
    let table: SharedTable = memory.clone();
    let before = pipeline::stamps::now_ms();
    let (response, outcomes) = handle(&table, fixture()).await;
    assert!(failures(&response).is_empty());
    assert_eq!(outcomes, [Outcome::Inserted, Outcome::Inserted]);
    let row = memory.get("k6-1-0001").expect("the first record's item");
    assert_eq!(
        row.string("item"),
        Some(r#"{"id":"k6-1-0001","message":"Hello World","timestamp":1796525120.004}"#)
    );
    assert_eq!(row.number("client_ms"), Some(1_796_525_120_004.0));
    assert_eq!(row.number("upstream_ms"), Some(1_796_525_120_031.0));
    assert_eq!(row.number("kinesis_ms"), Some(1_796_525_120_052.0));
    assert!(row.number("midstream_ms").unwrap() >= before as f64);
    assert_eq!(memory.get("k6-2-0001").unwrap().number("kinesis_ms"), Some(1_796_525_120_061.0));
}

#[tokio::test]
async fn a_poison_record_among_100_is_reported_alone_and_the_other_99_are_in_the_table() {
    let Some((table, dynamodb, name)) = table().await else { return };
    let mut datas: Vec<Vec<u8>> = (0..100).map(|i| data(&format!("item-{i}"))).collect();
    datas[37] = b"Hello World".to_vec();
    let (response, outcomes) = handle(&table, event(&datas)).await;
    assert_eq!(failures(&response), [sequence(37)]);
    assert!(matches!(&outcomes[37], Outcome::Poison(e) if e.is_poison()), "{:?}", outcomes[37]);
    let expected: BTreeSet<String> = (0..100).filter(|i| *i != 37).map(|i| format!("item-{i}")).collect();
    assert_eq!(ids(&dynamodb, &name).await, expected);
}

#[tokio::test]
async fn the_same_batch_twice_writes_each_item_once_and_keeps_the_first_stamps() {
    let Some((table, dynamodb, name)) = table().await else { return };
    let batch = event(&(0..20).map(|i| data(&format!("again-{i}"))).collect::<Vec<_>>());
    let (first, _) = handle(&table, batch.clone()).await;
    let stamp = |dynamodb: aws_sdk_dynamodb::Client, name: String| async move {
        let key = aws_sdk_dynamodb::types::AttributeValue::S("again-3".into());
        let out = dynamodb.get_item().table_name(name).key("id", key).send().await.unwrap();
        out.item().unwrap()["midstream_ms"].as_n().unwrap().clone()
    };
    let first_stamp = stamp(dynamodb.clone(), name.clone()).await;
    let (again, outcomes) = handle(&table, batch).await;
    assert!(failures(&first).is_empty() && failures(&again).is_empty(), "a redelivery is no failure");
    assert!(outcomes.iter().all(|o| *o == Outcome::AlreadyThere), "{outcomes:?}");
    assert_eq!(ids(&dynamodb, &name).await.len(), 20);
    assert_eq!(stamp(dynamodb, name).await, first_stamp, "not written again");
}

#[tokio::test]
async fn an_unavailable_table_reports_every_record_and_the_retry_loses_nothing() {
    let endpoint = testkit::stalled::Endpoint::start();
    let Some(aws) = endpoint.aws(testkit::stalled::SHORT) else { return };
    let Some((table, dynamodb, name)) = table().await else { return };
    let stalled = pipeline::open_table(&name, &aws).await.unwrap();
    let batch = event(&(0..10).map(|i| data(&format!("retry-{i}"))).collect::<Vec<_>>());
    let started = Instant::now();
    let (response, outcomes) = handle(&stalled, batch.clone()).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answers instead of hanging: {:?}",
        started.elapsed()
    );
    assert_eq!(failures(&response), (0..10).map(sequence).collect::<Vec<_>>(), "every record reported");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Failed(e) if e.is_timeout())), "{outcomes:?}");
    // Lambda delivers the batch again from the lowest reported sequence number; the table is back.
    let (response, _) = handle(&table, batch).await;
    assert!(failures(&response).is_empty());
    assert_eq!(ids(&dynamodb, &name).await, (0..10).map(|i| format!("retry-{i}")).collect());
}

#[tokio::test]
async fn the_response_serialises_as_lambda_expects() {
    let table: SharedTable = Arc::new(pipeline::memory::MemoryTable::new());
    let (response, _) = handle(&table, event(&[data("ok"), b"{".to_vec()])).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": sequence(1)}]})
    );
}

#[tokio::test]
async fn an_arrival_time_with_fewer_than_three_decimals_is_read_as_the_number_it_is() {
    // A JSON number drops trailing zeros: 510 ms after the second is `.51`, 500 ms is `.5`.
    let path = format!("{}/tests/fixtures/kinesis-event.json", env!("CARGO_MANIFEST_DIR"));
    let mut raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    raw["Records"][0]["kinesis"]["approximateArrivalTimestamp"] = serde_json::json!(1_796_525_120.51);
    raw["Records"][1]["kinesis"]["approximateArrivalTimestamp"] = serde_json::json!(1_796_525_120.5);
    let batch: pipeline_midstream::Batch = serde_json::from_value(raw).expect("the event is a Kinesis batch");
    let memory = Arc::new(pipeline::memory::MemoryTable::new());
    let table: SharedTable = memory.clone();
    let (response, _) = handle(&table, batch).await;
    assert!(failures(&response).is_empty());
    assert_eq!(memory.get("k6-1-0001").unwrap().number("kinesis_ms"), Some(1_796_525_120_510.0), "not 051");
    assert_eq!(memory.get("k6-2-0001").unwrap().number("kinesis_ms"), Some(1_796_525_120_500.0), "not 005");
}
