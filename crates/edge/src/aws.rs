//! The AWS SDK's timeouts as the hosts take them ([`aws_setup::Timeouts`]): the same four
//! settings on every host, flags with environment fallbacks on the servers ([`AwsArgs`],
//! flattened into each server's arguments), the same variables on the Lambdas
//! ([`timeouts_from_vars`]).
//!
//! | flag | variable | default | what |
//! |---|---|---|---|
//! | `--aws-connect-timeout` | `AWS_CONNECT_TIMEOUT` | 2 | seconds to open a connection (DNS, TCP, TLS) |
//! | `--aws-attempt-timeout` | `AWS_ATTEMPT_TIMEOUT` | 3 | seconds per attempt (connect, request, whole response) |
//! | `--aws-operation-timeout` | `AWS_OPERATION_TIMEOUT` | 6 | seconds per call, every attempt and pause included |
//! | `--aws-max-attempts` | `AWS_MAX_ATTEMPTS` | 3 | attempts per call, the first included (the SDK's own variable) |

use std::time::Duration;

use aws_setup::Timeouts;

use crate::server::seconds;

/// The SDK timeouts of a server, each flag with its environment variable as fallback.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AwsArgs {
    /// Seconds to open a connection to an AWS endpoint (DNS, TCP, TLS).
    #[arg(long = "aws-connect-timeout", env = "AWS_CONNECT_TIMEOUT", default_value = "2", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Seconds one attempt of an AWS call may take (connect, request, the whole response).
    #[arg(long = "aws-attempt-timeout", env = "AWS_ATTEMPT_TIMEOUT", default_value = "3", value_parser = seconds)]
    pub attempt_timeout: Duration,
    /// Seconds one AWS call may take, retries and the pauses between them included: the longest
    /// a stalled store, sink or ledger holds a request before it fails (503).
    #[arg(long = "aws-operation-timeout", env = "AWS_OPERATION_TIMEOUT", default_value = "6", value_parser = seconds)]
    pub operation_timeout: Duration,
    /// Attempts per AWS call, the first included (1: no retries).
    #[arg(long = "aws-max-attempts", env = "AWS_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
}

impl Default for AwsArgs {
    fn default() -> Self {
        let t = Timeouts::DEFAULT;
        AwsArgs {
            connect_timeout: t.connect,
            attempt_timeout: t.attempt,
            operation_timeout: t.operation,
            max_attempts: t.max_attempts,
        }
    }
}

impl AwsArgs {
    /// The timeouts, if they make sense together (see [`Timeouts::check`]).
    pub fn timeouts(&self) -> Result<Timeouts, AwsSettingsError> {
        Ok(Timeouts {
            connect: self.connect_timeout,
            attempt: self.attempt_timeout,
            operation: self.operation_timeout,
            max_attempts: self.max_attempts,
        }
        .check()?)
    }
}

/// AWS timeout settings a host cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsSettingsError {
    #[error("{var} = {value:?}: not a number of seconds")]
    Seconds { var: &'static str, value: String },
    #[error("{var} = {value:?}: not a whole number of at least 1")]
    Attempts { var: &'static str, value: String },
    /// Values that cannot all apply (--aws-… flags, AWS_… variables).
    #[error("{0} (--aws-*-timeout / AWS_*_TIMEOUT)")]
    Inconsistent(#[from] aws_setup::Error),
}

/// The Lambdas' timeouts from the variables `var` gives (`std::env::var` in `main`): the same
/// names and defaults as [`AwsArgs`]; unset or empty means the default.
pub fn timeouts_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Timeouts, AwsSettingsError> {
    let get = |name: &'static str| var(name).filter(|v| !v.trim().is_empty());
    let duration = |name: &'static str, default: Duration| match get(name) {
        None => Ok(default),
        Some(v) => seconds(&v).map_err(|_| AwsSettingsError::Seconds { var: name, value: v }),
    };
    let d = Timeouts::DEFAULT;
    let max_attempts = match get("AWS_MAX_ATTEMPTS") {
        None => d.max_attempts,
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(AwsSettingsError::Attempts { var: "AWS_MAX_ATTEMPTS", value: v })?,
    };
    Ok(Timeouts {
        connect: duration("AWS_CONNECT_TIMEOUT", d.connect)?,
        attempt: duration("AWS_ATTEMPT_TIMEOUT", d.attempt)?,
        operation: duration("AWS_OPERATION_TIMEOUT", d.operation)?,
        max_attempts,
    }
    .check()?)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        aws: AwsArgs,
    }

    fn parse(args: &[&str]) -> Result<AwsArgs, String> {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map(|cli| cli.aws)
            .map_err(|e| e.to_string())
    }

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_flags_default_to_the_timeouts_defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args, AwsArgs::default());
        assert_eq!(args.timeouts().unwrap(), Timeouts::DEFAULT);
        assert_eq!(timeouts_from_vars(vars(&[])).unwrap(), Timeouts::DEFAULT);
    }

    #[test]
    fn flags_and_variables_set_each_timeout_in_seconds() {
        let args = parse(&[
            "--aws-connect-timeout=0.25",
            "--aws-attempt-timeout",
            "1",
            "--aws-operation-timeout=2.5",
            "--aws-max-attempts=2",
        ])
        .unwrap();
        let expected = Timeouts {
            connect: Duration::from_millis(250),
            attempt: Duration::from_secs(1),
            operation: Duration::from_millis(2500),
            max_attempts: 2,
        };
        assert_eq!(args.timeouts().unwrap(), expected);
        let from_vars = timeouts_from_vars(vars(&[
            ("AWS_CONNECT_TIMEOUT", "0.25"),
            ("AWS_ATTEMPT_TIMEOUT", "1"),
            ("AWS_OPERATION_TIMEOUT", " 2.5 "),
            ("AWS_MAX_ATTEMPTS", "2"),
        ]));
        assert_eq!(from_vars.unwrap(), expected);
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(parse(&["--aws-operation-timeout=soon"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--aws-max-attempts=0"]).unwrap_err().contains("--aws-max-attempts"));
        let e = parse(&["--aws-attempt-timeout=10"]).unwrap().timeouts().unwrap_err().to_string();
        assert!(e.contains("attempt timeout (10 s) is longer than the operation timeout (6 s)"), "{e}");
        let e = timeouts_from_vars(vars(&[("AWS_OPERATION_TIMEOUT", "-1")])).unwrap_err().to_string();
        assert!(e.contains("AWS_OPERATION_TIMEOUT"), "{e}");
        let e = timeouts_from_vars(vars(&[("AWS_MAX_ATTEMPTS", "0")])).unwrap_err().to_string();
        assert!(e.contains("AWS_MAX_ATTEMPTS"), "{e}");
        let e = timeouts_from_vars(vars(&[("AWS_OPERATION_TIMEOUT", "2")])).unwrap_err().to_string();
        assert!(e.contains("longer than the operation timeout (2 s)"), "{e}");
    }
}
