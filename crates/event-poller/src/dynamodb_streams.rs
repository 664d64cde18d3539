//! `event-poller dynamodb-streams`: a DynamoDB table's stream as a [`Source`], its records as
//! Lambda's DynamoDB event carries them:
//!
//! ```json
//! {"eventID": "…", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
//!  "awsRegion": "eu-west-2",
//!  "dynamodb": {"ApproximateCreationDateTime": 1765000000, "Keys": {"id": {"S": "1"}},
//!               "NewImage": {"id": {"S": "1"}, …}, "SequenceNumber": "…", "SizeBytes": 26,
//!               "StreamViewType": "NEW_IMAGE"},
//!  "eventSourceARN": "arn:aws:dynamodb:…:table/NAME/stream/LABEL"}
//! ```
//!
//! Attribute values stay in DynamoDB's JSON (`{"S": …}`, `{"N": "…"}`, binary as base64).

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::shards::{Page, Position, Record, Shard, Source};

/// The flags of `event-poller dynamodb-streams`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("stream").required(true).args(["table", "stream_arn"])))]
pub struct Args {
    /// The table whose (latest) stream to read.
    #[arg(long, env = "EVENT_POLLER_TABLE")]
    pub table: Option<String>,
    /// The stream to read, by ARN.
    #[arg(long, env = "EVENT_POLLER_STREAM_ARN")]
    pub stream_arn: Option<String>,
    /// Send only records with this eventName (INSERT, MODIFY, REMOVE; repeatable): the
    /// FilterCriteria `{"eventName": [...]}`. The others are skipped and checkpointed past.
    #[arg(long = "filter-event-name", value_parser = ["INSERT", "MODIFY", "REMOVE"])]
    pub filter_event_names: Vec<String>,
    #[command(flatten)]
    pub mapping: crate::shards::Settings,
}

/// One table stream.
pub struct DynamoDbStreams {
    client: Client,
    arn: String,
    region: String,
}

impl DynamoDbStreams {
    /// The stream named by ARN, or the table's latest one; errs when the table has none.
    pub async fn open(config: &aws_config::SdkConfig, args: &Args) -> Result<DynamoDbStreams, Error> {
        let client = Client::new(config);
        let region = config.region().map_or_else(|| "eu-west-2".into(), ToString::to_string);
        let arn = match (&args.stream_arn, &args.table) {
            (Some(arn), _) => arn.clone(),
            (None, Some(table)) => {
                let out = client
                    .list_streams()
                    .table_name(table)
                    .send()
                    .await
                    .map_err(|e| Error::aws("ListStreams", e))?;
                out.streams()
                    .iter()
                    .filter_map(|s| s.stream_arn())
                    .max_by_key(|arn| arn.rsplit('/').next().unwrap_or_default().to_owned())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Error::Config(format!("table {table} has no stream (StreamSpecification)"))
                    })?
            }
            (None, None) => return Err(Error::Config("name a --table or a --stream-arn".into())),
        };
        Ok(DynamoDbStreams { client, arn, region })
    }

    fn record(&self, record: &aws_sdk_dynamodbstreams::types::Record) -> Option<Record> {
        let change = record.dynamodb()?;
        let sequence = change.sequence_number()?.to_owned();
        let arrival_s = change.approximate_creation_date_time().map_or_else(
            crate::on_failure::now_s,
            aws_sdk_dynamodbstreams::primitives::DateTime::as_secs_f64,
        );
        let event_name = record.event_name().map(|n| n.as_str().to_owned());
        let mut dynamodb = Map::new();
        dynamodb.insert("ApproximateCreationDateTime".into(), json!(arrival_s));
        if let Some(keys) = change.keys() {
            dynamodb.insert("Keys".into(), item(keys));
        }
        if let Some(image) = change.new_image() {
            dynamodb.insert("NewImage".into(), item(image));
        }
        if let Some(image) = change.old_image() {
            dynamodb.insert("OldImage".into(), item(image));
        }
        dynamodb.insert("SequenceNumber".into(), json!(sequence));
        dynamodb.insert("SizeBytes".into(), json!(change.size_bytes().unwrap_or_default()));
        if let Some(view) = change.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
        }
        let json = json!({
            "eventID": record.event_id(),
            "eventName": event_name,
            "eventVersion": record.event_version().unwrap_or("1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.arn,
        });
        // The item's key orders its changes: what ParallelizationFactor keeps together.
        let key = change.keys().map(|keys| {
            let mut keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={}", attribute(v))).collect();
            keys.sort_unstable();
            keys.join(",")
        });
        Some(Record { sequence, arrival_s, event_name, key: key.unwrap_or_default(), json })
    }
}

/// An item in DynamoDB's JSON.
fn item(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute(v))).collect())
}

/// One attribute value in DynamoDB's JSON (`{"S": "x"}`, binary as base64).
fn attribute(value: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        other => {
            tracing::warn!(?other, "an attribute type this poller does not know; sent as NULL");
            json!({ "NULL": true })
        }
    }
}

impl Source for DynamoDbStreams {
    const INFO_KEY: &'static str = "DDBStreamBatchInfo";
    const MAX_RECORDS: usize = 1000;

    fn arn(&self) -> &str {
        &self.arn
    }

    async fn shards(&self) -> Result<Vec<Shard>, Error> {
        let mut shards = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(after.clone())
                .send()
                .await
                .map_err(|e| Error::aws("DescribeStream", e))?;
            let Some(description) = out.stream_description() else { return Ok(shards) };
            shards.extend(description.shards().iter().filter_map(|s| {
                Some(Shard {
                    id: s.shard_id()?.to_owned(),
                    parents: s.parent_shard_id().into_iter().map(str::to_owned).collect(),
                    closed: s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_some()),
                })
            }));
            match description.last_evaluated_shard_id() {
                Some(last) if after.as_deref() != Some(last) => after = Some(last.to_owned()),
                _ => return Ok(shards),
            }
        }
    }

    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, Error> {
        let call = self.client.get_shard_iterator().stream_arn(&self.arn).shard_id(shard);
        let call = match from {
            Position::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
            Position::After(sequence) => {
                call.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
        };
        let out = call.send().await.map_err(|e| Error::aws("GetShardIterator", e))?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| Error::Aws {
            call: "GetShardIterator",
            message: format!("no iterator for shard {shard}"),
        })
    }

    async fn records(&self, _shard: &str, iterator: &str, limit: usize) -> Result<Page, Error> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| Error::aws("GetRecords", e))?;
        let records = out.records().iter().filter_map(|r| self.record(r)).collect();
        Ok(Page { records, next: out.next_shard_iterator().map(str::to_owned) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_stay_in_dynamodbs_json() {
        let nested = HashMap::from([("n".to_owned(), AttributeValue::N("1.5".into()))]);
        let values = [
            (AttributeValue::S("x".into()), json!({"S": "x"})),
            (
                AttributeValue::B(aws_sdk_dynamodbstreams::primitives::Blob::new(b"hi".to_vec())),
                json!({"B": "aGk="}),
            ),
            (AttributeValue::Bool(true), json!({"BOOL": true})),
            (AttributeValue::Null(true), json!({"NULL": true})),
            (AttributeValue::Ns(vec!["1".into(), "2".into()]), json!({"NS": ["1", "2"]})),
            (AttributeValue::L(vec![AttributeValue::S("a".into())]), json!({"L": [{"S": "a"}]})),
            (AttributeValue::M(nested), json!({"M": {"n": {"N": "1.5"}}})),
        ];
        for (value, expected) in values {
            assert_eq!(attribute(&value), expected);
        }
    }
}
