//! `dynamodb:<done-table>,<messages-table>`: exactly-once `done` in DynamoDB, with group commit.
//!
//! # Tables
//!
//! As template.yaml declares them:
//! - the **done table**, partition key `id` (N): the item `id = 0` holds the number `done`;
//! - the **messages table**, partition key `message_id` (S), TTL attribute `expires_at` (epoch
//!   seconds): one item per counted message.
//!
//! # One transaction counts a message
//!
//! Counting message `m` is one `TransactWriteItems` of two actions, which both happen or neither:
//! a `Put` of `{message_id: m, expires_at: now + record_ttl}` into the messages table with the
//! condition `attribute_not_exists(message_id)`, and an `Update` of the done item,
//! `ADD done :n`. A redelivered message fails the condition, so the transaction is cancelled with
//! reason `ConditionalCheckFailed` and `done` does not move: [`Outcome::Duplicate`].
//!
//! # Group commit
//!
//! Many messages finish at once in one process (a Lambda batch, the worker's in-flight
//! messages). One transaction each would cost a round trip each, and concurrent transactions on
//! the one done item conflict in DynamoDB (`TransactionConflict`). So a ledger has **at most one
//! transaction in flight**; ids recorded meanwhile queue up, and the next transaction takes all
//! of them: up to [`MAX_GROUP`] conditional `Put`s plus one `ADD done :n` with `n` the number of
//! `Put`s (DynamoDB allows 100 actions per transaction). Nothing waits on a timer: a lone message
//! is written at once, and the busier the process, the larger the groups.
//!
//! This is the *combining* pattern: [`Ledger::record`] queues `(id, reply)` under a mutex; the
//! caller that finds no commit in flight sets the in-flight flag and becomes the committer, which
//! takes groups off the queue until it is empty, answering each id's callers. The emptiness check
//! and clearing the flag happen under the same lock as the queueing, so an id is never left
//! queued with no committer. The commit loop runs in a task the committer **spawns** on its own
//! runtime (no background task outlives the work, none is needed at construction): a caller
//! whose future is dropped (a timeout, a cancelled batch) therefore never strands the others
//! queued behind it, and its own id is still committed or failed as usual. Should the task itself
//! die (a panic, its runtime shutting down), a guard clears the flag and drops every queued
//! reply, so those callers get an error and the next `record` starts a new committer.
//!
//! The same id twice in one group (two deliveries processed concurrently) is put **once**:
//! DynamoDB rejects a transaction that touches an item twice. Its first caller gets the id's
//! outcome; the others get `Duplicate` (or the same error).
//!
//! # Failures
//!
//! A cancelled transaction (`TransactionCanceledException`) says why per action, in request
//! order (`None` for actions that were fine):
//! - `ConditionalCheckFailed` on a `Put`: that id was counted before. Its callers get
//!   `Duplicate`, it leaves the group, and the rest is written again at once;
//! - `TransactionConflict` (another process wrote the done item at the same moment),
//!   `ThrottlingError`, `ProvisionedThroughputExceeded`: the whole group is written again after a
//!   jittered exponential backoff (20 ms doubling to 1 s), up to [`MAX_ATTEMPTS`] attempts within
//!   [`RETRY_BUDGET`] (10 s, plus the call under way); so
//!   are requests throttled as a whole, once the SDK's own retries are spent. Writing the ledger
//!   again is far cheaper than giving up, which sends the messages back to run again;
//! - anything else (a missing table, access denied, the network): every caller in the group gets
//!   [`Error::Ledger`]. The messages go back to the queue; the condition makes that safe: a write
//!   that did commit although its answer was lost makes the redelivery a `Duplicate`;
//! - no answer within the SDK's timeouts (`aws_setup::Timeouts`, a stalled table): every caller
//!   in the group gets [`Error::LedgerTimedOut`] at once, not retried here (the SDK has retried
//!   within its operation timeout), so a stalled table holds a `record` for at most that long
//!   (twice, for a caller queued behind a group already waiting).
//!
//! The SDK fills in the transaction's `ClientRequestToken` once per call, so its own retries of
//! a request whose answer was lost are idempotent too.
//!
//! # Why the TTL is safe
//!
//! A record only has to outlive every redelivery of its message. SQS keeps a message at most
//! 14 days (`MessageRetentionPeriod`), so nothing can be redelivered after that; the default
//! [`DEFAULT_RECORD_TTL`] of 15 days is longer, and DynamoDB deletes expired items lazily (within
//! days), never early. Expiry keeps the messages table the size of two weeks of traffic rather
//! than growing forever. Shorten it with [`DynamoDbLedger::with_record_ttl`] only for a queue
//! whose retention is shorter.
//!
//! # IAM
//!
//! `TransactWriteItems` is authorised per action: `dynamodb:PutItem` on the messages table and
//! `dynamodb:UpdateItem` on the done table. [`Ledger::done`] needs `dynamodb:GetItem` and
//! [`Ledger::reset`] `dynamodb:PutItem` on the done table.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use tokio::sync::oneshot;

use parking_lot::Mutex;

use crate::{BoxFuture, Error, Ledger, Outcome};

const LEDGER: &str = "dynamodb";
/// The partition key value of the item that holds `done`.
pub const DONE_ID: &str = "0";
/// The most message ids one transaction puts: DynamoDB's 100 actions, less the `ADD done`.
pub const MAX_GROUP: usize = 99;
/// How long a message id stays recorded: longer than SQS's longest retention (14 days).
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(15 * 86_400);
/// Attempts at one group that conflict or are throttled before its callers get an error.
pub const MAX_ATTEMPTS: u32 = 10;
/// How long a group may spend on those attempts: no pause starts that would end past it, so a
/// group gives up within this plus one call (at most the SDK's operation timeout), however slow
/// the throttled calls are.
pub const RETRY_BUDGET: Duration = Duration::from_secs(10);
/// The longest string DynamoDB takes as a partition key value, in bytes.
const MAX_KEY_BYTES: usize = 2048;
/// 20 ms doubling up to 1 s, of which a random part from half to all, so that processes that
/// conflicted do not retry in step.
const BACKOFF: retry::Backoff = retry::Backoff::equal(Duration::from_millis(20), Duration::from_secs(1));

/// Counts message ids once each in DynamoDB (see the module docs for the scheme).
pub struct DynamoDbLedger {
    tables: Arc<Tables>,
    commits: GroupCommit,
}

/// What a ledger has done so far: how well group commit groups, and how often DynamoDB pushed
/// back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// `TransactWriteItems` calls made, retries included.
    pub transactions: u64,
    /// Calls repeated after a conflict or throttling, each after a backoff.
    pub retries: u64,
}

impl DynamoDbLedger {
    pub fn new(config: &aws_config::SdkConfig, done_table: String, messages_table: String) -> DynamoDbLedger {
        DynamoDbLedger::from_client(Client::new(config), done_table, messages_table)
    }

    pub fn from_client(client: Client, done_table: String, messages_table: String) -> DynamoDbLedger {
        let tables = Arc::new(Tables { client, done_table, messages_table });
        DynamoDbLedger { commits: GroupCommit::new(tables.clone()), tables }
    }

    /// How long a recorded id is kept (the messages table's TTL; default
    /// [`DEFAULT_RECORD_TTL`]). It must outlive every redelivery of the message: keep it longer
    /// than the queue's retention period.
    pub fn with_record_ttl(mut self, ttl: Duration) -> DynamoDbLedger {
        self.commits.record_ttl = ttl;
        self
    }

    pub fn record_ttl(&self) -> Duration {
        self.commits.record_ttl
    }

    pub fn stats(&self) -> LedgerStats {
        self.commits.shared.stats()
    }

    fn done_key(&self) -> AttributeValue {
        AttributeValue::N(DONE_ID.to_owned())
    }
}

/// A failed call of `operation`, begun at `started`: [`Error::LedgerTimedOut`] when it gave up
/// on a timeout, [`Error::Ledger`] otherwise.
fn failed<E, R>(operation: &'static str, started: Instant, e: SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match aws_setup::timed_out(&e) {
        Some(detail) => Error::LedgerTimedOut { ledger: LEDGER, operation, after: started.elapsed(), detail },
        None => Error::ledger(LEDGER, DisplayErrorContext(e).to_string()),
    }
}

impl Ledger for DynamoDbLedger {
    fn record<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Outcome, Error>> {
        Box::pin(self.commits.record(message_id))
    }

    /// A strongly consistent read: it sees every transaction that has returned.
    fn done(&self) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = self
                .tables
                .client
                .get_item()
                .table_name(&self.tables.done_table)
                .key("id", self.done_key())
                .consistent_read(true)
                .projection_expression("done")
                .send()
                .await
                .map_err(|e| failed("GetItem", started, e))?;
            match out.item().and_then(|item| item.get("done")) {
                None => Ok(0),
                Some(AttributeValue::N(n)) => n
                    .parse()
                    .map_err(|_| Error::ledger(LEDGER, format!("done = {n:?} is not a whole number"))),
                Some(other) => Err(Error::ledger(LEDGER, format!("done = {other:?} is not a number"))),
            }
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let started = Instant::now();
            self.tables
                .client
                .put_item()
                .table_name(&self.tables.done_table)
                .item("id", self.done_key())
                .item("done", AttributeValue::N("0".into()))
                .send()
                .await
                .map_err(|e| failed("PutItem", started, e))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("dynamodb:{},{}", self.tables.done_table, self.tables.messages_table)
    }
}

/// Writes one group: the port between group commit and DynamoDB, so that the commit loop can be
/// tested against a double.
trait WriteGroup: Send + Sync + 'static {
    /// Puts each of `ids` (distinct) with `expires_at`, if absent, and adds `ids.len()` to
    /// `done`; all or nothing.
    fn write<'a>(&'a self, ids: &'a [&'a str], expires_at: u64) -> BoxFuture<'a, Result<(), Rejection>>;
}

struct Tables {
    client: Client,
    done_table: String,
    messages_table: String,
}

impl Tables {
    fn transact_items(&self, ids: &[&str], expires_at: u64) -> Result<Vec<TransactWriteItem>, Rejection> {
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| Rejection::Failed(e.to_string());
        let expires_at = AttributeValue::N(expires_at.to_string());
        let mut items = Vec::with_capacity(ids.len() + 1);
        for id in ids {
            let put = Put::builder()
                .table_name(&self.messages_table)
                .item("message_id", AttributeValue::S((*id).to_owned()))
                .item("expires_at", expires_at.clone())
                .condition_expression("attribute_not_exists(message_id)")
                .build()
                .map_err(invalid)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let add = Update::builder()
            .table_name(&self.done_table)
            .key("id", AttributeValue::N(DONE_ID.to_owned()))
            .update_expression("ADD done :n")
            .expression_attribute_values(":n", AttributeValue::N(ids.len().to_string()))
            .build()
            .map_err(invalid)?;
        items.push(TransactWriteItem::builder().update(add).build());
        Ok(items)
    }
}

impl WriteGroup for Tables {
    fn write<'a>(&'a self, ids: &'a [&'a str], expires_at: u64) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(async move {
            let items = self.transact_items(ids, expires_at)?;
            let started = Instant::now();
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(rejection(started, e)),
            }
        })
    }
}

/// Why a group's transaction did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    /// `TransactionCanceledException`: a code per action in request order (`None` where that
    /// action was fine), and the error's text.
    Cancelled { codes: Vec<Option<String>>, detail: String },
    /// Throttled as a whole, after the SDK's own retries: worth trying again later.
    Busy(String),
    /// No answer within the SDK's timeouts, after `after`.
    TimedOut { after: Duration, detail: String },
    /// Anything else.
    Failed(String),
}

fn rejection<R: std::fmt::Debug>(started: Instant, e: SdkError<TransactWriteItemsError, R>) -> Rejection {
    use TransactWriteItemsError as E;
    if let Some(detail) = aws_setup::timed_out(&e) {
        return Rejection::TimedOut { after: started.elapsed(), detail };
    }
    let detail = DisplayErrorContext(&e).to_string();
    match e.as_service_error() {
        Some(E::TransactionCanceledException(cancelled)) => Rejection::Cancelled {
            codes: cancelled.cancellation_reasons().iter().map(|r| r.code().map(str::to_owned)).collect(),
            detail,
        },
        Some(
            E::ThrottlingException(_)
            | E::ProvisionedThroughputExceededException(_)
            | E::RequestLimitExceeded(_)
            | E::TransactionInProgressException(_),
        ) => Rejection::Busy(detail),
        _ => Rejection::Failed(detail),
    }
}

/// What to do about a rejected group.
#[derive(Debug, PartialEq, Eq)]
struct Judgement {
    /// Indices (ascending) of ids that were counted before: answer `Duplicate`, drop them.
    duplicates: Vec<usize>,
    next: Next,
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Write the rest again now (only duplicates were in the way).
    RetryNow,
    /// Write the rest again after a backoff, for this reason.
    Backoff(String),
    /// Fail the rest with this detail.
    Fail(String),
    /// Fail the rest: the transaction got no answer in time.
    TimedOut { after: Duration, detail: String },
}

/// Reads a rejection of a group of `puts` ids (actions `0..puts` are the puts, then the update).
fn judge(rejection: Rejection, puts: usize) -> Judgement {
    let (codes, detail) = match rejection {
        Rejection::Busy(reason) => return Judgement { duplicates: Vec::new(), next: Next::Backoff(reason) },
        Rejection::Failed(detail) => return Judgement { duplicates: Vec::new(), next: Next::Fail(detail) },
        Rejection::TimedOut { after, detail } => {
            return Judgement { duplicates: Vec::new(), next: Next::TimedOut { after, detail } };
        }
        Rejection::Cancelled { codes, detail } => (codes, detail),
    };
    let mut duplicates = Vec::new();
    let (mut busy, mut other) = (None, None);
    for (i, code) in codes.iter().enumerate() {
        match code.as_deref() {
            // AWS sends `None` as a string for actions that were fine, and so does moto.
            None | Some("None" | "") => {}
            Some("ConditionalCheckFailed") if i < puts => duplicates.push(i),
            Some(code @ ("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")) => {
                busy.get_or_insert_with(|| code.to_owned());
            }
            Some(code) => {
                other.get_or_insert_with(|| format!("action {i}: {code}"));
            }
        }
    }
    let next = match (other, busy) {
        (Some(other), _) => Next::Fail(format!("{other}; {detail}")),
        (None, Some(busy)) => Next::Backoff(busy),
        (None, None) if !duplicates.is_empty() => Next::RetryNow,
        (None, None) => Next::Fail(format!("cancelled without a reason: {detail}")),
    };
    Judgement { duplicates, next }
}

/// Epoch seconds `ttl` from now, for the messages table's TTL attribute.
fn expires_at(ttl: Duration) -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().saturating_add(ttl).as_secs()
}

/// A message id DynamoDB cannot key an item on (empty, or longer than 2048 bytes) would fail
/// every group it joined, and can never be counted: poison.
fn check_key(message_id: &str) -> Result<(), Error> {
    if message_id.is_empty() || message_id.len() > MAX_KEY_BYTES {
        return Err(Error::Poison(format!(
            "message id of {} bytes: DynamoDB keys take 1 to {MAX_KEY_BYTES}",
            message_id.len()
        )));
    }
    Ok(())
}

type Reply = oneshot::Sender<Result<Outcome, Error>>;

/// The combining queue and its commit loop.
struct GroupCommit {
    writer: Arc<dyn WriteGroup>,
    shared: Arc<Shared>,
    record_ttl: Duration,
}

/// What the callers of `record` and the committer share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    transactions: AtomicU64,
    retries: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Ids waiting for a transaction, oldest first, each with its caller's reply.
    pending: VecDeque<(String, Reply)>,
    /// A committer is running: it will take whatever is queued.
    committing: bool,
}

impl Shared {
    fn stats(&self) -> LedgerStats {
        LedgerStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

impl GroupCommit {
    fn new(writer: Arc<dyn WriteGroup>) -> GroupCommit {
        GroupCommit { writer, shared: Arc::default(), record_ttl: DEFAULT_RECORD_TTL }
    }

    async fn record(&self, message_id: &str) -> Result<Outcome, Error> {
        check_key(message_id)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::ledger(LEDGER, "record must be called on a tokio runtime"))?;
        let (reply, answer) = oneshot::channel();
        let become_committer = {
            let mut queue = self.shared.queue.lock();
            queue.pending.push_back((message_id.to_owned(), reply));
            !std::mem::replace(&mut queue.committing, true)
        };
        if become_committer {
            runtime.spawn(commit_loop(self.writer.clone(), self.shared.clone(), self.record_ttl));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Error::ledger(LEDGER, "the commit task stopped before answering (its runtime shut down?)"))
        })
    }
}

/// Commits groups until the queue is empty, then clears the in-flight flag under the same lock.
async fn commit_loop(writer: Arc<dyn WriteGroup>, shared: Arc<Shared>, record_ttl: Duration) {
    let mut guard = CommitterGuard { shared: &shared, finished: false };
    loop {
        let group = {
            let mut queue = shared.queue.lock();
            if queue.pending.is_empty() {
                queue.committing = false;
                guard.finished = true;
                return;
            }
            take_group(&mut queue.pending, MAX_GROUP)
        };
        commit_group(writer.as_ref(), &shared, group, record_ttl).await;
    }
}

/// Unless the loop finished, the committer died (panicked, or its runtime dropped the task):
/// clear the flag so that the next `record` starts a new committer, and drop the queued replies
/// so that their callers get an error now rather than wait for one.
struct CommitterGuard<'a> {
    shared: &'a Shared,
    finished: bool,
}

impl Drop for CommitterGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.shared.queue.lock();
            queue.committing = false;
            queue.pending.clear();
        }
    }
}

/// One id of a group, with every caller waiting for it.
#[derive(Debug)]
struct Entry<R> {
    id: String,
    replies: Vec<R>,
}

/// Takes ids off the front of `pending`, oldest first, until `max` distinct ids are taken or the
/// next id would be one too many; repeats of an id join its entry.
fn take_group<R>(pending: &mut VecDeque<(String, R)>, max: usize) -> Vec<Entry<R>> {
    let mut group: Vec<Entry<R>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    while let Some((id, _)) = pending.front() {
        if group.len() == max && !index.contains_key(id) {
            break;
        }
        let Some((id, reply)) = pending.pop_front() else { break };
        match index.get(&id) {
            Some(&i) => group[i].replies.push(reply),
            None => {
                index.insert(id.clone(), group.len());
                group.push(Entry { id, replies: vec![reply] });
            }
        }
    }
    group
}

/// How an id's group ended for it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    Counted,
    Duplicate,
    Failed(String),
    TimedOut { after: Duration, detail: String },
}

/// What the `nth` caller waiting for one id gets: only the first can have counted it.
fn outcome(settled: &Settled, nth: usize) -> Result<Outcome, Error> {
    match settled {
        Settled::Counted if nth == 0 => Ok(Outcome::Counted),
        Settled::Counted | Settled::Duplicate => Ok(Outcome::Duplicate),
        Settled::Failed(detail) => Err(Error::ledger(LEDGER, detail.clone())),
        Settled::TimedOut { after, detail } => Err(Error::LedgerTimedOut {
            ledger: LEDGER,
            operation: "TransactWriteItems",
            after: *after,
            detail: detail.clone(),
        }),
    }
}

impl Entry<Reply> {
    fn settle(self, settled: &Settled) {
        for (nth, reply) in self.replies.into_iter().enumerate() {
            // An error means that caller stopped waiting (its future was dropped): no one to tell.
            let _ = reply.send(outcome(settled, nth));
        }
    }
}

/// Writes one group until every id in it is settled: counted, a duplicate, or failed.
async fn commit_group(writer: &dyn WriteGroup, shared: &Shared, mut group: Vec<Entry<Reply>>, ttl: Duration) {
    let size = group.len();
    let (mut attempts, mut busy) = (0u32, 0u32);
    let started = tokio::time::Instant::now();
    while !group.is_empty() {
        attempts += 1;
        shared.transactions.fetch_add(1, Ordering::Relaxed);
        let written = {
            let ids: Vec<&str> = group.iter().map(|entry| entry.id.as_str()).collect();
            writer.write(&ids, expires_at(ttl)).await
        };
        let rejection = match written {
            Ok(()) => {
                tracing::debug!(group = size, counted = group.len(), attempts, "ledger group committed");
                group.into_iter().for_each(|entry| entry.settle(&Settled::Counted));
                return;
            }
            Err(rejection) => rejection,
        };
        let Judgement { duplicates, next } = judge(rejection, group.len());
        // From the back, so that the indices still to remove stay valid.
        for &i in duplicates.iter().rev() {
            if i < group.len() {
                group.remove(i).settle(&Settled::Duplicate);
            }
        }
        match next {
            Next::RetryNow => {}
            Next::Backoff(reason) => {
                busy += 1;
                let delay = BACKOFF.delay(busy);
                if busy >= MAX_ATTEMPTS || started.elapsed() + delay > RETRY_BUDGET {
                    let spent = started.elapsed().as_secs_f64();
                    let detail = format!("gave up after {attempts} attempts in {spent:.1} s: {reason}");
                    tracing::warn!(group = size, attempts, %reason, "ledger group not committed; giving up");
                    group.into_iter().for_each(|entry| entry.settle(&Settled::Failed(detail.clone())));
                    return;
                }
                shared.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    group = size,
                    attempts,
                    delay_ms = delay.as_millis() as u64,
                    %reason,
                    "ledger group not committed; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            Next::Fail(detail) => {
                tracing::warn!(group = size, attempts, error = %detail, "ledger group failed");
                group.into_iter().for_each(|entry| entry.settle(&Settled::Failed(detail.clone())));
                return;
            }
            Next::TimedOut { after, detail } => {
                tracing::warn!(group = size, attempts, after_s = after.as_secs_f64(), error = %detail, "ledger group timed out");
                let settled = Settled::TimedOut { after, detail };
                group.into_iter().for_each(|entry| entry.settle(&settled));
                return;
            }
        }
    }
    tracing::debug!(group = size, counted = 0, attempts, "ledger group settled: every id was counted before");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use futures_util::future::join_all;
    use tokio::time::Instant;

    use super::*;

    // ---- pure parts ----

    fn pending(ids: &[&str]) -> VecDeque<(String, usize)> {
        ids.iter().enumerate().map(|(i, id)| (id.to_string(), i)).collect()
    }

    fn ids<R>(group: &[Entry<R>]) -> Vec<&str> {
        group.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn a_group_takes_the_oldest_ids_and_joins_repeats_to_the_first() {
        let mut queue = pending(&["a", "b", "a", "c", "b", "a"]);
        let group = take_group(&mut queue, MAX_GROUP);
        assert_eq!(ids(&group), ["a", "b", "c"]);
        assert_eq!(group[0].replies, [0, 2, 5]);
        assert_eq!(group[1].replies, [1, 4]);
        assert_eq!(group[2].replies, [3]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_group_stops_at_max_distinct_ids_but_still_takes_repeats_before_the_next_new_id() {
        let mut queue = pending(&["a", "b", "a", "c", "b", "d"]);
        let group = take_group(&mut queue, 2);
        assert_eq!(ids(&group), ["a", "b"]);
        assert_eq!(group[0].replies, [0, 2]);
        assert_eq!(queue.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["c", "b", "d"]);
        let group = take_group(&mut queue, 2);
        assert_eq!(ids(&group), ["c", "b"]);
        assert_eq!(ids(&take_group(&mut queue, 2)), ["d"]);
        assert!(take_group(&mut queue, 2).is_empty());
    }

    #[test]
    fn a_full_queue_is_cut_into_groups_of_99() {
        let all: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
        let mut queue: VecDeque<(String, ())> = all.iter().map(|id| (id.clone(), ())).collect();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(take_group(&mut queue, MAX_GROUP).len()).filter(|&n| n > 0)).collect();
        assert_eq!(sizes, [99, 99, 52]);
    }

    #[test]
    fn only_the_first_caller_of_a_counted_id_gets_counted() {
        assert!(matches!(outcome(&Settled::Counted, 0), Ok(Outcome::Counted)));
        assert!(matches!(outcome(&Settled::Counted, 1), Ok(Outcome::Duplicate)));
        assert!(matches!(outcome(&Settled::Duplicate, 0), Ok(Outcome::Duplicate)));
        assert!(matches!(outcome(&Settled::Duplicate, 3), Ok(Outcome::Duplicate)));
        for nth in [0, 1] {
            assert!(
                matches!(outcome(&Settled::Failed("x".into()), nth), Err(Error::Ledger { detail, .. }) if detail == "x")
            );
        }
    }

    fn cancelled(codes: &[Option<&str>]) -> Rejection {
        Rejection::Cancelled {
            codes: codes.iter().map(|c| c.map(str::to_owned)).collect(),
            detail: "TransactionCanceledException".into(),
        }
    }

    #[test]
    fn failed_conditions_on_puts_are_duplicates_and_the_rest_goes_again_at_once() {
        // moto's shape: the string "None" for actions that were fine.
        let judged = judge(cancelled(&[Some("ConditionalCheckFailed"), Some("None"), None, Some("None")]), 3);
        assert_eq!(judged, Judgement { duplicates: vec![0], next: Next::RetryNow });
        let judged = judge(
            cancelled(&[Some("None"), Some("ConditionalCheckFailed"), Some("ConditionalCheckFailed"), None]),
            3,
        );
        assert_eq!(judged, Judgement { duplicates: vec![1, 2], next: Next::RetryNow });
    }

    #[test]
    fn conflicts_and_throttling_back_off_and_keep_the_duplicates_found() {
        for code in ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"] {
            let judged = judge(cancelled(&[Some("None"), Some("None"), Some(code)]), 2);
            assert_eq!(judged, Judgement { duplicates: vec![], next: Next::Backoff(code.into()) });
        }
        let judged = judge(cancelled(&[Some("ConditionalCheckFailed"), Some("TransactionConflict")]), 1);
        assert_eq!(
            judged,
            Judgement { duplicates: vec![0], next: Next::Backoff("TransactionConflict".into()) }
        );
        let judged = judge(Rejection::Busy("ThrottlingException".into()), 5);
        assert_eq!(
            judged,
            Judgement { duplicates: vec![], next: Next::Backoff("ThrottlingException".into()) }
        );
    }

    #[test]
    fn any_other_reason_fails_the_group() {
        let fails = |judged: Judgement, needle: &str| matches!(&judged.next, Next::Fail(detail) if detail.contains(needle));
        let judged = judge(cancelled(&[Some("None"), Some("ValidationError")]), 1);
        assert!(fails(judged, "action 1: ValidationError"));
        // An exception's name as the reason, as moto gives for errors it has no code for.
        let judged =
            judge(cancelled(&[Some("ResourceNotFoundException"), Some("ResourceNotFoundException")]), 1);
        assert!(fails(judged, "ResourceNotFoundException"));
        // The update has no condition: a failed condition there is nothing this ledger wrote.
        let judged = judge(cancelled(&[Some("None"), Some("ConditionalCheckFailed")]), 1);
        assert!(fails(judged, "action 1: ConditionalCheckFailed"));
        assert!(fails(judge(cancelled(&[]), 1), "without a reason"));
        assert!(fails(judge(cancelled(&[Some("None"), Some("None")]), 1), "without a reason"));
        assert!(fails(judge(Rejection::Failed("dispatch failure".into()), 1), "dispatch failure"));
        let judged =
            judge(cancelled(&[Some("ConditionalCheckFailed"), Some("ItemCollectionSizeLimitExceeded")]), 1);
        assert_eq!(judged.duplicates, [0], "a duplicate is a duplicate whatever else failed");
    }

    #[test]
    fn backoff_doubles_from_20_ms_to_1_s_with_half_of_it_jittered() {
        let ms = |retry, jitter| BACKOFF.delay_at(retry, jitter).as_millis();
        assert_eq!([1, 2, 3, 4, 5, 6, 7, 20].map(|n| ms(n, 1.0)), [20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!([1, 2, 7].map(|n| ms(n, 0.0)), [10, 20, 500]);
        assert_eq!(ms(u32::MAX, 0.5), 750);
    }

    #[test]
    fn an_id_dynamodb_cannot_key_on_is_poison() {
        assert!(check_key("").is_err_and(|e| e.is_poison()));
        assert!(check_key(&"x".repeat(2049)).is_err_and(|e| e.is_poison()));
        assert!(check_key(&"x".repeat(2048)).is_ok());
        assert!(check_key("a1b2").is_ok());
    }

    // ---- the commit loop, against a double of DynamoDB ----

    /// Behaves like the two tables for `write`, after `latency`; first returns the scripted
    /// rejections, if any. Records what it saw.
    #[derive(Default)]
    struct FakeTables {
        latency: Duration,
        script: Mutex<VecDeque<Rejection>>,
        panic_once: AtomicBool,
        seen: Mutex<HashSet<String>>,
        done: AtomicU64,
        groups: Mutex<Vec<usize>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        repeated_id: AtomicBool,
    }

    impl FakeTables {
        fn new(latency_ms: u64) -> Arc<FakeTables> {
            Arc::new(FakeTables { latency: Duration::from_millis(latency_ms), ..FakeTables::default() })
        }

        fn script(&self, rejections: impl IntoIterator<Item = Rejection>) {
            self.script.lock().extend(rejections);
        }

        fn groups(&self) -> Vec<usize> {
            self.groups.lock().clone()
        }

        fn done(&self) -> u64 {
            self.done.load(Ordering::SeqCst)
        }
    }

    impl WriteGroup for FakeTables {
        fn write<'a>(&'a self, ids: &'a [&'a str], _: u64) -> BoxFuture<'a, Result<(), Rejection>> {
            Box::pin(async move {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_in_flight.fetch_max(now, Ordering::SeqCst);
                self.groups.lock().push(ids.len());
                tokio::time::sleep(self.latency).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                assert!(!self.panic_once.swap(false, Ordering::SeqCst), "injected panic");
                if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
                    self.repeated_id.store(true, Ordering::SeqCst);
                    return Err(Rejection::Failed(
                        "ValidationException: multiple operations on one item".into(),
                    ));
                }
                if let Some(rejection) = self.script.lock().pop_front() {
                    return Err(rejection);
                }
                let mut seen = self.seen.lock();
                let mut codes: Vec<Option<String>> = ids
                    .iter()
                    .map(|id| seen.contains(*id).then(|| "ConditionalCheckFailed".into()))
                    .collect();
                if codes.iter().any(Option::is_some) {
                    codes.push(None);
                    return Err(Rejection::Cancelled {
                        codes,
                        detail: "TransactionCanceledException".into(),
                    });
                }
                seen.extend(ids.iter().map(std::string::ToString::to_string));
                self.done.fetch_add(ids.len() as u64, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    fn commits(tables: &Arc<FakeTables>) -> GroupCommit {
        GroupCommit::new(tables.clone())
    }

    fn conflict(puts: usize) -> Rejection {
        let mut codes = vec![Some("None".to_owned()); puts];
        codes.push(Some("TransactionConflict".into()));
        Rejection::Cancelled { codes, detail: "TransactionCanceledException".into() }
    }

    fn count(outcomes: &[Result<Outcome, Error>], wanted: Outcome) -> usize {
        outcomes.iter().filter(|o| matches!(o, Ok(o) if *o == wanted)).count()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_records_share_a_few_transactions_one_at_a_time_and_count_each_id_once() {
        let tables = FakeTables::new(10);
        let commits = commits(&tables);
        // 150 distinct ids, then 100 of them again interleaved.
        let ids: Vec<String> = (0..250)
            .map(|i| if i % 5 < 3 { format!("m{}", i / 5 * 3 + i % 5) } else { format!("m{}", i % 100) })
            .collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 150);
        let outcomes = join_all(ids.iter().map(|id| commits.record(id))).await;
        assert_eq!(tables.done(), 150);
        assert_eq!(count(&outcomes, Outcome::Counted), 150);
        assert_eq!(count(&outcomes, Outcome::Duplicate), 100);
        assert_eq!(tables.max_in_flight.load(Ordering::SeqCst), 1);
        assert!(!tables.repeated_id.load(Ordering::SeqCst));
        let groups = tables.groups();
        assert!(groups.len() <= 6 && groups.iter().all(|&n| n <= MAX_GROUP), "{groups:?}");
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: groups.len() as u64, retries: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn ids_that_arrive_during_a_commit_go_together_in_the_next() {
        let tables = FakeTables::new(10);
        let commits = commits(&tables);
        let late_ids: Vec<String> = (0..30).map(|i| format!("late{i}")).collect();
        let early = commits.record("first");
        let late = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            join_all(late_ids.iter().map(|id| commits.record(id))).await
        };
        let (early, late) = tokio::join!(early, late);
        assert!(matches!(early, Ok(Outcome::Counted)));
        assert_eq!(count(&late, Outcome::Counted), 30);
        assert_eq!(tables.groups(), [1, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_id_twice_in_a_group_is_put_once_and_its_second_caller_gets_duplicate() {
        let tables = FakeTables::new(10);
        let commits = commits(&tables);
        let outcomes = join_all(["a", "b", "a"].map(|id| commits.record(id))).await;
        assert!(matches!(outcomes[..], [Ok(Outcome::Counted), Ok(Outcome::Counted), Ok(Outcome::Duplicate)]));
        assert_eq!(tables.groups(), [2]);
        assert_eq!(tables.done(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn ids_counted_before_are_duplicates_and_the_rest_is_committed_at_once() {
        let tables = FakeTables::new(10);
        tables.seen.lock().extend(["a".to_owned(), "c".to_owned()]);
        let commits = commits(&tables);
        let started = Instant::now();
        let outcomes = join_all(["a", "b", "c", "d"].map(|id| commits.record(id))).await;
        let outcomes: Vec<_> = outcomes.into_iter().map(Result::unwrap).collect();
        use Outcome::*;
        assert_eq!(outcomes, [Duplicate, Counted, Duplicate, Counted]);
        assert_eq!(tables.groups(), [4, 2]);
        assert_eq!(tables.done(), 2);
        assert_eq!(started.elapsed(), Duration::from_millis(20), "no backoff");
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: 2, retries: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn conflicts_are_retried_after_a_backoff_and_then_count() {
        let tables = FakeTables::new(10);
        tables.script([conflict(2), conflict(2), conflict(2)]);
        let commits = commits(&tables);
        let started = Instant::now();
        let outcomes = join_all(["a", "b"].map(|id| commits.record(id))).await;
        assert_eq!(count(&outcomes, Outcome::Counted), 2);
        assert_eq!(tables.done(), 2);
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: 4, retries: 3 });
        // 4 calls of 10 ms, and backoffs of 10..20, 20..40 and 40..80 ms.
        let waited = started.elapsed() - Duration::from_millis(40);
        assert!(waited >= Duration::from_millis(70) && waited <= Duration::from_millis(140), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn conflicts_that_never_end_fail_every_caller_after_ten_attempts() {
        let tables = FakeTables::new(10);
        tables.script((0..20).map(|_| conflict(2)));
        let commits = commits(&tables);
        let started = Instant::now();
        let outcomes = join_all(["a", "b", "a"].map(|id| commits.record(id))).await;
        for outcome in &outcomes {
            assert!(
                matches!(outcome, Err(Error::Ledger { detail, .. }) if detail.contains("gave up after 10 attempts")),
                "{outcome:?}"
            );
        }
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: 10, retries: 9 });
        assert_eq!(tables.done(), 0);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // The ledger still works afterwards.
        tables.script.lock().clear();
        assert!(matches!(commits.record("a").await, Ok(Outcome::Counted)));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_throttled_calls_give_up_within_the_retry_budget_before_ten_attempts() {
        // Each call throttled as a whole after 3 s (the SDK's retries inside its timeouts).
        let tables = FakeTables::new(3000);
        tables.script((0..20).map(|_| Rejection::Busy("ThrottlingException".into())));
        let commits = commits(&tables);
        let started = Instant::now();
        let outcome = commits.record("a").await;
        let took = started.elapsed();
        assert!(
            matches!(&outcome, Err(Error::Ledger { detail, .. }) if detail.contains("ThrottlingException")),
            "{outcome:?}"
        );
        assert!(took <= RETRY_BUDGET + Duration::from_secs(3), "{took:?}");
        assert!(
            commits.shared.stats().transactions < u64::from(MAX_ATTEMPTS),
            "{:?}",
            commits.shared.stats()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn any_other_failure_fails_the_whole_group_at_once() {
        let tables = FakeTables::new(10);
        tables.script([Rejection::Failed("ResourceNotFoundException: no such table".into())]);
        let commits = commits(&tables);
        let outcomes = join_all(["a", "b", "a"].map(|id| commits.record(id))).await;
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(Error::Ledger { detail, .. }) if detail.contains("no such table")))
        );
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: 1, retries: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_transaction_that_timed_out_fails_the_whole_group_at_once_as_timed_out() {
        let tables = FakeTables::new(10);
        let after = Duration::from_secs(6);
        tables.script([Rejection::TimedOut { after, detail: "operation timeout".into() }]);
        let commits = commits(&tables);
        let outcomes = join_all(["a", "b", "a"].map(|id| commits.record(id))).await;
        for outcome in &outcomes {
            let Err(e) = outcome else { panic!("{outcome:?}") };
            assert!(e.is_timeout() && !e.is_poison(), "{e}");
            assert_eq!(
                e.to_string(),
                "ledger dynamodb timed out after 6.0 s (TransactWriteItems): operation timeout"
            );
        }
        assert_eq!(commits.shared.stats(), LedgerStats { transactions: 1, retries: 0 }, "not retried here");
        assert!(matches!(commits.record("a").await, Ok(Outcome::Counted)), "the ledger still works");
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_stops_waiting_strands_no_one() {
        let tables = FakeTables::new(10);
        let commits = commits(&tables);
        // The first caller becomes the committer, then gives up mid-commit.
        let gave_up = tokio::time::timeout(Duration::from_millis(5), commits.record("a")).await;
        assert!(gave_up.is_err());
        let b = tokio::time::timeout(Duration::from_secs(1), commits.record("b")).await;
        assert!(matches!(b, Ok(Ok(Outcome::Counted))));
        assert_eq!(tables.groups(), [1, 1]);
        assert_eq!(tables.done(), 2, "a's transaction went on without its caller");
    }

    #[tokio::test(start_paused = true)]
    async fn a_committer_that_dies_fails_its_callers_and_the_next_record_starts_another() {
        let tables = FakeTables::new(10);
        tables.panic_once.store(true, Ordering::SeqCst);
        let commits = commits(&tables);
        let first = commits.record("a");
        let queued = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            commits.record("b").await
        };
        let (first, queued) = tokio::join!(first, queued);
        assert!(matches!(first, Err(Error::Ledger { .. })), "{first:?}");
        assert!(matches!(queued, Err(Error::Ledger { .. })), "{queued:?}");
        assert!(matches!(commits.record("c").await, Ok(Outcome::Counted)));
        assert!(matches!(commits.record("b").await, Ok(Outcome::Counted)));
    }

    #[tokio::test]
    async fn an_id_dynamodb_cannot_key_on_never_joins_a_group() {
        let tables = FakeTables::new(0);
        let commits = commits(&tables);
        assert!(commits.record("").await.is_err_and(|e| e.is_poison()));
        assert!(tables.groups().is_empty());
    }

    #[test]
    fn record_outside_a_runtime_is_an_error_not_a_panic() {
        let tables = FakeTables::new(0);
        let commits = commits(&tables);
        let outcome = futures_util::FutureExt::now_or_never(commits.record("a"));
        assert!(matches!(outcome, Some(Err(Error::Ledger { .. }))), "{outcome:?}");
    }
}
