//! The latency probe: how long a URL takes to answer, measured with one keep-alive client.
//!
//! Used by the `probe` Lambda (from inside the region) and by the `latency` CLI (from here).
//!
//! ```no_run
//! # async fn demo() -> Result<(), probe::ProbeError> {
//! let spec = probe::SpecInput {
//!     url: Some("https://example.com/hits".into()),
//!     count: Some(1000),
//!     concurrency: Some(4),
//!     ..Default::default()
//! }
//! .validate()?;
//! let prober = probe::Prober::new()?; // once; reuse it for every run
//! let report = prober.run(&spec).await;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```
//!
//! A run has four phases, reported separately so that cold paths stay visible:
//!
//! 1. **setup** — a DNS lookup and a TCP connect to the URL's host and port, each timed on its
//!    own (this connection is closed again, it carries no request);
//! 2. **first** — one request alone, on a new connection unless this [`Prober`] still holds one
//!    from an earlier run (the Lambda's second invocation);
//! 3. **warmup** — requests that are sent and thrown away (see [`Spec::warmup`]);
//! 4. **steady state** — `count` measured requests over `concurrency` workers sharing the
//!    client. Only these make up `ok`, `errors`, the stats and the histogram.

pub mod load;
mod prober;
mod report;
mod spec;
pub mod stats;

pub use prober::Prober;
pub use report::{Bucket, Connection, First, Report, Setup, Stats};
pub use spec::{MAX_CONCURRENCY, MAX_COUNT, MAX_TIMEOUT_MS, MAX_WARMUP, Method, Spec, SpecInput};

/// Everything that can go wrong in this crate: a spec that does not validate, or an HTTP client
/// that cannot be built. Failed *requests* are not errors; they are counted in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A spec (a Lambda event, or the CLI's arguments) that cannot be run; `field` names the
    /// event field, `reason` says what is wrong and what is accepted.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// `load`: the target cannot be reached (DNS, connect, TLS), checked before any request.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// The error of [`Spec::from_event`] and [`SpecInput::validate`]: always
/// [`ProbeError::Invalid`]. An alias, so the crate keeps one error enum.
pub type SpecError = ProbeError;

impl ProbeError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ProbeError {
        ProbeError::Invalid { field: field.into(), reason: reason.into() }
    }

    /// The event field a spec error is about (`None` for a client error).
    pub fn field(&self) -> Option<&str> {
        match self {
            ProbeError::Invalid { field, .. } => Some(field),
            ProbeError::Client(_) | ProbeError::Unreachable { .. } => None,
        }
    }
}
