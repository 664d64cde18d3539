//! The Lambda handler on real SQS events (AWS's example event from `aws_lambda_events`, with
//! our bodies put in): partial batch responses, poison, redeliveries, the time budget.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use calc_worker::lambda::{BatchError, handle};
use lambda_runtime::{Context, LambdaEvent};
use queue::{Ledger, MemoryLedger, Worker};

/// AWS's example SQS event, with the records' ids and bodies replaced by ours.
fn event(records: &[(&str, Option<&str>)]) -> SqsEvent {
    let path = format!("{}/tests/fixtures/sqs-event.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut event: SqsEvent = serde_json::from_str(&text).expect("the fixture is an SQS event");
    let template = event.records[0].clone();
    event.records = records
        .iter()
        .map(|(id, body)| {
            let mut record = template.clone();
            record.message_id = Some((*id).to_owned());
            record.body = body.map(str::to_owned);
            record
        })
        .collect();
    event
}

/// An invocation with `ms` milliseconds left.
fn invocation(event: SqsEvent, ms: u64) -> LambdaEvent<SqsEvent> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut context = Context::default();
    context.deadline = now + ms;
    LambdaEvent::new(event, context)
}

fn failures(response: &SqsBatchResponse) -> Vec<&str> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
}

fn worker() -> (Worker, Arc<MemoryLedger>) {
    let ledger = Arc::new(MemoryLedger::new());
    (Worker::new(ledger.clone(), 2.0), ledger)
}

#[test]
fn the_fixture_is_aws_example_sqs_event() {
    let path = format!("{}/tests/fixtures/sqs-event.json", env!("CARGO_MANIFEST_DIR"));
    let event: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(!event.records.is_empty());
    assert_eq!(event.records[0].event_source.as_deref(), Some("aws:sqs"));
}

#[tokio::test]
async fn only_poison_records_are_reported_as_batch_item_failures() {
    let (worker, ledger) = worker();
    let batch = event(&[
        ("a", Some(r#"{"x": 0.01}"#)),
        ("not-json", Some("Message Body")),
        ("too-big", Some(r#"{"x": 99}"#)),
        ("no-body", None),
        ("b", Some(r#"{"x": 0}"#)),
    ]);
    let response = handle(&worker, invocation(batch, 10_000)).await.unwrap();
    assert_eq!(failures(&response), ["not-json", "too-big", "no-body"]);
    assert_eq!(ledger.done().await.unwrap(), 2);
}

#[tokio::test]
async fn a_redelivered_record_succeeds_without_counting_twice() {
    let (worker, ledger) = worker();
    let first = handle(&worker, invocation(event(&[("a", Some(r#"{"x": 0}"#))]), 10_000)).await.unwrap();
    let again =
        handle(&worker, invocation(event(&[("a", Some(r#"{"x": 0}"#)), ("b", Some(r#"{"x": 0}"#))]), 10_000))
            .await
            .unwrap();
    assert!(failures(&first).is_empty() && failures(&again).is_empty());
    assert_eq!(ledger.done().await.unwrap(), 2);
}

#[tokio::test]
async fn records_that_cannot_finish_in_the_remaining_time_go_back_to_the_queue() {
    let (worker, ledger) = worker();
    // 700 ms left: x = 0.1 fits with the 500 ms margin, x = 1 does not.
    let batch = event(&[("quick", Some(r#"{"x": 0.1}"#)), ("slow", Some(r#"{"x": 1}"#))]);
    let started = std::time::Instant::now();
    let response = handle(&worker, invocation(batch, 700)).await.unwrap();
    assert_eq!(failures(&response), ["slow"]);
    assert!(started.elapsed().as_millis() < 600, "the slow one was never started");
    assert_eq!(ledger.done().await.unwrap(), 1);
}

#[tokio::test]
async fn a_down_ledger_fails_every_record_for_retry() {
    let (worker, ledger) = worker();
    ledger.set_down(true);
    let response =
        handle(&worker, invocation(event(&[("a", Some(r#"{"x": 0}"#)), ("b", Some(r#"{"x": 0}"#))]), 10_000))
            .await
            .unwrap();
    assert_eq!(failures(&response), ["a", "b"]);
}

#[tokio::test]
async fn a_record_without_message_id_fails_the_whole_batch() {
    let (worker, _) = worker();
    let mut batch = event(&[("a", Some(r#"{"x": 0}"#))]);
    batch.records[0].message_id = None;
    assert!(matches!(handle(&worker, invocation(batch, 10_000)).await, Err(BatchError::NoMessageId(0))));
}

#[tokio::test]
async fn the_response_serialises_as_lambda_expects() {
    let (worker, _) = worker();
    let response = handle(&worker, invocation(event(&[("bad", Some("{"))]), 10_000)).await.unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "bad"}]})
    );
}
