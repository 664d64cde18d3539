//! The server's buffer: submissions are packed into records in memory and flushed to the sink
//! in full calls, by count, by bytes, or when the oldest event has waited `linger` — at once
//! when a sync submission is waiting for its acknowledgement.
//!
//! ```text
//!  submit ──▶ [ open record ] ──close──▶ [ ready queue ] ──flusher──▶ sink.put (≤ max_in_flight)
//!                                              ▲                            │
//!                                              └──── retry (after backoff) ◀┘ failed entries / calls
//! ```
//!
//! Guarantees:
//!
//! - **Bounded memory.** Every accepted byte is counted in `buffer_bytes` from accept until the
//!   sink acknowledges it (queued, in flight or waiting for a retry). A submission that would
//!   pass `max_buffer_bytes` is refused whole with [`IngestError::Overloaded`] (a 503 means
//!   nothing of it was taken). The replay of a spill file at start obeys the same cap: it is
//!   read a chunk at a time as there is room, and takes at most half of the buffer, so new
//!   requests are taken while it runs ([`replay`]).
//! - **No loss while the process lives.** A failed entry or call goes back to the front of the
//!   queue and is re-sent after a backoff, without limit.
//! - **No loss at shutdown** when a spill path is set: what the sink did not acknowledge by the
//!   deadline is appended to the spill file and replayed at the next start. The flush stops
//!   early enough to leave the spill write its share of the deadline; what a replay had not read
//!   yet stays in its file, where the next start picks it up.
//! - **At-least-once.** A call that was under way when the shutdown deadline passed is spilled
//!   too, and the sink may have taken it; a sync submission whose wait timed out stays buffered
//!   and is still delivered, so the client's retry may duplicate it. Consumers dedupe on an
//!   event id if they need exactly-once.
//!
//! The submit path is one short critical section on a std mutex (pack the events into the open
//! record, maybe close it) plus a few atomics; the flusher is one task woken through a
//! [`Notify`], and each call to the sink runs in its own task, bounded by a semaphore.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::direct::{RetryPolicy, classify, later, log_invalid};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::pack::{self, Packer};
use crate::{
    BoxFuture, Ingest, IngestError, Invalid, Limits, Mode, Receipt, Record, SharedSink, Submission, spill,
};

mod replay;

use replay::Replay;

/// How the buffer batches, bounds and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    /// The most bytes accepted and not yet acknowledged (event lines, and invalid-event lines when
    /// there is an invalid sink); past it submissions get a 503. It should be far above one request
    /// body (1 MiB): a submission larger than the limit is always refused.
    pub max_buffer_bytes: usize,
    /// How long the oldest buffered event may wait for a call to fill before it is sent anyway.
    pub linger: Duration,
    /// Calls to the sink under way at once.
    pub max_in_flight: usize,
    /// The most bytes per record; `None` packs up to the sink's record limit (Firehose bills
    /// every record rounded up to 5 KB, so bigger records are cheaper).
    pub pack_cap: Option<usize>,
    /// The backoff before failed entries are re-sent. Accepted data is retried without limit;
    /// `max_attempts` only marks when a record's failures are logged at ERROR.
    pub retry: RetryPolicy,
    /// Where unacknowledged records go at shutdown and are replayed from at start. Without it
    /// they are logged at ERROR and counted as dropped.
    pub spill_path: Option<PathBuf>,
    /// How long a sync submission waits for the sink's acknowledgement.
    pub sync_timeout: Duration,
    /// The `Retry-After` given with [`IngestError::Overloaded`].
    pub retry_after: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_buffer_bytes: 64 * 1024 * 1024,
            linger: Duration::from_millis(200),
            max_in_flight: 4,
            pack_cap: None,
            retry: RetryPolicy::default(),
            spill_path: None,
            sync_timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// What [`Buffered::shutdown`] did with the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Records acknowledged by the sinks (events and invalid lines) during the shutdown.
    pub delivered_records: usize,
    /// Records appended to the spill file.
    pub spilled_records: usize,
    /// Records that could be neither delivered nor spilled (logged at ERROR).
    pub dropped_records: usize,
}

/// The buffering [`Ingest`] of the server. Create it with [`Buffered::start`], stop it with
/// [`Buffered::shutdown`]; dropped without a shutdown, its flusher keeps delivering what is
/// buffered for as long as the runtime runs.
pub struct Buffered {
    events: Arc<Pipeline>,
    /// The invalid-event pipeline, when there is an invalid sink.
    invalid: Option<Arc<Pipeline>>,
    /// The spill file being replayed, if one was found at start.
    replay: Option<Arc<Replay>>,
    metrics: Arc<Metrics>,
    config: BufferConfig,
    describe: String,
    shutting_down: AtomicBool,
}

/// A sync submission's claim on its events: settled when the sink acknowledged all of them, or
/// failed when some were spilled or dropped at shutdown. Async submissions carry none.
#[derive(Debug)]
struct Ticket {
    outstanding: AtomicUsize,
    failed: AtomicBool,
    done: Notify,
}

impl Ticket {
    fn new(events: usize) -> Arc<Ticket> {
        Arc::new(Ticket {
            outstanding: AtomicUsize::new(events),
            failed: AtomicBool::new(false),
            done: Notify::new(),
        })
    }

    fn ack(&self, events: usize) {
        let before = self
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_sub(events)))
            .unwrap_or_else(|n| n);
        if before > 0 && before <= events {
            self.done.notify_one();
        }
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.done.notify_one();
    }

    fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Waits until every event is acknowledged (`true`) or some were given up on (`false`).
    async fn settled(&self) -> bool {
        loop {
            // `notify_one` stores a permit when nobody waits yet, so no wake-up is missed.
            let notified = self.done.notified();
            if self.outstanding() == 0 {
                return true;
            }
            if self.failed.load(Ordering::Acquire) {
                return false;
            }
            notified.await;
        }
    }
}

/// One closed record and what it owes.
#[derive(Debug)]
struct Entry {
    record: Record,
    /// Lines in the record.
    events: usize,
    /// Failed attempts so far.
    attempts: u32,
    /// When its first event was accepted (for `linger`).
    since: Instant,
    /// The sync submissions with events in it, with how many each.
    tickets: Vec<(Arc<Ticket>, usize)>,
}

/// What the flusher and the calls need from the configuration.
#[derive(Debug, Clone, Copy)]
struct Settings {
    limits: Limits,
    cap: usize,
    linger: Duration,
}

impl Settings {
    /// Whether `records` closed records of `bytes` fill a call: the count is reached, or another
    /// record of full size would not fit.
    fn fills_call(&self, records: usize, bytes: usize) -> bool {
        records >= self.limits.max_records.max(1)
            || bytes >= self.limits.max_batch_bytes.saturating_sub(self.cap)
    }

    fn lingered(&self, since: Instant, now: Instant) -> bool {
        later(since, self.linger) <= now
    }
}

#[derive(Debug)]
struct State {
    packer: Packer,
    /// Tickets of the events in the open record.
    open_tickets: Vec<(Arc<Ticket>, usize)>,
    /// When the first event of the open record was accepted.
    open_since: Option<Instant>,
    ready: VecDeque<Entry>,
    ready_bytes: usize,
    /// Failed entries waiting for their backoff, by (due time, sequence).
    retry: BTreeMap<(Instant, u64), Vec<Entry>>,
    /// Calls under way, by id, so a shutdown can spill what they carry.
    in_flight: HashMap<u64, Vec<Entry>>,
    next_id: u64,
    /// Shutdown began: take nothing new, flush without waiting for `linger`.
    closing: bool,
    /// A sync submission waits for its acknowledgement: send what is buffered now rather than
    /// after `linger` (its caller is waiting; async callers already have their answer).
    hurry: bool,
    /// Shutdown spilled what was left: the flusher exits, late answers are ignored.
    stopped: bool,
}

enum Decision {
    Send(u64, Vec<Record>),
    Wait(Option<Instant>),
    Stop,
}

impl State {
    fn new(cap: usize) -> State {
        State {
            packer: Packer::new(cap),
            open_tickets: Vec::new(),
            open_since: None,
            ready: VecDeque::new(),
            ready_bytes: 0,
            retry: BTreeMap::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            closing: false,
            hurry: false,
            stopped: false,
        }
    }

    /// Packs one event into the open record, closing records as they fill.
    fn push(&mut self, event: &[u8], ticket: Option<&Arc<Ticket>>, now: Instant, cap: usize) {
        let events_before = self.packer.open_events();
        if let Some(record) = self.packer.push(event) {
            self.close(record, events_before, now);
        }
        self.open_since.get_or_insert(now);
        if let Some(ticket) = ticket {
            self.hurry = true;
            match self.open_tickets.last_mut() {
                Some((last, count)) if Arc::ptr_eq(last, ticket) => *count += 1,
                _ => self.open_tickets.push((Arc::clone(ticket), 1)),
            }
        }
        // Nothing more fits (a cap of 0 means one event per record): close it now rather than
        // at the next event, so the count trigger sees it.
        if self.packer.open_bytes() >= cap {
            self.close_open(now);
        }
    }

    fn close(&mut self, record: Record, events: usize, now: Instant) {
        let since = self.open_since.take().unwrap_or(now);
        let tickets = std::mem::take(&mut self.open_tickets);
        self.ready_bytes += record.len();
        self.ready.push_back(Entry { record, events, attempts: 0, since, tickets });
    }

    fn close_open(&mut self, now: Instant) {
        let events = self.packer.open_events();
        if let Some(record) = self.packer.finish() {
            self.close(record, events, now);
        }
    }

    /// Nothing waits to be sent soon: a new event needs the flusher to arm its linger timer.
    fn idle(&self) -> bool {
        self.ready.is_empty() && self.packer.open_events() == 0
    }

    /// Nothing is left unacknowledged.
    fn empty(&self) -> bool {
        self.idle() && self.retry.is_empty() && self.in_flight.is_empty()
    }

    /// What the flusher should do now.
    fn next(&mut self, now: Instant, settings: &Settings) -> Decision {
        if self.stopped {
            return Decision::Stop;
        }
        // Retries whose backoff is over go back to the front, ahead of newer data, oldest first.
        let mut due = Vec::new();
        while let Some(group) = self.retry.first_entry() {
            if group.key().0 > now {
                break;
            }
            due.push(group.remove());
        }
        for entry in due.into_iter().rev().flat_map(|group| group.into_iter().rev()) {
            self.ready_bytes += entry.record.len();
            self.ready.push_front(entry);
        }
        let closing = self.closing || self.hurry;
        let urgent = |since: Instant| closing || settings.lingered(since, now);
        if self.open_since.is_some_and(urgent) {
            self.close_open(now);
        }
        let send = match self.ready.front() {
            Some(front) => urgent(front.since) || settings.fills_call(self.ready.len(), self.ready_bytes),
            None => false,
        };
        if send {
            let (id, records) = self.take_call(settings.limits);
            if self.idle() {
                self.hurry = false;
            }
            return Decision::Send(id, records);
        }
        let wake = [
            self.ready.front().map(|e| later(e.since, settings.linger)),
            self.open_since.map(|since| later(since, settings.linger)),
            self.retry.first_key_value().map(|((due, _), _)| *due),
        ];
        Decision::Wait(wake.into_iter().flatten().min())
    }

    /// Takes one call's worth of records from the front of the queue into `in_flight`.
    fn take_call(&mut self, limits: Limits) -> (u64, Vec<Record>) {
        let (mut count, mut bytes) = (0, 0);
        for entry in &self.ready {
            let len = entry.record.len();
            if count == limits.max_records.max(1) || (count > 0 && bytes + len > limits.max_batch_bytes) {
                break;
            }
            count += 1;
            bytes += len;
        }
        let entries: Vec<Entry> = self.ready.drain(..count).collect();
        self.ready_bytes = self.ready_bytes.saturating_sub(bytes);
        let records = entries.iter().map(|e| e.record.clone()).collect();
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.insert(id, entries);
        (id, records)
    }

    /// Everything not acknowledged, in the order it would have been sent.
    fn take_all(&mut self, now: Instant) -> Vec<Entry> {
        self.close_open(now);
        let mut ids: Vec<u64> = self.in_flight.keys().copied().collect();
        ids.sort_unstable();
        let mut all: Vec<Entry> =
            ids.into_iter().filter_map(|id| self.in_flight.remove(&id)).flatten().collect();
        all.extend(std::mem::take(&mut self.retry).into_values().flatten());
        all.extend(self.ready.drain(..));
        self.ready_bytes = 0;
        all
    }
}

/// One queue in front of one sink, with its flusher. The buffer has one for events and, when
/// there is an invalid sink, a second one for invalid-event lines.
struct Pipeline {
    sink: SharedSink,
    settings: Settings,
    retry: RetryPolicy,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Wakes the flusher: new work, a retry to schedule, shutdown.
    wake: Notify,
    /// Wakes a shutdown waiting for the queue to empty.
    drained: Notify,
    /// Wakes a replay waiting for room: bytes left the buffer. Shared by both pipelines.
    released: Arc<Notify>,
    permits: Arc<Semaphore>,
}

impl Pipeline {
    fn new(
        sink: SharedSink,
        pack_cap: Option<usize>,
        config: &BufferConfig,
        metrics: Arc<Metrics>,
        released: Arc<Notify>,
    ) -> Arc<Pipeline> {
        let limits = sink.limits();
        let max_record = limits.max_record_bytes.min(limits.max_batch_bytes);
        let cap = pack_cap.unwrap_or(max_record).min(max_record);
        Arc::new(Pipeline {
            sink,
            settings: Settings { limits, cap, linger: config.linger },
            retry: config.retry,
            metrics,
            state: Mutex::new(State::new(cap)),
            wake: Notify::new(),
            drained: Notify::new(),
            released,
            permits: Arc::new(Semaphore::new(config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS))),
        })
    }

    /// Packs `events` into the queue; `false` when shutdown began and nothing was taken.
    fn enqueue<E: AsRef<[u8]>>(&self, events: &[E], ticket: Option<&Arc<Ticket>>) -> bool {
        let now = Instant::now();
        let wake = {
            let mut state = self.state.lock();
            if state.closing {
                return false;
            }
            let was_idle = state.idle();
            for event in events {
                state.push(event.as_ref(), ticket, now, self.settings.cap);
            }
            was_idle || ticket.is_some() || self.settings.fills_call(state.ready.len(), state.ready_bytes)
        };
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Sends calls as they are due, at most `max_in_flight` at once. Sleeps on the notify or the
    /// next due time in between, never spinning.
    async fn flusher(self: Arc<Self>) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                return;
            };
            let (id, records) = loop {
                let notified = self.wake.notified();
                let decision = self.state.lock().next(Instant::now(), &self.settings);
                match decision {
                    Decision::Stop => return,
                    Decision::Send(id, records) => break (id, records),
                    Decision::Wait(Some(until)) => {
                        tokio::select! {
                            () = notified => {}
                            () = tokio::time::sleep_until(until) => {}
                        }
                    }
                    Decision::Wait(None) => notified.await,
                }
            };
            tokio::spawn(Arc::clone(&self).send(id, records, permit));
        }
    }

    /// One call: acknowledged entries settle their bytes and tickets, failed ones are scheduled
    /// for a retry.
    async fn send(self: Arc<Self>, id: u64, records: Vec<Record>, permit: OwnedSemaphorePermit) {
        let bytes: usize = records.iter().map(Bytes::len).sum();
        let timer = self.metrics.start_flush();
        let result = self.sink.put(&records).await;
        timer.finish();
        let outcome = classify(records.len(), &result);
        tracing::debug!(sink = %self.sink.describe(), records = records.len(), bytes, failed = outcome.count, "flush");
        drop(records);

        let mut acked = Vec::new();
        let mut requeued = 0;
        let mut most_attempts = 0;
        {
            let mut state = self.state.lock();
            // Gone when a shutdown already spilled this call: nothing left to do.
            if let Some(entries) = state.in_flight.remove(&id) {
                let mut failed = Vec::new();
                for (i, mut entry) in entries.into_iter().enumerate() {
                    if outcome.is_failed(i) {
                        entry.attempts = entry.attempts.saturating_add(1);
                        most_attempts = most_attempts.max(entry.attempts);
                        failed.push(entry);
                    } else {
                        acked.push(entry);
                    }
                }
                if !failed.is_empty() {
                    requeued = failed.len();
                    let due = later(Instant::now(), self.retry.backoff(most_attempts));
                    let seq = state.next_id;
                    state.next_id += 1;
                    state.retry.insert((due, seq), failed);
                }
            }
        }

        let (mut acked_bytes, mut acked_events) = (0, 0);
        for entry in &acked {
            acked_bytes += entry.record.len();
            acked_events += entry.events;
            for (ticket, events) in &entry.tickets {
                ticket.ack(*events);
            }
        }
        self.metrics.release_buffer(acked_bytes);
        if acked_bytes > 0 {
            self.released.notify_waiters();
        }
        self.metrics.add_flushed(acked.len(), acked_events);
        if requeued > 0 {
            self.metrics.add_retried(requeued);
            let reason = outcome.reason.as_deref().unwrap_or("unknown");
            if most_attempts == self.retry.max_attempts {
                tracing::error!(sink = %self.sink.describe(), records = requeued, attempts = most_attempts, error = %reason, "records keep failing; still retrying");
            } else {
                tracing::warn!(sink = %self.sink.describe(), records = requeued, attempts = most_attempts, error = %reason, "the sink refused records; re-queued");
            }
        }
        drop(permit);
        // The flusher may sleep without a timer: it needs to learn about the retry's due time.
        if requeued > 0 {
            self.wake.notify_one();
        }
        self.drained.notify_waiters();
    }

    /// Shutdown began: take nothing new, close the open record, flush without lingering.
    fn close(&self) {
        {
            let mut state = self.state.lock();
            state.closing = true;
            state.close_open(Instant::now());
        }
        self.wake.notify_one();
    }

    /// Waits until everything was acknowledged or `until` passed.
    async fn drain(&self, until: Instant) {
        loop {
            let mut notified = std::pin::pin!(self.drained.notified());
            notified.as_mut().enable();
            if self.state.lock().empty() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(until) => return,
            }
        }
    }

    /// Stops the flusher and hands over everything not acknowledged, releasing its bytes and
    /// failing its tickets. Answers of calls still under way are ignored from now on.
    fn stop(&self) -> Vec<Entry> {
        let left = {
            let mut state = self.state.lock();
            state.stopped = true;
            state.take_all(Instant::now())
        };
        self.permits.close();
        self.wake.notify_one();
        self.metrics.release_buffer(left.iter().map(|e| e.record.len()).sum());
        for (ticket, _) in left.iter().flat_map(|e| &e.tickets) {
            ticket.fail();
        }
        left
    }
}

impl Buffered {
    /// Starts the buffer in front of `sink` (and `invalid_sink` for invalid events) and spawns
    /// its flushers; call it inside a tokio runtime. With a spill path, a spill file left by the
    /// previous process is claimed and replayed in the background, a chunk at a time as the
    /// buffer has room (at most half of it), and removed once the sink acknowledged all of it
    /// ([`replay`]). Fails when there is no runtime or the spill file cannot be claimed or
    /// opened.
    pub fn start(
        sink: SharedSink,
        invalid_sink: Option<SharedSink>,
        config: BufferConfig,
    ) -> io::Result<Buffered> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let claimed = match &config.spill_path {
            Some(path) => spill::claim(path)?,
            None => None,
        };
        let reader = claimed.as_deref().map(spill::Reader::open).transpose()?;
        let metrics = Arc::new(Metrics::default());
        let released = Arc::new(Notify::new());
        let events = Pipeline::new(
            Arc::clone(&sink),
            config.pack_cap,
            &config,
            Arc::clone(&metrics),
            Arc::clone(&released),
        );
        let invalid = invalid_sink
            .map(|s| Pipeline::new(s, None, &config, Arc::clone(&metrics), Arc::clone(&released)));
        runtime.spawn(Arc::clone(&events).flusher());
        if let Some(invalid) = &invalid {
            runtime.spawn(Arc::clone(invalid).flusher());
        }
        let replay = match (claimed, reader) {
            (Some(claimed), Some(reader)) => Some(Replay::start(
                &runtime,
                claimed,
                reader,
                Arc::clone(&events),
                Arc::clone(&metrics),
                released,
                config.max_buffer_bytes,
            )),
            _ => None,
        };
        Ok(Buffered {
            events,
            invalid,
            replay,
            metrics,
            describe: sink.describe(),
            config,
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Stops taking submissions ([`IngestError::ShuttingDown`] from now on) and stops a replay
    /// from reading further (the rest stays in its file), flushes everything buffered without
    /// waiting for `linger`, retrying until `deadline` from now less the time the spill write is
    /// given ([`spill_reserve`]), then spills whatever the sink has not acknowledged (queued,
    /// waiting for a retry, or in a call that has not answered) to the spill file, or logs it at
    /// ERROR and counts it dropped without one.
    /// Sync submissions still waiting get [`IngestError::Undelivered`]. Invalid-event lines left
    /// over are logged at WARN (`ingest::invalid`) rather than spilled, since a replay would send
    /// them to the event sink. A second call returns at once with an empty report.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return ShutdownReport::default();
        }
        let now = Instant::now();
        let until = later(now, deadline);
        let reserve = match self.config.spill_path {
            Some(_) => spill_reserve(self.metrics.buffer_bytes(), deadline),
            None => Duration::ZERO,
        };
        let flush_until = until.checked_sub(reserve).unwrap_or(now).max(now);
        let flushed_before = self.metrics.snapshot().flushed_records;
        let pipelines: Vec<&Arc<Pipeline>> = std::iter::once(&self.events).chain(&self.invalid).collect();
        pipelines.iter().for_each(|p| p.close());
        if let Some(replay) = &self.replay {
            replay.stop();
        }
        for pipeline in &pipelines {
            pipeline.drain(flush_until).await;
        }
        let delivered = self.metrics.snapshot().flushed_records.saturating_sub(flushed_before);
        let left = self.events.stop();
        let (spilled, dropped) = self.spill(left, until.max(later(Instant::now(), MIN_SPILL_WAIT))).await;
        if let Some(replay) = &self.replay {
            // Safe to move the replay's offset past what it handed to the buffer only when none
            // of that was dropped: a dropped line is still in the claimed file for the next start.
            replay.finish(dropped == 0);
        }
        if let Some(invalid) = &self.invalid {
            for entry in invalid.stop() {
                pack::lines(&entry.record).for_each(|line| log_invalid(line, "undelivered at shutdown"));
            }
        }
        let report = ShutdownReport {
            delivered_records: usize::try_from(delivered).unwrap_or(usize::MAX),
            spilled_records: spilled,
            dropped_records: dropped,
        };
        tracing::info!(
            delivered = report.delivered_records,
            spilled = report.spilled_records,
            dropped = report.dropped_records,
            "buffer shut down"
        );
        report
    }

    /// Appends the entries to the spill file, waiting for the write until `until`. Returns
    /// (spilled, dropped) record counts.
    async fn spill(&self, left: Vec<Entry>, until: Instant) -> (usize, usize) {
        let records: Vec<Record> = left.into_iter().map(|e| e.record).collect();
        let Some(path) = self.config.spill_path.clone() else {
            return (0, self.drop_records(&records, "no spill path is configured"));
        };
        if records.is_empty() {
            return (0, 0);
        }
        // The blocking task gets its own handles (cheap clones of `Bytes`), so the records are
        // still here to log if the task cannot write them.
        let (target, copy) = (path.clone(), records.clone());
        let writing = tokio::task::spawn_blocking(move || spill::append(&target, &copy));
        let error = match tokio::time::timeout_at(until, writing).await {
            Ok(Ok(Ok(lines))) => {
                self.metrics.add_spilled(records.len());
                tracing::warn!(path = %path.display(), records = records.len(), events = lines, "spilled unacknowledged records");
                return (records.len(), 0);
            }
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the write did not finish by the shutdown deadline (the disk stalled?); the file may hold some of them".to_owned(),
        };
        tracing::error!(path = %path.display(), error = %error, "could not write the spill file");
        (0, self.drop_records(&records, "the spill file could not be written"))
    }

    /// Logs every event of `records` at ERROR (the last place they exist) and counts them.
    fn drop_records(&self, records: &[Record], why: &str) -> usize {
        if records.is_empty() {
            return 0;
        }
        self.metrics.add_dropped(records.len());
        tracing::error!(records = records.len(), why, "dropping undelivered records");
        for line in records.iter().flat_map(|r| pack::lines(r)) {
            tracing::error!(target: "ingest::dropped", event = %String::from_utf8_lossy(line), why, "dropped event");
        }
        records.len()
    }

    async fn run(&self, submission: Submission) -> Result<Receipt, IngestError> {
        let Submission { mode, valid, invalid } = submission;
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(IngestError::ShuttingDown);
        }
        let lines: Vec<Bytes> = invalid.iter().map(Invalid::to_line).collect();
        let valid_bytes: usize = valid.iter().map(|e| e.len() + 1).sum();
        let invalid_bytes: usize = match &self.invalid {
            Some(_) => lines.iter().map(|l| l.len() + 1).sum(),
            None => 0,
        };
        let bytes = valid_bytes + invalid_bytes;
        let limit = self.config.max_buffer_bytes;
        if let Err(buffered) = self.metrics.try_reserve_buffer(bytes, limit) {
            self.metrics.add_rejected();
            return Err(IngestError::Overloaded {
                buffered_bytes: usize::try_from(buffered).unwrap_or(usize::MAX),
                limit_bytes: limit,
                retry_after: self.config.retry_after,
            });
        }
        let ticket = (mode == Mode::Sync && !valid.is_empty()).then(|| Ticket::new(valid.len()));
        if !valid.is_empty() && !self.events.enqueue(&valid, ticket.as_ref()) {
            self.metrics.release_buffer(bytes);
            return Err(IngestError::ShuttingDown);
        }
        self.route_invalid(&lines, invalid_bytes);
        self.metrics.add_accepted(valid.len());
        self.metrics.add_invalid(invalid.len());
        let receipt = Receipt { accepted: valid.len(), invalid: invalid.len(), undelivered: 0 };
        let Some(ticket) = ticket else {
            return Ok(receipt);
        };
        let reason = match tokio::time::timeout(self.config.sync_timeout, ticket.settled()).await {
            Ok(true) => return Ok(receipt),
            Ok(false) => {
                "the server shut down first; they were spilled to disk (or logged) for a later delivery"
                    .to_owned()
            }
            Err(_) => format!(
                "no acknowledgement within {:?}; they stay buffered and will still be delivered, so a retry may duplicate them (at-least-once)",
                self.config.sync_timeout
            ),
        };
        Err(IngestError::Undelivered {
            undelivered: ticket.outstanding().max(1),
            total: valid.len(),
            sink: self.describe.clone(),
            reason,
        })
    }

    /// Queues invalid-event lines for the invalid sink, or logs them at WARN without one.
    fn route_invalid(&self, lines: &[Bytes], reserved: usize) {
        if lines.is_empty() {
            return;
        }
        let Some(pipeline) = &self.invalid else {
            lines.iter().for_each(|line| log_invalid(line, "no invalid sink"));
            return;
        };
        // A line too large for one record would be refused for ever: log it instead.
        let max_record = pipeline.settings.limits.max_record_bytes;
        let too_large = lines.iter().filter(|l| l.len() >= max_record);
        let mut released = 0;
        for line in too_large {
            log_invalid(line, "too large for the invalid sink");
            released += line.len() + 1;
        }
        let fit: Vec<&Bytes> = lines.iter().filter(|l| l.len() < max_record).collect();
        if !pipeline.enqueue(&fit, None) {
            fit.iter().for_each(|line| log_invalid(line, "shutting down"));
            released = reserved;
        }
        self.metrics.release_buffer(released);
    }
}

/// The least time the spill write is waited for, even when the deadline has already passed.
const MIN_SPILL_WAIT: Duration = Duration::from_secs(1);

/// The part of the shutdown deadline kept for the spill write: 200 ms plus `buffered` bytes at
/// 64 MiB/s (a slow disk, synced), at most half the deadline. The flush retries until the rest.
pub fn spill_reserve(buffered: u64, deadline: Duration) -> Duration {
    const RATE: f64 = 64.0 * 1024.0 * 1024.0;
    let write = Duration::from_millis(200) + Duration::from_secs_f64(buffered as f64 / RATE);
    write.min(deadline / 2)
}

impl Ingest for Buffered {
    fn submit(&self, submission: Submission) -> BoxFuture<'_, Result<Receipt, IngestError>> {
        Box::pin(self.run(submission))
    }

    fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
