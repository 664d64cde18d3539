//! Local adapters of [`Sink`]: memory (tests), null (benchmarks), file or stdout (running
//! without AWS), and [`FaultSink`], a deterministic fault injector wrapped around any of them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;

use crate::{BoxFuture, FailedEntry, Limits, Record, Sink, SinkError, pack};

/// Keeps every record it took, for tests to inspect.
///
/// It takes calls that break its [`Limits`] too (a real sink would refuse them, and a refused
/// call would be retried for ever), but counts them in [`MemorySink::violations`] so tests can
/// assert that the batcher respects the limits.
#[derive(Debug)]
pub struct MemorySink {
    limits: Limits,
    state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
struct MemoryState {
    records: Vec<Record>,
    call_sizes: Vec<usize>,
    violations: usize,
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink::new()
    }
}

impl MemorySink {
    /// A memory sink with the Firehose limits.
    pub fn new() -> MemorySink {
        MemorySink::with_limits(Limits::FIREHOSE)
    }

    pub fn with_limits(limits: Limits) -> MemorySink {
        MemorySink { limits, state: Mutex::default() }
    }

    /// Every record taken, in the order taken.
    pub fn records(&self) -> Vec<Record> {
        self.state.lock().records.clone()
    }

    /// Every event taken (the lines of the records, without the newline), in the order taken.
    pub fn events(&self) -> Vec<Bytes> {
        let state = self.state.lock();
        state.records.iter().flat_map(|r| pack::lines(r).map(|line| r.slice_ref(line))).collect()
    }

    /// The number of records of each call, in call order.
    pub fn call_sizes(&self) -> Vec<usize> {
        self.state.lock().call_sizes.clone()
    }

    /// Calls that broke the limits (too many records or bytes in the call, or a record too large).
    pub fn violations(&self) -> usize {
        self.state.lock().violations
    }
}

impl Sink for MemorySink {
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        let bytes: usize = records.iter().map(Bytes::len).sum();
        let too_large = records.iter().any(|r| r.len() > self.limits.max_record_bytes);
        let broken =
            records.len() > self.limits.max_records || bytes > self.limits.max_batch_bytes || too_large;
        if broken {
            tracing::warn!(records = records.len(), bytes, too_large, "memory sink: a call broke the limits");
        }
        let mut state = self.state.lock();
        state.records.extend_from_slice(records);
        state.call_sizes.push(records.len());
        state.violations += usize::from(broken);
        Box::pin(async { Ok(Vec::new()) })
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// Takes everything and keeps nothing: measures the host without a sink's cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn put<'a>(&'a self, _records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn limits(&self) -> Limits {
        Limits::FIREHOSE
    }

    fn describe(&self) -> String {
        "null".to_owned()
    }
}

/// Appends records (newline-delimited JSON) to a file or to stdout, for running without AWS.
///
/// Writes run on the blocking pool so a slow disk never stalls the async workers. Each call is
/// written whole under a FIFO (tokio) lock that the blocking write itself holds, so records of
/// concurrent calls never interleave, calls land in the order they were made, and a cancelled
/// call cannot release the lock before its write finished.
#[derive(Debug)]
pub struct FileSink {
    target: Arc<Target>,
    lock: Arc<tokio::sync::Mutex<()>>,
    describe: String,
}

#[derive(Debug)]
enum Target {
    File(File),
    Stdout,
}

impl Target {
    fn write(&self, data: &[u8]) -> io::Result<()> {
        match self {
            // `&File` is `Write`; the file is opened with O_APPEND, so every write goes to the end
            // even when another process appends to the same file.
            Target::File(file) => {
                let mut file: &File = file;
                file.write_all(data)?;
                file.flush()
            }
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
        }
    }
}

impl FileSink {
    /// Opens `path` for appending, creating the file if it is missing (not its directories). The
    /// file is opened now so a bad path fails at start rather than at the first flush.
    pub fn open(path: impl AsRef<Path>) -> io::Result<FileSink> {
        let path: PathBuf = path.as_ref().to_owned();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileSink {
            target: Arc::new(Target::File(file)),
            lock: Arc::default(),
            describe: format!("file:{}", path.display()),
        })
    }

    /// Writes records to the process's standard output.
    pub fn stdout() -> FileSink {
        FileSink { target: Arc::new(Target::Stdout), lock: Arc::default(), describe: "stdout".to_owned() }
    }
}

impl Sink for FileSink {
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(Vec::new());
            }
            let mut data = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum());
            for record in records {
                data.extend_from_slice(record);
                if !record.ends_with(b"\n") {
                    data.push(b'\n');
                }
            }
            let guard = Arc::clone(&self.lock).lock_owned().await;
            let target = Arc::clone(&self.target);
            let written = tokio::task::spawn_blocking(move || {
                let _guard = guard;
                target.write(&data)
            })
            .await;
            match written {
                Ok(Ok(())) => Ok(Vec::new()),
                Ok(Err(e)) => Err(SinkError::new(self.describe.clone(), e)),
                Err(e) => Err(SinkError::new(self.describe.clone(), e)),
            }
        })
    }

    fn limits(&self) -> Limits {
        Limits::FIREHOSE
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Wraps a sink with deterministic faults, for tests:
///
/// - [`fail_every_kth_entry(k, times)`](FaultSink::fail_every_kth_entry): the entry at every
///   k-th position of all entries ever offered fails `times` times before it is taken. Entries
///   are told apart by their content (a record seen again is the same record being retried), so
///   tests should make records unique, e.g. with an id in every event.
/// - [`fail_calls(n)`](FaultSink::fail_calls): the first `n` calls fail as a whole.
/// - [`delay(d)`](FaultSink::delay): every call takes at least `d` (a slow sink).
/// - [`down`](FaultSink::down) / [`up`](FaultSink::up): while down, every call fails as a whole.
///
/// The entries that do not fail are forwarded to the inner sink in one call, in order; the
/// [`FailedEntry`] indices refer to positions in the slice given to `put`.
#[derive(Debug)]
pub struct FaultSink<S> {
    inner: S,
    every_kth: usize,
    times: u32,
    failing_calls: usize,
    delay: Duration,
    down: AtomicBool,
    calls: AtomicUsize,
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// Entries offered so far, each counted the first time it is seen.
    offered: u64,
    /// Entries chosen to fail, with the failures they still have to go through.
    doomed: HashMap<Bytes, u32>,
    entry_failures: usize,
    call_failures: usize,
}

impl<S: Sink> FaultSink<S> {
    /// No faults until configured.
    pub fn new(inner: S) -> FaultSink<S> {
        FaultSink {
            inner,
            every_kth: 0,
            times: 0,
            failing_calls: 0,
            delay: Duration::ZERO,
            down: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            state: Mutex::default(),
        }
    }

    /// Every `k`-th entry ever offered fails `times` times before it is taken (`k` = 0: none).
    pub fn fail_every_kth_entry(mut self, k: usize, times: u32) -> FaultSink<S> {
        self.every_kth = k;
        self.times = times;
        self
    }

    /// The first `first_n` calls fail as a whole.
    pub fn fail_calls(mut self, first_n: usize) -> FaultSink<S> {
        self.failing_calls = first_n;
        self
    }

    /// Every call waits `delay` before doing anything.
    pub fn delay(mut self, delay: Duration) -> FaultSink<S> {
        self.delay = delay;
        self
    }

    /// From now on every call fails as a whole, until [`FaultSink::up`].
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls made, failed or not.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Entries failed on purpose so far.
    pub fn entry_failures(&self) -> usize {
        self.state.lock().entry_failures
    }

    /// Calls failed as a whole on purpose so far (`fail_calls` and `down`).
    pub fn call_failures(&self) -> usize {
        self.state.lock().call_failures
    }

    fn fail_call(&self, why: &str) -> SinkError {
        self.state.lock().call_failures += 1;
        SinkError::new(self.describe(), io::Error::other(why.to_owned()))
    }

    /// Splits a call into the entries to fail (their positions) and the positions to forward.
    fn choose(&self, records: &[Record]) -> (Vec<usize>, Vec<usize>) {
        let mut failed = Vec::new();
        let mut forwarded = Vec::with_capacity(records.len());
        let mut state = self.state.lock();
        for (i, record) in records.iter().enumerate() {
            match state.doomed.get_mut(record) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    failed.push(i);
                }
                Some(_) => {
                    state.doomed.remove(record);
                    forwarded.push(i);
                }
                None => {
                    state.offered += 1;
                    let k = self.every_kth as u64;
                    if k > 0 && self.times > 0 && state.offered.is_multiple_of(k) {
                        state.doomed.insert(record.clone(), self.times - 1);
                        failed.push(i);
                    } else {
                        forwarded.push(i);
                    }
                }
            }
        }
        state.entry_failures += failed.len();
        (failed, forwarded)
    }
}

impl<S: Sink> Sink for FaultSink<S> {
    fn put<'a>(&'a self, records: &'a [Record]) -> BoxFuture<'a, Result<Vec<FailedEntry>, SinkError>> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.is_down() {
                return Err(self.fail_call("the sink is down"));
            }
            if call < self.failing_calls {
                return Err(self.fail_call("injected call failure"));
            }
            let (failed, forwarded) = self.choose(records);
            let mut entries: Vec<FailedEntry> = failed
                .into_iter()
                .map(|index| FailedEntry {
                    index,
                    code: "ServiceUnavailableException".to_owned(),
                    message: "injected entry failure".to_owned(),
                })
                .collect();
            if !forwarded.is_empty() {
                let batch: Vec<Record> = forwarded.iter().map(|&i| records[i].clone()).collect();
                let inner_failed = self.inner.put(&batch).await?;
                entries.extend(inner_failed.into_iter().filter_map(|mut entry| {
                    entry.index = *forwarded.get(entry.index)?;
                    Some(entry)
                }));
                entries.sort_by_key(|e| e.index);
            }
            Ok(entries)
        })
    }

    fn limits(&self) -> Limits {
        self.inner.limits()
    }

    fn describe(&self) -> String {
        format!("fault({})", self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Record> {
        (0..n).map(|i| pack::single(format!("{{\"id\":{i}}}").as_bytes())).collect()
    }

    #[tokio::test]
    async fn every_kth_entry_fails_the_given_times_then_is_taken() {
        let sink = FaultSink::new(MemorySink::new()).fail_every_kth_entry(3, 2);
        let all = records(7);
        let failed = sink.put(&all).await.unwrap();
        assert_eq!(failed.iter().map(|f| f.index).collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(failed[0].code, "ServiceUnavailableException");
        assert_eq!(sink.inner().records().len(), 5);
        let again = vec![all[2].clone(), all[5].clone()];
        assert_eq!(sink.put(&again).await.unwrap().len(), 2);
        assert!(sink.put(&again).await.unwrap().is_empty());
        assert_eq!(sink.inner().records().len(), 7);
        assert_eq!(sink.entry_failures(), 4);
    }

    #[tokio::test]
    async fn failed_calls_and_down_fail_whole_calls() {
        let sink = FaultSink::new(MemorySink::new()).fail_calls(1);
        assert!(sink.put(&records(2)).await.is_err());
        assert!(sink.put(&records(2)).await.unwrap().is_empty());
        sink.down();
        assert!(sink.put(&records(1)).await.is_err());
        sink.up();
        assert!(sink.put(&records(1)).await.is_ok());
        assert_eq!(sink.call_failures(), 2);
        assert_eq!(sink.inner().records().len(), 3);
    }

    #[tokio::test]
    async fn the_file_sink_appends_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let sink = FileSink::open(&path).unwrap();
        assert_eq!(sink.describe(), format!("file:{}", path.display()));
        sink.put(&[Bytes::from("{\"a\":1}\n{\"b\":2}\n"), Bytes::from("{\"c\":3}")]).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
    }

    #[tokio::test]
    async fn the_memory_sink_counts_calls_that_break_its_limits() {
        let sink =
            MemorySink::with_limits(Limits { max_records: 2, max_batch_bytes: 100, max_record_bytes: 10 });
        sink.put(&records(2)).await.unwrap();
        sink.put(&records(3)).await.unwrap();
        assert_eq!(sink.violations(), 1);
        assert_eq!(sink.call_sizes(), vec![2, 3]);
        assert_eq!(sink.events().len(), 5);
    }
}
