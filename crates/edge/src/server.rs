//! The server kit: what every long-running process here (`hits-server`, `ingest-server`,
//! `calc-worker-server`, `event-poller`) does the same way around its own work.
//!
//! * [`main`] builds the runtime, starts the logs, and listens for SIGTERM / SIGINT **before**
//!   anything slow starts (a store that pre-connects, a sink warm-up that retries, a broker that
//!   does not answer): a signal at any moment of the start is a clean stop, never the default
//!   action that kills the process.
//! * [`Shutdown`] is that signal and its deadline: [`Shutdown::requested`] resolves on the
//!   signal, [`Shutdown::until_deadline`] runs a drain and gives up at signal + timeout, and
//!   [`Shutdown::unless_requested`] runs a start-up step unless the signal comes first.
//! * [`listen`] binds and prints the one `listening on http://ADDR (WHAT)` line, on stderr
//!   (stdout may be data: the ingest server's default sink), which scripts and tests read to
//!   find a port picked with `--addr 127.0.0.1:0`.
//! * [`serve_http`] serves an axum router until the signal, then lets in-flight requests finish
//!   within their share of the deadline; every connection is held to [`HttpLimits`] (timeouts,
//!   a cap), the flags each server binary flattens into its own.
//! * [`seconds`] parses the `--shutdown-timeout`-style flags.
//!
//! Exit status: 0 after a clean stop (also when the signal came during the start), 1 when the
//! work failed or outlived its deadline, 2 when the process could not start.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::seconds::{SecondsError, seconds};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::connections;
pub use crate::connections::HttpLimits;

/// The shutdown signal of one process, and the deadline it starts. Cheap to clone; every clone
/// sees the same signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: watch::Receiver<Option<Instant>>,
    timeout: Duration,
}

/// Requests a [`Shutdown`] by hand: what a signal does, for tests and in-process hosts.
#[derive(Debug, Clone)]
pub struct Trigger(std::sync::Arc<watch::Sender<Option<Instant>>>);

impl Trigger {
    /// Requests the shutdown now (a second request keeps the first one's time).
    pub fn request(&self) {
        self.0.send_if_modified(|at| at.is_none() && at.replace(Instant::now()).is_none());
    }
}

impl Shutdown {
    /// Listens for SIGTERM (what ECS, Kubernetes, Docker and systemd send) and SIGINT from this
    /// call on. Call it before anything slow starts; needs a running Tokio runtime.
    pub fn listen(timeout: Duration) -> std::io::Result<Shutdown> {
        let (shutdown, trigger) = Shutdown::manual(timeout);
        let signalled = signals()?;
        tokio::spawn(async move {
            signalled.await;
            trigger.request();
        });
        Ok(shutdown)
    }

    /// A shutdown that only its [`Trigger`] requests.
    pub fn manual(timeout: Duration) -> (Shutdown, Trigger) {
        let (tx, rx) = watch::channel(None);
        (Shutdown { requested: rx, timeout }, Trigger(std::sync::Arc::new(tx)))
    }

    /// How long the drain may take after the signal.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When the shutdown was requested, if it was.
    pub fn requested_at(&self) -> Option<Instant> {
        *self.requested.borrow()
    }

    /// Whether the shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.requested_at().is_some()
    }

    /// Resolves once the shutdown is requested (at once if it already was). Never resolves for
    /// a [`Shutdown::manual`] whose trigger is gone unrequested.
    pub fn requested(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.requested.clone();
        async move {
            if rx.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// `share` (0..=1) of the timeout after the request: the point a phase of the drain must
    /// end by. `None` before the request.
    pub fn deadline(&self, share: f64) -> Option<Instant> {
        let at = self.requested_at()?;
        let by = self.timeout.mul_f64(share.clamp(0.0, 1.0));
        Some(at.checked_add(by).unwrap_or(at))
    }

    /// What is left of the whole timeout: all of it before the request, zero past the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline(1.0).map_or(self.timeout, |d| d.saturating_duration_since(Instant::now()))
    }

    /// Resolves at `share` of the timeout after the request (never before it).
    pub fn deadline_passed(&self, share: f64) -> impl Future<Output = ()> + Send + 'static {
        let this = self.clone();
        async move {
            this.requested().await;
            if let Some(deadline) = this.deadline(share) {
                tokio::time::sleep_until(deadline).await;
            }
        }
    }

    /// The drain: runs `work` until it ends, or until `share` of the timeout after the request
    /// has passed (`None`; what was still running is dropped). Before the request the deadline
    /// does not run, so `work` may also be the whole serving phase.
    pub async fn until_deadline<T>(&self, share: f64, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            done = work => Some(done),
            () = self.deadline_passed(share) => None,
        }
    }

    /// A start-up step, unless the shutdown is requested first (`None`: stop cleanly, nothing
    /// was accepted yet). A step that has to finish once begun (a replay of data) is not one.
    pub async fn unless_requested<T>(&self, step: impl Future<Output = T>) -> Option<T> {
        if self.is_requested() {
            return None;
        }
        tokio::select! {
            biased;
            () = self.requested() => None,
            done = step => Some(done),
        }
    }
}

/// SIGTERM or SIGINT, registered now (a signal that comes before the first poll is kept).
#[cfg(unix)]
fn signals() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
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
fn signals() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// How a server's run ended, as its exit status.
#[derive(Debug, thiserror::Error)]
pub enum Exit {
    /// It could not start (bad configuration, an address in use): exit 2.
    #[error("{0}")]
    Start(Box<dyn std::error::Error + Send + Sync>),
    /// It started and then failed, or its drain outlived the deadline: exit 1.
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl Exit {
    /// A start-up failure.
    pub fn start(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Exit {
        Exit::Start(e.into())
    }

    /// A failure after the start.
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Exit {
        Exit::Failed(e.into())
    }

    fn code(&self) -> u8 {
        match self {
            Exit::Start(_) => 2,
            Exit::Failed(_) => 1,
        }
    }
}

/// A server's `main`: a multi-threaded runtime, the server logs ([`crate::init_server_tracing`]),
/// the signal handlers, then `run`. Past the deadline a connection or a store call may still be
/// stuck; the runtime is dropped without waiting for them, so the process keeps the deadline.
pub fn main<F, Fut>(name: &'static str, shutdown_timeout: Duration, run: F) -> ExitCode
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), Exit>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let status = runtime.block_on(async {
        crate::init_server_tracing();
        let shutdown = match Shutdown::listen(shutdown_timeout) {
            Ok(s) => s,
            Err(e) => return Err(Exit::start(format!("cannot listen for SIGTERM: {e}"))),
        };
        let stopped_early = shutdown.clone();
        let result = run(shutdown).await;
        if result.is_ok() && stopped_early.is_requested() {
            tracing::info!("stopped");
        }
        result
    });
    runtime.shutdown_background();
    match status {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            eprintln!("{name}: {exit}");
            ExitCode::from(exit.code())
        }
    }
}

/// The accept queue asked for (the kernel caps it at `net.core.somaxconn`, 4096 by default).
/// `TcpListener::bind` asks for 128: a burst of new connections overflowed it on loopback, and
/// each dropped SYN cost its client a second (the SYN retransmission), one client in ~130 in a
/// sequential flood (`scripts/attack`, docs/results.md).
const ACCEPT_BACKLOG: u32 = 1024;

/// Binds `addr` and prints `listening on http://ADDR (WHAT)` on stderr (the address the system
/// picked, for port 0).
pub async fn listen(addr: SocketAddr, what: &str) -> Result<TcpListener, Exit> {
    let cannot = |e: std::io::Error| Exit::start(format!("cannot listen on {addr}: {e}"));
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(cannot)?;
    // What `TcpListener::bind` does too: a restart may bind while old connections are in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(cannot)?;
    socket.bind(addr).map_err(cannot)?;
    let listener = socket.listen(ACCEPT_BACKLOG).map_err(cannot)?;
    let bound = listener.local_addr().map_err(Exit::start)?;
    eprintln!("listening on http://{bound} ({what})");
    Ok(listener)
}

/// Serves `app` over HTTP/1.1 until the shutdown is requested, then stops accepting and lets
/// requests in flight finish (idle keep-alive connections, and those that have not sent a whole
/// request head, are closed at once; busy ones get `Connection: close`) within `share` of the
/// timeout. `Ok(true)` when they all finished, `Ok(false)` when the deadline came first.
///
/// Each connection is held to `limits` ([`HttpLimits`]: header-read and idle timeouts, a cap on
/// open connections past which a new one is answered 503 and closed; see
/// [`crate::connections`]).
///
/// hyper's connection directly rather than `axum::serve`: no protocol sniffing or upgrade
/// machinery on a path that serves tiny answers, one flat write per response, and `TCP_NODELAY`
/// (an answer is never held back waiting for the client's ACK).
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    limits: &HttpLimits,
    shutdown: &Shutdown,
    share: f64,
) -> std::io::Result<bool> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.writev(false);
    let limits = *limits;
    let open = connections::Open::new(connections::effective_cap(&limits));
    let mut refusals = connections::Refusals::new(open.cap());
    let stopping = Arc::new(AtomicBool::new(false));
    tracing::info!(
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        max_connections = open.cap(),
        "serving HTTP/1.1"
    );
    let requested = shutdown.requested();
    tokio::pin!(requested);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut requested => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: retrying at once would spin.
                    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = connections::until(refusals.due()) => {
                refusals.log(Instant::now());
                continue;
            }
        };
        let accepted = Instant::now();
        let Some(slot) = open.take() else {
            connections::refuse(stream);
            refusals.count();
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (http, app, stopping) = (http.clone(), app.clone(), stopping.clone());
        let (watcher, requested) = (graceful.watcher(), shutdown.requested());
        tokio::spawn(async move {
            let _slot = slot;
            // Until its first byte a connection is only its socket: no hyper buffers yet.
            if !connections::first_byte(&stream, accepted, &limits, requested).await {
                return;
            }
            let busy = Arc::new(connections::Busy::default());
            let io = connections::Guarded::new(stream, accepted, limits, busy.clone(), stopping);
            let service = connections::Tracked { app, busy };
            let connection = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    refusals.log(Instant::now());
    // Before the connections hear of the shutdown: those still reading a request head see it
    // and close.
    stopping.store(true, Ordering::Release);
    let timeout = shutdown.timeout();
    tracing::info!(?timeout, "shutdown requested: finishing in-flight requests");
    match shutdown.until_deadline(share, graceful.shutdown()).await {
        Some(()) => Ok(true),
        None => {
            tracing::warn!(?timeout, share, "in-flight requests did not finish in time");
            Ok(false)
        }
    }
}

/// An accept error that concerns one connection only (the client gave up before it was taken).
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_request_not_from_the_start() {
        let (shutdown, trigger) = Shutdown::manual(Duration::from_secs(10));
        assert_eq!(shutdown.deadline(1.0), None);
        assert_eq!(shutdown.remaining(), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(60)).await;
        trigger.request();
        let at = shutdown.requested_at().unwrap();
        assert_eq!(shutdown.deadline(0.25), Some(at + Duration::from_millis(2500)));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(shutdown.remaining(), Duration::from_secs(6));
        trigger.request();
        assert_eq!(shutdown.requested_at(), Some(at), "a second request keeps the first one's time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_that_outlives_its_share_is_given_up() {
        let (shutdown, trigger) = Shutdown::manual(Duration::from_secs(8));
        let stuck = shutdown.until_deadline(0.5, std::future::pending::<()>());
        let requested = async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            trigger.request();
        };
        let started = Instant::now();
        let (drained, ()) = tokio::join!(stuck, requested);
        assert_eq!(drained, None);
        assert_eq!(started.elapsed(), Duration::from_secs(104));
        assert_eq!(shutdown.until_deadline(0.5, async { 7 }).await, Some(7), "work that ends in time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_up_step_stops_at_the_request() {
        let (shutdown, trigger) = Shutdown::manual(Duration::from_secs(1));
        assert_eq!(shutdown.unless_requested(async { 1 }).await, Some(1));
        let slow = shutdown.unless_requested(std::future::pending::<()>());
        let (stopped, ()) = tokio::join!(slow, async { trigger.request() });
        assert_eq!(stopped, None);
        assert_eq!(shutdown.unless_requested(async { 2 }).await, None, "nothing starts after the request");
    }

    #[tokio::test]
    async fn a_signal_sent_before_anyone_waits_is_not_lost() {
        let shutdown = Shutdown::listen(Duration::from_secs(1)).unwrap();
        // SIGINT to ourselves before anything polls `requested`: the handler is already there.
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(10), shutdown.requested()).await.unwrap();
        assert!(shutdown.is_requested());
    }

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(seconds("0"), Ok(Duration::ZERO));
        for bad in ["-1", "NaN", "inf", "", "5s", "1e300"] {
            assert!(seconds(bad).unwrap_err().to_string().contains("not a number of seconds"), "{bad}");
        }
    }
}
