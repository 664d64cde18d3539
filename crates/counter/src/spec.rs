use std::path::PathBuf;
use std::str::FromStr;

/// The accepted forms of `HITS_STORE`, quoted in every error message.
pub const ACCEPTED_FORMS: &str =
    "memory | file:<path> | dynamodb:<table>[#<shard>/<shards>] | s3:<bucket>/<key>";

/// The most writers a sharded DynamoDB count may have (one per region of a global table).
pub const MAX_SHARDS: u32 = 10;

/// One writer's item of a count kept in several items, `#<index>/<of>`: this writer adds to
/// item `id = index`, and the count is the sum of items `0..of` (see [`crate::dynamodb`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub of: u32,
}

/// Which store to use: what a host reads from `HITS_STORE` (or `hits-server --store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Memory,
    File(PathBuf),
    DynamoDb { table: String, shard: Option<Shard> },
    S3 { bucket: String, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HITS_STORE {value:?}: {why}; accepted forms: {ACCEPTED_FORMS}")]
pub struct ConfigError {
    pub value: String,
    pub why: &'static str,
}

impl FromStr for StoreSpec {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |why| ConfigError { value: value.to_owned(), why };
        let value = value.trim();
        if value == "memory" {
            return Ok(StoreSpec::Memory);
        }
        let Some((scheme, rest)) = value.split_once(':') else {
            return Err(err("unknown store"));
        };
        match scheme {
            "file" if rest.is_empty() => Err(err("file: needs a path")),
            "file" => Ok(StoreSpec::File(PathBuf::from(rest))),
            "dynamodb" => {
                let (table, shard) = match rest.split_once('#') {
                    None => (rest, None),
                    Some((table, shard)) => {
                        let parsed = shard
                            .split_once('/')
                            .and_then(|(i, n)| Some(Shard { index: i.parse().ok()?, of: n.parse().ok()? }));
                        match parsed {
                            Some(s) if s.of >= 1 && s.of <= MAX_SHARDS && s.index < s.of => (table, Some(s)),
                            _ => return Err(err("a shard is #<index>/<shards>, 0 <= index < shards <= 10")),
                        }
                    }
                };
                let valid = (3..=255).contains(&table.len())
                    && table.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if valid {
                    Ok(StoreSpec::DynamoDb { table: table.to_owned(), shard })
                } else {
                    Err(err("a DynamoDB table name is 3-255 characters of [A-Za-z0-9_.-]"))
                }
            }
            "s3" => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
                    Ok(StoreSpec::S3 { bucket: bucket.to_owned(), key: key.to_owned() })
                }
                _ => Err(err("s3: needs <bucket>/<key>")),
            },
            _ => Err(err("unknown store")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_parses() {
        assert_eq!("memory".parse(), Ok(StoreSpec::Memory));
        assert_eq!("file:/mnt/efs/count".parse(), Ok(StoreSpec::File("/mnt/efs/count".into())));
        assert_eq!(
            "dynamodb:hits-Counter-1".parse(),
            Ok(StoreSpec::DynamoDb { table: "hits-Counter-1".into(), shard: None })
        );
        assert_eq!(
            "dynamodb:hits-Counter-1#2/3".parse(),
            Ok(StoreSpec::DynamoDb {
                table: "hits-Counter-1".into(),
                shard: Some(Shard { index: 2, of: 3 })
            })
        );
        assert_eq!(
            "s3:my-bucket/counts/hits".parse(),
            Ok(StoreSpec::S3 { bucket: "my-bucket".into(), key: "counts/hits".into() })
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_accepted_forms() {
        for bad in [
            "redis:x",
            "file:",
            "dynamodb:a",
            "dynamodb:has space",
            "dynamodb:t-1#3/3",
            "dynamodb:t-1#0/11",
            "dynamodb:t-1#1",
            "dynamodb:t-1#a/b",
            "dynamodb:#0/2",
            "s3:bucket",
            "s3:/key",
            "s3:b/",
            "mem",
        ] {
            let e = bad.parse::<StoreSpec>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(ACCEPTED_FORMS), "{msg}");
            assert!(msg.contains(bad), "{msg}");
        }
    }
}
