//! The AWS adapters against moto: a record put on a Kinesis stream, a row put once into a
//! DynamoDB table and found there the second time, a stalled table failing within its timeouts.

use std::time::{Duration, Instant};

use pipeline::stamps::{ItemRow, Row};
use pipeline::{Put, Stream, Table};
use testkit::moto;

fn row(id: &str) -> Row {
    Row::item(&ItemRow {
        id: id.into(),
        item: format!(r#"{{"id":"{id}","message":"m","timestamp":1733450000}}"#),
        client_ms: 1_733_450_000_000.0,
        upstream_ms: 1_733_450_000_010,
        kinesis_ms: 1_733_450_000_020,
        midstream_ms: 1_733_450_000_030,
    })
}

#[tokio::test]
async fn a_record_put_on_the_stream_is_read_back_with_its_partition_key() {
    let Some(config) = moto::config().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let name = moto::kinesis_stream(&kinesis, "pipeline-adapter", 2).await;
    let stream = pipeline::kinesis::KinesisStream::new(kinesis.clone(), &name);
    stream.warm().await.unwrap();
    stream.put("item-1", b"{\"a\":1}".to_vec()).await.unwrap();
    assert_eq!(moto::kinesis_records(&kinesis, &name).await, [("item-1".to_owned(), b"{\"a\":1}".to_vec())]);
    assert_eq!(stream.describe(), format!("kinesis:{name}"));
}

#[tokio::test]
async fn a_missing_stream_is_a_stream_error_that_names_the_cause() {
    let Some(config) = moto::config().await else { return };
    let stream =
        pipeline::kinesis::KinesisStream::new(aws_sdk_kinesis::Client::new(&config), "no-such-stream");
    let e = stream.put("k", b"x".to_vec()).await.unwrap_err();
    assert!(matches!(&e, pipeline::Error::Stream { timed_out: false, .. }), "{e:?}");
    assert!(e.to_string().contains("ResourceNotFound"), "{e}");
    assert_eq!(e.status(), 503);
}

#[tokio::test]
async fn a_row_is_inserted_once_and_found_there_the_second_time() {
    let Some(config) = moto::config().await else { return };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let name = moto::pipeline_table(&dynamodb, "pipeline-items").await;
    let table = pipeline::dynamodb::DynamoDbTable::new(dynamodb.clone(), &name);
    table.warm().await.unwrap();
    assert_eq!(table.put_if_absent(&row("a")).await.unwrap(), Put::Inserted);
    let mut changed = row("a");
    changed.attributes[0].1 = pipeline::stamps::Attr::S("another".into());
    assert_eq!(table.put_if_absent(&changed).await.unwrap(), Put::AlreadyThere);
    let got = dynamodb
        .get_item()
        .table_name(&name)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("a".into()))
        .send()
        .await
        .unwrap();
    let item = got.item().expect("the row is there");
    assert_eq!(item["item"].as_s().unwrap(), r#"{"id":"a","message":"m","timestamp":1733450000}"#);
    assert_eq!(item["kinesis_ms"].as_n().unwrap(), "1733450000020");
    assert_eq!(item["expires"].as_n().unwrap(), &(1_733_450_000 + 86_400).to_string());
}

#[tokio::test]
async fn a_stalled_table_fails_within_its_timeouts_as_timed_out() {
    let endpoint = testkit::stalled::Endpoint::start();
    let Some(aws) = endpoint.aws(testkit::stalled::SHORT) else { return };
    let table = pipeline::open_table("items", &aws).await.unwrap();
    let started = Instant::now();
    let e = table.put_if_absent(&row("a")).await.unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
