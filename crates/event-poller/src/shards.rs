//! What Lambda's event source mapping does for a stream — Kinesis or DynamoDB Streams, each a
//! small [`Source`] — one loop for both:
//!
//! * **Shards**: listed at the start and every `--shard-refresh-ms`; a new one (a reshard) gets
//!   a reader of its own, after its parent (if the parent is still listed) has been read to its
//!   end, so records of a key stay in order across the split.
//! * **Position**: after the shard's checkpoint (`AFTER_SEQUENCE_NUMBER`), or the starting
//!   position (`--starting-position`, LATEST by default, as the template's mappings) when the
//!   shard has none.
//! * **Batches**: up to `--batch-size` records, gathered for up to `--batching-window-ms` once
//!   the first is in; one invocation in flight per shard, so a shard's records reach the function
//!   in order.
//! * **Lanes** (`--parallelization-factor` N > 1): the shard's records are read N batches at a
//!   time, shared out by a hash of their key (Kinesis' partition key, the item's key) into N
//!   lanes, and the lanes invoke concurrently, one batch in flight each: records of one key stay
//!   in order. The checkpoint moves once every lane has settled its part, so a restart delivers
//!   what the lanes had in flight again (Lambda's lanes do not wait for each other; these do at
//!   each read, which keeps the checkpoint simple and correct).
//! * **Filter**: records whose `eventName` is not among `--filter-event-name` (DynamoDB Streams;
//!   `FilterCriteria`) are not sent, and are checkpointed past as Lambda does.
//! * **Answers**: every record done → checkpoint after the batch. `batchItemFailures` → checkpoint
//!   before the lowest reported record and retry from it (an identifier that is not in the batch
//!   fails the whole batch). A function error → retry the whole batch. With `--bisect-on-error`,
//!   a batch that fails from its first record is split in halves, each retried on its own (the
//!   splits are not counted as retries; a single record is), until the bad record is alone.
//! * **Giving up**: after `--maximum-retry-attempts` retries (-1: never), or when the batch's
//!   oldest record is older than `--maximum-record-age-seconds` (-1: never), the batch goes to the
//!   on-failure destination ([`crate::on_failure`]) and the shard moves on past it.
//! * **Backoff** between retries: exponential with full jitter (the `retry` crate).
//! * **Checkpoints**: written only once a batch is settled ([`crate::checkpoint`]): a `kill -9`
//!   and a restart deliver the batch that was in flight again, and lose nothing.
//! * **Shutdown** (SIGTERM): no more reads; an invocation in flight finishes and its batch is
//!   settled; a retry that was waiting is left for the next run.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edge::server::{Exit, Shutdown};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Error;
use crate::checkpoint::Checkpoints;
use crate::invoke::{Invoked, Invoker};
use crate::on_failure::{self, Condition, Destination, GivenUp};

/// Where a shard's reading starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    TrimHorizon,
    Latest,
    /// Just after this sequence number (a checkpoint, or the last record read).
    After(String),
}

/// `--starting-position`: where a shard without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartingPosition {
    Latest,
    TrimHorizon,
}

/// A shard as listed.
#[derive(Debug, Clone)]
pub struct Shard {
    pub id: String,
    /// The shard it was split from, or the two it was merged from.
    pub parents: Vec<String>,
    /// Closed by a reshard: it takes no more records.
    pub closed: bool,
}

/// A stream record, read.
#[derive(Debug, Clone)]
pub struct Record {
    pub sequence: String,
    /// When the stream took it, epoch seconds (Kinesis' approximate arrival, DynamoDB's
    /// approximate creation time).
    pub arrival_s: f64,
    /// What the filter looks at (`INSERT`, `MODIFY`, `REMOVE` for DynamoDB).
    pub event_name: Option<String>,
    /// What keeps records in order across lanes (`--parallelization-factor`): the partition key,
    /// the item's key.
    pub key: String,
    /// The record as the Lambda event carries it.
    pub json: Value,
}

/// One `GetRecords` answer.
#[derive(Debug)]
pub struct Page {
    pub records: Vec<Record>,
    /// `None`: the shard is closed and read to its end.
    pub next: Option<String>,
}

/// A stream the mapping reads: what differs between Kinesis and DynamoDB Streams.
pub trait Source: Send + Sync + 'static {
    /// The on-failure record's batch-info key: `KinesisBatchInfo` or `DDBStreamBatchInfo`.
    const INFO_KEY: &'static str;
    /// `GetRecords`' limit.
    const MAX_RECORDS: usize;

    fn arn(&self) -> &str;
    /// What the checkpoints are kept for: the ARN, and whatever else tells this stream from one
    /// deleted and created again under the same name.
    fn identity(&self) -> String {
        self.arn().to_owned()
    }
    fn shards(&self) -> impl Future<Output = Result<Vec<Shard>, Error>> + Send;
    fn iterator(&self, shard: &str, from: &Position) -> impl Future<Output = Result<String, Error>> + Send;
    fn records(
        &self,
        shard: &str,
        iterator: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Page, Error>> + Send;
}

/// The flags both stream subcommands share: the event source mapping's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The function's Invoke URL, e.g. http://127.0.0.1:9000/2015-03-31/functions/NAME/invocations
    #[arg(long, env = "EVENT_POLLER_INVOKE_URL")]
    pub invoke_url: String,
    /// Records per invocation at most (BatchSize; Lambda's default 100).
    #[arg(long, env = "EVENT_POLLER_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
    /// How long to gather a batch once its first record is in, milliseconds
    /// (MaximumBatchingWindowInSeconds × 1000).
    #[arg(long, env = "EVENT_POLLER_BATCHING_WINDOW_MS", default_value_t = 0)]
    pub batching_window_ms: u64,
    /// Concurrent batches per shard, records of one key kept in order (ParallelizationFactor).
    #[arg(long, env = "EVENT_POLLER_PARALLELIZATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub parallelization_factor: u32,
    /// Where a shard without a checkpoint starts (StartingPosition).
    #[arg(long, env = "EVENT_POLLER_STARTING_POSITION", value_enum, default_value = "latest")]
    pub starting_position: StartingPosition,
    /// Split a failing batch in halves before retrying (BisectBatchOnFunctionError).
    #[arg(long, env = "EVENT_POLLER_BISECT_ON_ERROR")]
    pub bisect_on_error: bool,
    /// Retries of a failing batch before it goes to the on-failure destination
    /// (MaximumRetryAttempts; -1: retry until the records expire).
    #[arg(long, env = "EVENT_POLLER_MAXIMUM_RETRY_ATTEMPTS", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..=10_000))]
    pub maximum_retry_attempts: i64,
    /// A batch whose oldest record is older than this goes to the on-failure destination instead
    /// of the function, seconds (MaximumRecordAgeInSeconds; -1: no limit).
    #[arg(long, env = "EVENT_POLLER_MAXIMUM_RECORD_AGE_SECONDS", default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i64).range(-1..=604_800))]
    pub maximum_record_age_seconds: i64,
    /// The SQS queue given-up batches are described to (DestinationConfig.OnFailure); without
    /// one they are logged and dropped, as on AWS.
    #[arg(long, env = "EVENT_POLLER_ON_FAILURE_QUEUE_URL")]
    pub on_failure_queue_url: Option<String>,
    /// A directory of this mapping's own: one checkpoint file per shard.
    #[arg(long, env = "EVENT_POLLER_CHECKPOINT_DIR")]
    pub checkpoint_dir: PathBuf,
    /// How long a shard's reader waits after a read that found nothing, milliseconds (Lambda
    /// reads each shard about once a second; shorter here, for latency on the local stack).
    #[arg(long, env = "EVENT_POLLER_POLL_INTERVAL_MS", default_value_t = 200)]
    pub poll_interval_ms: u64,
    /// How often the shards are listed again, to pick up new ones, milliseconds.
    #[arg(long, env = "EVENT_POLLER_SHARD_REFRESH_MS", default_value_t = 10_000)]
    pub shard_refresh_ms: u64,
    /// How long an invocation may take before it counts as failed, seconds (the function's timeout).
    #[arg(long, env = "EVENT_POLLER_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,
    /// After SIGTERM, how long the invocations in flight may take to finish and settle their
    /// batches, seconds; past it the process exits 1 (those batches are delivered again next run).
    #[arg(long, env = "EVENT_POLLER_SHUTDOWN_TIMEOUT", default_value = "35", value_parser = edge::server::seconds)]
    pub shutdown_timeout: Duration,
}

impl Settings {
    fn max_retries(&self) -> Option<u32> {
        u32::try_from(self.maximum_retry_attempts).ok()
    }

    fn max_age(&self) -> Option<Duration> {
        u64::try_from(self.maximum_record_age_seconds).ok().map(Duration::from_secs)
    }
}

/// Waits between retries of a failing batch.
const RETRY: retry::Backoff = retry::Backoff::full(Duration::from_millis(100), Duration::from_secs(5));
/// Waits after a failed read of a shard.
const READ_RETRY: retry::Backoff = retry::Backoff::full(Duration::from_millis(100), Duration::from_secs(5));

#[derive(Default)]
struct Stats {
    invocations: AtomicU64,
    delivered: AtomicU64,
    filtered: AtomicU64,
    given_up: AtomicU64,
}

/// One event source mapping: a stream, its function, its settings.
pub struct Mapping<S> {
    source: S,
    args: Settings,
    filter: Vec<String>,
    invoker: Invoker,
    checkpoints: Checkpoints,
    destination: Destination,
    shutdown: Shutdown,
    /// Shards read to their end (their children may start).
    finished: watch::Sender<HashSet<String>>,
    /// Shards closed by a reshard, as last listed.
    closed: watch::Sender<HashSet<String>>,
    stats: Stats,
}

/// Runs the mapping until the shutdown, then lets the invocations in flight settle.
pub async fn run<S: Source>(
    source: S,
    args: Settings,
    filter: Vec<String>,
    aws: &aws_config::SdkConfig,
    shutdown: Shutdown,
) -> Result<(), Exit> {
    let region = aws.region().map_or_else(|| "eu-west-2".into(), ToString::to_string);
    let invoker =
        Invoker::new(&args.invoke_url, &region, Duration::from_secs(args.timeout)).map_err(Exit::start)?;
    let checkpoints = Checkpoints::open(&args.checkpoint_dir, &source.identity()).map_err(Exit::start)?;
    let destination = Destination::new(aws, args.on_failure_queue_url.clone());
    eprintln!(
        "event-poller: {} → {} (batch {}, window {} ms, from {:?}, bisect {}, retries {}, max age {} s, \
         filter {:?}, checkpoints in {})",
        source.arn(),
        args.invoke_url,
        args.batch_size,
        args.batching_window_ms,
        args.starting_position,
        args.bisect_on_error,
        args.maximum_retry_attempts,
        args.maximum_record_age_seconds,
        filter,
        args.checkpoint_dir.display(),
    );
    let mapping = Arc::new(Mapping {
        source,
        args,
        filter,
        invoker,
        checkpoints,
        destination,
        shutdown: shutdown.clone(),
        finished: watch::Sender::new(HashSet::new()),
        closed: watch::Sender::new(HashSet::new()),
        stats: Stats::default(),
    });
    let mut readers = JoinSet::new();
    let mut started = HashSet::new();
    let mut failures = 0;
    loop {
        let Some(listed) = shutdown.unless_requested(mapping.source.shards()).await else { break };
        match listed {
            Ok(shards) => {
                failures = 0;
                let ids: HashSet<String> = shards.iter().map(|s| s.id.clone()).collect();
                let first_listing = started.is_empty();
                mapping
                    .closed
                    .send_replace(shards.iter().filter(|s| s.closed).map(|s| s.id.clone()).collect());
                for mut shard in shards {
                    if started.insert(shard.id.clone()) {
                        // A parent no longer listed has expired: nothing of it to wait for.
                        shard.parents.retain(|p| ids.contains(p));
                        // A shard born of a reshard is read from its start, whatever the
                        // starting position (as Lambda does): its first records follow its parent's.
                        let from_start = !first_listing || !shard.parents.is_empty();
                        readers.spawn(mapping.clone().read(shard, from_start));
                    }
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "listing the shards failed");
            }
        }
        while readers.try_join_next().is_some() {}
        let wait = if failures > 0 { READ_RETRY.delay(failures) } else { mapping.refresh() };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.requested() => break,
        }
    }
    let drained = shutdown.until_deadline(1.0, async { while readers.join_next().await.is_some() {} }).await;
    let stats = &mapping.stats;
    eprintln!(
        "event-poller: stopped after {} invocations: {} records delivered, {} filtered out, {} given up",
        stats.invocations.load(Ordering::Relaxed),
        stats.delivered.load(Ordering::Relaxed),
        stats.filtered.load(Ordering::Relaxed),
        stats.given_up.load(Ordering::Relaxed),
    );
    match drained {
        Some(()) => Ok(()),
        None => {
            Err(Exit::failed("invocations still running at the shutdown deadline; their batches come again"))
        }
    }
}

/// A shard's reading state: where the next read starts, and the records read but not yet
/// batched.
struct Reader {
    shard: String,
    from: Position,
    iterator: Option<String>,
    pending: VecDeque<Record>,
    ended: bool,
    failures: u32,
}

impl<S: Source> Mapping<S> {
    fn refresh(&self) -> Duration {
        Duration::from_millis(self.args.shard_refresh_ms.max(100))
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.args.poll_interval_ms)
    }

    /// Reads one shard (after its parents) until the shutdown or its end.
    async fn read(self: Arc<Self>, shard: Shard, from_start: bool) {
        if !shard.parents.is_empty() {
            tracing::info!(shard = shard.id, parents = ?shard.parents, "waiting for the parent shards to be read to their end");
            let mut finished = self.finished.subscribe();
            tokio::select! {
                _ = finished.wait_for(|done| shard.parents.iter().all(|p| done.contains(p))) => {}
                () = self.shutdown.requested() => return,
            }
        }
        let id = shard.id.clone();
        let shard = id.as_str();
        match self.read_shard(shard, from_start).await {
            Ok(true) => {
                tracing::info!(shard, "shard read to its end");
                self.finished.send_modify(|done| {
                    done.insert(id);
                });
            }
            Ok(false) => {}
            Err(e) => tracing::error!(shard, error = %e, "cannot read the shard"),
        }
    }

    /// `Ok(true)` at the shard's end, `Ok(false)` at the shutdown.
    async fn read_shard(&self, shard: &str, from_start: bool) -> Result<bool, Error> {
        let from = match self.checkpoints.load(shard)? {
            Some(sequence) => Position::After(sequence),
            None if from_start => Position::TrimHorizon,
            None => match self.args.starting_position {
                StartingPosition::Latest => Position::Latest,
                StartingPosition::TrimHorizon => Position::TrimHorizon,
            },
        };
        tracing::info!(shard, ?from, "reading the shard");
        let mut reader = Reader {
            shard: shard.to_owned(),
            from,
            iterator: None,
            pending: VecDeque::new(),
            ended: false,
            failures: 0,
        };
        loop {
            let Some(batch) = self.gather(&mut reader).await else { return Ok(reader.ended) };
            let Some(last) = batch.last().map(|r| r.sequence.clone()) else { continue };
            let total = batch.len();
            let kept: Vec<Record> = batch.into_iter().filter(|r| self.passes(r)).collect();
            self.stats.filtered.fetch_add((total - kept.len()) as u64, Ordering::Relaxed);
            if !kept.is_empty() && !self.deliver_in_lanes(shard, kept).await {
                return Ok(false);
            }
            self.checkpoint(shard, &last);
        }
    }

    fn passes(&self, record: &Record) -> bool {
        self.filter.is_empty() || record.event_name.as_ref().is_some_and(|name| self.filter.contains(name))
    }

    /// The next batch: waits for a first record, then gathers up to the batch size within the
    /// window. `None` at the shard's end or at the shutdown.
    async fn gather(&self, reader: &mut Reader) -> Option<Vec<Record>> {
        // A batch for each lane.
        let size = self.args.batch_size.max(1) as usize * self.args.parallelization_factor.max(1) as usize;
        while reader.pending.is_empty() {
            if reader.ended || self.shutdown.is_requested() {
                return None;
            }
            tokio::select! {
                () = self.fetch(reader, size) => {}
                () = self.shutdown.requested() => return None,
            }
            if reader.pending.is_empty() && !reader.ended && !self.pause(self.poll_interval()).await {
                return None;
            }
        }
        let window_ends = Instant::now() + Duration::from_millis(self.args.batching_window_ms);
        while reader.pending.len() < size && !reader.ended && Instant::now() < window_ends {
            let before = reader.pending.len();
            tokio::select! {
                () = self.fetch(reader, size - before) => {}
                () = self.shutdown.requested() => break,
            }
            if reader.pending.len() == before {
                let left = window_ends.saturating_duration_since(Instant::now());
                if !self.pause(left.min(self.poll_interval())).await {
                    break;
                }
            }
        }
        let take = reader.pending.len().min(size);
        Some(reader.pending.drain(..take).collect())
    }

    /// One read: an iterator if there is none, then `GetRecords`. A failure waits (backoff) and
    /// starts the next read from a fresh iterator after the last record read.
    async fn fetch(&self, reader: &mut Reader, want: usize) {
        let iterator = match &reader.iterator {
            Some(iterator) => iterator.clone(),
            None => match self.source.iterator(&reader.shard, &reader.from).await {
                Ok(iterator) => {
                    tracing::info!(shard = reader.shard, from = ?reader.from, "took a shard iterator");
                    iterator
                }
                Err(e) => return self.read_failed(reader, e).await,
            },
        };
        match self.source.records(&reader.shard, &iterator, want.clamp(1, S::MAX_RECORDS)).await {
            Ok(page) => {
                reader.failures = 0;
                if let Some(last) = page.records.last() {
                    reader.from = Position::After(last.sequence.clone());
                }
                // A closed shard takes no more records: an empty read is its end (AWS also ends
                // it with no next iterator; moto keeps handing iterators out).
                let drained = page.records.is_empty() && self.closed.borrow().contains(&reader.shard);
                reader.pending.extend(page.records);
                reader.ended = page.next.is_none() || drained;
                reader.iterator = page.next;
            }
            Err(e) => self.read_failed(reader, e).await,
        }
    }

    async fn read_failed(&self, reader: &mut Reader, e: Error) {
        reader.failures += 1;
        reader.iterator = None;
        let wait = READ_RETRY.delay(reader.failures);
        tracing::warn!(shard = reader.shard, error = %e, retry_in_ms = wait.as_millis() as u64, "reading the shard failed");
        self.pause(wait).await;
    }

    /// Sleeps, unless the shutdown comes first (`false`).
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.shutdown.requested() => false,
        }
    }

    fn checkpoint(&self, shard: &str, sequence: &str) {
        if let Err(e) = self.checkpoints.save(shard, sequence) {
            // The records are settled; a restart delivers them again.
            tracing::error!(shard, error = %e, "cannot write the checkpoint");
        }
    }

    /// One lane: delivers in order, checkpointing as batches settle. Several: each lane its
    /// share (by key), concurrently, and no checkpoint until all have settled (the caller's).
    async fn deliver_in_lanes(&self, shard: &str, records: Vec<Record>) -> bool {
        let lanes = self.args.parallelization_factor.max(1) as usize;
        if lanes == 1 {
            return self.deliver(shard, records, true).await;
        }
        let mut by_lane: Vec<Vec<Record>> = vec![Vec::new(); lanes];
        for record in records {
            by_lane[lane(&record.key, lanes)].push(record);
        }
        let runs = by_lane.into_iter().filter(|l| !l.is_empty()).map(|l| self.deliver(shard, l, false));
        futures_util::future::join_all(runs).await.into_iter().all(|settled| settled)
    }

    /// Delivers `records` (in order, batches of at most `--batch-size`) until each is done or
    /// given up, checkpointing as they settle when `checkpoints` (one lane); `false` when the
    /// shutdown stopped it before (the rest comes again next run).
    async fn deliver(&self, shard: &str, records: Vec<Record>, checkpoints: bool) -> bool {
        let checkpoint = |sequence: &str| {
            if checkpoints {
                self.checkpoint(shard, sequence);
            }
        };
        // Batches still to settle, in order, each with the failed invocations made with it.
        let size = self.args.batch_size.max(1) as usize;
        let mut todo: VecDeque<(Vec<Record>, u32)> = records.chunks(size).map(|c| (c.to_vec(), 0)).collect();
        let mut failures_in_a_row = 0;
        while let Some((mut batch, attempts)) = todo.pop_front() {
            let Some(last) = batch.last().map(|r| r.sequence.clone()) else { continue };
            if let Some(age) = self.args.max_age()
                && batch.first().is_some_and(|r| on_failure::now_s() - r.arrival_s > age.as_secs_f64())
            {
                if !self.give_up(shard, &batch, Condition::RecordAgeExceeded, attempts, None).await {
                    return false;
                }
                checkpoint(&last);
                continue;
            }
            let event = json!({ "Records": batch.iter().map(|r| &r.json).collect::<Vec<_>>() });
            let invoked = self.invoker.invoke(&event).await;
            self.stats.invocations.fetch_add(1, Ordering::Relaxed);
            let attempts = attempts + 1;
            let Some(failed_from) = first_failed(&batch, &invoked) else {
                self.stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                checkpoint(&last);
                failures_in_a_row = 0;
                continue;
            };
            if failed_from > 0 {
                self.stats.delivered.fetch_add(failed_from as u64, Ordering::Relaxed);
                checkpoint(&batch[failed_from - 1].sequence);
                batch.drain(..failed_from);
            }
            if self.args.bisect_on_error && failed_from == 0 && batch.len() > 1 {
                let second = batch.split_off(batch.len() / 2);
                tracing::info!(
                    shard,
                    first = batch.len(),
                    second = second.len(),
                    "bisecting the failed batch"
                );
                todo.push_front((second, 0));
                todo.push_front((batch, 0));
            } else if self.args.max_retries().is_some_and(|max| attempts > max) {
                if !self
                    .give_up(shard, &batch, Condition::RetryAttemptsExhausted, attempts, Some(&invoked))
                    .await
                {
                    return false;
                }
                checkpoint(&last);
                continue;
            } else {
                todo.push_front((batch, attempts));
            }
            failures_in_a_row += 1;
            if !self.pause(RETRY.delay(failures_in_a_row)).await {
                return false;
            }
        }
        true
    }

    /// Sends the on-failure record, retrying until it is taken; `false` at the shutdown.
    async fn give_up(
        &self,
        shard: &str,
        batch: &[Record],
        condition: Condition,
        invocations: u32,
        last: Option<&Invoked>,
    ) -> bool {
        let record = on_failure::record(
            &GivenUp {
                condition,
                invocations,
                last,
                function_arn: self.invoker.function_arn(),
                info_key: S::INFO_KEY,
                stream_arn: self.source.arn(),
                shard_id: shard,
                records: batch,
            },
            on_failure::now_s(),
        );
        let mut attempt = 0;
        loop {
            match self.destination.send(&record).await {
                Ok(()) => {
                    self.stats.given_up.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(shard, error = %e, "cannot send to the on-failure destination; retrying");
                    if !self.pause(on_failure::resend_after(attempt)).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// The lane of a record with this key: a stable hash (FNV-1a), so a key keeps its lane.
fn lane(key: &str, lanes: usize) -> usize {
    let hash =
        key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (hash % lanes.max(1) as u64) as usize
}

/// Where the failed part of `batch` starts: `None` when every record is done; the lowest
/// reported record; 0 for a function error or a report naming a record not in the batch.
fn first_failed(batch: &[Record], invoked: &Invoked) -> Option<usize> {
    match &invoked.result {
        Ok(ids) if ids.is_empty() => None,
        Ok(ids) => {
            let positions: Option<Vec<usize>> =
                ids.iter().map(|id| batch.iter().position(|r| &r.sequence == id)).collect();
            match positions.and_then(|p| p.into_iter().min()) {
                Some(i) => Some(i),
                None => {
                    tracing::warn!(
                        ?ids,
                        "batchItemFailures names a record not in the batch: the whole batch failed"
                    );
                    Some(0)
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, records = batch.len(), "invocation failed: the whole batch failed");
            Some(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                sequence: format!("{}", 100 + i),
                arrival_s: 0.0,
                event_name: None,
                key: String::new(),
                json: Value::Null,
            })
            .collect()
    }

    fn answered(result: Result<Vec<String>, Error>) -> Invoked {
        Invoked { request_id: "r".into(), status: 200, function_error: None, result }
    }

    /// A stream in memory: each shard's records numbered, never a `None` iterator (as moto).
    struct Fake(Vec<(Shard, Vec<u32>)>);

    impl Fake {
        fn of(&self, shard: &str) -> &[u32] {
            self.0.iter().find(|(s, _)| s.id == shard).map_or(&[], |(_, r)| r.as_slice())
        }
    }

    impl Source for Fake {
        const INFO_KEY: &'static str = "KinesisBatchInfo";
        const MAX_RECORDS: usize = 10;

        fn arn(&self) -> &str {
            "arn:aws:kinesis:eu-west-2:123456789012:stream/fake"
        }

        async fn shards(&self) -> Result<Vec<Shard>, Error> {
            Ok(self.0.iter().map(|(s, _)| s.clone()).collect())
        }

        async fn iterator(&self, shard: &str, from: &Position) -> Result<String, Error> {
            let records = self.of(shard);
            let at = match from {
                Position::TrimHorizon => 0,
                Position::Latest => records.len(),
                Position::After(seq) => {
                    records.iter().position(|n| n.to_string() == *seq).map_or(0, |i| i + 1)
                }
            };
            Ok(format!("{shard}|{at}"))
        }

        async fn records(&self, shard: &str, iterator: &str, limit: usize) -> Result<Page, Error> {
            let records = self.of(shard);
            let at: usize = iterator.rsplit('|').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let end = (at + limit).min(records.len());
            let page = records[at..end]
                .iter()
                .map(|n| Record {
                    sequence: n.to_string(),
                    arrival_s: on_failure::now_s(),
                    event_name: None,
                    key: n.to_string(),
                    json: json!({ "n": n }),
                })
                .collect();
            Ok(Page { records: page, next: Some(format!("{shard}|{end}")) })
        }
    }

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        settings: Settings,
    }

    /// Runs the mapping over `fake` with an in-process function until it has taken `wanted`
    /// records; the record numbers in the order the function took them.
    async fn deliver_all(fake: Fake, position: &str, wanted: usize) -> Vec<u64> {
        use clap::Parser;
        let taken = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let keep = taken.clone();
        let app = axum::Router::new().route(
            "/2015-03-31/functions/f/invocations",
            axum::routing::post(move |axum::Json(event): axum::Json<Value>| {
                let keep = keep.clone();
                async move {
                    let numbers =
                        event["Records"].as_array().into_iter().flatten().filter_map(|r| r["n"].as_u64());
                    keep.lock().extend(numbers);
                    "{}"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/2015-03-31/functions/f/invocations", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = std::env::temp_dir().join(format!("event-poller-fake-{position}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let flags = Flags::parse_from([
            "t",
            "--invoke-url",
            &url,
            "--checkpoint-dir",
            dir.to_str().unwrap(),
            "--starting-position",
            position,
            "--poll-interval-ms",
            "10",
            "--shard-refresh-ms",
            "100",
        ]);
        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-2"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let (shutdown, trigger) = Shutdown::manual(Duration::from_secs(5));
        let watch = async {
            let all =
                testkit::eventually(Duration::from_secs(10), || async { taken.lock().len() >= wanted }).await;
            trigger.request();
            all
        };
        let (ran, all) = tokio::join!(run(fake, flags.settings, Vec::new(), &config, shutdown), watch);
        assert!(ran.is_ok() && all, "{ran:?}; taken {:?}", taken.lock());
        let _ = std::fs::remove_dir_all(&dir);
        taken.lock().clone()
    }

    fn split() -> Fake {
        let shard = |id: &str, parents: &[&str], closed| Shard {
            id: id.into(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            closed,
        };
        // The children listed first: they must wait all the same.
        Fake(vec![
            (shard("child-a", &["parent"], false), vec![10, 11]),
            (shard("child-b", &["parent"], false), vec![20, 21, 22]),
            (shard("parent", &[], true), vec![1, 2, 3]),
        ])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_children_of_a_split_shard_are_read_after_their_parent_is_read_to_its_end() {
        let taken = deliver_all(split(), "trim-horizon", 8).await;
        assert_eq!(&taken[..3], [1, 2, 3], "the parent first: {taken:?}");
        let mut children = taken[3..].to_vec();
        children.sort_unstable();
        assert_eq!(children, [10, 11, 20, 21, 22], "then each child's records once: {taken:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_children_of_a_split_shard_start_at_their_beginning_whatever_the_starting_position() {
        let mut taken = deliver_all(split(), "latest", 5).await;
        taken.sort_unstable();
        assert_eq!(taken, [10, 11, 20, 21, 22], "LATEST skips the parent's old records, not the children's");
    }

    #[test]
    fn the_failed_part_starts_at_the_lowest_reported_record() {
        let batch = batch(5);
        assert_eq!(first_failed(&batch, &answered(Ok(vec![]))), None);
        assert_eq!(first_failed(&batch, &answered(Ok(vec!["104".into(), "102".into()]))), Some(2));
        assert_eq!(
            first_failed(&batch, &answered(Ok(vec!["102".into(), "999".into()]))),
            Some(0),
            "unknown id"
        );
        assert_eq!(first_failed(&batch, &answered(Err(Error::Response("x".into())))), Some(0));
    }
}
