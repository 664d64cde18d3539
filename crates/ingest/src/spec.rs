//! Which sink to use, from `INGEST_SINK` / `INGEST_INVALID_SINK`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::SharedSink;
use crate::sinks::{FileSink, NullSink};

/// The accepted forms, quoted in every error message.
pub const ACCEPTED_FORMS: &str =
    "stdout | file:<path> | null | firehose:<delivery stream> | kinesis:<stream>";

/// A sink named in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// Newline-delimited JSON on standard output (the local default).
    Stdout,
    /// Appended to a file.
    File(PathBuf),
    /// Taken and forgotten (benchmarks).
    Null,
    /// A Firehose delivery stream (Direct PUT).
    Firehose { stream: String },
    /// A Kinesis data stream.
    Kinesis { stream: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var} {value:?}: {why}; accepted forms: {ACCEPTED_FORMS}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub why: &'static str,
}

impl SinkSpec {
    /// The value of the host's variable `var` (`None` when unset): `Ok(None)` when unset or
    /// empty, errors naming `var`. The host reads its environment; this only parses.
    pub fn from_var(var: &'static str, value: Option<&str>) -> Result<Option<SinkSpec>, ConfigError> {
        match value {
            Some(value) if !value.trim().is_empty() => {
                value.parse().map(Some).map_err(|e: ConfigError| ConfigError { var, ..e })
            }
            _ => Ok(None),
        }
    }

    fn is_aws(&self) -> bool {
        matches!(self, SinkSpec::Firehose { .. } | SinkSpec::Kinesis { .. })
    }

    /// Builds the sink. AWS sinks take their client from `aws` (see [`open_sinks`]).
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    fn open(&self, aws: Option<&Aws>) -> Result<SharedSink, ConfigError> {
        let unsupported = |why| ConfigError { var: "sink", value: format!("{self:?}"), why };
        Ok(match (self, aws) {
            (SinkSpec::Stdout, _) => Arc::new(FileSink::stdout()),
            (SinkSpec::File(path), _) => Arc::new(FileSink::open(path).map_err(|_| ConfigError {
                var: "sink",
                value: path.display().to_string(),
                why: "cannot open the file for appending",
            })?),
            (SinkSpec::Null, _) => Arc::new(NullSink),
            #[cfg(feature = "firehose")]
            (SinkSpec::Firehose { stream }, Some(aws)) => {
                Arc::new(crate::firehose::FirehoseSink::from_config(aws, stream.clone()))
            }
            #[cfg(feature = "kinesis")]
            (SinkSpec::Kinesis { stream }, Some(aws)) => {
                Arc::new(crate::kinesis::KinesisSink::from_config(aws, stream.clone()))
            }
            _ => return Err(unsupported("this build has no AWS sinks (cargo features firehose, kinesis)")),
        })
    }
}

#[cfg(feature = "aws")]
type Aws = aws_config::SdkConfig;
#[cfg(not(feature = "aws"))]
type Aws = ();

/// The SDK configuration handle a host passes to [`open_sinks`]: `aws_setup::Aws` with the
/// `aws` feature; without it (no AWS sink built in) a placeholder.
#[cfg(feature = "aws")]
pub use aws_setup::Aws as AwsConfig;
/// The SDK configuration handle a host passes to [`open_sinks`]: `aws_setup::Aws` with the
/// `aws` feature; without it (no AWS sink built in) a placeholder.
#[cfg(not(feature = "aws"))]
#[derive(Debug, Default)]
pub struct AwsConfig;

/// Why the sinks could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The AWS configuration cannot be used (no region): an AWS sink could never take a record.
    #[error("cannot open {sink}: {why}")]
    Aws { sink: String, why: String },
}

/// Builds the sink and the optional invalid-events sink, taking the AWS configuration from
/// `aws` (loaded once, on first use) only when either needs it. Hosts call this once, at start
/// (Lambda: at init).
pub async fn open_sinks(
    sink: &SinkSpec,
    invalid: Option<&SinkSpec>,
    aws: &AwsConfig,
) -> Result<(SharedSink, Option<SharedSink>), OpenError> {
    let needs_aws = sink.is_aws() || invalid.is_some_and(SinkSpec::is_aws);
    #[cfg(feature = "aws")]
    let aws: Option<&Aws> = if needs_aws {
        let described = if sink.is_aws() { sink } else { invalid.unwrap_or(sink) };
        let config = aws
            .config()
            .await
            .map_err(|e| OpenError::Aws { sink: described.to_string(), why: e.to_string() })?;
        Some(config)
    } else {
        None
    };
    #[cfg(not(feature = "aws"))]
    let aws: Option<&Aws> = {
        let _ = (needs_aws, aws);
        None
    };
    let main = sink.open(aws)?;
    let invalid = invalid.map(|spec| spec.open(aws)).transpose()?;
    Ok((main, invalid))
}

/// The spec as it is written (`firehose:events`), which [`FromStr`] reads back.
impl std::fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkSpec::Stdout => f.write_str("stdout"),
            SinkSpec::File(path) => write!(f, "file:{}", path.display()),
            SinkSpec::Null => f.write_str("null"),
            SinkSpec::Firehose { stream } => write!(f, "firehose:{stream}"),
            SinkSpec::Kinesis { stream } => write!(f, "kinesis:{stream}"),
        }
    }
}

impl FromStr for SinkSpec {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let err = |why| ConfigError { var: "sink", value: value.to_owned(), why };
        let value = value.trim();
        match value {
            "stdout" => return Ok(SinkSpec::Stdout),
            "null" => return Ok(SinkSpec::Null),
            _ => {}
        }
        let Some((scheme, rest)) = value.split_once(':') else {
            return Err(err("unknown sink"));
        };
        // Firehose: 1-64 of [a-zA-Z0-9_.-]; Kinesis: 1-128 of the same.
        let name_ok = |max: usize| {
            (1..=max).contains(&rest.len())
                && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        match scheme {
            "file" if rest.is_empty() => Err(err("file: needs a path")),
            "file" => Ok(SinkSpec::File(PathBuf::from(rest))),
            "firehose" if name_ok(64) => Ok(SinkSpec::Firehose { stream: rest.to_owned() }),
            "firehose" => Err(err("a delivery stream name is 1-64 characters of [A-Za-z0-9_.-]")),
            "kinesis" if name_ok(128) => Ok(SinkSpec::Kinesis { stream: rest.to_owned() }),
            "kinesis" => Err(err("a stream name is 1-128 characters of [A-Za-z0-9_.-]")),
            _ => Err(err("unknown sink")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_form_parses() {
        assert_eq!("stdout".parse(), Ok(SinkSpec::Stdout));
        assert_eq!("null".parse(), Ok(SinkSpec::Null));
        assert_eq!("file:/tmp/e.ndjson".parse(), Ok(SinkSpec::File("/tmp/e.ndjson".into())));
        assert_eq!("firehose:events-1".parse(), Ok(SinkSpec::Firehose { stream: "events-1".into() }));
        assert_eq!(" kinesis:s.1 ".parse(), Ok(SinkSpec::Kinesis { stream: "s.1".into() }));
    }

    #[test]
    fn a_spec_is_written_as_it_is_read() {
        for form in ["stdout", "null", "file:/tmp/e.ndjson", "firehose:events-1", "kinesis:s.1"] {
            assert_eq!(form.parse::<SinkSpec>().unwrap().to_string(), form);
        }
    }

    #[test]
    fn bad_forms_say_what_is_accepted() {
        for bad in ["", "memory", "file:", "firehose:", "firehose:a b", "kinesis:x/y", "s3:b/k"] {
            let e = bad.parse::<SinkSpec>().unwrap_err();
            assert!(e.to_string().contains(ACCEPTED_FORMS), "{bad}: {e}");
        }
        let long = format!("firehose:{}", "a".repeat(65));
        assert!(long.parse::<SinkSpec>().is_err());
    }
}
