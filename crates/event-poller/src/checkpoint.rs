//! Where each shard got to: one small file per shard under the mapping's checkpoint directory,
//! holding the stream's ARN and the sequence number of the last record settled.
//!
//! Written only once a batch is settled (the function succeeded with it, or it went to the
//! on-failure destination, or it was filtered out), and atomically: the new content goes to a
//! temporary file, which is flushed to disk and renamed over the old one, and the directory is
//! flushed too. A `kill -9` at any moment leaves the old checkpoint or the new one, never half
//! of one, so a restarted poller resumes after the last settled record: a batch that was in
//! flight is delivered again (at least once, as Lambda does), none is lost.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The checkpoints of one mapping (one stream).
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    stream_arn: String,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    stream_arn: String,
    shard_id: String,
    sequence_number: String,
}

impl Checkpoints {
    /// Creates the directory if needed.
    pub fn open(dir: &Path, stream_arn: &str) -> Result<Checkpoints, Error> {
        fs::create_dir_all(dir).map_err(|source| Error::Checkpoint { path: dir.to_owned(), source })?;
        Ok(Checkpoints { dir: dir.to_owned(), stream_arn: stream_arn.to_owned() })
    }

    fn path(&self, shard: &str) -> PathBuf {
        let name: String = shard
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .collect();
        self.dir.join(format!("{name}.json"))
    }

    /// The sequence number settled last on `shard`, if any. A checkpoint of another stream (a
    /// stream deleted and created again under the same name) or one that cannot be read is
    /// ignored, with a warning.
    pub fn load(&self, shard: &str) -> Result<Option<String>, Error> {
        let path = self.path(shard);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Checkpoint { path, source }),
        };
        match serde_json::from_str::<Saved>(&text) {
            Ok(saved) if saved.stream_arn == self.stream_arn && saved.shard_id == shard => {
                Ok(Some(saved.sequence_number))
            }
            Ok(saved) => {
                tracing::warn!(path = %path.display(), stream = saved.stream_arn, "a checkpoint of another stream; ignored");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "an unreadable checkpoint; ignored");
                Ok(None)
            }
        }
    }

    /// Records that `shard` is settled up to and including `sequence_number`.
    pub fn save(&self, shard: &str, sequence_number: &str) -> Result<(), Error> {
        let path = self.path(shard);
        let saved = Saved {
            stream_arn: self.stream_arn.clone(),
            shard_id: shard.to_owned(),
            sequence_number: sequence_number.to_owned(),
        };
        let tmp = path.with_extension("json.tmp");
        let fail = |source| Error::Checkpoint { path: path.clone(), source };
        let mut file = fs::File::create(&tmp).map_err(fail)?;
        let text = serde_json::to_vec(&saved).map_err(|e| fail(e.into()))?;
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        fs::rename(&tmp, &path).map_err(fail)?;
        // The rename itself is durable once the directory is.
        fs::File::open(&self.dir).and_then(|dir| dir.sync_all()).map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("event-poller-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_saved_checkpoint_is_loaded_back_and_a_new_one_replaces_it() {
        let dir = dir("roundtrip");
        let checkpoints = Checkpoints::open(&dir, "arn:aws:kinesis:eu-west-2:1:stream/s").unwrap();
        assert_eq!(checkpoints.load("shardId-000000000000").unwrap(), None);
        checkpoints.save("shardId-000000000000", "49").unwrap();
        checkpoints.save("shardId-000000000000", "51").unwrap();
        checkpoints.save("shardId-000000000001", "7").unwrap();
        let again = Checkpoints::open(&dir, "arn:aws:kinesis:eu-west-2:1:stream/s").unwrap();
        assert_eq!(again.load("shardId-000000000000").unwrap().as_deref(), Some("51"));
        assert_eq!(again.load("shardId-000000000001").unwrap().as_deref(), Some("7"));
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file is left behind: {names:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_checkpoint_of_another_stream_or_a_torn_file_is_ignored() {
        let dir = dir("other");
        Checkpoints::open(&dir, "arn:old").unwrap().save("shard/1", "5").unwrap();
        let checkpoints = Checkpoints::open(&dir, "arn:new").unwrap();
        assert_eq!(checkpoints.load("shard/1").unwrap(), None);
        fs::write(checkpoints.path("shard/2"), "{\"stream_arn\":").unwrap();
        assert_eq!(checkpoints.load("shard/2").unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
