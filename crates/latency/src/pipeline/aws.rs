//! The [`ResultsSource`] on AWS (and moto): `BatchGetItem` on the results and items tables, 100
//! keys a call, strongly consistent (a row written just before the read is seen), unprocessed
//! keys retried with backoff; the on-failure queue's depth from `GetQueueAttributes`, which reads
//! no message.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_sqs::types::QueueAttributeName;

use super::source::{QueueDepth, ResultsSource, Row};
use crate::error::Error;

/// DynamoDB's limit of keys per `BatchGetItem`.
const BATCH: usize = 100;
/// Rounds of unprocessed keys (DynamoDB throttling a batch) before the read fails.
const ROUNDS: u32 = 10;
const BACKOFF: retry::Backoff = retry::Backoff::full(Duration::from_millis(50), Duration::from_secs(2));

pub struct AwsSource {
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    results_table: String,
    items_table: String,
    failure_queue_url: Option<String>,
}

impl AwsSource {
    pub fn new(
        config: &aws_config::SdkConfig,
        results_table: String,
        items_table: String,
        failure_queue_url: Option<String>,
    ) -> AwsSource {
        AwsSource {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            results_table,
            items_table,
            failure_queue_url,
        }
    }

    /// The items of `ids` in `table` (only `projection` when given), 100 keys a call.
    async fn batch_get(
        &self,
        table: &str,
        ids: &[String],
        projection: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let mut found = Vec::new();
        for chunk in ids.chunks(BATCH) {
            let mut keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| HashMap::from([("id".to_owned(), AttributeValue::S(id.clone()))]))
                .collect();
            let mut round = 0;
            while !keys.is_empty() {
                if round > 0 {
                    if round >= ROUNDS {
                        return Err(Error::Aws(format!(
                            "BatchGetItem on {table}: {} keys still unprocessed after {ROUNDS} rounds (throttled)",
                            keys.len()
                        )));
                    }
                    tokio::time::sleep(BACKOFF.delay(round)).await;
                }
                round += 1;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .consistent_read(true)
                    .set_projection_expression(projection.map(str::to_owned))
                    .build()
                    .map_err(|e| Error::Aws(format!("BatchGetItem on {table}: {e}")))?;
                let out = self
                    .dynamodb
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(|e| Error::Aws(format!("BatchGetItem on {table}: {}", DisplayErrorContext(e))))?;
                if let Some(mut responses) = out.responses
                    && let Some(items) = responses.remove(table)
                {
                    found.extend(items);
                }
                if let Some(mut unprocessed) = out.unprocessed_keys
                    && let Some(rest) = unprocessed.remove(table)
                {
                    keys = rest.keys;
                }
            }
        }
        Ok(found)
    }
}

impl ResultsSource for AwsSource {
    async fn results(&self, ids: &[String]) -> Result<Vec<Row>, Error> {
        let items = self.batch_get(&self.results_table, ids, None).await?;
        Ok(items.iter().filter_map(row).collect())
    }

    async fn in_items(&self, ids: &[String]) -> Result<Vec<String>, Error> {
        let items = self.batch_get(&self.items_table, ids, Some("id")).await?;
        Ok(items.iter().filter_map(|item| string(item, "id")).collect())
    }

    async fn failure_queue(&self) -> Result<Option<QueueDepth>, Error> {
        let Some(url) = &self.failure_queue_url else {
            return Ok(None);
        };
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| {
                Error::Aws(format!("GetQueueAttributes on {url}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            })?;
        let count = |name: QueueAttributeName| -> u64 {
            out.attributes().and_then(|a| a.get(&name)).and_then(|n| n.parse().ok()).unwrap_or(0)
        };
        Ok(Some(QueueDepth {
            messages: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        }))
    }

    fn describe(&self) -> String {
        let mut text = format!("results table {}, items table {}", self.results_table, self.items_table);
        if let Some(url) = &self.failure_queue_url {
            text.push_str(&format!(", on-failure queue {url}"));
        }
        text
    }
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<f64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok()).filter(|n| n.is_finite())
}

/// A results-table item as a [`Row`]; `None` without an `id`.
fn row(item: &HashMap<String, AttributeValue>) -> Option<Row> {
    Some(Row {
        id: string(item, "id")?,
        client_ms: number(item, "client_ms"),
        upstream_ms: number(item, "upstream_ms"),
        kinesis_ms: number(item, "kinesis_ms"),
        midstream_ms: number(item, "midstream_ms"),
        stream_ms: number(item, "stream_ms"),
        downstream_ms: number(item, "downstream_ms"),
    })
}
