//! `calc-worker-server` long-polling SQS in moto, counting in DynamoDB in moto: exactly once
//! under redelivery, poison to the dead-letter queue, SIGTERM drains.

use std::time::Duration;

use queue::Ledger;

mod common;
use common::{Stack, bodies, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_redelivered_while_in_progress_are_counted_once() {
    let Some(stack) = Stack::new("calc-dup", 10, 1).await else { return };
    // A 1 s visibility timeout and calculations of 1.2–1.8 s: every slow message becomes
    // visible again while it runs, and the worker receives it a second time.
    let mut xs: Vec<f64> = (0..40).map(|i| 0.01 * f64::from(i % 5)).collect();
    xs.extend((0..10).map(|i| 1.2 + 0.06 * f64::from(i)));
    let ids = stack.send(&bodies(xs.iter().copied())).await;
    let ledger = stack.ledger();
    let worker = common::sqs_worker(&stack, &[]);
    let all_done = eventually(Duration::from_secs(60), || async {
        ledger.done().await.unwrap() >= ids.len() as u64 && stack.queue_depth().await == 0
    })
    .await;
    let done = ledger.done().await.unwrap();
    assert!(all_done, "done = {done} of {}; queue depth {}", ids.len(), stack.queue_depth().await);
    // Any straggling redelivery has to settle too: still exactly the unique count.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ledger.done().await.unwrap(), ids.len() as u64);
    assert_eq!(stack.dlq_depth().await, 0);
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_reaches_the_dead_letter_queue_after_max_receives_and_the_rest_count() {
    let Some(stack) = Stack::new("calc-poison", 2, 1).await else { return };
    let mut messages = bodies((0..20).map(|i| 0.01 * f64::from(i % 3)));
    let poison = ["not json", r#"{"x": -1}"#, r#"{"x": 3}"#, r#"{"y": 1}"#, r#"{"x": "1"}"#];
    messages.extend(poison.iter().map(|p| (*p).to_owned()));
    stack.send(&messages).await;
    let ledger = stack.ledger();
    let _worker = common::sqs_worker(&stack, &[]);
    let settled = eventually(Duration::from_secs(60), || async {
        stack.dlq_depth().await == poison.len() as u64 && ledger.done().await.unwrap() == 20
    })
    .await;
    assert!(settled, "done = {}, DLQ = {}", ledger.done().await.unwrap(), stack.dlq_depth().await);
    assert_eq!(stack.queue_depth().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_messages_in_flight_and_exits_zero() {
    let Some(stack) = Stack::new("calc-term", 10, 30).await else { return };
    let ids = stack.send(&bodies(std::iter::repeat_n(1.5, 12))).await;
    let ledger = stack.ledger();
    let mut worker = common::sqs_worker(&stack, &["--shutdown-timeout", "10"]);
    // All twelve received (none visible) and running: then SIGTERM.
    let running = eventually(Duration::from_secs(20), || async {
        stack.queue_depth().await == 12 && common::health(&worker).await == Some(200) && {
            let visible = stack
                .sqs
                .get_queue_attributes()
                .queue_url(&stack.queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap();
            visible.attributes().and_then(|a| a.values().next()).map(String::as_str) == Some("0")
        }
    })
    .await;
    assert!(running, "the worker never took all twelve messages");
    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(15)).expect("exits within the shutdown timeout");
    assert!(status.success(), "exit status {status}");
    assert_eq!(ledger.done().await.unwrap(), ids.len() as u64, "every message in flight was counted");
    assert_eq!(stack.queue_depth().await, 0, "and deleted");
}
