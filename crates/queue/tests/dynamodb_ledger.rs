//! `DynamoDbLedger` against moto server over real HTTP (`AWS_ENDPOINT_URL`, set by scripts/test;
//! skipped without it).
//!
//! What moto does and does not emulate here (moto 5.2):
//! * `TransactWriteItems` runs the actions one after another under its own lock, so concurrent
//!   transactions never conflict: `TransactionConflict` and throttling, and so the backoff, are
//!   covered by the module's unit tests against a double.
//! * A failed condition comes back as AWS sends it: `TransactionCanceledException` with one
//!   reason per action, `ConditionalCheckFailed` for the put that failed and the string `None`
//!   for the others.
//! * Two actions on one item, or an empty message id, are refused as a whole
//!   (`ValidationException`), as on AWS: the ledger never sends either.
//! * A missing table is a top-level `ResourceNotFoundException`, as on AWS.
//! * Each transaction deep-copies the tables it touches (for its rollback): keep tables small.
//! * TTL is never applied: `expires_at` is checked as written.

#![cfg(feature = "dynamodb")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::join_all;
use queue::dynamodb::{DEFAULT_RECORD_TTL, DynamoDbLedger, LedgerStats, MAX_GROUP};
use queue::{Error, Ledger, Outcome};
use testkit::moto::{self as emulator, config as moto};

/// A ledger on new tables, and a client to look at them.
async fn ledger(config: &SdkConfig) -> (DynamoDbLedger, aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(config);
    let (done, messages) = emulator::calc_tables(&client, "ledger").await;
    (DynamoDbLedger::from_client(client.clone(), done, messages.clone()), client, messages)
}

fn count(outcomes: &[Result<Outcome, Error>], wanted: Outcome) -> usize {
    outcomes.iter().filter(|o| matches!(o, Ok(o) if *o == wanted)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_records_count_each_id_once() {
    let Some(config) = moto().await else { return };
    let (ledger, _, _) = ledger(&config).await;
    let ledger = Arc::new(ledger);
    // 200 distinct ids; after every second one, a redelivery of an id seen shortly before.
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(format!("m{i}"));
        if i % 2 == 1 {
            ids.push(format!("m{}", i - 1 - (i / 2) % 2));
        }
    }
    assert_eq!((ids.len(), ids.iter().collect::<HashSet<_>>().len()), (300, 200));
    // Each on its own task, so that records arrive while transactions are in flight.
    let tasks = ids.into_iter().map(|id| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.record(&id).await })
    });
    let outcomes: Vec<_> =
        join_all(tasks).await.into_iter().map(|joined| joined.expect("no panic")).collect();
    assert!(outcomes.iter().all(Result::is_ok), "{:?}", outcomes.iter().find(|o| o.is_err()));
    assert_eq!(count(&outcomes, Outcome::Counted), 200);
    assert_eq!(count(&outcomes, Outcome::Duplicate), 100);
    assert_eq!(ledger.done().await.unwrap(), 200);
    let stats = ledger.stats();
    assert_eq!(stats.retries, 0, "moto never conflicts");
    assert!(stats.transactions < 300, "{stats:?}");
}

#[tokio::test]
async fn a_redelivered_id_is_a_duplicate_after_the_first_commit() {
    let Some(config) = moto().await else { return };
    let (ledger, _, _) = ledger(&config).await;
    assert_eq!(ledger.done().await.unwrap(), 0, "no done item yet");
    assert_eq!(ledger.record("a").await.unwrap(), Outcome::Counted);
    assert_eq!(ledger.record("b").await.unwrap(), Outcome::Counted);
    assert_eq!(ledger.record("a").await.unwrap(), Outcome::Duplicate);
    assert_eq!(ledger.record("b").await.unwrap(), Outcome::Duplicate);
    assert_eq!(ledger.record("c").await.unwrap(), Outcome::Counted);
    assert_eq!(ledger.done().await.unwrap(), 3);
    // One transaction each, the duplicates' refused ones included; none retried after a backoff.
    assert_eq!(ledger.stats(), LedgerStats { transactions: 5, retries: 0 });
}

#[tokio::test]
async fn a_group_with_some_ids_counted_before_counts_only_the_new_ones() {
    let Some(config) = moto().await else { return };
    let (ledger, _, _) = ledger(&config).await;
    assert_eq!(ledger.record("old1").await.unwrap(), Outcome::Counted);
    assert_eq!(ledger.record("old2").await.unwrap(), Outcome::Counted);
    let ids = ["new1", "old1", "new2", "new2", "old2", "new3"];
    let outcomes = join_all(ids.map(|id| ledger.record(id))).await;
    let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
    use Outcome::{Counted, Duplicate};
    assert_eq!(outcomes, [Counted, Duplicate, Counted, Duplicate, Duplicate, Counted]);
    assert_eq!(ledger.done().await.unwrap(), 5);
    // Two singles, then the group: refused for old1 and old2, then committed without them.
    assert_eq!(ledger.stats(), LedgerStats { transactions: 4, retries: 0 });
}

#[tokio::test]
async fn reset_sets_done_to_zero_and_keeps_the_ids() {
    let Some(config) = moto().await else { return };
    let (ledger, _, _) = ledger(&config).await;
    for id in ["a", "b", "c"] {
        assert_eq!(ledger.record(id).await.unwrap(), Outcome::Counted);
    }
    assert_eq!(ledger.done().await.unwrap(), 3);
    ledger.reset().await.unwrap();
    assert_eq!(ledger.done().await.unwrap(), 0);
    assert_eq!(ledger.record("a").await.unwrap(), Outcome::Duplicate, "reset keeps the ids");
    assert_eq!(ledger.record("d").await.unwrap(), Outcome::Counted);
    assert_eq!(ledger.done().await.unwrap(), 1);
}

#[tokio::test]
async fn group_commit_uses_fewer_transactions_than_messages() {
    let Some(config) = moto().await else { return };
    let (ledger, _, _) = ledger(&config).await;
    let ids: Vec<String> = (0..150).map(|i| format!("g{i}")).collect();
    // On this one-thread runtime every record is queued before the committer first runs.
    let outcomes = join_all(ids.iter().map(|id| ledger.record(id))).await;
    assert_eq!(count(&outcomes, Outcome::Counted), 150);
    assert_eq!(ledger.done().await.unwrap(), 150);
    assert_eq!(ledger.stats(), LedgerStats { transactions: 150usize.div_ceil(MAX_GROUP) as u64, retries: 0 });
}

#[tokio::test]
async fn a_record_expires_after_the_record_ttl() {
    let Some(config) = moto().await else { return };
    let (ledger, client, messages) = ledger(&config).await;
    assert_eq!(ledger.record_ttl(), DEFAULT_RECORD_TTL);
    let ledger = ledger.with_record_ttl(Duration::from_secs(3600));
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let before = now();
    ledger.record("ttl").await.unwrap();
    let after = now();
    let item = client
        .get_item()
        .table_name(&messages)
        .key("message_id", AttributeValue::S("ttl".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let expires_at = match item.item().and_then(|i| i.get("expires_at")) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap(),
        other => panic!("expires_at = {other:?}"),
    };
    assert!((before + 3600..=after + 3600).contains(&expires_at), "{before} {expires_at} {after}");
}

#[tokio::test]
async fn a_missing_table_is_a_ledger_error_for_every_waiter_not_a_hang() {
    let Some(config) = moto().await else { return };
    let ledger = DynamoDbLedger::new(&config, emulator::unique("no-done"), emulator::unique("no-messages"));
    let ids = ["a", "b", "a", "c"];
    let outcomes = tokio::time::timeout(Duration::from_secs(10), join_all(ids.map(|id| ledger.record(id))))
        .await
        .expect("every waiter answered");
    for outcome in &outcomes {
        assert!(matches!(outcome, Err(Error::Ledger { .. })), "{outcome:?}");
    }
    assert_eq!(ledger.stats(), LedgerStats { transactions: 1, retries: 0 }, "failed at once, not retried");
    assert!(matches!(ledger.done().await, Err(Error::Ledger { .. })));
    assert!(matches!(ledger.reset().await, Err(Error::Ledger { .. })));
}
