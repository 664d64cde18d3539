//! `event-poller dynamodb-streams` against a table's stream in moto and a stand-in for the
//! function: the event Lambda sends, the INSERT filter, and a batch given up described by
//! `DDBStreamBatchInfo`.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use serde_json::{Value, json};
use testkit::eventually;

mod common;
use common::{Function, all_done, checkpoint_dir, drain, poller, queue};

struct Table {
    config: aws_config::SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    name: String,
    stream_arn: String,
}

impl Table {
    /// A table keyed by `id` (S) with a NEW_IMAGE stream, as the pipeline's items table.
    async fn new(prefix: &str) -> Option<Table> {
        let config = testkit::moto::config().await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let name = testkit::moto::unique(prefix);
        let out = dynamodb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap(),
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let stream_arn =
            out.table_description().and_then(|t| t.latest_stream_arn()).expect("a stream").to_owned();
        Some(Table { config, dynamodb, name, stream_arn })
    }

    async fn put(&self, id: &str, message: &str) {
        self.dynamodb
            .put_item()
            .table_name(&self.name)
            .item("id", AttributeValue::S(id.into()))
            .item("message", AttributeValue::S(message.into()))
            .item("n", AttributeValue::N("1.5".into()))
            .send()
            .await
            .unwrap();
    }

    async fn delete(&self, id: &str) {
        self.dynamodb
            .delete_item()
            .table_name(&self.name)
            .key("id", AttributeValue::S(id.into()))
            .send()
            .await
            .unwrap();
    }

    /// The stream's records' (eventName, SequenceNumber), read from the start.
    async fn stream(&self) -> Vec<(String, String)> {
        let streams = aws_sdk_dynamodbstreams::Client::new(&self.config);
        let described = streams.describe_stream().stream_arn(&self.stream_arn).send().await.unwrap();
        let shard = described.stream_description().unwrap().shards()[0].shard_id().unwrap().to_owned();
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let out =
            streams.get_records().shard_iterator(iterator.shard_iterator().unwrap()).send().await.unwrap();
        out.records()
            .iter()
            .map(|r| {
                let name = r.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default();
                (name, r.dynamodb().and_then(|d| d.sequence_number()).unwrap_or_default().to_owned())
            })
            .collect()
    }
}

fn sequence(record: &Value) -> String {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap_or_default().to_owned()
}

/// The sequence number of the (only) shard's checkpoint file.
fn checkpoint(dir: &std::path::Path) -> Option<String> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))?;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).ok()?).ok()?;
    saved["sequence_number"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_insert_filter_passes_inserts_in_lambdas_dynamodb_event_and_checkpoints_past_the_rest() {
    let Some(table) = Table::new("poller-items").await else { return };
    for id in ["1", "2", "3", "4"] {
        table.put(id, &format!("hello {id}")).await;
    }
    table.put("1", "changed").await; // MODIFY
    table.delete("2").await; // REMOVE
    table.put("5", "hello 5").await;
    table.put("3", "changed").await; // MODIFY
    table.delete("4").await; // REMOVE, the last record
    let stream = table.stream().await;
    let names: Vec<&str> = stream.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["INSERT", "INSERT", "INSERT", "INSERT", "MODIFY", "REMOVE", "INSERT", "MODIFY", "REMOVE"]
    );
    let last = stream.last().unwrap().1.clone();

    let function = Function::start(Duration::ZERO, all_done).await;
    let dir = checkpoint_dir("ddb-filter");
    let poller = poller(
        &["dynamodb-streams", "--table", &table.name, "--filter-event-name", "INSERT"],
        &function,
        &dir,
        &["--starting-position", "trim-horizon", "--batch-size", "3"],
    );
    let settled =
        eventually(Duration::from_secs(30), || async { checkpoint(&dir).as_deref() == Some(last.as_str()) });
    assert!(
        settled.await,
        "checkpointed past the filtered records: {:?}\n{}",
        checkpoint(&dir),
        poller.log()
    );

    let mut ids = Vec::new();
    for invocation in function.invocations() {
        let event: Event = serde_json::from_value(invocation.event.clone())
            .expect("a DynamoDB event as aws_lambda_events reads it");
        for (record, raw) in event.records.iter().zip(invocation.records()) {
            assert_eq!(record.event_name, "INSERT", "only INSERTs pass the filter");
            assert_eq!(record.event_source.as_deref(), Some("aws:dynamodb"));
            assert_eq!(record.event_source_arn.as_deref(), Some(table.stream_arn.as_str()));
            assert!(!record.event_id.is_empty());
            assert_eq!(record.aws_region, table.config.region().unwrap().as_ref());
            assert!(record.change.size_bytes > 0);
            let change = &raw["dynamodb"];
            assert!(change["ApproximateCreationDateTime"].is_number(), "epoch seconds as a number: {raw}");
            assert_eq!(change["StreamViewType"], "NEW_IMAGE");
            assert!(change["SequenceNumber"].is_string(), "{raw}");
            let id = change["Keys"]["id"]["S"].as_str().unwrap().to_owned();
            assert_eq!(change["NewImage"]["id"], json!({"S": id}));
            assert_eq!(change["NewImage"]["message"], json!({"S": format!("hello {id}")}));
            assert_eq!(change["NewImage"]["n"], json!({"N": "1.5"}));
            ids.push(id);
        }
    }
    assert_eq!(ids, ["1", "2", "3", "4", "5"], "each INSERT once, in order");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_stream_batch_given_up_is_described_by_its_ddbstreambatchinfo_and_the_shard_moves_on() {
    let Some(table) = Table::new("poller-given-up").await else { return };
    let sqs = aws_sdk_sqs::Client::new(&table.config);
    let on_failure = queue(&sqs, "poller-ddb-on-failure").await;
    table.put("bad", "poison").await;
    table.put("good", "hello good").await;
    let stream = table.stream().await;
    // Reports the bad record every time.
    let function = Function::start(Duration::ZERO, |event: &Value| {
        let bad: Vec<Value> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dynamodb"]["Keys"]["id"]["S"] == "bad")
            .map(|r| json!({"itemIdentifier": sequence(r)}))
            .collect();
        (200, json!({ "batchItemFailures": bad }))
    })
    .await;
    let dir = checkpoint_dir("ddb-given-up");
    let poller = poller(
        &["dynamodb-streams", "--stream-arn", &table.stream_arn],
        &function,
        &dir,
        &[
            "--starting-position",
            "trim-horizon",
            "--batch-size",
            "1",
            "--maximum-retry-attempts",
            "1",
            "--on-failure-queue-url",
            &on_failure,
        ],
    );
    let done = eventually(Duration::from_secs(30), || async { !function.done(sequence).is_empty() }).await;
    assert!(done, "the good record after the bad one is delivered\n{}", poller.log());
    assert_eq!(function.done(sequence), [stream[1].1.clone()]);
    let given_up = drain(&sqs, &on_failure).await;
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    let record = &given_up[0];
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["responseContext"]["statusCode"], 200);
    let info = &record["DDBStreamBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{record}");
    assert_eq!(info["startSequenceNumber"], stream[0].1.as_str());
    assert_eq!(info["endSequenceNumber"], stream[0].1.as_str());
    assert_eq!(info["streamArn"], table.stream_arn.as_str());
    assert!(info["shardId"].is_string(), "{record}");
    let _ = std::fs::remove_dir_all(&dir);
}
