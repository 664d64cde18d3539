//! What [`crate::server::serve_http`] does to each connection besides HTTP: the limits of
//! [`HttpLimits`] (header-read and idle timeouts, the cap on open connections), and the close
//! of connections that have not sent a whole request when the shutdown is requested.
//!
//! The phases of a connection, and the clock of each:
//!
//! * **head**: from the accept (first request) or from the first byte of a later request, the
//!   whole request head must arrive within `--header-read-timeout`, whatever the pace (a
//!   slowloris client sending a byte a second is closed at it, as one that sends nothing is);
//! * **busy**: from the head until the handler's answer, no clock (a slow store call is the
//!   handler's to bound); the request body is read in this phase;
//! * **idle**: from the answer's last write, the next request's first byte must come within
//!   `--idle-timeout`.
//!
//! A timeout closes the connection without an answer, as nginx does: no byte of a response was
//! sent, so the client may retry anywhere.
//!
//! Why not hyper's `header_read_timeout`: in hyper 1.x its clock starts when hyper begins to wait
//! for a head, which on a kept-alive connection is the moment the previous response went out, so
//! it is the idle timeout too, and one number cannot be both short (slowloris) and above a load
//! balancer's idle timeout (else the balancer reuses a connection the server is closing: 502s).
//! It also allocates and registers a timer for every request; here a connection has one timer,
//! re-armed only when it goes off, and a request costs two clock reads and a flag.
//!
//! A connection that has sent nothing is not handed to hyper until its first byte: it waits with
//! only its socket and task, not hyper's two 8 KiB buffers (a flood of silent connections is the
//! cheapest attack).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The connection limits of the HTTP servers (`hits-server`, `ingest-server`, the calc worker's
/// health port): one set of flags, with the same environment fallbacks on every binary, which
/// each flattens into its own (`#[command(flatten)]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct HttpLimits {
    /// Seconds a client has to send a whole request head (request line and headers), counted
    /// from the connection's opening for its first request and from the first byte of a later
    /// one; past them the connection is closed without an answer (slowloris). 0: no limit.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT", default_value = "10", value_parser = crate::seconds::seconds)]
    pub header_read_timeout: Duration,
    /// Seconds a kept-alive connection may wait after a response for the first byte of its next
    /// request before it is closed. Keep it above a load balancer's idle timeout (ALB: 60 s), or
    /// the balancer sends requests on connections the server is closing (502s). 0: no limit.
    #[arg(long, env = "HTTP_IDLE_TIMEOUT", default_value = "75", value_parser = crate::seconds::seconds)]
    pub idle_timeout: Duration,
    /// Open connections at most; a new connection past them is answered 503 (`Retry-After: 1`)
    /// and closed, and a log line once a second counts them. Lowered at start to what the
    /// descriptor limit leaves room for (`ulimit -n`, systemd's `LimitNOFILE`).
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 4096,
        }
    }
}

impl HttpLimits {
    /// The header-read timeout, `None` when off (0).
    pub fn header_read(&self) -> Option<Duration> {
        Some(self.header_read_timeout).filter(|d| !d.is_zero())
    }

    /// The idle timeout, `None` when off (0).
    pub fn idle(&self) -> Option<Duration> {
        Some(self.idle_timeout).filter(|d| !d.is_zero())
    }

    /// The shorter of the two timeouts that are on: how often at most a connection's timer goes
    /// off to look at its phase.
    fn shortest(&self) -> Option<Duration> {
        match (self.header_read(), self.idle()) {
            (Some(h), Some(i)) => Some(h.min(i)),
            (one, other) => one.or(other),
        }
    }
}

/// Descriptors kept back from the cap for everything else a server opens: the listener, the
/// store's files and SDK connections, the logs, and the connection accepted only to be refused.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The cap to enforce: `--max-connections`, lowered to what the soft descriptor limit leaves room
/// for (with a warning), so that a flood meets the 503 rather than `EMFILE` on accept, which
/// would leave new clients waiting in the backlog without an answer.
pub(crate) fn effective_cap(limits: &HttpLimits) -> usize {
    let wanted = limits.max_connections as usize;
    let Some(soft) = descriptor_limit() else {
        return wanted;
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED_DESCRIPTORS)).unwrap_or(usize::MAX).max(1);
    if room < wanted {
        tracing::warn!(
            max_connections = wanted,
            descriptor_limit = soft,
            cap = room,
            "--max-connections is more than the descriptor limit leaves room for: capping at {room} \
             (raise `ulimit -n`, LimitNOFILE or the container's nofile ulimit)"
        );
        return room;
    }
    wanted
}

/// The soft limit on open descriptors (`Max open files` of /proc/self/limits); `None` when
/// unlimited or unknown (not Linux).
fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Open connections, against the cap. Only the accept loop adds, so checking then adding is not
/// a race; a [`Slot`] gives its place back when the connection's task ends. One atomic add and
/// one subtract per connection, nothing per request.
#[derive(Debug, Clone)]
pub(crate) struct Open {
    count: Arc<AtomicUsize>,
    cap: usize,
}

/// One connection's place under the cap.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl Open {
    pub(crate) fn new(cap: usize) -> Open {
        Open { count: Arc::new(AtomicUsize::new(0)), cap }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// A place for one more connection, unless the cap is reached.
    pub(crate) fn take(&self) -> Option<Slot> {
        if self.count.load(Ordering::Acquire) >= self.cap {
            return None;
        }
        self.count.fetch_add(1, Ordering::AcqRel);
        Some(Slot(self.count.clone()))
    }
}

/// The answer to a connection past the cap (its length is checked by a test).
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 39\r\n\
retry-after: 1\r\n\
connection: close\r\n\
\r\n\
at the connection limit; retry shortly\n";

/// Answers a connection past the cap with [`REFUSED`] and closes it, without waiting for
/// anything: what the client already sent is read first (closing on unread bytes would reset
/// the connection, and the client could lose the answer), then the answer is written once.
pub(crate) fn refuse(stream: TcpStream) {
    use std::io::{Read, Write};
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    let mut sent = [0u8; 4096];
    let _ = stream.read(&mut sent);
    let _ = stream.write(REFUSED);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The connections refused at the cap, logged once a second with their count instead of one
/// line each: the first refusal at once, then a line per second while they go on.
#[derive(Debug)]
pub(crate) struct Refusals {
    cap: usize,
    unlogged: u64,
    last_line: Option<Instant>,
}

/// How often at most the refusals are logged.
const REFUSALS_EVERY: Duration = Duration::from_secs(1);

impl Refusals {
    pub(crate) fn new(cap: usize) -> Refusals {
        Refusals { cap, unlogged: 0, last_line: None }
    }

    /// One more refused connection.
    pub(crate) fn count(&mut self) {
        self.unlogged += 1;
        let now = Instant::now();
        if self.last_line.is_none_or(|at| now >= at + REFUSALS_EVERY) {
            self.log(now);
        }
    }

    /// When the refusals not yet logged are due, if there are any.
    pub(crate) fn due(&self) -> Option<Instant> {
        (self.unlogged > 0).then(|| self.last_line.map_or_else(Instant::now, |at| at + REFUSALS_EVERY))
    }

    /// Logs the refusals not yet logged.
    pub(crate) fn log(&mut self, now: Instant) {
        if self.unlogged == 0 {
            return;
        }
        let (refused, cap) = (self.unlogged, self.cap);
        tracing::warn!(
            refused,
            cap,
            "connection limit reached: {refused} new connection(s) answered 503 and closed \
             ({cap} open; see --max-connections)"
        );
        self.unlogged = 0;
        self.last_line = Some(now);
    }
}

/// What the connection's service and its I/O share: whether a request is being handled.
#[derive(Debug, Default)]
pub(crate) struct Busy(AtomicBool);

impl Busy {
    fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, busy: bool) {
        self.0.store(busy, Ordering::Relaxed);
    }
}

/// Waits for a new connection's first byte before hyper gets it: `false` if the header-read
/// timeout (from the accept) or the shutdown came first, or the socket failed; the connection is
/// then dropped, closed without an answer.
pub(crate) async fn first_byte(
    stream: &TcpStream,
    accepted: Instant,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let deadline = limits.header_read().map(|h| accepted + h);
    // A peek, not `readable()`: tokio takes an accepted socket for readable until a read says
    // otherwise, so `readable()` would return at once. EOF (0 bytes) goes to hyper too, which
    // ends the connection.
    let mut byte = [0u8; 1];
    tokio::select! {
        biased;
        () = shutdown => false,
        peeked = stream.peek(&mut byte) => peeked.is_ok(),
        () = until(deadline) => false,
    }
}

/// Resolves at `deadline`; never without one.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The app as hyper's service for one connection: marks the connection busy from the request's
/// head until its answer.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub(crate) app: axum::Router,
    pub(crate) busy: Arc<Busy>,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Answering<axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.busy.set(true);
        let answer = tower::Service::call(&mut self.app.clone(), request);
        Answering { answer, busy: self.busy.clone() }
    }
}

pin_project_lite::pin_project! {
    /// A handler's answer; the connection stops being busy when it is ready.
    pub(crate) struct Answering<F> {
        #[pin]
        answer: F,
        busy: Arc<Busy>,
    }
}

impl<F: Future> Future for Answering<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let answer = ready!(this.answer.poll(cx));
        this.busy.set(false);
        Poll::Ready(answer)
    }
}

/// Where a connection is (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request head, since `since`.
    Head,
    /// Answered, waiting for the next request since `since`.
    Idle,
}

/// A connection's socket under its timeouts, and closed at the shutdown while a request head is
/// incomplete. Reads that find nothing to read look at the clock; reads and writes that move
/// bytes only note the phase.
pub(crate) struct Guarded {
    io: TcpStream,
    limits: HttpLimits,
    phase: Phase,
    since: Instant,
    busy: Arc<Busy>,
    stopping: Arc<AtomicBool>,
    /// Goes off no later than the current phase's deadline (see [`Guarded::check_clock`]).
    timer: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// `io` accepted at `accepted`, in its first head phase.
    pub(crate) fn new(
        io: TcpStream,
        accepted: Instant,
        limits: HttpLimits,
        busy: Arc<Busy>,
        stopping: Arc<AtomicBool>,
    ) -> Guarded {
        let timer = limits.shortest().map(|s| Box::pin(tokio::time::sleep_until(accepted + s)));
        Guarded { io, limits, phase: Phase::Head, since: accepted, busy, stopping, timer }
    }

    /// The current phase's deadline: none while a request is being handled.
    fn deadline(&self) -> Option<Instant> {
        if self.busy.get() {
            return None;
        }
        let limit = match self.phase {
            Phase::Head => self.limits.header_read(),
            Phase::Idle => self.limits.idle(),
        };
        limit.map(|l| self.since + l)
    }

    /// With nothing to read: an error if the phase's deadline has passed, or if the shutdown is
    /// requested while a head is incomplete.
    ///
    /// The timer is not moved when the phase changes (that would be a timer-wheel operation per
    /// request). Instead, when it goes off it is set again to the phase's deadline, or to the
    /// shortest timeout from now if that comes sooner: no phase that begins later can end
    /// earlier than that, so the timer never goes off after a deadline, and an idle connection
    /// is looked at every `min(header-read, idle)` timeout at most.
    fn check_clock(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stopping.load(Ordering::Acquire) && self.phase == Phase::Head && !self.busy.get() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "shutting down before the request head was complete",
            )));
        }
        let Some(shortest) = self.limits.shortest() else {
            return Poll::Pending;
        };
        loop {
            let deadline = self.deadline();
            let Some(timer) = self.timer.as_mut() else {
                return Poll::Pending;
            };
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if let Some(at) = deadline.filter(|at| *at <= now) {
                let what = match self.phase {
                    Phase::Head => "no whole request head within the header-read timeout",
                    Phase::Idle => "no new request within the idle timeout",
                };
                tracing::debug!(late_ms = (now - at).as_millis() as u64, "closing a connection: {what}");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
            }
            let next = deadline.map_or(now + shortest, |at| at.min(now + shortest));
            timer.as_mut().reset(next);
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if self.phase == Phase::Idle && buf.filled().len() > before && !self.busy.get() {
                    self.phase = Phase::Head;
                    self.since = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.check_clock(cx),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write(cx, data));
        // Bytes written while no request is being handled are (the rest of) an answer: the
        // connection is idle from its last write. (A `100 Continue` goes out while busy.)
        if matches!(written, Ok(n) if n > 0) && !self.busy.get() {
            self.phase = Phase::Idle;
            self.since = Instant::now();
        }
        Poll::Ready(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs));
        if matches!(written, Ok(n) if n > 0) && !self.busy.get() {
            self.phase = Phase::Idle;
            self.since = Instant::now();
        }
        Poll::Ready(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        limits: HttpLimits,
    }

    #[test]
    fn the_flags_default_to_the_documented_limits() {
        let cli = Cli::try_parse_from(["server"]).unwrap();
        assert_eq!(cli.limits, HttpLimits::default());
        assert_eq!(cli.limits.header_read(), Some(Duration::from_secs(10)));
        assert_eq!(cli.limits.idle(), Some(Duration::from_secs(75)));
        assert_eq!(cli.limits.shortest(), Some(Duration::from_secs(10)));
        let off =
            Cli::try_parse_from(["server", "--header-read-timeout", "0", "--idle-timeout", "0"]).unwrap();
        assert_eq!((off.limits.header_read(), off.limits.idle(), off.limits.shortest()), (None, None, None));
        assert!(Cli::try_parse_from(["server", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn the_refusal_is_a_whole_http_response() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())), "{head}");
    }

    #[test]
    fn a_place_under_the_cap_comes_back_when_its_connection_ends() {
        let open = Open::new(2);
        let (a, b) = (open.take().unwrap(), open.take().unwrap());
        assert!(open.take().is_none(), "at the cap");
        drop(a);
        let c = open.take();
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(open.count.load(Ordering::Acquire), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_logged_at_once_then_at_most_once_a_second() {
        let mut refusals = Refusals::new(4);
        refusals.count();
        assert_eq!((refusals.unlogged, refusals.due()), (0, None), "the first one at once");
        let first = refusals.last_line.unwrap();
        for _ in 0..99 {
            refusals.count();
        }
        assert_eq!(refusals.unlogged, 99);
        assert_eq!(refusals.due(), Some(first + REFUSALS_EVERY));
        tokio::time::advance(REFUSALS_EVERY).await;
        refusals.count();
        assert_eq!((refusals.unlogged, refusals.due()), (0, None), "a second later, the hundred in one line");
    }
}
