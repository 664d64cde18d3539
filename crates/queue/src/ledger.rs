//! The `done` counter as a port that counts each message **once**.
//!
//! SQS and RabbitMQ deliver at least once: a message can arrive twice (a visibility timeout that
//! ran out, a worker killed after counting but before its ack/delete). The ledger therefore
//! records the message id together with the increment, atomically; a second `record` of the same
//! id is [`Outcome::Duplicate`] and leaves `done` alone. The caller acks either way.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::{BoxFuture, Error};

/// What `record` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// First time this id was seen: `done` went up by one.
    Counted,
    /// Already counted (a redelivery): `done` unchanged.
    Duplicate,
}

/// Counts message ids once each.
pub trait Ledger: Send + Sync {
    /// Counts `message_id` unless it was counted before. Durable when it returns `Ok`.
    fn record<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Outcome, Error>>;
    /// The current `done`.
    fn done(&self) -> BoxFuture<'_, Result<u64, Error>>;
    /// Sets `done` to 0 (the driver does this before a run). Recorded ids stay recorded.
    fn reset(&self) -> BoxFuture<'_, Result<(), Error>>;
    /// What it is, for logs: `memory`, `dynamodb:<table>,<messages-table>`.
    fn describe(&self) -> String;
}

pub type SharedLedger = Arc<dyn Ledger>;

/// In memory, for tests and for a single process that needs no durability. Can be made
/// unavailable, to test what a worker does when the store is down.
#[derive(Default)]
pub struct MemoryLedger {
    state: Mutex<State>,
    down: AtomicBool,
}

#[derive(Default)]
struct State {
    seen: HashSet<String>,
    done: u64,
}

impl MemoryLedger {
    pub fn new() -> MemoryLedger {
        MemoryLedger::default()
    }

    /// While `true`, every call fails with [`Error::Ledger`].
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self) -> Result<MutexGuard<'_, State>, Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::ledger("memory", "down (fault injected)"));
        }
        // A panic elsewhere while holding the lock leaves consistent state: both fields are
        // updated together below.
        Ok(self.state.lock())
    }
}

impl Ledger for MemoryLedger {
    fn record<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Outcome, Error>> {
        Box::pin(async move {
            let mut state = self.check()?;
            if state.seen.insert(message_id.to_owned()) {
                state.done += 1;
                Ok(Outcome::Counted)
            } else {
                Ok(Outcome::Duplicate)
            }
        })
    }

    fn done(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move { Ok(self.check()?.done) })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.check()?.done = 0;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Which ledger counts `done`: the two DynamoDB tables (durable), or memory (one process, lost
/// on exit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerSpec {
    Memory,
    DynamoDb { done_table: String, messages_table: String },
}

/// Only one of the two tables was named: a ledger needs both, or neither (memory).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the done table and the messages table go together (both: DynamoDB; neither: memory)")]
pub struct HalfLedger;

impl LedgerSpec {
    /// Both tables → DynamoDB; neither → memory.
    pub fn from_tables(
        done_table: Option<String>,
        messages_table: Option<String>,
    ) -> Result<LedgerSpec, HalfLedger> {
        match (done_table, messages_table) {
            (Some(done_table), Some(messages_table)) => {
                Ok(LedgerSpec::DynamoDb { done_table, messages_table })
            }
            (None, None) => Ok(LedgerSpec::Memory),
            _ => Err(HalfLedger),
        }
    }

    /// Whether opening it loads the AWS configuration.
    pub fn is_aws(&self) -> bool {
        matches!(self, LedgerSpec::DynamoDb { .. })
    }
}

/// Opens the ledger a spec names; DynamoDB takes the SDK configuration from `aws` (loaded on
/// first use, once per process), and fails here when it has no region
/// ([`aws_setup::Error::NoRegion`]): such a ledger could never record anything.
#[cfg(feature = "dynamodb")]
pub async fn open(spec: &LedgerSpec, aws: &aws_setup::Aws) -> Result<SharedLedger, Error> {
    Ok(match spec {
        LedgerSpec::Memory => Arc::new(MemoryLedger::new()),
        LedgerSpec::DynamoDb { done_table, messages_table } => {
            let config = aws.config().await.map_err(|e| Error::ledger("dynamodb", e.to_string()))?;
            Arc::new(crate::dynamodb::DynamoDbLedger::new(config, done_table.clone(), messages_table.clone()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_id_is_counted_once() {
        let ledger = MemoryLedger::new();
        assert_eq!(ledger.record("a").await.unwrap(), Outcome::Counted);
        assert_eq!(ledger.record("b").await.unwrap(), Outcome::Counted);
        assert_eq!(ledger.record("a").await.unwrap(), Outcome::Duplicate);
        assert_eq!(ledger.done().await.unwrap(), 2);
        ledger.reset().await.unwrap();
        assert_eq!(ledger.done().await.unwrap(), 0);
        assert_eq!(ledger.record("a").await.unwrap(), Outcome::Duplicate, "reset keeps the ids");
    }

    #[tokio::test]
    async fn a_down_ledger_fails_every_call() {
        let ledger = MemoryLedger::new();
        ledger.set_down(true);
        assert!(matches!(ledger.record("a").await, Err(Error::Ledger { .. })));
        ledger.set_down(false);
        assert_eq!(ledger.record("a").await.unwrap(), Outcome::Counted);
    }
}
