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
                let out = self.dynamodb.batch_get_item().request_items(table, request).send().await.map_err(
                    |e| Error::Aws(format!("BatchGetItem on {table}: {}", DisplayErrorContext(e))),
                )?;
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
                Error::Aws(format!(
                    "GetQueueAttributes on {url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(e)
                ))
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

#[cfg(test)]
mod tests {
    //! Against moto: the tables and the queue created as the stack declares them, result rows
    //! written as the downstream function writes them.

    use std::future::pending;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::pipeline::source::QueueDepth;
    use crate::pipeline::wait::{Stuck, wait_for};

    struct Fixture {
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        source: AwsSource,
        results: String,
        items: String,
        queue: String,
    }

    async fn fixture() -> Option<Fixture> {
        let config = testkit::moto::config().await?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let (results, items) = testkit::moto::pipeline_tables(&dynamodb, "pipeline").await;
        let queue =
            match sqs.create_queue().queue_name(testkit::moto::unique("pipeline-failures")).send().await {
                Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
                Err(e) => panic!("create queue: {}", aws_sdk_sqs::error::DisplayErrorContext(e)),
            };
        let source = AwsSource::new(&config, results.clone(), items.clone(), Some(queue.clone()));
        Some(Fixture { dynamodb, sqs, source, results, items, queue })
    }

    /// The stamps of item `n`: sent at `base + n`, each hop a few ms later.
    fn stamps(n: u64) -> [(&'static str, f64); 6] {
        let sent = 1_765_000_000_000.0 + n as f64;
        [
            ("client_ms", sent),
            ("upstream_ms", sent + 2.0),
            ("kinesis_ms", sent + 5.0),
            ("midstream_ms", sent + 25.0),
            ("stream_ms", 1_765_000_001_000.0),
            ("downstream_ms", sent + 40.0 + (n % 10) as f64),
        ]
    }

    impl Fixture {
        async fn put(&self, table: &str, id: &str, attributes: &[(&str, f64)]) {
            let mut put =
                self.dynamodb.put_item().table_name(table).item("id", AttributeValue::S(id.to_owned()));
            for (name, value) in attributes {
                put = put.item(*name, AttributeValue::N(value.to_string()));
            }
            if let Err(e) = put.send().await {
                panic!("put {id} into {table}: {}", DisplayErrorContext(e));
            }
        }

        /// Item `id` as the downstream function leaves it: in the items table and the results table.
        async fn through(&self, id: &str, n: u64) {
            self.put(&self.items, id, &stamps(n)[..4]).await;
            self.put(&self.results, id, &stamps(n)).await;
        }
    }

    #[tokio::test]
    async fn the_waiter_finds_every_row_downstream_wrote_across_several_batches() {
        let Some(fx) = fixture().await else { return };
        // 250 ids: three BatchGetItem calls of at most 100 keys.
        let ids: Vec<String> = (0..250).map(|n| format!("run-{n}")).collect();
        for (n, id) in ids.iter().enumerate() {
            fx.through(id, n as u64).await;
        }
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(30);
        let waited =
            wait_for(&fx.source, &ids, until, Duration::from_millis(10), pending(), |found, total| {
                seen.push((found, total));
            })
            .await
            .expect("reads");
        assert!(waited.missing.is_empty(), "missing {:?}", waited.missing);
        assert_eq!((waited.rows.len(), waited.polls, seen), (250, 1, vec![(250, 250)]));
        let row = waited.rows.iter().find(|r| r.id == "run-7").expect("run-7");
        let expected = stamps(7);
        assert_eq!(
            [
                row.client_ms,
                row.upstream_ms,
                row.kinesis_ms,
                row.midstream_ms,
                row.stream_ms,
                row.downstream_ms
            ],
            expected.map(|(_, v)| Some(v))
        );
        // The nearest-rank figures of what was read: end to end is 40 + n % 10 ms, 25 of each.
        let e2e = crate::pipeline::stats::latencies(&waited.rows).into_iter().next().expect("end to end");
        assert_eq!(
            (e2e.name, e2e.count, e2e.p50, e2e.p90, e2e.p99, e2e.max),
            ("EndToEnd", 250, 44.0, 48.0, 49.0, 49.0)
        );
    }

    /// A source whose items come through after its first lookup: the downstream catching up.
    struct Late<'a> {
        fx: &'a Fixture,
        late: Vec<String>,
        lookups: std::sync::atomic::AtomicU32,
    }

    impl ResultsSource for Late<'_> {
        async fn results(&self, ids: &[String]) -> Result<Vec<Row>, Error> {
            let rows = self.fx.source.results(ids).await;
            if self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                for (n, id) in self.late.iter().enumerate() {
                    self.fx.through(id, n as u64).await;
                }
            }
            rows
        }
        async fn in_items(&self, ids: &[String]) -> Result<Vec<String>, Error> {
            self.fx.source.in_items(ids).await
        }
        async fn failure_queue(&self) -> Result<Option<QueueDepth>, Error> {
            self.fx.source.failure_queue().await
        }
        fn describe(&self) -> String {
            self.fx.source.describe()
        }
    }

    #[tokio::test]
    async fn items_that_come_through_later_are_found_by_a_later_lookup_of_only_the_missing() {
        let Some(fx) = fixture().await else { return };
        fx.through("early", 1).await;
        let late = Late { fx: &fx, late: vec!["late-1".into(), "late-2".into()], lookups: 0.into() };
        let ids = vec!["early".to_owned(), "late-1".to_owned(), "late-2".to_owned()];
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(30);
        let waited =
            wait_for(&late, &ids, until, Duration::from_millis(10), pending(), |found, _| seen.push(found))
                .await
                .expect("reads");
        assert!(waited.missing.is_empty());
        assert_eq!((waited.polls, seen), (2, vec![1, 3]));
        let mut got: Vec<&str> = waited.rows.iter().map(|r| r.id.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, ["early", "late-1", "late-2"], "each row once");
    }

    #[tokio::test]
    async fn a_missing_item_is_named_with_where_it_is_stuck_and_the_failure_queue_is_counted_unread() {
        let Some(fx) = fixture().await else { return };
        let before = fx.source.failure_queue().await.expect("depth");
        assert_eq!(before, Some(QueueDepth { messages: 0, in_flight: 0 }));
        fx.through("through", 1).await;
        fx.put(&fx.items, "midstream-only", &stamps(2)[..4]).await;
        for body in ["poison-1", "poison-2"] {
            fx.sqs.send_message().queue_url(&fx.queue).message_body(body).send().await.expect("send");
        }
        let ids = vec!["through".to_owned(), "midstream-only".to_owned(), "nowhere".to_owned()];
        // A deadline already passed: one lookup, then the missing ones are placed.
        let waited =
            wait_for(&fx.source, &ids, Instant::now(), Duration::from_millis(10), pending(), |_, _| {})
                .await
                .expect("reads");
        assert_eq!(
            (waited.polls, waited.missing.clone()),
            (1, vec!["midstream-only".to_owned(), "nowhere".to_owned()])
        );
        let stuck = Stuck::locate(&fx.source, &waited.missing, before).await.expect("locates");
        assert_eq!(stuck.between_midstream_and_downstream, ["midstream-only"]);
        assert_eq!(stuck.between_upstream_and_midstream, ["nowhere"]);
        assert_eq!(stuck.failure_queue_now, Some(QueueDepth { messages: 2, in_flight: 0 }));
        let text = stuck.describe();
        for expected in [
            "2 accepted items did not come through",
            "1 in the items table but not in the results table: stuck between midstream and downstream",
            ": midstream-only",
            "1 not in the items table: stuck between upstream and midstream",
            ": nowhere",
            "the on-failure queue holds 2 messages (0 in flight); 2 more than before the run",
        ] {
            assert!(text.contains(expected), "{expected:?} not in:\n{text}");
        }
        // Counting read no message: both are still there to be received.
        assert_eq!(
            fx.source.failure_queue().await.expect("depth"),
            Some(QueueDepth { messages: 2, in_flight: 0 })
        );
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_at_once_with_what_came_through() {
        let Some(fx) = fixture().await else { return };
        fx.through("through", 1).await;
        let ids = vec!["through".to_owned(), "never".to_owned()];
        let asked = std::time::Instant::now();
        let until = Instant::now() + Duration::from_secs(600);
        let waited =
            wait_for(&fx.source, &ids, until, Duration::from_secs(60), std::future::ready(()), |_, _| {})
                .await
                .expect("reads");
        assert!(asked.elapsed() < Duration::from_secs(5), "returned on the stop, not after a poll interval");
        assert_eq!((waited.polls, waited.rows.len(), waited.missing), (1, 1, vec!["never".to_owned()]));
    }

    #[tokio::test]
    async fn a_table_that_does_not_exist_is_an_error_naming_it() {
        let Some(fx) = fixture().await else { return };
        let config = testkit::moto::config().await.expect("moto");
        let wrong = AwsSource::new(&config, "no-such-table".into(), fx.items.clone(), None);
        let err = wrong.results(&["x".to_owned()]).await.expect_err("no table").to_string();
        assert!(err.contains("BatchGetItem on no-such-table"), "{err}");
        assert_eq!(wrong.failure_queue().await.expect("no queue given"), None);
    }
}
