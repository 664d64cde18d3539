//! Resources on the emulators that `scripts/test` starts (moto, via `AWS_ENDPOINT_URL`; a
//! private RabbitMQ, via `CALC_TEST_AMQP_URL`), named so that concurrent tests and runs never
//! collide, and declared as template.yaml declares them.
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;

/// The emulator's configuration, or `None` (skip the test, said on stderr) when
/// `AWS_ENDPOINT_URL` is not set; under [`crate::required`] a missing emulator fails the test.
pub async fn config() -> Option<SdkConfig> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none_or(|v| v.is_empty()) {
        crate::skip(
            "needs moto: AWS_ENDPOINT_URL is not set (scripts/test starts it; or scripts/moto start <pidfile> \
             and export AWS_ENDPOINT_URL)",
        );
        return None;
    }
    Some(aws_setup::load().await)
}

/// The RabbitMQ broker that `scripts/test` starts (`scripts/rabbitmq`, exported as
/// `CALC_TEST_AMQP_URL`), or `None` (skip the test) when it is not set; under
/// [`crate::required`] a missing broker fails the test, as a missing moto does. Not AWS, but the
/// same kind of local stand-in, so it lives with the others.
pub fn amqp_url() -> Option<String> {
    match std::env::var("CALC_TEST_AMQP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            crate::skip(
                "needs RabbitMQ: CALC_TEST_AMQP_URL is not set (scripts/test starts it; or scripts/rabbitmq \
                 start <pidfile> and export CALC_TEST_AMQP_URL)",
            );
            None
        }
    }
}

/// A name no other test or run uses: lowercase, valid for buckets and tables.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)).to_lowercase()
}

/// A new bucket in the client's region.
pub async fn bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let bucket = unique(prefix);
    let mut create = s3.create_bucket().bucket(&bucket);
    if let Some(region) = s3.config().region().map(|r| r.as_ref().to_owned()).filter(|r| r != "us-east-1") {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    if let Err(e) = create.send().await {
        panic!("create bucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(e));
    }
    bucket
}

/// A new counter table as template.yaml declares `CounterTable`: partition key `id` (N),
/// on-demand.
pub async fn counter_table(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    table(dynamodb, prefix, "id", aws_sdk_dynamodb::types::ScalarAttributeType::N).await
}

/// A new pipeline table as template.yaml declares `PipelineItemsTable` and
/// `PipelineResultsTable`: partition key `id` (S), on-demand (moto keeps no stream or TTL that
/// the tests need).
pub async fn pipeline_table(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    table(dynamodb, prefix, "id", aws_sdk_dynamodb::types::ScalarAttributeType::S).await
}

/// A new on-demand table named after `prefix`, with the partition key `key` of type `kind`.
async fn table(
    dynamodb: &aws_sdk_dynamodb::Client,
    prefix: &str,
    key: &str,
    kind: aws_sdk_dynamodb::types::ScalarAttributeType,
) -> String {
    use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType};
    let table = unique(prefix);
    let attribute = AttributeDefinition::builder().attribute_name(key).attribute_type(kind);
    let schema = KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash);
    let created = dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute.build().expect("complete attribute definition"))
        .key_schema(schema.build().expect("complete key schema"))
        .send()
        .await;
    if let Err(e) = created {
        panic!("create table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e));
    }
    table
}

/// A new Firehose delivery stream as template.yaml declares `EventsDeliveryStream`: DirectPut
/// (producers call `PutRecord(Batch)`), an extended S3 destination writing into `bucket` under
/// the key prefix `s3_prefix`. Without the transform and the compression: moto runs no Lambda, ignores
/// `CompressionFormat`, and writes each `PutRecord(Batch)` call straight into one object
/// (`<s3_prefix>YYYY/MM/DD/HH/<stream>-1-<time>-<uuid>`), the records' bytes concatenated.
pub async fn delivery_stream(firehose: &aws_sdk_firehose::Client, bucket: &str, s3_prefix: &str) -> String {
    use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
    let stream = unique("events");
    let destination = ExtendedS3DestinationConfiguration::builder()
        // moto checks neither the role nor the ARN's account.
        .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
        .bucket_arn(format!("arn:aws:s3:::{bucket}"))
        .prefix(s3_prefix)
        .build()
        .expect("role and bucket ARNs are set");
    let created = firehose
        .create_delivery_stream()
        .delivery_stream_name(&stream)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await;
    if let Err(e) = created {
        panic!("create delivery stream {stream}: {}", aws_sdk_firehose::error::DisplayErrorContext(e));
    }
    stream
}

/// A new standard queue with a dead-letter queue, as template.yaml declares `CalcQueue` and
/// `CalcDeadLetterQueue`: a message received `max_receive_count` times without being deleted
/// moves to the DLQ on its next receive (moto does the redrive, as SQS does).
/// Returns `(queue_url, dlq_url)`.
pub async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    max_receive_count: u32,
    visibility_timeout_s: u32,
) -> (String, String) {
    use aws_sdk_sqs::error::DisplayErrorContext;
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = unique(prefix);
    let dlq = match sqs.create_queue().queue_name(format!("{name}-dlq")).send().await {
        Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
        Err(e) => panic!("create queue {name}-dlq: {}", DisplayErrorContext(e)),
    };
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .ok()
        .and_then(|out| out.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned())
        .unwrap_or_else(|| panic!("no ARN for queue {dlq}"));
    let redrive = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receive_count}"}}"#);
    let created = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
        .send()
        .await;
    match created {
        Ok(out) => (out.queue_url().unwrap_or_default().to_owned(), dlq),
        Err(e) => panic!("create queue {name}: {}", DisplayErrorContext(e)),
    }
}

/// The calc tables as template.yaml declares them: `CalcTable` (partition key `id` (N); the
/// item `id = 0` holds `done`) and `CalcMessagesTable` (partition key `message_id` (S), one
/// TTL'd item per counted message). Returns `(done_table, messages_table)`.
pub async fn calc_tables(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> (String, String) {
    use aws_sdk_dynamodb::types::ScalarAttributeType;
    let done = table(dynamodb, &format!("{prefix}-done"), "id", ScalarAttributeType::N).await;
    let messages = table(dynamodb, &format!("{prefix}-messages"), "message_id", ScalarAttributeType::S).await;
    (done, messages)
}

/// The pipeline's tables as the contract declares `PipelineResultsTable` and `PipelineItemsTable`:
/// partition key `id` (S), on-demand (without the items table's stream and the TTL, which the
/// driver's tests do not need). Returns `(results_table, items_table)`.
pub async fn pipeline_tables(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> (String, String) {
    let results = pipeline_table(dynamodb, &format!("{prefix}-results")).await;
    let items = pipeline_table(dynamodb, &format!("{prefix}-items")).await;
    (results, items)
}

/// A new provisioned Kinesis data stream of `shards` shards. moto makes it `ACTIVE` at once
/// (AWS takes seconds); this checks that rather than waiting, so a slower emulator fails here
/// with a clear message instead of in the test.
pub async fn kinesis_stream(kinesis: &aws_sdk_kinesis::Client, prefix: &str, shards: i32) -> String {
    use aws_sdk_kinesis::error::DisplayErrorContext;
    use aws_sdk_kinesis::types::StreamStatus;
    let stream = unique(prefix);
    if let Err(e) = kinesis.create_stream().stream_name(&stream).shard_count(shards).send().await {
        panic!("create kinesis stream {stream}: {}", DisplayErrorContext(e));
    }
    let described = kinesis.describe_stream_summary().stream_name(&stream).send().await;
    let status = match described {
        Ok(out) => out.stream_description_summary().map(|s| s.stream_status().clone()),
        Err(e) => panic!("describe kinesis stream {stream}: {}", DisplayErrorContext(e)),
    };
    assert_eq!(
        status,
        Some(StreamStatus::Active),
        "kinesis stream {stream} is not ACTIVE right after creation"
    );
    stream
}

/// Every record on the stream so far, `(partition key, data)`, shard by shard from
/// `TRIM_HORIZON` until a shard returns nothing more.
pub async fn kinesis_records(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    use aws_sdk_kinesis::error::DisplayErrorContext;
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = match kinesis.list_shards().stream_name(stream).send().await {
        Ok(out) => out.shards().iter().map(|s| s.shard_id().to_owned()).collect::<Vec<_>>(),
        Err(e) => panic!("list shards of {stream}: {}", DisplayErrorContext(e)),
    };
    let mut records = Vec::new();
    for shard in shards {
        let iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap_or_else(|e| panic!("shard iterator of {stream}/{shard}: {}", DisplayErrorContext(e)));
        let mut next = iterator.shard_iterator().map(str::to_owned);
        while let Some(it) = next {
            let out =
                kinesis.get_records().shard_iterator(it).limit(10_000).send().await.unwrap_or_else(|e| {
                    panic!("get records of {stream}/{shard}: {}", DisplayErrorContext(e))
                });
            if out.records().is_empty() {
                break;
            }
            records.extend(
                out.records().iter().map(|r| (r.partition_key().to_owned(), r.data().as_ref().to_vec())),
            );
            next = out.next_shard_iterator().map(str::to_owned);
        }
    }
    records
}
