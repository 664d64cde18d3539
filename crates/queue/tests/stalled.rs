//! The DynamoDB ledger and the SQS source with the hosts' SDK timeouts (`aws_setup::Timeouts`):
//! against an endpoint that accepts connections and never answers (`testkit::stalled`) every
//! call ends within them, as an error that says it timed out; and an SQS long poll, which
//! waits longer than the operation timeout on purpose, is not cut short by it (against moto).

#![cfg(all(feature = "dynamodb", feature = "sqs"))]

use std::time::{Duration, Instant};

use queue::sqs::SqsSource;
use queue::{Error, LedgerSpec};
use testkit::stalled::{Endpoint, SHORT};

/// The operation timeout, plus room for a slow machine: far below "hangs".
const BOUND: Duration = Duration::from_secs(3);

fn spec() -> LedgerSpec {
    LedgerSpec::DynamoDb { done_table: "calc".into(), messages_table: "calc-messages".into() }
}

#[tokio::test]
async fn a_stalled_ledger_fails_a_record_as_timed_out_within_the_operation_timeout() {
    let endpoint = Endpoint::start();
    let Some(aws) = endpoint.aws(SHORT) else { return };
    let ledger = queue::open_ledger(&spec(), &aws).await.unwrap();
    let started = Instant::now();
    let recorded = tokio::time::timeout(Duration::from_secs(30), ledger.record("m-1")).await;
    let took = started.elapsed();
    let e = recorded.expect("the record ended on its own").expect_err("nothing answered");
    eprintln!("stalled ledger: {took:?}: {e}");
    assert!(took >= SHORT.attempt && took < BOUND, "took {took:?}");
    assert!(e.is_timeout() && !e.is_poison(), "{e}");
    assert!(e.to_string().starts_with("ledger dynamodb timed out after "), "{e}");
    assert!(matches!(e, Error::LedgerTimedOut { operation: "TransactWriteItems", .. }), "{e:?}");
    // The reads and the reset too.
    let e = ledger.done().await.unwrap_err();
    assert!(matches!(e, Error::LedgerTimedOut { operation: "GetItem", .. }), "{e:?}");
    assert!(endpoint.accepted() >= 2, "the calls reached the stalled endpoint");
}

#[tokio::test]
async fn a_stalled_sqs_long_poll_gets_its_wait_on_top_of_the_timeouts_and_still_ends() {
    let endpoint = Endpoint::start();
    let Some(aws) = endpoint.aws(SHORT) else { return };
    let source = SqsSource::new(aws.config().await.unwrap(), format!("{}/123456789012/calc", endpoint.url));
    let wait = Duration::from_secs(2);
    let started = Instant::now();
    let received = tokio::time::timeout(Duration::from_secs(30), source.receive(10, wait)).await;
    let took = started.elapsed();
    let e = received.expect("the poll ended on its own").expect_err("nothing answered");
    eprintln!("stalled long poll of {wait:?}: {took:?}: {e}");
    // Not cut at the plain operation timeout (1 s), but ended by it plus the wait (3 s).
    assert!(took >= wait && took < wait + BOUND, "took {took:?}");
    assert!(e.to_string().contains("timed out") || e.to_string().contains("timeout"), "{e}");
}

#[tokio::test]
async fn a_long_poll_of_an_empty_queue_outlasts_the_operation_timeout() {
    let Some(config) = testkit::moto::config().await else { return };
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (queue_url, _) = testkit::moto::queue_with_dlq(&sqs, "long-poll", 3, 30).await;
    // The hosts' configuration with short timeouts (endpoint, region and credentials from the
    // environment, as for moto above).
    let aws = aws_setup::Aws::new(aws_setup::TrustRoots::Amazon).with_timeouts(SHORT);
    let source = SqsSource::new(aws.config().await.unwrap(), queue_url);
    let wait = Duration::from_secs(2);
    let started = Instant::now();
    let received = source.receive(10, wait).await;
    let took = started.elapsed();
    assert!(received.as_ref().is_ok_and(Vec::is_empty), "{received:?}");
    assert!(took >= SHORT.operation, "the poll waited past the operation timeout: {took:?}");
}
