//! The deployed path, locally: the `calc-worker` bootstrap under `cargo lambda watch`, fed by
//! `event-poller sqs` (what Lambda's event source mapping does on AWS) from SQS in moto,
//! counting in DynamoDB in moto. Partial batch responses: poison to the DLQ after
//! `maxReceiveCount` receives, redeliveries counted once, the rest unaffected.

use std::process::Command;
use std::time::Duration;

use queue::Ledger;

mod common;
use common::{Stack, bodies, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_behind_the_poller_counts_once_and_dead_letters_poison() {
    if !testkit::emulator::available() {
        return;
    }
    let Some(stack) = Stack::new("calc-lambda", 2, 1).await else { return };
    let env = [
        ("CALC_TABLE", stack.done_table.as_str()),
        ("CALC_MESSAGES_TABLE", stack.messages_table.as_str()),
        ("CALC_MAX_X", "2"),
        ("RUST_LOG", "info"),
    ];
    let emulator = testkit::emulator::Emulator::start(env!("CARGO_BIN_EXE_calc-worker"), "_", &env)
        .expect("cargo-lambda is available");
    let _poller = testkit::process::Process::start(
        Command::new(testkit::emulator::workspace_bin("event-poller"))
            .args(["sqs", "--queue-url", &stack.queue_url, "--invoke-url", &emulator.invoke_url("_")])
            .args(["--batch-size", "10", "--max-concurrency", "2", "--timeout", "10"]),
    );

    // 30 quick ones, 6 that outlast the 1 s visibility timeout (received again while they
    // run: the same message twice), and 3 poison.
    let mut messages = bodies((0..30).map(|i| 0.01 * f64::from(i % 4)));
    messages.extend(bodies((0..6).map(|i| 1.2 + 0.1 * f64::from(i))));
    let poison = ["{", r#"{"x": 2.5}"#, r#"{"x": null}"#];
    messages.extend(poison.iter().map(|p| (*p).to_owned()));
    stack.send(&messages).await;

    let ledger = stack.ledger();
    let settled = eventually(Duration::from_secs(90), || async {
        ledger.done().await.unwrap() >= 36 && stack.dlq_depth().await == poison.len() as u64
    })
    .await;
    assert!(settled, "done = {}, DLQ = {}", ledger.done().await.unwrap(), stack.dlq_depth().await);
    assert!(
        eventually(Duration::from_secs(20), || async { stack.queue_depth().await == 0 }).await,
        "the queue drains"
    );
    assert_eq!(ledger.done().await.unwrap(), 36, "each message counted once");
}
