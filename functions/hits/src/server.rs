//! The serverful host (EC2, Fargate, Kubernetes): the router on a TCP listener, with graceful
//! shutdown on SIGTERM / SIGINT, and `hits-server healthcheck`, the container's self-probe.
//!
//! Shutdown, all within `--shutdown-timeout` of the signal:
//! * the listener closes at once: a new connection is refused;
//! * an idle keep-alive connection is closed before it carries another request, so a client
//!   sees the connection end before any byte of a response, never half of one;
//! * a request already being handled finishes and is answered with `Connection: close`;
//! * then the store is closed, which flushes it (the file store commits what is queued), and the
//!   process exits 0.
//!
//! If requests are still in flight at the deadline (a store that hangs), the process exits 1
//! anyway rather than outlive the orchestrator's grace period: ECS's `stopTimeout` and
//! Kubernetes' `terminationGracePeriodSeconds` default to 30 s, hence 25 s here.
//!
//! No 503 phase while draining: an ECS service takes a task out of its target group (and waits
//! out the deregistration delay) before it sends SIGTERM, Kubernetes needs a preStop pause for
//! the same, and a request that still arrives later finds a refused or closed connection, before
//! any byte of a response, which a client can tell from a partial answer
//! (tests/server_process.rs tells each case apart byte by byte).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use counter::SharedCounter;
use tokio::net::TcpListener;
use tokio::time::Instant;

pub mod healthcheck;

pub use healthcheck::Probe;

/// What `hits-server` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Serve (no subcommand).
    Serve(Options),
    /// `hits-server healthcheck`: probe a running server once.
    Healthcheck(Probe),
}

impl Command {
    /// Parses the arguments after the program name; `Err` holds the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
        let mut args = args.into_iter().peekable();
        if args.peek().map(String::as_str) == Some("healthcheck") {
            args.next();
            return Probe::parse(args).map(Command::Healthcheck);
        }
        Options::parse(args).map(Command::Serve)
    }
}

/// Command-line options of `hits-server`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub addr: SocketAddr,
    /// How long in-flight requests and the store's flush get after SIGTERM before the process
    /// exits anyway (status 1).
    pub shutdown_timeout: Duration,
}

pub const USAGE: &str = "usage: hits-server [--addr HOST:PORT] [--shutdown-timeout SECONDS]
       hits-server healthcheck [--addr HOST:PORT] [--timeout-ms N]

  --addr               where to listen (default 0.0.0.0:8000; port 0 picks a free port)
  --shutdown-timeout   seconds after SIGTERM for in-flight requests and the store's flush
                       (default 25); past them the process exits 1 anyway

  healthcheck          GET http://HOST:PORT/healthz once, for a container HEALTHCHECK: exit 0 on
                       a 200, 1 otherwise with the reason on stderr
    --addr             the server's address (default 127.0.0.1:8000; 0.0.0.0 or [::] probe
                       loopback, so the server's own --addr works here too)
    --timeout-ms       how long the probe may take (default 2000)

  HITS_STORE selects the store: memory (default) | file:<path> | dynamodb:<table>[#<shard>/<shards>] | s3:<bucket>/<key>
  RUST_LOG sets the log filter (default info).";

impl Default for Options {
    fn default() -> Self {
        Options { addr: SocketAddr::from(([0, 0, 0, 0], 8000)), shutdown_timeout: Duration::from_secs(25) }
    }
}

impl Options {
    /// Parses the arguments after the program name; `Err` holds the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options::default();
        let mut flags = Flags::new(args, "");
        while let Some((flag, inline)) = flags.next_flag() {
            match flag.as_str() {
                "--addr" => {
                    let v = flags.value("--addr", inline)?;
                    options.addr = v
                        .parse()
                        .map_err(|_| format!("--addr {v:?} is not HOST:PORT (e.g. 0.0.0.0:8000)"))?;
                }
                "--shutdown-timeout" => {
                    let v = flags.value("--shutdown-timeout", inline)?;
                    let secs: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| format!("--shutdown-timeout {v:?} is not a number of seconds"))?;
                    options.shutdown_timeout = Duration::from_secs_f64(secs);
                }
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

/// `--flag value` and `--flag=value` arguments, one flag at a time (for `serve` and
/// `healthcheck`; `context` prefixes the "needs a value" message).
pub(crate) struct Flags<I> {
    args: I,
    context: &'static str,
}

impl<I: Iterator<Item = String>> Flags<I> {
    pub(crate) fn new(args: impl IntoIterator<IntoIter = I>, context: &'static str) -> Self {
        Flags { args: args.into_iter(), context }
    }

    /// The next flag, and its value if it came inline (`--flag=value`).
    pub(crate) fn next_flag(&mut self) -> Option<(String, Option<String>)> {
        let arg = self.args.next()?;
        Some(match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        })
    }

    /// The value of `flag`: the inline one, else the next argument.
    pub(crate) fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, String> {
        inline
            .or_else(|| self.args.next())
            .ok_or_else(|| format!("{}{flag} needs a value\n\n{USAGE}", self.context))
    }
}

/// SIGTERM (what ECS, Kubernetes, Docker and systemd send) or SIGINT, listened for from this
/// call on rather than from the first poll: the binary calls it before it says where it listens,
/// so a signal sent right after that line starts the drain instead of killing the process.
#[cfg(unix)]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Ctrl-C, where there are no Unix signals.
#[cfg(not(unix))]
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(edge::shutdown_signal())
}

/// Serves until `stop` resolves, then shuts down as the module doc says: in-flight requests
/// finish, the store is closed (which flushes it), all within `shutdown_timeout` of `stop`.
/// `Err` if requests were still in flight at that deadline, or the store failed to close.
pub async fn serve(
    listener: TcpListener,
    counter: SharedCounter,
    shutdown_timeout: Duration,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopped_tx, mut stopped_rx) = tokio::sync::watch::channel(None::<Instant>);
    let app = crate::router(counter.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.await;
        tracing::info!(?shutdown_timeout, "shutdown signal: finishing in-flight requests");
        let _ = stopped_tx.send(Some(Instant::now()));
    });
    let drain_deadline = async {
        match stopped_rx.wait_for(Option::is_some).await {
            Ok(since) => {
                let since = since.unwrap_or_else(Instant::now);
                tokio::time::sleep_until(since + shutdown_timeout).await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let drained = tokio::select! {
        served = server => {
            served?;
            true
        }
        () = drain_deadline => false,
    };
    let deadline = stopped_rx.borrow().unwrap_or_else(Instant::now) + shutdown_timeout;
    // Polled once even when the deadline has passed: the store stops taking increments either way.
    let closed = tokio::time::timeout_at(deadline, counter.close()).await;
    let late = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} {shutdown_timeout:?} after the shutdown signal; exiting anyway"),
        )
    };
    match (drained, closed) {
        (_, Ok(Err(e))) => Err(std::io::Error::other(e)),
        (false, _) => {
            tracing::warn!(?shutdown_timeout, "in-flight requests did not finish in time");
            Err(late("requests were still in flight"))
        }
        (true, Err(_)) => Err(late("the store was still flushing")),
        (true, Ok(Ok(()))) => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_default_to_port_8000_on_all_interfaces() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert_eq!(Options::default().addr.to_string(), "0.0.0.0:8000");
    }

    #[test]
    fn options_accept_both_flag_spellings() {
        assert_eq!(parse(&["--addr", "127.0.0.1:0"]).unwrap().addr.to_string(), "127.0.0.1:0");
        let o = parse(&["--addr=[::1]:9000", "--shutdown-timeout=2.5"]).unwrap();
        assert_eq!(o.addr.to_string(), "[::1]:9000");
        assert_eq!(o.shutdown_timeout, Duration::from_millis(2500));
    }

    fn command(args: &[&str]) -> Result<Command, String> {
        Command::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_subcommand_serves_and_healthcheck_probes() {
        assert_eq!(command(&[]).unwrap(), Command::Serve(Options::default()));
        assert_eq!(
            command(&["--addr", "0.0.0.0:8000", "--shutdown-timeout", "25"]).unwrap(),
            Command::Serve(Options::default())
        );
        assert_eq!(command(&["healthcheck"]).unwrap(), Command::Healthcheck(Probe::default()));
        let Command::Healthcheck(probe) =
            command(&["healthcheck", "--addr", "0.0.0.0:9000", "--timeout-ms", "500"]).unwrap()
        else {
            panic!("not a healthcheck");
        };
        assert_eq!(probe.addr.to_string(), "127.0.0.1:9000");
        assert_eq!(probe.timeout, Duration::from_millis(500));
    }

    #[test]
    fn the_subcommand_comes_first_and_takes_only_its_own_flags() {
        assert!(
            command(&["--addr", "0.0.0.0:8000", "healthcheck"]).unwrap_err().contains("unknown argument")
        );
        assert!(
            command(&["healthcheck", "--shutdown-timeout", "5"]).unwrap_err().contains("unknown healthcheck")
        );
        assert!(command(&["health"]).unwrap_err().contains("unknown argument"));
        assert!(USAGE.contains("hits-server healthcheck [--addr HOST:PORT] [--timeout-ms N]"));
    }

    #[test]
    fn bad_options_are_explained() {
        assert!(parse(&["--addr", "localhost"]).unwrap_err().contains("HOST:PORT"));
        assert!(parse(&["--addr"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--shutdown-timeout", "-1"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("unknown argument"));
    }
}
