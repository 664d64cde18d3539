//! A stalled AWS endpoint: a TCP listener on loopback that accepts every connection and never
//! answers, like a service that hangs (an emulator stopped with SIGSTOP, a black-holed route
//! after the handshake). Deterministic where stopping moto is not: the connect succeeds at
//! once, the answer never comes, so only the SDK's attempt and operation timeouts end a call.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Short timeouts for tests against an [`Endpoint`]: a call ends within 1 s.
pub const SHORT: aws_setup::Timeouts = aws_setup::Timeouts {
    connect: Duration::from_millis(250),
    attempt: Duration::from_millis(500),
    operation: Duration::from_secs(1),
    max_attempts: 3,
};

/// The listener, running until dropped.
pub struct Endpoint {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` or `Aws::with_endpoint`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Endpoint {
    /// Listens on a free port of 127.0.0.1 and holds every connection it accepts, unanswered.
    pub fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let (accepted, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        held.push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // Nothing to accept: look again shortly (and at the stop flag).
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Endpoint { url, accepted, stop }
    }

    /// Connections accepted so far (each SDK attempt that timed out opens a new one).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// An `aws_setup::Aws` whose every client sends here, with `timeouts`; region and
    /// credentials from the environment (`scripts/env.sh` sets fake ones). `None` (the test
    /// skips, said on stderr; under [`crate::required`] it fails) when `AWS_REGION` is not set.
    pub fn aws(&self, timeouts: aws_setup::Timeouts) -> Option<aws_setup::Aws> {
        let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if !set("AWS_REGION") && !set("AWS_DEFAULT_REGION") {
            crate::skip("needs a region and credentials in the environment (source scripts/env.sh)");
            return None;
        }
        Some(
            aws_setup::Aws::new(aws_setup::TrustRoots::Amazon)
                .with_endpoint(self.url.clone())
                .with_timeouts(timeouts),
        )
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
