//! Configuration: the Lambda reads its environment (template.yaml sets it); the server takes
//! flags with the same environment variables as fallbacks.

use std::net::SocketAddr;
use std::time::Duration;

/// A configuration that cannot work; the process exits with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} = {value:?}: {reason}")]
    Invalid { name: &'static str, value: String, reason: String },
    #[error("--done-table and --messages-table (CALC_TABLE, CALC_MESSAGES_TABLE): {0}")]
    HalfLedger(#[from] queue::HalfLedger),
    #[error("--source {0:?}: use amqp://user:pass@host:port/vhost (RabbitMQ) or an https:// SQS queue URL")]
    Source(String),
    #[error(transparent)]
    Aws(#[from] edge::aws::AwsSettingsError),
}

fn max_x(value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name: "CALC_MAX_X",
            value: value.to_string(),
            reason: "must be a number ≥ 0".into(),
        })
    }
}

/// The Lambda's environment.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub done_table: String,
    pub messages_table: String,
    pub max_x: f64,
    /// Time kept back for the ledger write before the invocation's deadline.
    pub margin: Duration,
    /// The AWS SDK's timeouts (`AWS_CONNECT_TIMEOUT`, `AWS_ATTEMPT_TIMEOUT`,
    /// `AWS_OPERATION_TIMEOUT`, `AWS_MAX_ATTEMPTS`; [`edge::aws`]).
    pub aws: aws_setup::Timeouts,
}

impl LambdaConfig {
    pub fn from_env() -> Result<LambdaConfig, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<LambdaConfig, ConfigError> {
        let required =
            |name: &'static str| get(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
            match get(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                    name,
                    value: v.clone(),
                    reason: "not a number".into(),
                }),
            }
        };
        let margin_ms = number("CALC_MARGIN_MS", queue::worker::DEFAULT_MARGIN.as_millis() as f64)?;
        if !(0.0..=60_000.0).contains(&margin_ms) {
            return Err(ConfigError::Invalid {
                name: "CALC_MARGIN_MS",
                value: margin_ms.to_string(),
                reason: "must be 0–60000".into(),
            });
        }
        Ok(LambdaConfig {
            done_table: required("CALC_TABLE")?,
            messages_table: required("CALC_MESSAGES_TABLE")?,
            max_x: max_x(number("CALC_MAX_X", queue::DEFAULT_MAX_X)?)?,
            margin: Duration::from_millis(margin_ms as u64),
            aws: edge::aws::timeouts_from_vars(&get)?,
        })
    }
}

/// `calc-worker-server`: the worker as a plain process.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "calc-worker-server",
    version,
    about = "Runs calc(x) messages from RabbitMQ or SQS and counts each once"
)]
pub struct ServerArgs {
    /// amqp://user:pass@host:port/vhost (RabbitMQ), or an https:// (or http:// emulator) SQS queue URL.
    #[arg(long, env = "CALC_SOURCE")]
    pub source: String,
    /// The RabbitMQ queue (its dead-letter exchange and queue are <queue>.dlx and <queue>.dlq).
    /// Seed 000's clients publish to rpc_queue (the Kubernetes manifests' setting); a request
    /// with reply_to is answered there.
    #[arg(long, env = "CALC_QUEUE", default_value = "calc")]
    pub queue: String,
    /// DynamoDB table holding `done` (item id = 0). Without the tables, counts in memory.
    #[arg(long, env = "CALC_TABLE")]
    pub done_table: Option<String>,
    /// DynamoDB table of counted message ids (TTL'd).
    #[arg(long, env = "CALC_MESSAGES_TABLE")]
    pub messages_table: Option<String>,
    /// The largest x accepted; larger is poison.
    #[arg(long, env = "CALC_MAX_X", default_value_t = queue::DEFAULT_MAX_X)]
    pub max_x: f64,
    /// Messages in flight at most (RabbitMQ prefetch; SQS messages received and not settled).
    #[arg(long, env = "CALC_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// SQS long-poll wait, seconds (0–20).
    #[arg(long, env = "CALC_WAIT_SECONDS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub wait_seconds: u64,
    /// GET /healthz here: 200 while consuming, 503 while starting or draining.
    #[arg(long, env = "CALC_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    pub health_addr: SocketAddr,
    /// After SIGTERM, how long the messages in flight may take before the process gives up on
    /// them (they are redelivered) and exits non-zero. Keep it above the largest x.
    #[arg(long, env = "CALC_SHUTDOWN_TIMEOUT", default_value = "30", value_parser = edge::server::seconds)]
    pub shutdown_timeout: Duration,
    /// The AWS SDK's timeouts (the DynamoDB ledger, SQS; a long poll gets its wait on top).
    #[command(flatten)]
    pub aws: edge::aws::AwsArgs,
    /// Connection limits of the health port (timeouts, cap): the same flags on every server.
    #[command(flatten)]
    pub http: edge::server::HttpLimits,
}

/// Where messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Amqp { uri: String },
    Sqs { queue_url: String },
}

impl ServerArgs {
    pub fn source(&self) -> Result<Source, ConfigError> {
        let s = self.source.trim();
        if s.starts_with("amqp://") {
            Ok(Source::Amqp { uri: s.to_owned() })
        } else if s.starts_with("https://") || s.starts_with("http://") {
            Ok(Source::Sqs { queue_url: s.to_owned() })
        } else {
            Err(ConfigError::Source(self.source.clone()))
        }
    }

    /// The ledger the table flags name.
    pub fn ledger(&self) -> Result<queue::LedgerSpec, ConfigError> {
        Ok(queue::LedgerSpec::from_tables(self.done_table.clone(), self.messages_table.clone())?)
    }

    pub fn checked_max_x(&self) -> Result<f64, ConfigError> {
        max_x(self.max_x)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_lambda_needs_both_tables_and_takes_max_x() {
        let config = LambdaConfig::from_lookup(lookup(&[
            ("CALC_TABLE", "done"),
            ("CALC_MESSAGES_TABLE", "ids"),
            ("CALC_MAX_X", "2.5"),
        ]))
        .unwrap();
        assert_eq!(
            (config.done_table.as_str(), config.messages_table.as_str(), config.max_x),
            ("done", "ids", 2.5)
        );
        assert_eq!(config.margin, Duration::from_millis(500));
        assert_eq!(config.aws, aws_setup::Timeouts::DEFAULT);
        assert!(matches!(
            LambdaConfig::from_lookup(lookup(&[("CALC_TABLE", "done")])),
            Err(ConfigError::Missing("CALC_MESSAGES_TABLE"))
        ));
        let bad = LambdaConfig::from_lookup(lookup(&[
            ("CALC_TABLE", "d"),
            ("CALC_MESSAGES_TABLE", "m"),
            ("CALC_MAX_X", "-1"),
        ]));
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "CALC_MAX_X", .. })));
        let bad = LambdaConfig::from_lookup(lookup(&[
            ("CALC_TABLE", "d"),
            ("CALC_MESSAGES_TABLE", "m"),
            ("AWS_MAX_ATTEMPTS", "none"),
        ]));
        assert!(matches!(bad, Err(ConfigError::Aws(_))), "{bad:?}");
    }

    #[test]
    fn the_server_source_is_rabbitmq_or_an_sqs_queue_url() {
        let args =
            |source: &str| ServerArgs::try_parse_from(["calc-worker-server", "--source", source]).unwrap();
        assert_eq!(
            args("amqp://guest:guest@localhost:5672/%2f").source().unwrap(),
            Source::Amqp { uri: "amqp://guest:guest@localhost:5672/%2f".into() }
        );
        assert!(matches!(
            args("https://sqs.eu-west-2.amazonaws.com/1/calc").source(),
            Ok(Source::Sqs { .. })
        ));
        assert!(matches!(args("redis://x").source(), Err(ConfigError::Source(_))));
    }

    #[test]
    fn the_rabbitmq_queue_is_calc_unless_a_flag_or_calc_queue_names_another() {
        let parse = |extra: &[&str]| {
            let argv = ["calc-worker-server", "--source", "amqp://localhost"].iter().chain(extra);
            ServerArgs::try_parse_from(argv).unwrap().queue
        };
        assert_eq!(parse(&[]), "calc");
        assert_eq!(parse(&["--queue", "rpc_queue"]), "rpc_queue");
    }

    #[test]
    fn the_health_port_takes_the_connection_limit_flags_of_every_server() {
        let args = |extra: &[&str]| {
            let argv = ["calc-worker-server", "--source", "amqp://localhost"].iter().chain(extra);
            ServerArgs::try_parse_from(argv).unwrap()
        };
        assert_eq!(args(&[]).http, edge::server::HttpLimits::default());
        let set =
            args(&["--header-read-timeout", "2.5", "--idle-timeout", "0", "--max-connections", "64"]).http;
        assert_eq!(set.header_read(), Some(Duration::from_millis(2500)));
        assert_eq!(set.idle(), None, "0 turns it off");
        assert_eq!(set.max_connections, 64);
    }

    #[test]
    fn half_a_dynamodb_ledger_is_refused() {
        let args = |extra: &[&str]| {
            let argv = ["calc-worker-server", "--source", "amqp://localhost"].iter().chain(extra);
            ServerArgs::try_parse_from(argv).unwrap()
        };
        assert!(matches!(args(&["--done-table", "d"]).ledger(), Err(ConfigError::HalfLedger(_))));
        assert_eq!(args(&[]).ledger().unwrap(), queue::LedgerSpec::Memory);
        assert!(args(&["--done-table", "d", "--messages-table", "m"]).ledger().unwrap().is_aws());
    }
}
