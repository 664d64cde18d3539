//! The serverful host (EC2, Fargate, Kubernetes): the router on a TCP listener, with graceful
//! shutdown on SIGTERM / SIGINT.

use std::net::SocketAddr;
use std::time::Duration;

use counter::SharedCounter;
use tokio::net::TcpListener;

/// Command-line options of `hits-server`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub addr: SocketAddr,
    /// How long in-flight requests get to finish after SIGTERM before the process exits anyway.
    pub shutdown_timeout: Duration,
}

pub const USAGE: &str = "usage: hits-server [--addr HOST:PORT] [--shutdown-timeout SECONDS]

  --addr               where to listen (default 0.0.0.0:8000; port 0 picks a free port)
  --shutdown-timeout   seconds in-flight requests get after SIGTERM (default 25)

  HITS_STORE selects the store: memory (default) | file:<path> | dynamodb:<table> | s3:<bucket>/<key>
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
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match flag.as_str() {
                "--addr" => {
                    let v = value("--addr")?;
                    options.addr = v
                        .parse()
                        .map_err(|_| format!("--addr {v:?} is not HOST:PORT (e.g. 0.0.0.0:8000)"))?;
                }
                "--shutdown-timeout" => {
                    let v = value("--shutdown-timeout")?;
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

/// Serves until SIGTERM / SIGINT, then lets in-flight requests finish (up to the timeout) and
/// closes the store, which flushes it.
pub async fn serve(
    listener: TcpListener,
    counter: SharedCounter,
    shutdown_timeout: Duration,
) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let app = crate::router(counter.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        edge::shutdown_signal().await;
        tracing::info!("shutdown signal: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(shutdown_timeout).await;
    };
    tokio::select! {
        served = server => served?,
        () = deadline => tracing::warn!(?shutdown_timeout, "in-flight requests did not finish in time"),
    }
    counter.close().await.map_err(std::io::Error::other)?;
    tracing::info!("stopped");
    Ok(())
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

    #[test]
    fn bad_options_are_explained() {
        assert!(parse(&["--addr", "localhost"]).unwrap_err().contains("HOST:PORT"));
        assert!(parse(&["--addr"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--shutdown-timeout", "-1"]).unwrap_err().contains("seconds"));
        assert!(parse(&["--port", "1"]).unwrap_err().contains("unknown argument"));
    }
}
