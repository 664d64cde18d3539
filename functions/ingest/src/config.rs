//! Settings of both hosts. The sinks come from the environment on both (`INGEST_SINK`,
//! `INGEST_INVALID_SINK`); the server also takes flags, each with an environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ingest::{ConfigError, SinkSpec};

use crate::cors::{AllowedOrigins, BadOrigins};

/// `ingest-server`: the batching server (EC2, Fargate, Kubernetes).
#[derive(Debug, Clone, Parser)]
#[command(name = "ingest-server", version, about, long_about = None)]
pub struct ServerArgs {
    /// Where to listen (port 0 picks a free port and prints it).
    #[arg(long, env = "INGEST_ADDR", default_value = "0.0.0.0:8000")]
    pub addr: SocketAddr,
    /// Where valid events go: stdout | file:<path> | null | firehose:<stream> | kinesis:<stream>.
    #[arg(long, env = "INGEST_SINK", default_value = "stdout")]
    pub sink: SinkSpec,
    /// Where invalid events go (as {"index","error","event"} lines); unset: logged at WARN.
    #[arg(long, env = "INGEST_INVALID_SINK")]
    pub invalid_sink: Option<SinkSpec>,
    /// Which browser origins may read the answers of /events (CORS): * (any) or a
    /// comma-separated list such as https://example.com,http://localhost:8080. Other origins get
    /// no CORS headers; their requests are still handled as any other.
    #[arg(long, env = "INGEST_ALLOWED_ORIGINS", default_value = "*")]
    pub allowed_origins: AllowedOrigins,
    /// Bytes accepted but not yet acknowledged by the sink before new requests get 503.
    #[arg(long, env = "INGEST_BUFFER_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub buffer_bytes: usize,
    /// How long the first buffered event waits for company before its batch is sent.
    #[arg(long, env = "INGEST_LINGER_MS", default_value_t = 200)]
    pub linger_ms: u64,
    /// Sink calls in flight at once.
    #[arg(long, env = "INGEST_MAX_IN_FLIGHT", default_value_t = 4)]
    pub max_in_flight: usize,
    /// Most bytes per record (events are packed into records; 0 = one event per record).
    /// Default: the sink's record limit (1,000 KiB for Firehose).
    #[arg(long, env = "INGEST_PACK_BYTES")]
    pub pack_bytes: Option<usize>,
    /// Where events that could not be delivered by the shutdown deadline are written, to be
    /// replayed on the next start. `off` disables it (they are then logged and counted dropped).
    #[arg(long, env = "INGEST_SPILL", default_value = "ingest-spill.ndjson")]
    pub spill: String,
    /// Seconds a sync request waits for the sink's acknowledgement before 503.
    #[arg(long, env = "INGEST_SYNC_TIMEOUT", default_value = "10", value_parser = edge::server::seconds)]
    pub sync_timeout: Duration,
    /// Seconds from SIGTERM to exit: in-flight requests finish, the buffer is flushed, the rest
    /// is spilled. Keep it under the platform's grace period (Fargate stopTimeout, k8s
    /// terminationGracePeriodSeconds).
    #[arg(long, env = "INGEST_SHUTDOWN_TIMEOUT", default_value = "25", value_parser = edge::server::seconds)]
    pub shutdown_timeout: Duration,
    /// The AWS SDK's timeouts (Firehose and Kinesis sinks): a stalled sink fails a call within them.
    #[command(flatten)]
    pub aws: edge::aws::AwsArgs,
    /// Connection limits (timeouts, cap): the same flags on every server.
    #[command(flatten)]
    pub http: edge::server::HttpLimits,
}

impl ServerArgs {
    pub fn spill_path(&self) -> Option<PathBuf> {
        (self.spill != "off" && !self.spill.is_empty()).then(|| PathBuf::from(&self.spill))
    }

    pub fn buffer_config(&self) -> Result<ingest::batcher::BufferConfig, ArgsError> {
        if self.max_in_flight == 0 {
            return Err(ArgsError("--max-in-flight must be at least 1"));
        }
        Ok(ingest::batcher::BufferConfig {
            max_buffer_bytes: self.buffer_bytes,
            linger: Duration::from_millis(self.linger_ms),
            max_in_flight: self.max_in_flight,
            pack_cap: self.pack_bytes,
            spill_path: self.spill_path(),
            sync_timeout: self.sync_timeout,
            ..Default::default()
        })
    }
}

/// A combination of flags the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgsError(&'static str);

/// The Lambda's settings, from its environment (template.yaml).
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub sink: SinkSpec,
    pub invalid_sink: Option<SinkSpec>,
    pub pack_bytes: Option<usize>,
    /// How long one request may spend retrying the sink's failed entries.
    pub budget: Duration,
    /// `INGEST_ALLOWED_ORIGINS` (template parameter `IngestAllowedOrigins`), `*` when unset.
    pub allowed_origins: AllowedOrigins,
    /// The AWS SDK's timeouts (`AWS_CONNECT_TIMEOUT`, `AWS_ATTEMPT_TIMEOUT`,
    /// `AWS_OPERATION_TIMEOUT`, `AWS_MAX_ATTEMPTS`; [`edge::aws`]).
    pub aws: aws_setup::Timeouts,
}

/// A Lambda environment the function cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum LambdaConfigError {
    #[error(transparent)]
    Sink(#[from] ConfigError),
    #[error("INGEST_SINK is not set (e.g. firehose:<delivery stream>)")]
    NoSink,
    #[error("{var} {value:?} is not a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
    #[error("INGEST_ALLOWED_ORIGINS: {0}")]
    Origins(#[from] BadOrigins),
}

impl LambdaConfig {
    /// The settings from the variables `var` gives (`std::env::var` in `main`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<LambdaConfig, LambdaConfigError> {
        let sink = SinkSpec::from_var("INGEST_SINK", var("INGEST_SINK").as_deref())?
            .ok_or(LambdaConfigError::NoSink)?;
        let invalid_sink = SinkSpec::from_var("INGEST_INVALID_SINK", var("INGEST_INVALID_SINK").as_deref())?;
        let number = |name: &'static str| -> Result<Option<u64>, LambdaConfigError> {
            match var(name) {
                Some(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| LambdaConfigError::NotANumber { var: name, value: v.clone() }),
                _ => Ok(None),
            }
        };
        Ok(LambdaConfig {
            sink,
            invalid_sink,
            pack_bytes: number("INGEST_PACK_BYTES")?.and_then(|n| usize::try_from(n).ok()),
            budget: Duration::from_millis(number("INGEST_BUDGET_MS")?.unwrap_or(2500)),
            allowed_origins: match var("INGEST_ALLOWED_ORIGINS") {
                Some(value) => value.parse()?,
                None => AllowedOrigins::Any,
            },
            aws: edge::aws::timeouts_from_vars(&var)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_defaults_are_the_documented_ones() {
        let args = ServerArgs::try_parse_from(["ingest-server"]).unwrap();
        assert_eq!(args.addr.to_string(), "0.0.0.0:8000");
        assert_eq!(args.sink, SinkSpec::Stdout);
        let config = args.buffer_config().unwrap();
        assert_eq!(config.max_buffer_bytes, 64 * 1024 * 1024);
        assert_eq!(config.linger, Duration::from_millis(200));
        assert_eq!(config.spill_path, Some(PathBuf::from("ingest-spill.ndjson")));
        assert_eq!(args.aws.timeouts().unwrap(), aws_setup::Timeouts::DEFAULT);
        assert_eq!(args.http, edge::server::HttpLimits::default());
        assert_eq!(args.allowed_origins, AllowedOrigins::Any);
    }

    #[test]
    fn allowed_origins_come_from_the_flag_or_the_variable_on_both_hosts() {
        let args = ServerArgs::try_parse_from([
            "ingest-server",
            "--allowed-origins",
            "https://a.example,http://b:8080",
        ])
        .unwrap();
        let list = AllowedOrigins::List(vec!["https://a.example".into(), "http://b:8080".into()]);
        assert_eq!(args.allowed_origins, list);
        let e = ServerArgs::try_parse_from(["ingest-server", "--allowed-origins", "https://a.example/"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("has a path"), "{e}");
        let vars = |origins: &'static str| {
            move |name: &str| match name {
                "INGEST_SINK" => Some("null".to_owned()),
                "INGEST_ALLOWED_ORIGINS" => Some(origins.to_owned()),
                _ => None,
            }
        };
        assert_eq!(
            LambdaConfig::from_vars(vars("https://a.example, http://b:8080")).unwrap().allowed_origins,
            list
        );
        assert_eq!(LambdaConfig::from_vars(vars("*")).unwrap().allowed_origins, AllowedOrigins::Any);
        let e = LambdaConfig::from_vars(vars("a.example")).unwrap_err().to_string();
        assert!(e.starts_with("INGEST_ALLOWED_ORIGINS: ") && e.contains("no scheme"), "{e}");
    }

    #[test]
    fn bad_server_flags_are_explained() {
        let e = ServerArgs::try_parse_from(["ingest-server", "--sink", "s3:x"]).unwrap_err().to_string();
        assert!(e.contains("accepted forms"), "{e}");
        let args =
            ServerArgs::try_parse_from(["ingest-server", "--spill", "off", "--max-in-flight", "0"]).unwrap();
        assert_eq!(args.spill_path(), None);
        assert!(args.buffer_config().unwrap_err().to_string().contains("at least 1"));
    }

    #[test]
    fn the_lambda_needs_a_sink_and_whole_numbers() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let config =
            LambdaConfig::from_vars(vars(&[("INGEST_SINK", "firehose:events"), ("INGEST_BUDGET_MS", "900")]))
                .unwrap();
        assert_eq!(config.sink, SinkSpec::Firehose { stream: "events".into() });
        assert_eq!(config.budget, Duration::from_millis(900));
        assert_eq!(config.allowed_origins, AllowedOrigins::Any, "any origin unless told");
        assert!(matches!(LambdaConfig::from_vars(vars(&[])), Err(LambdaConfigError::NoSink)));
        let bad = LambdaConfig::from_vars(vars(&[("INGEST_SINK", "null"), ("INGEST_PACK_BYTES", "1k")]));
        assert!(bad.unwrap_err().to_string().contains("INGEST_PACK_BYTES"));
        let bad = LambdaConfig::from_vars(vars(&[("INGEST_SINK", "s3:x")]));
        assert!(bad.unwrap_err().to_string().contains("INGEST_SINK"));
        assert_eq!(config.aws, aws_setup::Timeouts::DEFAULT);
        let bad = LambdaConfig::from_vars(vars(&[("INGEST_SINK", "null"), ("AWS_OPERATION_TIMEOUT", "x")]));
        assert!(bad.unwrap_err().to_string().contains("AWS_OPERATION_TIMEOUT"));
    }
}
