//! `s3:<bucket>/<key>`: the count as a decimal object, incremented with compare-and-swap.
//!
//! Each attempt reads the object and its ETag, then writes `count + 1` with `If-Match: <etag>`
//! (or `If-None-Match: *` when the object does not exist yet). S3 refuses the write with
//! `412 Precondition Failed` (or `409 ConditionalRequestConflict`) when another writer got there
//! first; the attempt is then retried after a full-jitter exponential backoff, within a time
//! budget. No increment is ever lost; under heavy contention an increment can give up
//! ([`StoreError::Contended`], a 503), never double-count.
//!
//! **Timeouts.** Each call ends within the client's timeouts (`aws_setup::Timeouts`), and the
//! whole increment within the retry budget (8 s by default), calls included: a call still
//! waiting then is abandoned. Either way the increment fails as [`StoreError::TimedOut`] (a
//! 503 naming the time); a `PutObject` that timed out may still have been applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use crate::{BoxFuture, Call, Counter, Remote, StoreError};

const STORE: &str = "s3";

/// How long an increment may take, conflicts retried and calls included, before it gives up.
/// Below the Lambda's 10 s timeout (template.yaml) and API Gateway's 30 s.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(8);
/// Full jitter below 8 ms doubling to 1 s: writers that lost the same race spread out.
const BACKOFF: retry::Backoff = retry::Backoff::full(Duration::from_millis(8), Duration::from_secs(1));

pub struct S3Counter {
    client: Client,
    bucket: String,
    key: String,
    retry_budget: Duration,
    conflicts: AtomicU64,
}

impl S3Counter {
    /// Builds its client with [`aws_setup::s3_client`] (path-style addressing on emulators).
    pub fn new(config: &aws_config::SdkConfig, bucket: String, key: String) -> Self {
        S3Counter::from_client(aws_setup::s3_client(config), bucket, key)
    }

    pub fn from_client(client: Client, bucket: String, key: String) -> Self {
        S3Counter { client, bucket, key, retry_budget: DEFAULT_RETRY_BUDGET, conflicts: AtomicU64::new(0) }
    }

    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry_budget = budget;
        self
    }

    /// How many conditional writes S3 has refused so far (each one was retried).
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// The current count and the ETag to make the next write conditional on (`None`: absent).
    async fn read(&self, started: Instant) -> Result<(u64, Option<String>), StoreError> {
        let got = self.client.get_object().bucket(&self.bucket).key(&self.key).send().await;
        let out = match got {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) =>
            {
                return Ok((0, None));
            }
            Err(e) => return Err(failed("GetObject", started, e)),
        };
        let etag = out.e_tag().map(str::to_owned);
        let body = out.body.collect().await.map_err(|e| StoreError::unavailable(STORE, e))?.into_bytes();
        let text = std::str::from_utf8(&body).unwrap_or("").trim();
        let count = text.parse().map_err(|_| StoreError::Corrupt {
            store: STORE,
            detail: format!(
                "s3://{}/{} holds {} bytes that are not a count",
                self.bucket,
                self.key,
                body.len()
            ),
        })?;
        Ok((count, etag))
    }
}

/// A failed call of `operation`, in an increment begun at `started`: timed out or unavailable.
fn failed<E, R>(operation: &'static str, started: Instant, e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match aws_setup::timed_out(&e) {
        Some(text) => StoreError::timed_out(STORE, operation, started, text),
        None => StoreError::unavailable(STORE, DisplayErrorContext(e).to_string()),
    }
}

/// `call` unless `deadline` comes first: then the increment has used its budget.
async fn before<T>(
    deadline: tokio::time::Instant,
    operation: &'static str,
    started: Instant,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout_at(deadline, call).await.unwrap_or_else(|_| {
        let why = "the increment's retry budget ran out while the call was waiting";
        Err(StoreError::timed_out(STORE, operation, started, why))
    })
}

impl Counter for S3Counter {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            // Capped so that the sum cannot overflow, whatever budget a caller sets.
            let deadline =
                tokio::time::Instant::from_std(started) + self.retry_budget.min(Duration::from_secs(86_400));
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (count, etag) = before(deadline, "GetObject", started, self.read(started)).await?;
                let next = count + 1;
                let put = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type("text/plain")
                    .body(ByteStream::from(next.to_string().into_bytes()));
                let put = match etag {
                    Some(etag) => put.if_match(etag),
                    None => put.if_none_match("*"),
                };
                match before(deadline, "PutObject", started, async { Ok(put.send().await) }).await? {
                    Ok(_) => return Ok(next),
                    Err(e) if matches!(e.raw_response().map(|r| r.status().as_u16()), Some(409 | 412)) => {
                        self.conflicts.fetch_add(1, Ordering::Relaxed);
                        if started.elapsed() >= self.retry_budget {
                            return Err(StoreError::Contended { store: STORE, attempts: attempt });
                        }
                        tracing::debug!(attempt, "s3 conditional write lost a race; retrying");
                        tokio::time::sleep(BACKOFF.delay(attempt)).await;
                    }
                    Err(e) => return Err(failed("PutObject", started, e)),
                }
            }
        })
    }

    /// `HeadObject` of the key: opens the connection; a missing object is fine.
    fn warm(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let started = Instant::now();
            match self.client.head_object().bucket(&self.bucket).key(&self.key).send().await {
                Ok(_) => Ok(()),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
                Err(e) => Err(failed("HeadObject", started, e)),
            }
        })
    }

    /// `HeadObject` for the warm-up; an increment is a `GetObject` then a conditional
    /// `PutObject`, retried on conflict, so it names no one operation.
    fn remote(&self, call: Call) -> Option<Remote> {
        let operation = match call {
            Call::Increment => None,
            Call::Warm => Some("HeadObject"),
        };
        Some(Remote { service: "S3", operation })
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}
