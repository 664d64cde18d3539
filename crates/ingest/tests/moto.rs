//! The Firehose and Kinesis sinks against moto server over real HTTP (`AWS_ENDPOINT_URL`, set
//! by scripts/test).
//!
//! What moto does and does not emulate here (moto 5.2):
//! * Firehose writes every `PutRecord(Batch)` call at once into one S3 object under the
//!   destination's prefix (`<prefix>YYYY/MM/DD/HH/<stream>-1-<time>-<uuid>`), the records' bytes
//!   concatenated: no buffering, no compression, no transformation Lambda, no `!{…}` expressions
//!   in prefixes, and no limits on record or batch size.
//! * Neither service ever refuses single entries: `FailedPutCount` / `FailedRecordCount` is
//!   always 0. The per-entry path is covered by the sinks' unit tests (the response mapping) and
//!   by the fault-injecting sink double (the retries).
//! * Kinesis does enforce `PutRecords`' limits (500 records, 5 MiB, 1 MiB per record with its
//!   key) by refusing the whole call, and routes records to shards by the MD5 of the partition
//!   key, as AWS does.

#![cfg(all(feature = "firehose", feature = "kinesis"))]

use std::collections::HashSet;

use aws_config::SdkConfig;
use aws_sdk_kinesis::types::ShardIteratorType;
use ingest::firehose::FirehoseSink;
use ingest::kinesis::KinesisSink;
use ingest::pack::{self, batches, lines};
use ingest::{Limits, Record, Sink};
use testkit::moto::{self as emulator, config as moto};

/// The prefix template.yaml gives EventsDeliveryStream.
const PREFIX: &str = "events/";

/// A bucket and a DirectPut delivery stream writing into it under [`PREFIX`].
async fn delivery_stream(config: &SdkConfig) -> (aws_sdk_s3::Client, String, String) {
    let s3 = aws_setup::s3_client(config);
    let bucket = emulator::bucket(&s3, "ingest").await;
    let stream = emulator::delivery_stream(&aws_sdk_firehose::Client::new(config), &bucket, PREFIX).await;
    (s3, bucket, stream)
}

/// The objects under `prefix`, each as its bytes, in key order.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        keys.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(str::to_owned)));
    }
    let mut bodies = Vec::new();
    for key in keys {
        let object = s3.get_object().bucket(bucket).key(&key).send().await.unwrap();
        bodies.push(object.body.collect().await.unwrap().into_bytes().to_vec());
    }
    bodies
}

/// The events (lines) of `chunks`, sorted: a multiset to compare what was put with what arrived.
fn sorted_lines<C: AsRef<[u8]>>(chunks: &[C]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = chunks.iter().flat_map(|c| lines(c.as_ref()).map(<[u8]>::to_vec)).collect();
    all.sort_unstable();
    all
}

/// `n` distinct small events, compact JSON.
fn small_events(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!(r#"{{"type":"{tag}","timestamp":{i},"note":"é \"quoted\" \\n {i}"}}"#)).collect()
}

/// Puts `records` in calls that respect the sink's limits; panics on any failure.
async fn put_all(sink: &dyn Sink, records: &[Record]) -> usize {
    let calls = batches(records, sink.limits());
    for call in &calls {
        let failed = sink.put(call).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(failed.is_empty(), "{failed:?}");
    }
    calls.len()
}

#[tokio::test]
async fn one_record_put_through_firehose_lands_in_the_bucket_byte_for_byte() {
    let Some(config) = moto().await else { return };
    let (s3, bucket, stream) = delivery_stream(&config).await;
    let sink = FirehoseSink::from_env(stream.clone()).await;
    assert_eq!(sink.describe(), format!("firehose:{stream}"));
    assert_eq!(sink.limits(), Limits::FIREHOSE);
    sink.warm().await.unwrap();

    let record = pack::pack(&small_events("one", 3), 5000);
    assert_eq!(record.len(), 1, "three small events pack into one record");
    assert_eq!(sink.put(&record).await.unwrap(), vec![]);

    let delivered = objects(&s3, &bucket, PREFIX).await;
    assert_eq!(delivered, vec![record[0].to_vec()], "one PutRecord, one object (moto), the record as it was");
}

#[tokio::test]
async fn a_batch_of_500_small_records_and_a_few_large_packed_ones_arrive_exactly_through_firehose() {
    let Some(config) = moto().await else { return };
    let (s3, bucket, stream) = delivery_stream(&config).await;
    let sink = FirehoseSink::new(aws_sdk_firehose::Client::new(&config), stream);

    // 500 records of one event each (a full PutRecordBatch by count) ...
    let mut records = pack::pack(&small_events("small", 500), 0);
    // ... and records packed up to the 1,000 KiB record limit from 10 KB events.
    let pad = "x".repeat(10_000);
    let large: Vec<String> =
        (0..300).map(|i| format!(r#"{{"type":"large","timestamp":{i},"pad":"{pad}"}}"#)).collect();
    let packed = pack::pack(&large, Limits::FIREHOSE.max_record_bytes);
    assert_eq!(packed.len(), 3, "300 events of 10 KB fill three records");
    assert!(packed.iter().all(|r| r.len() <= Limits::FIREHOSE.max_record_bytes));
    assert!(packed[0].len() > 1_000_000, "the large records are near the limit: {}", packed[0].len());
    records.extend(packed);

    assert_eq!(put_all(&sink, &records).await, 2, "500 records in one call, the large ones in another");

    let delivered = objects(&s3, &bucket, PREFIX).await;
    assert_eq!(delivered.len(), 2, "moto writes one object per call");
    let put = sorted_lines(&records);
    assert_eq!(put.len(), 800);
    assert!(sorted_lines(&delivered) == put, "the delivered events differ from the ones put");
    assert_eq!(put.iter().collect::<HashSet<_>>().len(), 800, "every event is distinct, so none was doubled");
}

#[tokio::test]
async fn kinesis_records_read_back_from_every_shard_equal_what_was_put() {
    let Some(config) = moto().await else { return };
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = emulator::kinesis_stream(&client, "ingest", 2).await;
    let sink = KinesisSink::from_env(stream.clone()).await;
    assert_eq!(sink.describe(), format!("kinesis:{stream}"));
    assert_eq!(sink.limits(), Limits::KINESIS);
    sink.warm().await.unwrap();

    // One record alone (still PutRecords), then 499 small ones and two packed to 100 KB.
    let mut records = pack::pack(&small_events("first", 2), 5000);
    assert_eq!(sink.put(&records).await.unwrap(), vec![]);
    let more = pack::pack(&small_events("more", 499), 0);
    let pad = "y".repeat(1000);
    let big: Vec<String> =
        (0..150).map(|i| format!(r#"{{"type":"big","timestamp":{i},"pad":"{pad}"}}"#)).collect();
    let mut rest = more;
    rest.extend(pack::pack(&big, 100_000));
    assert_eq!(put_all(&sink, &rest).await, 2, "501 records: two calls by count");
    records.extend(rest);

    let shards = client.list_shards().stream_name(&stream).send().await.unwrap();
    assert_eq!(shards.shards().len(), 2);
    let mut read: Vec<Vec<u8>> = Vec::new();
    let mut keys = HashSet::new();
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let before = read.len();
        loop {
            let got = client.get_records().shard_iterator(&iterator).send().await.unwrap();
            if got.records().is_empty() {
                break;
            }
            for r in got.records() {
                read.push(r.data().as_ref().to_vec());
                assert!(
                    keys.insert(r.partition_key().to_owned()),
                    "partition key {} reused",
                    r.partition_key()
                );
            }
            iterator = got.next_shard_iterator.unwrap();
        }
        assert!(read.len() > before, "shard {} got no records: keys do not spread", shard.shard_id());
    }
    read.sort_unstable();
    let mut put: Vec<Vec<u8>> = records.iter().map(|r| r.to_vec()).collect();
    put.sort_unstable();
    assert_eq!(read.len(), put.len());
    assert!(read == put, "the records read back differ from the ones put");
}

#[tokio::test]
async fn a_put_to_a_stream_that_does_not_exist_is_a_sink_error_naming_resource_not_found() {
    let Some(config) = moto().await else { return };
    let missing = emulator::unique("no-such-stream");
    let sinks: [Box<dyn Sink>; 2] = [
        Box::new(FirehoseSink::new(aws_sdk_firehose::Client::new(&config), missing.clone())),
        Box::new(KinesisSink::new(aws_sdk_kinesis::Client::new(&config), missing.clone())),
    ];
    let records = pack::pack(&small_events("lost", 2), 0);
    for sink in &sinks {
        for call in [&records[..1], &records[..]] {
            let err = sink.put(call).await.unwrap_err();
            assert_eq!(err.sink, sink.describe());
            let text = err.to_string();
            assert!(text.contains("ResourceNotFound"), "{} records: {text}", call.len());
            let prefix = format!("{} unavailable: ResourceNotFoundException: ", sink.describe());
            assert!(text.starts_with(&prefix), "{text}");
            assert!(text.contains(&missing) && text.contains("(HTTP 400, request id "), "{text}");
            assert!(!text.contains("HeaderValue"), "no raw response dump: {text}");
        }
        let err = sink.warm().await.unwrap_err();
        assert!(err.to_string().contains("ResourceNotFound"), "warm: {err}");
    }
}

#[tokio::test]
async fn a_kinesis_call_over_the_service_limits_is_refused_whole_as_a_sink_error() {
    // Why the batcher splits by `limits()`: Kinesis refuses an oversized PutRecords outright.
    let Some(config) = moto().await else { return };
    let client = aws_sdk_kinesis::Client::new(&config);
    let stream = emulator::kinesis_stream(&client, "ingest", 1).await;
    let sink = KinesisSink::new(client, stream);
    let records = pack::pack(&small_events("many", Limits::KINESIS.max_records + 1), 0);
    let err = sink.put(&records).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ValidationException: ") && text.contains("less than or equal to 500"), "{text}");
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_sink_error_with_its_cause() {
    let Some(config) = moto().await else { return };
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let firehose =
        aws_sdk_firehose::config::Builder::from(&config).endpoint_url("http://127.0.0.1:1").build();
    let kinesis = aws_sdk_kinesis::config::Builder::from(&config).endpoint_url("http://127.0.0.1:1").build();
    let sinks: [Box<dyn Sink>; 2] = [
        Box::new(FirehoseSink::new(aws_sdk_firehose::Client::from_conf(firehose), "events")),
        Box::new(KinesisSink::new(aws_sdk_kinesis::Client::from_conf(kinesis), "events")),
    ];
    let records = pack::pack(&small_events("nowhere", 2), 0);
    for sink in &sinks {
        let text = sink.put(&records).await.unwrap_err().to_string();
        assert!(text.contains("dispatch failure") && text.contains("onnection refused"), "{text}");
    }
}
