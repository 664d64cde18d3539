//! The hits counter: one small port ([`Counter`]) and its adapters.
//!
//! | store | module | guarantee |
//! |---|---|---|
//! | `memory` | [`memory`] | atomic, in-process, lost on restart |
//! | `file:<path>` | [`file`] | durable before acknowledged, atomic replace, locked across processes, group commit |
//! | `dynamodb:<table>` | [`dynamodb`] | one atomic `UpdateItem ADD` per increment |
//! | `dynamodb:<table>#<i>/<n>` | [`dynamodb`] | the same on item `i`; the count is the sum of `n` items (one writer region each) |
//! | `s3:<bucket>/<key>` | [`s3`] | compare-and-swap with conditional writes, jittered retry |
//!
//! Nothing here knows about Lambda or HTTP; the SDK is only touched inside the DynamoDB and S3
//! adapters, each behind its own cargo feature.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod file;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;
mod spec;

pub use spec::{ACCEPTED_FORMS, ConfigError, Shard, StoreSpec};

/// The boxed future of the ports' methods (stores are chosen at run time, behind `dyn`).
pub use futures_util::future::BoxFuture;

/// The port every host (Lambda, server) talks to.
pub trait Counter: Send + Sync + 'static {
    /// Adds one and returns the count after this call. `Ok` only once the increment is as
    /// durable as the store can make it: no acknowledged increment is ever lost.
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Opens the connection to the store with a cheap call, so that the first real request does
    /// not pay for DNS, TLS and signing (on Lambda: at init, on the unthrottled CPU).
    fn warm(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Flushes whatever is pending and stops; called once on graceful shutdown.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// The store's kind, for logs and error messages (`memory`, `file`, `dynamodb`, `s3`).
    fn kind(&self) -> &'static str;

    /// Where `call` goes when it leaves the process, as a trace names it (an X-Ray subsegment):
    /// the AWS service and, when one API operation is the whole call, that operation. `None` for
    /// a store inside the process or on its disk.
    fn remote(&self, call: Call) -> Option<Remote> {
        let _ = call;
        None
    }
}

/// A call of the [`Counter`] port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Increment,
    Warm,
}

impl Call {
    /// `increment`, `warm`: the name logs and spans use.
    pub fn name(self) -> &'static str {
        match self {
            Call::Increment => "increment",
            Call::Warm => "warm",
        }
    }
}

/// A store call to an AWS service, as a trace names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// The service: `DynamoDB`, `S3`.
    pub service: &'static str,
    /// The API operation when one is the whole call (`UpdateItem`); `None` when the call is
    /// several (an S3 increment: `GetObject`, then a conditional `PutObject`, retried).
    pub operation: Option<&'static str>,
}

/// The counter as the hosts hold it.
pub type SharedCounter = Arc<dyn Counter>;

/// Why an increment failed. Every variant maps to `503 Service Unavailable` at the edge:
/// none of them is the client's fault. [`StoreError::reason`] is what the client is told.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused the call.
    #[error("{store} unavailable: {source}")]
    Unavailable {
        store: &'static str,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The store did not answer within the SDK's timeouts (`aws_setup::Timeouts`: connect,
    /// attempt, operation) — stalled, or unreachable without a refusal. `operation` is the call
    /// that was waiting. A write that timed out may still have been applied.
    #[error("{store} timed out after {:.1} s ({operation}): {source}", after.as_secs_f64())]
    TimedOut {
        store: &'static str,
        operation: &'static str,
        after: Duration,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Optimistic concurrency gave up: too many writers raced for the same object.
    #[error("{store} contended: gave up after {attempts} attempts")]
    Contended { store: &'static str, attempts: u32 },
    /// The store holds something that is not a count; it is left untouched.
    #[error("{store} holds an unreadable count: {detail}")]
    Corrupt { store: &'static str, detail: String },
    /// The store was closed (the host is shutting down).
    #[error("{store} is closed")]
    Closed { store: &'static str },
}

impl StoreError {
    pub(crate) fn unavailable(
        store: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Unavailable { store, source: Arc::from(source.into()) }
    }

    /// The call of `operation`, begun at `started`, got no answer in time.
    pub(crate) fn timed_out(
        store: &'static str,
        operation: &'static str,
        started: Instant,
        why: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::TimedOut { store, operation, after: started.elapsed(), source: Arc::from(why.into()) }
    }

    /// Whether the store failed to answer in time ([`StoreError::TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::TimedOut { .. })
    }

    /// A short reason that is safe to show to a client (no internal detail).
    pub fn reason(&self) -> String {
        match self {
            StoreError::Unavailable { store, .. } => format!("{store} store unavailable"),
            StoreError::TimedOut { store, after, .. } => {
                format!("{store} store timed out after {:.1} s", after.as_secs_f64())
            }
            StoreError::Contended { store, .. } => format!("{store} store too contended, retry"),
            StoreError::Corrupt { store, .. } => format!("{store} store holds an unreadable count"),
            StoreError::Closed { .. } => "shutting down".to_owned(),
        }
    }
}

/// Why a store could not be opened at startup.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open {store} store: {source}")]
    Store {
        store: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("this build has no {0} support (enable the `{0}` feature of the counter crate)")]
    NotBuilt(&'static str),
    /// The AWS configuration is unusable (no region): the store could never answer.
    #[error("cannot open {store} store: {source}")]
    Aws {
        store: &'static str,
        #[source]
        source: aws_setup::Error,
    },
}

/// Opens the store a spec names. AWS stores take the SDK configuration from `aws` (loaded on
/// first use, once per process: region, credentials, `AWS_ENDPOINT_URL` for emulators), so
/// clients are built once; memory and file stores load nothing.
pub async fn open(spec: &StoreSpec, aws: &aws_setup::Aws) -> Result<SharedCounter, OpenError> {
    Ok(match spec {
        StoreSpec::Memory => Arc::new(memory::MemoryCounter::default()),
        StoreSpec::File(path) => Arc::new(
            file::FileCounter::open(path).map_err(|source| OpenError::Store { store: "file", source })?,
        ),
        #[cfg(feature = "dynamodb")]
        StoreSpec::DynamoDb { table, shard } => {
            let config = aws.config().await.map_err(|source| OpenError::Aws { store: "dynamodb", source })?;
            let counter = dynamodb::DynamoDbCounter::new(config, table.clone());
            Arc::new(match shard {
                Some(shard) => counter.sharded(*shard),
                None => counter,
            })
        }
        #[cfg(not(feature = "dynamodb"))]
        StoreSpec::DynamoDb { .. } => return Err(OpenError::NotBuilt("dynamodb")),
        #[cfg(feature = "s3")]
        StoreSpec::S3 { bucket, key } => {
            let config = aws.config().await.map_err(|source| OpenError::Aws { store: "s3", source })?;
            Arc::new(s3::S3Counter::new(config, bucket.clone(), key.clone()))
        }
        #[cfg(not(feature = "s3"))]
        StoreSpec::S3 { .. } => return Err(OpenError::NotBuilt("s3")),
    })
}

/// Unit-test support shared by the stores' tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::Counter;

    /// `n` increments at once, spread over `counters`; the counts they got, sorted.
    pub async fn hammer<C: Counter>(counters: &[Arc<C>], n: usize) -> Vec<u64> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let c = counters[i % counters.len()].clone();
                tokio::spawn(async move { c.increment().await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort_unstable();
        seen
    }
}

#[cfg(all(test, feature = "dynamodb", feature = "s3"))]
mod remote_tests {
    use super::*;

    #[test]
    fn each_adapter_names_its_own_remote_calls() {
        let config =
            aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let dynamodb = dynamodb::DynamoDbCounter::new(&config, "t".into());
        let s3 = s3::S3Counter::new(&config, "b".into(), "k".into());
        let named = |c: &dyn Counter, call| c.remote(call).map(|r| (r.service, r.operation));
        assert_eq!(named(&dynamodb, Call::Increment), Some(("DynamoDB", Some("UpdateItem"))));
        assert_eq!(named(&dynamodb, Call::Warm), Some(("DynamoDB", Some("GetItem"))));
        assert_eq!(named(&s3, Call::Increment), Some(("S3", None)));
        assert_eq!(named(&s3, Call::Warm), Some(("S3", Some("HeadObject"))));
        assert_eq!(named(&memory::MemoryCounter::default(), Call::Increment), None);
    }
}
