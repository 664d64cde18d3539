//! `file:<path>`: a durable counter in a small text file, safe for several processes.
//!
//! * **Durable before acknowledged.** A count is returned to a caller only after the new value
//!   has reached the disk: written to `<path>.tmp`, `fsync`ed, renamed over `<path>`, and the
//!   directory `fsync`ed. A `kill -9` at any moment leaves either the old or the new file, never
//!   a torn one, and never a value below one already acknowledged.
//! * **Group commit.** Increments queue up for one writer thread; each round takes every
//!   increment waiting and commits them together, so under load the two `fsync`s are paid once
//!   per batch, not once per request.
//! * **Several processes, one file** (two Fargate tasks on one EFS volume): each round holds an
//!   exclusive lock on `<path>.lock` across read-modify-write, and re-reads the file under it.
//!   The lock is `flock(2)`; on NFS (EFS) Linux maps it to a POSIX byte-range lock, which NFSv4
//!   serves, so it holds across hosts as well.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::{BoxFuture, Counter, StoreError};

const STORE: &str = "file";
/// The most increments one commit takes; bounds the latency of the first one in a batch.
const MAX_BATCH: usize = 4096;

type Reply = oneshot::Sender<Result<u64, StoreError>>;

pub struct FileCounter {
    path: PathBuf,
    queue: Mutex<Option<mpsc::UnboundedSender<Reply>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
}

impl FileCounter {
    /// Opens (creating the directory and lock file if needed) and checks that the current file,
    /// if any, holds a count: a corrupt file is a startup error, never silently overwritten.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let disk = Disk::open(&path).map_err(|e| io_error("open", &path, e))?;
        disk.locked(Disk::read)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        let writer = std::thread::Builder::new()
            .name("file-counter".into())
            .spawn(move || writer_loop(disk, rx, &counted))
            .map_err(|e| io_error("start writer for", &path, e))?;
        Ok(FileCounter { path, queue: Mutex::new(Some(tx)), writer: Mutex::new(Some(writer)), commits })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many commits (write + two fsyncs each) this counter has made: fewer than its
    /// increments whenever increments arrived while a commit was in progress.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Counter for FileCounter {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let queued = match &*self.queue.lock() {
            Some(queue) => queue.send(reply).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !queued {
                return Err(StoreError::Closed { store: STORE });
            }
            answer.await.unwrap_or(Err(StoreError::Closed { store: STORE }))
        })
    }

    /// Stops taking increments, lets the writer commit everything already queued, and waits
    /// for it: every increment accepted before `close` is answered and on disk afterwards.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.queue.lock().take();
        let writer = self.writer.lock().take();
        Box::pin(async move {
            if let Some(writer) = writer {
                tokio::task::spawn_blocking(move || writer.join())
                    .await
                    .ok()
                    .and_then(std::result::Result::ok)
                    .ok_or_else(|| StoreError::unavailable(STORE, "file writer thread panicked"))?;
            }
            Ok(())
        })
    }

    fn kind(&self) -> &'static str {
        STORE
    }
}

impl Drop for FileCounter {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has answered everything queued.
        self.queue.get_mut().take();
    }
}

fn writer_loop(disk: Disk, mut queue: mpsc::UnboundedReceiver<Reply>, commits: &AtomicU64) {
    let mut batch: Vec<Reply> = Vec::with_capacity(64);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(reply) => batch.push(reply),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let _span = tracing::debug_span!("file_commit", increments = n).entered();
        match disk.locked(|d| d.add(n)) {
            Ok(total) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (i, reply) in (total - n + 1..).zip(batch.drain(..)) {
                    let _ = reply.send(Ok(i));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, path = %disk.path.display(), "file store commit failed");
                for reply in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The files behind one counter: the count, its temp sibling, the lock, and the directory.
struct Disk {
    path: PathBuf,
    tmp: PathBuf,
    lock: File,
    dir: File,
}

impl Disk {
    fn open(path: &Path) -> io::Result<Disk> {
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir_path)?;
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
            .to_string_lossy()
            .into_owned();
        let lock = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir_path.join(format!("{name}.lock")))?;
        Ok(Disk {
            path: path.to_path_buf(),
            tmp: dir_path.join(format!("{name}.tmp")),
            lock,
            dir: File::open(&dir_path)?,
        })
    }

    fn locked<T>(&self, f: impl FnOnce(&Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.lock.lock().map_err(|e| io_error("lock", &self.path, e))?;
        let result = f(self);
        // Closing the fd would release it too; unlocking explicitly keeps the fd for next time.
        let unlocked = self.lock.unlock().map_err(|e| io_error("unlock", &self.path, e));
        let value = result?;
        unlocked?;
        Ok(value)
    }

    fn read(&self) -> Result<u64, StoreError> {
        let mut text = String::new();
        match File::open(&self.path) {
            Ok(mut f) => f.read_to_string(&mut text).map_err(|e| io_error("read", &self.path, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error("read", &self.path, e)),
        };
        text.trim().parse().map_err(|_| StoreError::Corrupt {
            store: STORE,
            detail: format!("{} holds {:?}, not a count", self.path.display(), truncate(&text)),
        })
    }

    fn add(&self, n: u64) -> Result<u64, StoreError> {
        let total = self
            .read()?
            .checked_add(n)
            .ok_or_else(|| StoreError::Corrupt { store: STORE, detail: "count would overflow u64".into() })?;
        self.write(total).map_err(|e| io_error("write", &self.path, e))?;
        Ok(total)
    }

    fn write(&self, total: u64) -> io::Result<()> {
        let mut tmp = File::create(&self.tmp)?;
        tmp.write_all(format!("{total}\n").as_bytes())?;
        tmp.sync_data()?;
        drop(tmp);
        fs::rename(&self.tmp, &self.path)?;
        self.dir.sync_all()
    }
}

fn truncate(text: &str) -> &str {
    text.char_indices().nth(40).map_or(text, |(i, _)| &text[..i])
}

fn io_error(op: &'static str, path: &Path, e: io::Error) -> StoreError {
    StoreError::unavailable(STORE, format!("{op} {}: {e}", path.display()))
}

/// Counts committed by this module are plain text, so `cat` shows them; this reads one.
pub fn read_count(path: impl AsRef<Path>) -> Result<u64, StoreError> {
    let disk = Disk::open(path.as_ref()).map_err(|e| io_error("open", path.as_ref(), e))?;
    disk.locked(Disk::read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hammer;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hits_are_never_lost_on_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count");
        let counter = Arc::new(FileCounter::open(&path).unwrap());
        let seen = hammer(std::slice::from_ref(&counter), 200).await;
        assert_eq!(seen, (1..=200).collect::<Vec<u64>>());
        counter.close().await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "200\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_increments_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let counter = Arc::new(FileCounter::open(dir.path().join("count")).unwrap());
        hammer(std::slice::from_ref(&counter), 200).await;
        // Group commit: increments that queue while a commit runs go out in the next one.
        let commits = counter.commits();
        eprintln!("200 concurrent increments: {commits} commits");
        assert!(commits < 100, "200 concurrent increments took {commits} commits");
        // One at a time, each increment is its own commit.
        counter.increment().await.unwrap();
        assert_eq!(counter.commits(), commits + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_counters_on_one_file_never_lose_increments() {
        // Two independent opens have two lock descriptors: the same situation as two processes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared");
        let a = Arc::new(FileCounter::open(&path).unwrap());
        let b = Arc::new(FileCounter::open(&path).unwrap());
        let seen = hammer(&[a.clone(), b.clone()], 400).await;
        assert_eq!(seen, (1..=400).collect::<Vec<u64>>(), "no count handed out twice");
        assert_eq!(read_count(&path).unwrap(), 400);
    }

    #[tokio::test]
    async fn the_count_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/count");
        let first = FileCounter::open(&path).unwrap();
        for _ in 0..3 {
            first.increment().await.unwrap();
        }
        first.close().await.unwrap();
        let second = FileCounter::open(&path).unwrap();
        assert_eq!(second.increment().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count");
        fs::write(&path, "twelve").unwrap();
        let err = FileCounter::open(&path).err().expect("corrupt file must not open");
        assert!(err.to_string().contains("twelve"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "twelve");
    }

    #[tokio::test]
    async fn increments_after_close_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let counter = FileCounter::open(dir.path().join("count")).unwrap();
        counter.increment().await.unwrap();
        counter.close().await.unwrap();
        assert!(matches!(counter.increment().await, Err(StoreError::Closed { .. })));
    }
}
