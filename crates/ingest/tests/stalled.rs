//! The Firehose and Kinesis sinks against an endpoint that accepts connections and never
//! answers (`testkit::stalled`): a put ends within the SDK's operation timeout as a
//! [`SinkError`] that says it timed out, instead of holding the batch (and the buffer behind
//! it) for minutes.

#![cfg(all(feature = "firehose", feature = "kinesis"))]

use std::time::{Duration, Instant};

use ingest::{Record, SinkError, SinkSpec};
use testkit::stalled::{Endpoint, SHORT};

/// The operation timeout, plus room for a slow machine: far below "hangs".
const BOUND: Duration = Duration::from_secs(3);

async fn put_into_a_stalled(spec: &str, records: usize) -> Option<(SinkError, Duration)> {
    let endpoint = Endpoint::start();
    let aws = endpoint.aws(SHORT)?;
    let (sink, _) = ingest::open_sinks(&spec.parse::<SinkSpec>().unwrap(), None, &aws).await.unwrap();
    let batch: Vec<Record> = (0..records).map(|i| Record::from(format!("{{\"i\":{i}}}\n"))).collect();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), sink.put(&batch)).await;
    let took = started.elapsed();
    let e = result.expect("the put ended on its own").expect_err("nothing answered");
    assert!(endpoint.accepted() >= 1, "the call reached the stalled endpoint");
    eprintln!("{spec}, {records} records: {took:?}: {e}");
    Some((e, took))
}

#[tokio::test]
async fn a_stalled_firehose_fails_a_batch_as_timed_out_within_the_operation_timeout() {
    let Some((e, took)) = put_into_a_stalled("firehose:events", 3).await else { return };
    assert!(took >= SHORT.attempt && took < BOUND, "took {took:?}");
    assert!(e.is_timeout(), "{e}");
    assert!(e.to_string().starts_with("firehose:events timed out after "), "{e}");
}

#[tokio::test]
async fn a_stalled_firehose_fails_a_single_record_the_same_way() {
    let Some((e, took)) = put_into_a_stalled("firehose:events", 1).await else { return };
    assert!(took < BOUND, "took {took:?}");
    assert!(e.is_timeout(), "{e}");
}

#[tokio::test]
async fn a_stalled_kinesis_fails_a_batch_as_timed_out_within_the_operation_timeout() {
    let Some((e, took)) = put_into_a_stalled("kinesis:events", 3).await else { return };
    assert!(took >= SHORT.attempt && took < BOUND, "took {took:?}");
    assert!(e.is_timeout(), "{e}");
    assert!(e.to_string().starts_with("kinesis:events timed out after "), "{e}");
}
