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

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use counter::{SharedCounter, StoreSpec};
use edge::server::{Exit, HttpLimits, Shutdown};
use tokio::net::TcpListener;

pub mod healthcheck;

pub use healthcheck::Probe;

/// `hits-server`: serve (no subcommand), or `hits-server healthcheck`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "hits-server",
    version,
    about = "GET /hits on a TCP port: the same router as the Lambda, for EC2, Fargate and Kubernetes",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub serve: Options,
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Sub {
    /// GET http://ADDR/healthz once, for a container HEALTHCHECK: exit 0 on a 200, 1 otherwise
    /// with the reason on stderr.
    Healthcheck(Probe),
}

/// What `hits-server` was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Serve (no subcommand).
    Serve(Options),
    /// `hits-server healthcheck`: probe a running server once.
    Healthcheck(Probe),
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("hits-server".to_owned()).chain(args))?;
        Ok(match cli.command {
            Some(Sub::Healthcheck(probe)) => Command::Healthcheck(probe),
            None => Command::Serve(cli.serve),
        })
    }
}

/// Command-line options of `hits-server`, each with an environment fallback.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct Options {
    /// Where to listen (port 0 picks a free port; the `listening on` line on stderr names it).
    #[arg(long, env = "HITS_ADDR", default_value = "0.0.0.0:8000")]
    pub addr: SocketAddr,
    /// Seconds after SIGTERM for in-flight requests and the store's flush; past them the process
    /// exits 1 anyway.
    #[arg(long, env = "HITS_SHUTDOWN_TIMEOUT", default_value = "25", value_parser = edge::server::seconds)]
    pub shutdown_timeout: Duration,
    /// The store: memory | file:<path> | dynamodb:<table>[#<shard>/<shards>] | s3:<bucket>/<key>.
    #[arg(long, env = "HITS_STORE", default_value = "memory", hide_env_values = true)]
    pub store: StoreSpec,
    /// The AWS SDK's timeouts (DynamoDB and S3 stores): a stalled store answers 503 within them.
    #[command(flatten)]
    pub aws: edge::aws::AwsArgs,
    /// Connection limits (timeouts, cap): the same flags on every server.
    #[command(flatten)]
    pub http: HttpLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            addr: SocketAddr::from(([0, 0, 0, 0], 8000)),
            shutdown_timeout: Duration::from_secs(25),
            store: StoreSpec::Memory,
            aws: edge::aws::AwsArgs::default(),
            http: HttpLimits::default(),
        }
    }
}

/// The whole server: opens the store (unless the shutdown is requested first), listens, serves
/// until the signal, and drains as the module doc says.
pub async fn run(options: Options, shutdown: Shutdown) -> Result<(), Exit> {
    let timeouts = options.aws.timeouts().map_err(Exit::start)?;
    let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(timeouts);
    let Some(counter) = shutdown.unless_requested(counter::open(&options.store, &aws)).await else {
        return Ok(());
    };
    let counter = counter.map_err(Exit::start)?;
    if counter.remote(counter::Call::Increment).is_some() {
        tracing::info!(store = counter.kind(), timeouts = %timeouts.summary(), "AWS calls time out");
    }
    let listener = edge::server::listen(options.addr, &format!("store: {}", counter.kind())).await?;
    serve(listener, counter, &options.http, &shutdown).await.map_err(Exit::failed)
}

/// Serves until the shutdown is requested, then shuts down as the module doc says: in-flight
/// requests finish, the store is closed (which flushes it), all within the shutdown's timeout.
/// `Err` if requests were still in flight at that deadline, or the store failed to close.
pub async fn serve(
    listener: TcpListener,
    counter: SharedCounter,
    limits: &HttpLimits,
    shutdown: &Shutdown,
) -> std::io::Result<()> {
    let app = crate::router(counter.clone(), crate::StoreCalls::Skip);
    let drained = edge::server::serve_http(listener, app, limits, shutdown, 1.0).await?;
    // Polled once even when the deadline has passed: the store stops taking increments either way.
    let closed = shutdown.until_deadline(1.0, counter.close()).await;
    let timeout = shutdown.timeout();
    let late = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{what} {timeout:?} after the shutdown signal; exiting anyway"),
        )
    };
    match (drained, closed) {
        (_, Some(Err(e))) => Err(std::io::Error::other(e)),
        (false, _) => Err(late("requests were still in flight")),
        (true, None) => Err(late("the store was still flushing")),
        (true, Some(Ok(()))) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> Result<Command, clap::Error> {
        Command::parse(args.iter().map(std::string::ToString::to_string))
    }

    fn parse(args: &[&str]) -> Result<Options, String> {
        match command(args).map_err(|e| e.to_string())? {
            Command::Serve(options) => Ok(options),
            other => Err(format!("not serve: {other:?}")),
        }
    }

    #[test]
    fn options_default_to_port_8000_on_all_interfaces() {
        assert_eq!(parse(&[]).unwrap(), Options::default());
        assert_eq!(Options::default().addr.to_string(), "0.0.0.0:8000");
    }

    #[test]
    fn options_accept_both_flag_spellings() {
        assert_eq!(parse(&["--addr", "127.0.0.1:0"]).unwrap().addr.to_string(), "127.0.0.1:0");
        let o = parse(&["--addr=[::1]:9000", "--shutdown-timeout=2.5", "--store=file:/tmp/c"]).unwrap();
        assert_eq!(o.addr.to_string(), "[::1]:9000");
        assert_eq!(o.shutdown_timeout, Duration::from_millis(2500));
        assert_eq!(o.store, StoreSpec::File("/tmp/c".into()));
    }

    #[test]
    fn the_connection_limits_are_flags_with_environment_fallbacks() {
        let o =
            parse(&["--header-read-timeout", "5", "--idle-timeout=90", "--max-connections", "100"]).unwrap();
        assert_eq!(o.http.header_read_timeout, Duration::from_secs(5));
        assert_eq!(o.http.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.http.max_connections, 100);
        assert!(parse(&["--max-connections", "0"]).unwrap_err().contains("--max-connections"));
        assert!(parse(&["--idle-timeout", "soon"]).unwrap_err().contains("seconds"));
    }

    #[test]
    fn no_subcommand_serves_and_healthcheck_probes() {
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
        assert_eq!(probe.target().to_string(), "127.0.0.1:9000");
        assert_eq!(probe.timeout(), Duration::from_millis(500));
    }

    #[test]
    fn the_subcommand_takes_only_its_own_flags() {
        assert!(command(&["--addr", "0.0.0.0:8000", "healthcheck"]).is_err());
        let e = command(&["healthcheck", "--shutdown-timeout", "5"]).unwrap_err().to_string();
        assert!(e.contains("--shutdown-timeout"), "{e}");
        assert!(command(&["health"]).is_err());
    }

    #[test]
    fn the_aws_timeouts_are_flags_too() {
        let o = parse(&[
            "--aws-operation-timeout=2",
            "--aws-attempt-timeout=1",
            "--aws-connect-timeout=0.5",
            "--aws-max-attempts=1",
        ])
        .unwrap();
        let t = o.aws.timeouts().unwrap();
        assert_eq!(
            (t.operation, t.attempt, t.max_attempts),
            (Duration::from_secs(2), Duration::from_secs(1), 1)
        );
        assert_eq!(parse(&[]).unwrap().aws.timeouts().unwrap(), aws_setup::Timeouts::DEFAULT);
        // An attempt shorter than the connect timeout is refused, naming both.
        let e = parse(&["--aws-attempt-timeout=1"]).unwrap().aws.timeouts().unwrap_err().to_string();
        assert!(e.contains("connect timeout (2 s) is longer than the attempt timeout (1 s)"), "{e}");
    }

    #[test]
    fn bad_options_are_explained() {
        assert!(parse(&["--addr", "localhost"]).unwrap_err().contains("--addr"));
        assert!(parse(&["--addr"]).unwrap_err().contains("value"));
        assert!(parse(&["--shutdown-timeout=-1"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--store", "redis:x"]).unwrap_err().contains("accepted forms"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("--port"));
    }
}
