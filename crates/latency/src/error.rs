//! The CLI's one error type; `main` prints it and exits 1.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input files: the message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An AWS API call failed (the SDK's message, with its cause chain).
    #[error("{0}")]
    Aws(String),
    /// The function ran and failed, or answered something that is not a probe report.
    #[error("{function} failed ({kind}): {detail}")]
    Lambda { function: String, kind: String, detail: String },
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
    #[error(transparent)]
    Cost(#[from] cost::CostError),
    /// A child process (a bootstrap, a server) misbehaved.
    #[error("{0}")]
    Process(String),
    /// `latency queue`: the ledger, the broker or a queue failed.
    #[error("{context}: {source}")]
    Queue {
        context: String,
        #[source]
        source: queue::Error,
    },
    /// `latency queue`: the run did not complete (timed out, nothing accepted); the message says
    /// how far it got and where the rest went.
    #[error("{0}")]
    Unfinished(String),
}

impl Error {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}
