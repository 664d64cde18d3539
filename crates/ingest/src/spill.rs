//! The spill file: where the server's buffer puts what the sink had not acknowledged when it
//! shut down, and where it picks it up again at the next start.
//!
//! The format is newline-delimited JSON, one event per line, the same lines the sink receives,
//! so the file can also be read or replayed by hand (`jq`, `aws firehose put-record-batch`).
//!
//! Replay is crash-safe by renaming: [`claim`] moves `spill.ndjson` to
//! `spill.ndjson.replaying`, and [`release`] removes that once the sink acknowledged all of it.
//! A crash in between leaves the `.replaying` file, which the next [`claim`] picks up again, so
//! nothing is lost; some events may then be delivered twice (at-least-once).
//!
//! Blocking std I/O: these run at start and at shutdown, never on the hot path.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::{Record, pack};

/// Appends the records' lines to `path` (creating the file, not its directories) and syncs it
/// to disk. Returns the number of lines written.
///
/// If the file ends with a torn line (a crash mid-write), a newline is written first so the new
/// lines stay whole; [`read`] then skips the torn fragment.
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

/// The event lines of a spill file, without their newlines. Empty lines are skipped, and so are
/// lines that are not JSON (a line torn by a crash mid-write), each logged at ERROR so it can be
/// recovered by hand.
pub fn read(path: &Path) -> io::Result<Vec<Bytes>> {
    let data = Bytes::from(fs::read(path)?);
    let mut lines = Vec::new();
    for line in pack::lines(&data) {
        if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            lines.push(data.slice_ref(line));
        } else {
            let shown: String = String::from_utf8_lossy(line).chars().take(512).collect();
            tracing::error!(path = %path.display(), bytes = line.len(), line = %shown, "skipping a torn line of the spill file");
        }
    }
    Ok(lines)
}

/// The name a spill file is renamed to while it is being replayed: `<path>.replaying`.
pub fn replaying_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".replaying");
    PathBuf::from(name)
}

/// Takes the spill file over for replay: renames `path` to `<path>.replaying` and returns the
/// new path, or `None` when there is nothing to replay. When a `.replaying` file is left from a
/// crash during an earlier replay, `path`'s lines are appended to it (and `path` removed), so
/// both are replayed and nothing is lost.
pub fn claim(path: &Path) -> io::Result<Option<PathBuf>> {
    let replaying = replaying_path(path);
    let leftover = replaying.try_exists()?;
    if !path.try_exists()? {
        return Ok(leftover.then_some(replaying));
    }
    if leftover {
        let data = Bytes::from(fs::read(path)?);
        append(&replaying, &[data])?;
        fs::remove_file(path)?;
        tracing::warn!(path = %replaying.display(), "merged the spill file into one left from an interrupted replay");
    } else {
        fs::rename(path, &replaying)?;
    }
    Ok(Some(replaying))
}

/// Removes a claimed file once all its records were acknowledged. A file already gone is fine.
pub fn release(claimed: &Path) -> io::Result<()> {
    match fs::remove_file(claimed) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
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
    fn a_replay_interrupted_by_a_crash_is_merged_with_the_new_spill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.ndjson");
        append(&path, &[Bytes::from("{\"old\":1}\n")]).unwrap();
        let claimed = claim(&path).unwrap().unwrap();
        // The process dies during the replay, the next one spills again, then restarts.
        append(&path, &[Bytes::from("{\"new\":2}\n")]).unwrap();
        assert_eq!(claim(&path).unwrap(), Some(claimed.clone()));
        assert!(!path.exists());
        assert_eq!(lines_of(&claimed), ["{\"old\":1}", "{\"new\":2}"]);
        // Only the leftover: it is claimed again as it is.
        assert_eq!(claim(&path).unwrap(), Some(claimed));
    }
}
