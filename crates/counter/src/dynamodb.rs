//! `dynamodb:<table>`: one atomic `UpdateItem` per increment.
//!
//! Item layout as in the original: partition key `id` (number) = 0, attribute `hits`.
//! `ADD hits :one` with `ReturnValues=UPDATED_NEW` is a single atomic write: no read first, so
//! concurrent increments are never lost (the original read, added and wrote back, and lost some).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use crate::{BoxFuture, Counter, StoreError};

const STORE: &str = "dynamodb";
/// The partition key value of the one counter item.
pub const COUNTER_ID: &str = "0";

pub struct DynamoDbCounter {
    client: Client,
    table: String,
}

impl DynamoDbCounter {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> Self {
        DynamoDbCounter { client: Client::new(config), table }
    }

    pub fn from_client(client: Client, table: String) -> Self {
        DynamoDbCounter { client, table }
    }

    fn key(&self) -> AttributeValue {
        AttributeValue::N(COUNTER_ID.to_owned())
    }
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::unavailable(STORE, DisplayErrorContext(e).to_string())
}

impl Counter for DynamoDbCounter {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
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
                .map_err(unavailable)?;
            let hits = out.attributes().and_then(|a| a.get("hits"));
            match hits {
                Some(AttributeValue::N(n)) => n.parse().map_err(|_| StoreError::Corrupt {
                    store: STORE,
                    detail: format!("hits = {n:?} is not a whole number"),
                }),
                other => Err(StoreError::Corrupt {
                    store: STORE,
                    detail: format!("UpdateItem returned hits = {other:?}"),
                }),
            }
        })
    }

    /// A strongly-consistent-free `GetItem` of the counter's key: half a read unit, and it opens
    /// the TLS connection and resolves credentials before the first real request.
    fn warm(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("id", self.key())
                .projection_expression("id")
                .send()
                .await
                .map_err(unavailable)?;
            Ok(())
        })
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}
