//! Settings of both hosts. The sinks come from the environment on both (`INGEST_SINK`,
//! `INGEST_INVALID_SINK`); the server also takes flags, each with an environment fallback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ingest::{ConfigError, SinkSpec};

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
}

impl LambdaConfig {
    pub fn from_env() -> Result<LambdaConfig, String> {
        let sink = SinkSpec::from_env("INGEST_SINK")
            .map_err(|e: ConfigError| e.to_string())?
            .ok_or("INGEST_SINK is not set (e.g. firehose:<delivery stream>)")?;
        let invalid_sink = SinkSpec::from_env("INGEST_INVALID_SINK").map_err(|e| e.to_string())?;
        let number = |var: &str| -> Result<Option<u64>, String> {
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    v.trim().parse().map(Some).map_err(|_| format!("{var} {v:?} is not a whole number"))
                }
                _ => Ok(None),
            }
        };
        Ok(LambdaConfig {
            sink,
            invalid_sink,
            pack_bytes: number("INGEST_PACK_BYTES")?.map(|n| n as usize),
            budget: Duration::from_millis(number("INGEST_BUDGET_MS")?.unwrap_or(2500)),
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
}
