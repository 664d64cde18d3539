//! The spill file: where the server's buffer puts what the sink had not acknowledged when it
//! shut down, and where it picks it up again at the next start.
//!
//! The format is newline-delimited JSON, one event per line, the same lines the sink receives,
//! so the file can also be read or replayed by hand (`jq`, `aws firehose put-record-batch`).
//!
//! Replay is crash-safe by renaming and an offset: [`claim`] moves `spill.ndjson` to
//! `spill.ndjson.replaying`; a [`Reader`] hands its lines out a chunk at a time (the buffer
//! takes them as it has room, so a spill larger than the buffer never sits in memory whole);
//! [`save_progress`] writes `spill.ndjson.replaying.offset`, the point before which every line
//! was acknowledged by the sink (or, at shutdown, written to a new spill file); and [`release`]
//! removes both once all of it is acknowledged. A crash at any point leaves the `.replaying` file
//! with an offset no further than what was acknowledged, which the next [`claim`] picks up
//! again: nothing is lost, and only the lines acknowledged since the offset was last written
//! may be delivered twice (at-least-once).
//!
//! Blocking std I/O: these run at start, at shutdown, and on a blocking thread during a replay
//! (the offset file, a few bytes, on the runtime), never on the request path.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::event::MAX_EVENT_BYTES;
use crate::{Record, pack};

/// Appends the records' lines to `path` (creating the file, not its directories) and syncs it
/// to disk. Returns the number of lines written.
///
/// If the file ends with a torn line (a crash mid-write), a newline is written first so the new
/// lines stay whole; a [`Reader`] then skips the torn fragment.
pub fn append(path: &Path, records: &[Record]) -> io::Result<usize> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let mut data = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 1);
    if ends_torn(&mut file)? {
        data.push(b'\n');
    }
    let mut lines = 0;
    for record in records {
        for line in pack::lines(record) {
            data.extend_from_slice(line);
            data.push(b'\n');
            lines += 1;
        }
    }
    file.write_all(&data)?;
    file.sync_all()?;
    Ok(lines)
}

/// Checks at start that the spill file can be written at shutdown: opens it for appending,
/// creating it if it is not there (and removing what this created, so nothing is left behind).
/// A path in a directory that does not exist or cannot be written, or a file that cannot be, is
/// found now rather than at SIGTERM, when the events would have nowhere to go.
pub fn check_writable(path: &Path) -> io::Result<()> {
    let existed = path.try_exists()?;
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    drop(file);
    if !existed {
        fs::remove_file(path)?;
    }
    Ok(())
}

/// Whether the file is non-empty and its last byte is not a newline.
fn ends_torn(file: &mut File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// The event lines of a spill file, without their newlines, all at once: for tests and for
/// reading a file by hand. The server replays through a [`Reader`].
pub fn read(path: &Path) -> io::Result<Vec<Bytes>> {
    let mut reader = Reader::from(path, 0)?;
    let mut lines = Vec::new();
    while let Some(chunk) = reader.next_chunk(usize::MAX)? {
        lines.extend(chunk.lines);
    }
    Ok(lines)
}

/// The name a spill file is renamed to while it is being replayed: `<path>.replaying`.
pub fn replaying_path(path: &Path) -> PathBuf {
    suffixed(path, ".replaying")
}

/// Where the replay's progress is kept: `<claimed>.offset`, the byte offset before which every
/// line of the claimed file was acknowledged (decimal text).
pub fn offset_path(claimed: &Path) -> PathBuf {
    suffixed(claimed, ".offset")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the spill file over for replay: renames `path` to `<path>.replaying` and returns the
/// new path, or `None` when there is nothing to replay. When a `.replaying` file is left from a
/// crash or a shutdown during an earlier replay, `path`'s lines are appended to it (and `path`
/// removed), so both are replayed and nothing is lost; its offset stays valid, since only its
/// end grows.
pub fn claim(path: &Path) -> io::Result<Option<PathBuf>> {
    let replaying = replaying_path(path);
    let leftover = replaying.try_exists()?;
    if !leftover {
        // An offset without its file is left from a release cut short: it belongs to nothing.
        remove_if_there(&offset_path(&replaying))?;
    }
    if !path.try_exists()? {
        return Ok(leftover.then_some(replaying));
    }
    if leftover {
        merge(path, &replaying)?;
        fs::remove_file(path)?;
        tracing::warn!(path = %replaying.display(), "merged the spill file into one left from an interrupted replay");
    } else {
        fs::rename(path, &replaying)?;
    }
    Ok(Some(replaying))
}

/// Appends `from` to `to`, streamed (the files may be larger than memory should hold), with a
/// newline first if `to` ends torn, and syncs `to`.
fn merge(from: &Path, to: &Path) -> io::Result<()> {
    let mut target = OpenOptions::new().read(true).append(true).open(to)?;
    if ends_torn(&mut target)? {
        target.write_all(b"\n")?;
    }
    io::copy(&mut File::open(from)?, &mut target)?;
    target.sync_all()
}

/// Records that every line before `offset` of the claimed file is delivered (or safely in a
/// new spill file). Not synced: a crash that loses the write only means the lines since the
/// previous offset are replayed again, and a torn write of the digits only shortens the number.
pub fn save_progress(claimed: &Path, offset: u64) -> io::Result<()> {
    fs::write(offset_path(claimed), offset.to_string())
}

/// Removes a claimed file and its offset once all its lines were acknowledged. Files already
/// gone are fine.
pub fn release(claimed: &Path) -> io::Result<()> {
    remove_if_there(claimed)?;
    remove_if_there(&offset_path(claimed))
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The longest line a reader takes: an event is at most [`MAX_EVENT_BYTES`]; a longer "line" is
/// damage (or not a spill file), skipped without being held in memory whole.
const MAX_LINE_BYTES: usize = MAX_EVENT_BYTES + 1;

/// Lines read from a spill file, and where they were in it.
#[derive(Debug)]
pub struct Chunk {
    /// Event lines, without their newlines.
    pub lines: Vec<Bytes>,
    /// The byte offset of the first line read.
    pub start: u64,
    /// The byte offset just past the last line read (the next chunk's start).
    pub end: u64,
}

impl Chunk {
    /// Buffer bytes the lines take (each with its newline).
    pub fn bytes(&self) -> usize {
        self.lines.iter().map(|l| l.len() + 1).sum()
    }
}

/// Reads a claimed spill file a chunk of lines at a time, from its saved offset on. Empty lines
/// are skipped, and so are lines that are not JSON (a line torn by a crash mid-write), each
/// logged at ERROR so it can be recovered by hand.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    file: BufReader<File>,
    offset: u64,
}

impl Reader {
    /// Opens a claimed file where its offset file says the replay got to (the start when there
    /// is none, or when it does not point just past a line of this file).
    pub fn open(claimed: &Path) -> io::Result<Reader> {
        let saved = match fs::read_to_string(offset_path(claimed)) {
            Ok(text) => text.trim().parse::<u64>().ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let offset = match saved {
            Some(offset) if offset > 0 => {
                if ends_a_line(claimed, offset)? {
                    offset
                } else {
                    tracing::warn!(path = %claimed.display(), offset, "the replay offset does not end a line of the file; replaying it from the start");
                    0
                }
            }
            _ => 0,
        };
        Reader::from(claimed, offset)
    }

    fn from(path: &Path, offset: u64) -> io::Result<Reader> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader { path: path.to_owned(), file: BufReader::with_capacity(64 * 1024, file), offset })
    }

    /// Where the next chunk starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next lines, about `max_bytes` of them (at least one line, however long; `None` at the
    /// end of the file).
    pub fn next_chunk(&mut self, max_bytes: usize) -> io::Result<Option<Chunk>> {
        let start = self.offset;
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        let mut line = Vec::new();
        while bytes < max_bytes {
            line.clear();
            let read = (&mut self.file).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if line.len() > MAX_LINE_BYTES {
                let skipped = self.skip_line()?;
                self.log_skipped(&line, line.len() as u64 + skipped, "longer than any event");
                continue;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err() {
                self.log_skipped(&line, line.len() as u64, "not JSON (torn by a crash mid-write?)");
                continue;
            }
            bytes += line.len() + 1;
            lines.push(Bytes::copy_from_slice(&line));
        }
        if lines.is_empty() && self.offset == start {
            return Ok(None);
        }
        Ok(Some(Chunk { lines, start, end: self.offset }))
    }

    /// Reads past the rest of an overlong line; the bytes skipped.
    fn skip_line(&mut self) -> io::Result<u64> {
        let mut skipped = 0;
        loop {
            let buffer = self.file.fill_buf()?;
            if buffer.is_empty() {
                return Ok(skipped);
            }
            let (used, done) = match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffer.len(), false),
            };
            self.file.consume(used);
            skipped += used as u64;
            self.offset += used as u64;
            if done {
                return Ok(skipped);
            }
        }
    }

    fn log_skipped(&self, line: &[u8], bytes: u64, why: &str) {
        let shown: String = String::from_utf8_lossy(line).chars().take(512).collect();
        tracing::error!(path = %self.path.display(), bytes, line = %shown, why, "skipping a line of the spill file");
    }
}

/// Whether byte `offset - 1` of the file is a newline (`offset` starts a line).
fn ends_a_line(path: &Path, offset: u64) -> io::Result<bool> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() < offset {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(offset - 1))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(byte[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path) -> Vec<String> {
        read(path).unwrap().iter().map(|l| String::from_utf8(l.to_vec()).unwrap()).collect()
    }

    #[test]
    fn records_are_appended_as_one_event_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        assert_eq!(
            append(&path, &[Bytes::from("{\"a\":1}\n{\"b\":2}\n"), Bytes::from("{\"c\":3}\n")]).unwrap(),
            3
        );
        assert_eq!(append(&path, &[Bytes::from("{\"d\":4}\n")]).unwrap(), 1);
        assert_eq!(lines_of(&path), ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}", "{\"d\":4}"]);
    }

    #[test]
    fn a_torn_line_is_skipped_and_the_lines_after_it_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        fs::write(&path, "{\"a\":1}\n\n{\"b\":2}\n{\"c\":").unwrap();
        assert_eq!(lines_of(&path), ["{\"a\":1}", "{\"b\":2}"]);
        append(&path, &[Bytes::from("{\"d\":4}\n")]).unwrap();
        assert_eq!(lines_of(&path), ["{\"a\":1}", "{\"b\":2}", "{\"d\":4}"]);
    }

    #[test]
    fn a_whole_last_line_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        fs::write(&path, "{\"a\":1}\n{\"b\":2}").unwrap();
        assert_eq!(lines_of(&path), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn claim_renames_and_release_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        assert_eq!(claim(&path).unwrap(), None);
        append(&path, &[Bytes::from("{\"a\":1}\n")]).unwrap();
        let claimed = claim(&path).unwrap().unwrap();
        assert_eq!(claimed, dir.path().join("spill.ndjson.replaying"));
        assert!(!path.exists());
        assert_eq!(lines_of(&claimed), ["{\"a\":1}"]);
        release(&claimed).unwrap();
        release(&claimed).unwrap();
        assert!(!claimed.exists());
    }

    #[test]
    fn the_writable_check_leaves_an_existing_file_as_it_was_and_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        check_writable(&path).unwrap();
        assert!(!path.exists(), "no junk left by the check");
        fs::write(&path, "{\"a\":1}\n").unwrap();
        check_writable(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        assert!(check_writable(&dir.path().join("missing").join("spill.ndjson")).is_err());
        assert!(check_writable(dir.path()).is_err(), "a directory is not a file");
    }

    #[test]
    fn a_reader_goes_on_from_the_saved_offset_in_chunks_and_skips_overlong_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson.replaying");
        let overlong = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        fs::write(&path, format!("{{\"a\":1}}\n{{\"b\":2}}\n{overlong}\n{{\"c\":3}}\n{{\"d\":4}}\n"))
            .unwrap();
        let mut reader = Reader::open(&path).unwrap();
        let first = reader.next_chunk(1).unwrap().unwrap();
        assert_eq!((first.lines.len(), first.start, first.end), (1, 0, 8));
        save_progress(&path, first.end).unwrap();
        let mut reader = Reader::open(&path).unwrap();
        assert_eq!(reader.offset(), 8);
        let rest = reader.next_chunk(usize::MAX).unwrap().unwrap();
        let rest: Vec<&[u8]> = rest.lines.iter().map(AsRef::as_ref).collect();
        assert_eq!(rest, [&b"{\"b\":2}"[..], b"{\"c\":3}", b"{\"d\":4}"], "the overlong line is skipped");
        assert!(reader.next_chunk(usize::MAX).unwrap().is_none());
        // An offset that does not end a line (not this file's) means the start.
        save_progress(&path, 3).unwrap();
        assert_eq!(Reader::open(&path).unwrap().offset(), 0);
        save_progress(&path, 1 << 40).unwrap();
        assert_eq!(Reader::open(&path).unwrap().offset(), 0);
        release(&path).unwrap();
        assert!(!path.exists() && !offset_path(&path).exists());
    }

    #[test]
    fn a_fresh_claim_drops_an_offset_left_without_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        let claimed = replaying_path(&path);
        save_progress(&claimed, 8).unwrap();
        append(&path, &[Bytes::from("{\"a\":1}\n{\"b\":2}\n")]).unwrap();
        assert_eq!(claim(&path).unwrap(), Some(claimed.clone()));
        assert_eq!(Reader::open(&claimed).unwrap().offset(), 0, "the old offset belonged to another file");
    }

    #[test]
    fn a_replay_interrupted_by_a_crash_is_merged_with_the_new_spill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        append(&path, &[Bytes::from("{\"old\":1}\n")]).unwrap();
        let claimed = claim(&path).unwrap().unwrap();
        // The process dies during the replay, the next one spills again, then restarts.
        append(&path, &[Bytes::from("{\"new\":2}\n")]).unwrap();
        save_progress(&claimed, 10).unwrap();
        assert_eq!(claim(&path).unwrap(), Some(claimed.clone()));
        assert!(!path.exists());
        assert_eq!(lines_of(&claimed), ["{\"old\":1}", "{\"new\":2}"]);
        assert_eq!(Reader::open(&claimed).unwrap().offset(), 10, "the offset still holds: only the end grew");
        // Only the leftover: it is claimed again as it is.
        assert_eq!(claim(&path).unwrap(), Some(claimed));
    }
}
