//! The AWS stores against an endpoint that accepts connections and never answers
//! (`testkit::stalled`): every call ends within the SDK timeouts `aws_setup::Aws` gives its
//! clients, as a `TimedOut` error that says so, instead of hanging.

use std::time::{Duration, Instant};

use aws_setup::Timeouts;
use counter::{StoreError, StoreSpec};
use testkit::stalled::{Endpoint, SHORT};

/// The operation timeout, plus room for a slow machine: far below "hangs".
const BOUND: Duration = Duration::from_secs(3);

async fn increment_against_a_stalled_endpoint(spec: &str) -> Option<(StoreError, Duration, usize)> {
    let endpoint = Endpoint::start();
    let aws = endpoint.aws(SHORT)?;
    let counter = counter::open(&spec.parse::<StoreSpec>().unwrap(), &aws).await.unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), counter.increment()).await;
    let took = started.elapsed();
    let e = result.expect("the increment ended on its own").expect_err("nothing answered");
    eprintln!("{spec}: {took:?}, {accepted} connections: {e}", accepted = endpoint.accepted());
    Some((e, took, endpoint.accepted()))
}

#[tokio::test]
async fn a_stalled_dynamodb_fails_the_increment_as_timed_out_within_the_operation_timeout() {
    let Some((e, took, accepted)) = increment_against_a_stalled_endpoint("dynamodb:hits").await else {
        return;
    };
    assert!(took >= SHORT.attempt && took < BOUND, "took {took:?}");
    assert!(e.is_timeout(), "{e}");
    assert!(matches!(e, StoreError::TimedOut { operation: "UpdateItem", .. }), "{e:?}");
    assert!(e.reason().starts_with("dynamodb store timed out after "), "{}", e.reason());
    assert!(accepted >= 1, "the call reached the endpoint");
}

#[tokio::test]
async fn a_stalled_s3_fails_the_increment_as_timed_out_within_the_operation_timeout() {
    let Some((e, took, _)) = increment_against_a_stalled_endpoint("s3:hits/count").await else { return };
    assert!(took >= SHORT.attempt && took < BOUND, "took {took:?}");
    assert!(matches!(e, StoreError::TimedOut { store: "s3", operation: "GetObject", .. }), "{e:?}");
    assert!(e.reason().starts_with("s3 store timed out after "), "{}", e.reason());
}

#[tokio::test]
async fn a_stalled_sharded_dynamodb_times_out_on_the_increment_before_any_read() {
    let Some((e, took, _)) = increment_against_a_stalled_endpoint("dynamodb:hits#0/3").await else { return };
    assert!(took < BOUND, "took {took:?}");
    assert!(matches!(e, StoreError::TimedOut { operation: "UpdateItem", .. }), "{e:?}");
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_not_timed_out() {
    // A port nothing listens on: the connection is refused at once, which is no timeout. One
    // attempt, so that the SDK's pause before a retry cannot outlast the short operation timeout.
    let url = format!("http://127.0.0.1:{}", testkit::free_port());
    let Some(aws) = Endpoint::start().aws(Timeouts { max_attempts: 1, ..SHORT }) else { return };
    let aws = aws.with_endpoint(url);
    let counter = counter::open(&"dynamodb:hits".parse::<StoreSpec>().unwrap(), &aws).await.unwrap();
    let e = counter.increment().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert_eq!(e.reason(), "dynamodb store unavailable");
}
