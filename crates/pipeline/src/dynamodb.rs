//! The [`Table`] on a DynamoDB table keyed by `id` (S): one `PutItem` per row with the
//! condition `attribute_not_exists(id)`. A failed condition means the row is there already — a
//! redelivered record — and is [`Put::AlreadyThere`], not an error. Anything else that still
//! fails after the SDK's attempts is [`Error::Table`]: the record is reported and retried, which
//! the condition makes safe (a write whose answer was lost becomes `AlreadyThere`).
//!
//! IAM: `dynamodb:PutItem`, and `dynamodb:GetItem` for the warm-up (a key that is never there,
//! the cheap call hits makes at init).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws_error::describe;
use crate::stamps::Attr;
use crate::{BoxFuture, Error, Put, Row, Table};

pub struct DynamoDbTable {
    client: Client,
    table: String,
}

impl DynamoDbTable {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoDbTable {
        DynamoDbTable { client, table: table.into() }
    }

    fn failed<E, R>(&self, operation: &str, e: &SdkError<E, R>) -> Error
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (detail, timed_out) = describe(e);
        Error::Table { table: self.table.clone(), detail: format!("{operation}: {detail}"), timed_out }
    }
}

/// The row as DynamoDB attributes.
pub fn attributes(row: &Row) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::with_capacity(row.attributes.len() + 1);
    item.insert("id".to_owned(), AttributeValue::S(row.id.clone()));
    for (name, value) in &row.attributes {
        let value = match value {
            Attr::S(s) => AttributeValue::S(s.clone()),
            Attr::N(n) => AttributeValue::N(n.clone()),
        };
        item.insert((*name).to_owned(), value);
    }
    item
}

impl Table for DynamoDbTable {
    fn put_if_absent<'a>(&'a self, row: &'a Row) -> BoxFuture<'a, Result<Put, Error>> {
        let span = crate::call_span("DynamoDB", "PutItem");
        let call = async move {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(attributes(row)))
                .condition_expression("attribute_not_exists(id)")
                .send()
                .await;
            match put {
                Ok(_) => Ok(Put::Inserted),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
                {
                    Ok(Put::AlreadyThere)
                }
                Err(e) => Err(self.failed("PutItem", &e)),
            }
        };
        Box::pin(crate::traced(call, span))
    }

    fn warm(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("id", AttributeValue::S("warm-up".into()))
                .projection_expression("id")
                .send()
                .await
                .map_err(|e| self.failed("GetItem", &e))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("dynamodb:{}", self.table)
    }
}
