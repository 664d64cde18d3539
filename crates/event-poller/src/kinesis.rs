//! `event-poller kinesis`: a Kinesis data stream as a [`Source`], its records as Lambda's
//! Kinesis event carries them:
//!
//! ```json
//! {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "1", "sequenceNumber": "4959…",
//!              "data": "<base64>", "approximateArrivalTimestamp": 1765000000.123},
//!  "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": "shardId-000000000000:4959…",
//!  "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/…",
//!  "awsRegion": "eu-west-2", "eventSourceARN": "arn:aws:kinesis:eu-west-2:123456789012:stream/NAME"}
//! ```

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine;
use serde_json::json;

use crate::Error;
use crate::shards::{Page, Position, Record, Shard, Source};

/// The flags of `event-poller kinesis`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The stream to read.
    #[arg(long, env = "EVENT_POLLER_STREAM")]
    pub stream: String,
    #[command(flatten)]
    pub mapping: crate::shards::Settings,
}

/// One stream.
pub struct Kinesis {
    client: Client,
    stream: String,
    arn: String,
    /// The ARN and the creation time: a stream deleted and created again keeps its ARN.
    identity: String,
    region: String,
}

impl Kinesis {
    /// Looks the stream up (its ARN); errs when it does not exist.
    pub async fn open(config: &aws_config::SdkConfig, stream: &str) -> Result<Kinesis, Error> {
        let client = Client::new(config);
        let out = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| Error::aws("DescribeStreamSummary", e))?;
        let summary = out.stream_description_summary();
        let arn = summary.map(|s| s.stream_arn().to_owned()).unwrap_or_default();
        let created = summary.map_or(0.0, |s| s.stream_creation_timestamp().as_secs_f64());
        let identity = format!("{arn} created {created}");
        let region = config.region().map_or_else(|| "eu-west-2".into(), ToString::to_string);
        Ok(Kinesis { client, stream: stream.to_owned(), arn, identity, region })
    }

    fn record(&self, shard: &str, record: &aws_sdk_kinesis::types::Record) -> Record {
        let arrival_s = record
            .approximate_arrival_timestamp()
            .map_or_else(crate::on_failure::now_s, |t| (t.as_secs_f64() * 1000.0).round() / 1000.0);
        let sequence = record.sequence_number().to_owned();
        let json = json!({
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record.partition_key(),
                "sequenceNumber": sequence,
                "data": base64::engine::general_purpose::STANDARD.encode(record.data().as_ref()),
                "approximateArrivalTimestamp": arrival_s,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": format!("{shard}:{sequence}"),
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/event-poller",
            "awsRegion": self.region,
            "eventSourceARN": self.arn,
        });
        let key = record.partition_key().to_owned();
        Record { sequence, arrival_s, event_name: Some("aws:kinesis:record".into()), key, json }
    }
}

impl Source for Kinesis {
    const INFO_KEY: &'static str = "KinesisBatchInfo";
    const MAX_RECORDS: usize = 10_000;

    fn arn(&self) -> &str {
        &self.arn
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn shards(&self) -> Result<Vec<Shard>, Error> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            // With a token the stream is not named again.
            let call = match &next {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let out = call.send().await.map_err(|e| Error::aws("ListShards", e))?;
            shards.extend(out.shards().iter().map(|s| {
                Shard {
                    id: s.shard_id().to_owned(),
                    parents: s
                        .parent_shard_id()
                        .into_iter()
                        .chain(s.adjacent_parent_shard_id())
                        .map(str::to_owned)
                        .collect(),
                    closed: s.sequence_number_range().is_some_and(|r| r.ending_sequence_number().is_some()),
                }
            }));
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(shards),
            }
        }
    }

    async fn iterator(&self, shard: &str, from: &Position) -> Result<String, Error> {
        let call = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(shard);
        let call = match from {
            Position::TrimHorizon => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => call.shard_iterator_type(ShardIteratorType::Latest),
            Position::After(sequence) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let out = call.send().await.map_err(|e| Error::aws("GetShardIterator", e))?;
        out.shard_iterator().map(str::to_owned).ok_or_else(|| Error::Aws {
            call: "GetShardIterator",
            message: format!("no iterator for shard {shard}"),
        })
    }

    async fn records(&self, shard: &str, iterator: &str, limit: usize) -> Result<Page, Error> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| Error::aws("GetRecords", e))?;
        let records = out.records().iter().map(|r| self.record(shard, r)).collect();
        Ok(Page { records, next: out.next_shard_iterator().map(str::to_owned) })
    }
}
