//! `dynamodb:<table>`: one atomic `UpdateItem` per increment.
//!
//! Item layout as in the original: partition key `id` (number) = 0, attribute `hits`.
//! `ADD hits :one` with `ReturnValues=UPDATED_NEW` is a single atomic write: no read first, so
//! concurrent increments are never lost (the original read, added and wrote back, and lost some).
//!
//! **Several writer regions** (`dynamodb:<table>#<i>/<n>`, a global table). A global table
//! reconciles concurrent writes of one item in different regions by *last writer wins*: two
//! regions adding 1 to the same item within the replication delay both write `n + 1`, and one
//! increment is lost. So each region adds only to its own item (`id = i`) — an item written in
//! one region only is never in conflict — and the count is that item's new value plus the other
//! `n - 1` items as this region's replica has them (one `BatchGetItem`, eventually consistent:
//! half a read unit each). Nothing acknowledged is lost; a count may trail increments made in
//! other regions in the last second or so, and two calls (in one region or in two) can be handed
//! the same number: each reads the others at its own moment. If the
//! read of the others fails after the increment succeeded, the last sum seen is used (logged):
//! the increment is durable, and answering 503 would invite a retry that counts twice.
//!
//! **Timeouts.** Every call ends within the client's timeouts (`aws_setup::Timeouts`, from the
//! host); a call that gave up on one is [`StoreError::TimedOut`] (503 "dynamodb store timed out
//! after 6.0 s"). An `UpdateItem` that timed out may still have been applied: the count then
//! went up without an answer, as with any write whose answer is lost. A sharded increment's read
//! of the other items shares the `UpdateItem`'s operation timeout, so it ends within one too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};

use crate::{BoxFuture, Call, Counter, Remote, Shard, StoreError};

const STORE: &str = "dynamodb";
/// The partition key value of the one counter item.
pub const COUNTER_ID: &str = "0";

/// Rounds of `UnprocessedKeys` a read of the other shards retries before it gives up.
const READ_ROUNDS: usize = 3;

pub struct DynamoDbCounter {
    client: Client,
    table: String,
    shard: Shard,
    /// The sum of the other shards last read, for when a read fails (see the module docs).
    others_seen: AtomicU64,
    /// The client's operation timeout (`aws_setup::Timeouts`), which a sharded increment's
    /// `UpdateItem` and `BatchGetItem` share.
    operation_timeout: Option<Duration>,
}

impl DynamoDbCounter {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoDbCounter::from_client(Client::new(config), table)
    }

    pub fn from_client(client: Client, table: String) -> Self {
        let operation_timeout =
            client.config().timeout_config().and_then(aws_config::timeout::TimeoutConfig::operation_timeout);
        DynamoDbCounter {
            client,
            table,
            shard: Shard { index: 0, of: 1 },
            others_seen: AtomicU64::new(0),
            operation_timeout,
        }
    }

    /// This writer adds to item `shard.index`; the count is the sum of `shard.of` items.
    pub fn sharded(self, shard: Shard) -> Self {
        DynamoDbCounter { shard, ..self }
    }

    fn key(&self) -> AttributeValue {
        if self.shard.index == 0 {
            AttributeValue::N(COUNTER_ID.to_owned())
        } else {
            AttributeValue::N(self.shard.index.to_string())
        }
    }

    /// The sum of the other shards' items as this replica has them (a missing item is 0).
    async fn others(&self, started: Instant) -> Result<u64, StoreError> {
        let mut keys: Vec<HashMap<String, AttributeValue>> = (0..self.shard.of)
            .filter(|i| *i != self.shard.index)
            .map(|i| HashMap::from([("id".to_owned(), AttributeValue::N(i.to_string()))]))
            .collect();
        let mut sum = 0;
        for _ in 0..READ_ROUNDS {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .projection_expression("hits")
                .build()
                .map_err(unavailable)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| failed("BatchGetItem", started, e))?;
            for item in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                sum += hits_of(item.get("hits"))?;
            }
            match out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                Some(left) if !left.keys().is_empty() => keys = left.keys().to_vec(),
                _ => return Ok(sum),
            }
        }
        Err(StoreError::unavailable(STORE, "BatchGetItem left keys unprocessed (throttled)"))
    }
}

fn hits_of(value: Option<&AttributeValue>) -> Result<u64, StoreError> {
    match value {
        Some(AttributeValue::N(n)) => n.parse().map_err(|_| StoreError::Corrupt {
            store: STORE,
            detail: format!("hits = {n:?} is not a whole number"),
        }),
        None => Ok(0),
        other => Err(StoreError::Corrupt { store: STORE, detail: format!("hits = {other:?}") }),
    }
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::unavailable(STORE, DisplayErrorContext(e).to_string())
}

/// A failed call of `operation`, begun (with the store call it is part of) at `started`: timed
/// out or unavailable.
fn failed<E, R>(operation: &'static str, started: Instant, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match aws_setup::timed_out(&e) {
        Some(text) => StoreError::timed_out(STORE, operation, started, text),
        None => unavailable(e),
    }
}

impl Counter for DynamoDbCounter {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("id", self.key())
                .update_expression("ADD hits :one")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .map_err(|e| failed("UpdateItem", started, e))?;
            let own = match out.attributes().and_then(|a| a.get("hits")) {
                None => {
                    return Err(StoreError::Corrupt {
                        store: STORE,
                        detail: "UpdateItem returned no hits".into(),
                    });
                }
                hits => hits_of(hits)?,
            };
            if self.shard.of <= 1 {
                return Ok(own);
            }
            // The read shares the increment's one operation timeout, so that a sharded
            // increment ends within it too; a read cut short counts as a failed one.
            let read = match self.operation_timeout {
                Some(limit) => {
                    let left = limit.saturating_sub(started.elapsed());
                    tokio::time::timeout(left, self.others(started)).await.unwrap_or_else(|_| {
                        let e = "no time left in the operation timeout";
                        Err(StoreError::timed_out(STORE, "BatchGetItem", started, e))
                    })
                }
                None => self.others(started).await,
            };
            let others = match read {
                // Never below a sum this process has seen: an eventually consistent read may
                // come from a storage node a moment behind the last one.
                Ok(sum) => sum.max(self.others_seen.fetch_max(sum, Ordering::Relaxed)),
                Err(e) => {
                    let seen = self.others_seen.load(Ordering::Relaxed);
                    tracing::warn!(error = %e, others = seen, "reading the other shards failed; counted with the last sum seen");
                    seen
                }
            };
            Ok(own + others)
        })
    }

    /// A strongly-consistent-free `GetItem` of the counter's key: half a read unit, and it opens
    /// the TLS connection and resolves credentials before the first real request.
    fn warm(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            self.client
                .get_item()
                .table_name(&self.table)
                .key("id", self.key())
                .projection_expression("id")
                .send()
                .await
                .map_err(|e| failed("GetItem", started, e))?;
            Ok(())
        })
    }

    /// `UpdateItem` for an increment (a sharded count adds one `BatchGetItem` of the other
    /// items), `GetItem` for the warm-up.
    fn remote(&self, call: Call) -> Option<Remote> {
        let operation = match call {
            Call::Increment => "UpdateItem",
            Call::Warm => "GetItem",
        };
        Some(Remote { service: "DynamoDB", operation: Some(operation) })
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}
