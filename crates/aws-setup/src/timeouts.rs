//! How long the hosts' SDK calls may take, and how often they are tried: one [`Timeouts`] per
//! process, applied by [`crate::Aws`] to the one `SdkConfig` every client is built from.
//!
//! Without it the SDK has no limit on a call once connected (only a 3.1 s connect timeout): a
//! store that accepts the connection and never answers (an emulator stopped with SIGSTOP, a
//! black-holed route) held `GET /hits` for 300 s. With it, every call ends within
//! [`Timeouts::operation`], retries and the pauses between them included:
//!
//! * each attempt (connect, send, the whole answer) within [`Timeouts::attempt`], the connect
//!   within [`Timeouts::connect`];
//! * at most [`Timeouts::max_attempts`] attempts (the SDK's standard retry mode: a timeout, a
//!   dropped connection, a 5xx or a throttle is retried on a fresh connection after a jittered
//!   exponential pause — below 1 s, then 2 s, … —, anything else is not);
//! * the whole call within [`Timeouts::operation`], whatever attempt or pause it is in.
//!
//! The defaults (2 s, 3 s, 6 s, 3 attempts) fit inside the Lambda functions' 10 s timeout of
//! `template.yaml` and API Gateway's 30 s, and leave a stalled store two attempts before the
//! 503. A timed-out call is told apart from other failures by [`is_timeout`], so adapters can
//! say "timed out after 6.0 s" rather than "unavailable". A write that timed out may still have
//! been applied: the request may have reached the service.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_runtime_api::client::result::SdkError;

use crate::Error;

/// Timeouts and attempts of every SDK call a host makes (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection: DNS, TCP and TLS.
    pub connect: Duration,
    /// One attempt: the connect, the request and the whole response.
    pub attempt: Duration,
    /// One call: every attempt and the pauses between them. The most any one call takes.
    pub operation: Duration,
    /// Attempts per call, the first included (1 = no retries).
    pub max_attempts: u32,
}

impl Timeouts {
    /// 2 s to connect, 3 s per attempt, 6 s per call, 3 attempts.
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(2),
        attempt: Duration::from_secs(3),
        operation: Duration::from_secs(6),
        max_attempts: 3,
    };

    /// These timeouts, if they make sense together: each above zero, and connect ≤ attempt ≤
    /// operation (a larger inner timeout would never fire).
    pub fn check(self) -> Result<Timeouts, Error> {
        let bad = |why: String| Err(Error::Timeouts(why));
        if self.connect.is_zero() || self.attempt.is_zero() || self.operation.is_zero() {
            return bad(format!("every timeout must be above zero (got {})", self.summary()));
        }
        if self.max_attempts == 0 {
            return bad("at least 1 attempt per call".to_owned());
        }
        if self.connect > self.attempt {
            return bad(format!(
                "the connect timeout ({}) is longer than the attempt timeout ({})",
                secs(self.connect),
                secs(self.attempt)
            ));
        }
        if self.attempt > self.operation {
            return bad(format!(
                "the attempt timeout ({}) is longer than the operation timeout ({})",
                secs(self.attempt),
                secs(self.operation)
            ));
        }
        Ok(self)
    }

    /// `connect 2 s, attempt 3 s, operation 6 s, 3 attempts`, for logs and messages.
    pub fn summary(&self) -> String {
        format!(
            "connect {}, attempt {}, operation {}, {} attempts",
            secs(self.connect),
            secs(self.attempt),
            secs(self.operation),
            self.max_attempts
        )
    }

    pub(crate) fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }

    pub(crate) fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard().with_max_attempts(self.max_attempts)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::DEFAULT
    }
}

/// `2 s`, `2.5 s`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Whether a failed call gave up on a timeout: the operation's or an attempt's (the last
/// attempt's, once the retries were spent), or the connect's. `false` for an answer, even an
/// error answer, and for a refused connection.
pub fn is_timeout<E, R>(e: &SdkError<E, R>) -> bool {
    match e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(failure) => failure.is_timeout(),
        _ => false,
    }
}

/// A failed call that gave up on a timeout ([`is_timeout`]), as its causes read one after the
/// other (`request has timed out: operation timeout (all attempts including retries) occurred
/// after 6s`); `None` for any other failure.
pub fn timed_out<E, R>(e: &SdkError<E, R>) -> Option<String>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if !is_timeout(e) {
        return None;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    Some(text)
}

/// The timeouts of a long poll that may wait `wait` for its answer (SQS `ReceiveMessage` with
/// `WaitTimeSeconds`): `base`'s (a client's [`TimeoutConfig`]) with `wait` added to the attempt
/// and operation timeouts, so the poll is not cut short but a stalled one still ends.
pub fn long_poll(base: Option<&TimeoutConfig>, wait: Duration) -> TimeoutConfig {
    let mut builder = TimeoutConfig::builder();
    if let Some(base) = base {
        builder.set_connect_timeout(base.connect_timeout());
        builder.set_operation_attempt_timeout(base.operation_attempt_timeout().map(|t| t + wait));
        builder.set_operation_timeout(base.operation_timeout().map(|t| t + wait));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::result::ConnectorError;

    use super::*;

    #[test]
    fn the_defaults_fit_inside_the_lambda_timeout_and_make_sense_together() {
        let t = Timeouts::default().check().unwrap();
        // template.yaml: Globals Timeout 10 s (hits, ingest), CalcTimeout 30 s; API Gateway 30 s.
        assert!(t.operation < Duration::from_secs(10));
        assert!(t.connect <= t.attempt && t.attempt <= t.operation);
        assert_eq!(t.summary(), "connect 2 s, attempt 3 s, operation 6 s, 3 attempts");
    }

    #[test]
    fn timeouts_that_cannot_all_fire_are_refused_with_the_reason() {
        let with = |f: fn(&mut Timeouts)| {
            let mut t = Timeouts::DEFAULT;
            f(&mut t);
            t.check().unwrap_err().to_string()
        };
        assert!(with(|t| t.attempt = Duration::from_secs(7)).contains("attempt timeout (7 s) is longer"));
        assert!(with(|t| t.connect = Duration::from_secs(4)).contains("connect timeout (4 s) is longer"));
        assert!(with(|t| t.operation = Duration::ZERO).contains("above zero"));
        assert!(with(|t| t.max_attempts = 0).contains("at least 1 attempt"));
    }

    #[test]
    fn the_sdk_gets_every_timeout_and_the_attempts() {
        let t = Timeouts {
            connect: Duration::from_millis(500),
            attempt: Duration::from_secs(1),
            operation: Duration::from_secs(2),
            max_attempts: 2,
        };
        let config = t.timeout_config();
        assert_eq!(config.connect_timeout(), Some(Duration::from_millis(500)));
        assert_eq!(config.operation_attempt_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(config.operation_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.retry_config().max_attempts(), 2);
    }

    #[test]
    fn a_long_poll_gets_its_wait_on_top_of_the_attempt_and_operation_timeouts() {
        let base = Timeouts::DEFAULT.timeout_config();
        let poll = long_poll(Some(&base), Duration::from_secs(20));
        assert_eq!(poll.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(poll.operation_attempt_timeout(), Some(Duration::from_secs(23)));
        assert_eq!(poll.operation_timeout(), Some(Duration::from_secs(26)));
        assert_eq!(long_poll(None, Duration::from_secs(20)).operation_timeout(), None);
    }

    #[test]
    fn only_timeouts_count_as_timeouts() {
        let timeout: SdkError<std::io::Error, ()> = SdkError::timeout_error("operation timeout");
        assert!(is_timeout(&timeout));
        assert_eq!(timed_out(&timeout).as_deref(), Some("request has timed out: operation timeout"));
        let connect: SdkError<std::io::Error, ()> =
            SdkError::dispatch_failure(ConnectorError::timeout("connect timed out".into()));
        assert!(is_timeout(&connect));
        let refused: SdkError<std::io::Error, ()> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert!(!is_timeout(&refused));
        let built: SdkError<std::io::Error, ()> = SdkError::construction_failure("bad input");
        assert!(!is_timeout(&built));
        assert_eq!(timed_out(&refused), None);
    }
}
