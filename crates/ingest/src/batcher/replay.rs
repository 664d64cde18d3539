//! The replay of a spill file at start, under the buffer's byte cap.
//!
//! A task reads the claimed file a chunk at a time ([`spill::Reader`], on a blocking thread) and
//! queues each chunk as there is room: the replay's own bytes in the buffer stay within half of
//! `max_buffer_bytes` (the other half is for new requests), and every chunk is reserved against
//! the whole cap like a submission. What has not been read stays on disk.
//!
//! Progress is kept by offset. Each chunk carries a ticket; once the sink acknowledged every line
//! of the chunks before an offset, that offset is written next to the file
//! ([`spill::save_progress`]), and once everything is acknowledged the file goes
//! ([`spill::release`]). A crash replays from the last offset written (at-least-once, nothing
//! lost). A shutdown stops the reading; after the buffer's leftovers are in the new spill file,
//! the offset moves to the end of what was read ([`Replay::finish`]), so the next start goes on
//! where this one stopped without repeating what was spilled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{Pipeline, Ticket};
use crate::metrics::Metrics;
use crate::spill::{self, Chunk, Reader};

/// The most bytes read in one chunk: a chunk is one ticket and one reservation.
const MAX_CHUNK_BYTES: usize = 1024 * 1024;

/// One spill file being replayed.
pub(super) struct Replay {
    claimed: PathBuf,
    progress: Mutex<Progress>,
    /// Shutdown began: read no further.
    stopping: AtomicBool,
    stop: Notify,
    /// Bytes left the buffer (shared with the pipelines); also notified when a chunk settles.
    released: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Progress {
    /// Every line before this offset was handed to the buffer.
    taken: u64,
    /// Every line before this offset was acknowledged (what the offset file says).
    acked: u64,
    /// Chunks handed over and not yet part of `acked`, by start offset.
    pending: BTreeMap<u64, Pending>,
    /// The replay's bytes in the buffer, not yet acknowledged.
    in_buffer: usize,
    /// The whole file was read.
    eof: bool,
    /// The file was released, or the shutdown settled it: nothing more to do.
    finished: bool,
}

#[derive(Debug)]
struct Pending {
    end: u64,
    bytes: usize,
    acked: bool,
}

/// How much of the buffer the replay may take.
#[derive(Debug, Clone, Copy)]
struct Room {
    /// The buffer's cap (`max_buffer_bytes`).
    cap: usize,
    /// The replay's share of it.
    budget: usize,
    /// Bytes per chunk read.
    chunk: usize,
}

impl Room {
    fn new(cap: usize) -> Room {
        let budget = (cap / 2).max(1);
        Room { cap, budget, chunk: (budget / 4).clamp(1, MAX_CHUNK_BYTES) }
    }
}

impl Replay {
    /// Spawns the replay of `claimed` from where `reader` stands into `events`.
    pub(super) fn start(
        runtime: &tokio::runtime::Handle,
        claimed: PathBuf,
        reader: Reader,
        events: Arc<Pipeline>,
        metrics: Arc<Metrics>,
        released: Arc<Notify>,
        max_buffer_bytes: usize,
    ) -> Arc<Replay> {
        let offset = reader.offset();
        tracing::info!(path = %claimed.display(), from_byte = offset, "replaying the spill file");
        let replay = Arc::new(Replay {
            claimed,
            progress: Mutex::new(Progress { taken: offset, acked: offset, ..Progress::default() }),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            released,
        });
        let room = Room::new(max_buffer_bytes);
        runtime.spawn(Arc::clone(&replay).run(reader, events, metrics, room));
        replay
    }

    /// Shutdown began: the replay reads nothing more.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    /// At shutdown, once the buffer's leftovers are spilled: when `spilled` (nothing was dropped),
    /// every line handed to the buffer is acknowledged or in the new spill file, so the file is
    /// released if it was read to the end, or its offset moves to the end of what was read.
    /// Otherwise the offset stays at what the sink acknowledged, and the next start replays the
    /// rest again.
    pub(super) fn finish(&self, spilled: bool) {
        let mut progress = self.progress.lock();
        if progress.finished {
            return;
        }
        progress.finished = true;
        if !spilled {
            tracing::warn!(path = %self.claimed.display(), from_byte = progress.acked, "the spill file stays for the next start");
            return;
        }
        if progress.eof {
            self.release();
        } else {
            let taken = progress.taken;
            self.save(taken);
            tracing::info!(path = %self.claimed.display(), from_byte = taken, "the rest of the spill file stays for the next start");
        }
    }

    async fn run(
        self: Arc<Self>,
        mut reader: Reader,
        events: Arc<Pipeline>,
        metrics: Arc<Metrics>,
        room: Room,
    ) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let read = tokio::task::spawn_blocking(move || {
                let chunk = reader.next_chunk(room.chunk);
                (reader, chunk)
            })
            .await;
            let chunk = match read {
                Ok((back, Ok(chunk))) => {
                    reader = back;
                    chunk
                }
                Ok((_, Err(e))) => {
                    tracing::error!(path = %self.claimed.display(), error = %e, "cannot read the spill file; the rest of it stays for the next start");
                    return;
                }
                Err(e) => {
                    tracing::error!(path = %self.claimed.display(), error = %e, "the spill reader failed; the rest of the file stays for the next start");
                    return;
                }
            };
            let Some(chunk) = chunk else {
                self.read_to_end();
                return;
            };
            if chunk.lines.is_empty() {
                self.skipped(&chunk);
                continue;
            }
            let bytes = chunk.bytes();
            if !self.wait_for_room(bytes, &metrics, room).await {
                return;
            }
            let ticket = Ticket::new(chunk.lines.len());
            {
                // Under the lock, so that a shutdown reads `taken` either before this chunk was
                // queued or after it counted.
                let mut progress = self.progress.lock();
                if !events.enqueue(&chunk.lines, Some(&ticket)) {
                    drop(progress);
                    metrics.release_buffer(bytes);
                    return;
                }
                progress.taken = chunk.end;
                progress.in_buffer += bytes;
                progress.pending.insert(chunk.start, Pending { end: chunk.end, bytes, acked: false });
            }
            metrics.add_replayed(chunk.lines.len());
            let (replay, start) = (Arc::clone(&self), chunk.start);
            tokio::spawn(async move {
                if ticket.settled().await {
                    replay.acknowledged(start);
                }
            });
        }
    }

    /// Waits until `bytes` more fit in the replay's share and in the buffer, and reserves them;
    /// `false` when the shutdown came first. A chunk larger than the whole buffer (a buffer
    /// smaller than one event) goes in alone once the buffer is empty, so the replay always ends.
    async fn wait_for_room(&self, bytes: usize, metrics: &Metrics, room: Room) -> bool {
        loop {
            let mut released = std::pin::pin!(self.released.notified());
            released.as_mut().enable();
            let mut stop = std::pin::pin!(self.stop.notified());
            stop.as_mut().enable();
            if self.stopping.load(Ordering::SeqCst) {
                return false;
            }
            let in_buffer = self.progress.lock().in_buffer;
            if in_buffer == 0 || in_buffer + bytes <= room.budget {
                if metrics.try_reserve_buffer(bytes, room.cap).is_ok() {
                    return true;
                }
                if in_buffer == 0 && bytes > room.cap && metrics.buffer_bytes() == 0 {
                    tracing::warn!(
                        bytes,
                        cap = room.cap,
                        "a spilled line is larger than the whole buffer; replaying it alone"
                    );
                    metrics.reserve_buffer(bytes);
                    return true;
                }
            }
            tokio::select! {
                () = released => {}
                () = stop => {}
            }
        }
    }

    /// The sink acknowledged every line of the chunk that starts at `start`.
    fn acknowledged(&self, start: u64) {
        let mut progress = self.progress.lock();
        let Some(chunk) = progress.pending.get_mut(&start) else {
            return;
        };
        chunk.acked = true;
        let bytes = chunk.bytes;
        progress.in_buffer = progress.in_buffer.saturating_sub(bytes);
        self.advance(&mut progress);
        drop(progress);
        self.released.notify_waiters();
    }

    /// A chunk of skipped lines only (torn, not JSON): nothing to deliver, so it counts as
    /// handed over and acknowledged.
    fn skipped(&self, chunk: &Chunk) {
        let mut progress = self.progress.lock();
        progress.taken = chunk.end;
        progress.pending.insert(chunk.start, Pending { end: chunk.end, bytes: 0, acked: true });
        self.advance(&mut progress);
    }

    fn read_to_end(&self) {
        let mut progress = self.progress.lock();
        progress.eof = true;
        self.advance(&mut progress);
    }

    /// Moves `acked` over the acknowledged chunks at the front, and writes it down; releases the
    /// file once it was read to the end and all of it is acknowledged.
    fn advance(&self, progress: &mut Progress) {
        let before = progress.acked;
        while let Some(first) = progress.pending.first_entry() {
            if !first.get().acked {
                break;
            }
            progress.acked = first.remove().end;
        }
        if progress.finished {
            return;
        }
        if progress.eof && progress.pending.is_empty() {
            progress.finished = true;
            self.release();
        } else if progress.acked > before {
            self.save(progress.acked);
        }
    }

    /// Writes the offset down (a few bytes, not synced: see [`spill::save_progress`]).
    fn save(&self, offset: u64) {
        if let Err(e) = spill::save_progress(&self.claimed, offset) {
            tracing::warn!(path = %self.claimed.display(), offset, error = %e, "cannot write the replay's offset; a restart would replay more again");
        }
    }

    fn release(&self) {
        match spill::release(&self.claimed) {
            Ok(()) => tracing::info!(path = %self.claimed.display(), "spill file replayed; removed"),
            Err(e) => {
                tracing::error!(path = %self.claimed.display(), error = %e, "could not remove the replayed spill file");
            }
        }
    }
}
