//! `hits-server healthcheck`: one `GET /healthz` against the server in the same container, for a
//! Docker `HEALTHCHECK` (distroless has no shell and no curl). Exit 0 on a 200, 1 otherwise,
//! with the reason on one line of stderr (Docker keeps it in `docker inspect`).
//!
//! A plain HTTP/1.1 request on a TCP stream, reading only the status line: a probe needs no HTTP
//! client, and this one never opens the store (`HITS_STORE`) or starts the logger.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

/// What `hits-server healthcheck` probes, and for how long.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Probe {
    /// The server's address (0.0.0.0 or [::] probe loopback, so the server's own --addr works
    /// here too).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// How long the whole probe may take: connect, send, read the status line.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)), Duration::from_millis(2000))
    }
}

/// Why a probe failed, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unhealthy(String);

/// The status line is all the probe reads; a server that sends more than this without one is
/// not a healthy hits-server.
const MAX_STATUS_LINE: usize = 1024;

impl Probe {
    /// A probe of `addr` (as the server's `--addr` names it) within `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Probe {
        Probe { addr, timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX).max(1) }
    }

    /// Where the probe connects: an unspecified address (`0.0.0.0`, `[::]`, what the server
    /// binds in a container) becomes the loopback of its family.
    pub fn target(&self) -> SocketAddr {
        reachable(self.addr)
    }

    /// How long the whole probe may take.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// One probe on one thread (it runs every few seconds next to the server it checks): exit 0
    /// on a 200, 1 with the reason on stderr otherwise.
    pub fn run(&self) -> std::process::ExitCode {
        let checked = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(self.check()),
            Err(e) => Err(Unhealthy(format!("cannot start the runtime: {e}"))),
        };
        match checked {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("hits-server healthcheck: {why}");
                std::process::ExitCode::FAILURE
            }
        }
    }

    /// The URL probed, for messages.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.target())
    }

    /// `Ok` on a 200 within the timeout; `Err` says why not, in one line.
    pub async fn check(&self) -> Result<(), Unhealthy> {
        let why = match tokio::time::timeout(self.timeout(), self.status()).await {
            Ok(Ok(200)) => return Ok(()),
            Ok(Ok(status)) => format!("{} answered {status}, not 200", self.url()),
            Ok(Err(why)) => format!("{}: {why}", self.url()),
            Err(_) => format!("{}: no status line within {} ms", self.url(), self.timeout_ms),
        };
        Err(Unhealthy(why))
    }

    /// Connects, sends `GET /healthz`, and reads up to the end of the status line.
    async fn status(&self) -> Result<u16, String> {
        let target = self.target();
        let stream = TcpStream::connect(target).await.map_err(|e| format!("cannot connect: {e}"))?;
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {target}\r\nUser-Agent: hits-server-healthcheck\r\nConnection: close\r\n\r\n"
        );
        let mut sent = 0;
        while sent < request.len() {
            stream.writable().await.map_err(|e| format!("cannot send: {e}"))?;
            match stream.try_write(&request.as_bytes()[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("cannot send: {e}")),
            }
        }
        let mut received = Vec::with_capacity(128);
        let mut chunk = [0u8; 256];
        loop {
            if let Some(end) = received.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&received[..end]);
                return status_code(&line).ok_or_else(|| format!("not an HTTP status line: {line:?}"));
            }
            if received.len() > MAX_STATUS_LINE {
                return Err(format!("no status line in the first {MAX_STATUS_LINE} bytes"));
            }
            stream.readable().await.map_err(|e| format!("cannot read: {e}"))?;
            match stream.try_read(&mut chunk) {
                Ok(0) => return Err("the connection closed before a status line".into()),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
    }
}

/// `0.0.0.0:P` → `127.0.0.1:P`, `[::]:P` → `[::1]:P`; any other address as it is.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3).then(|| code.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn parse(args: &[&str]) -> Result<Probe, String> {
        let args = ["hits-server", "healthcheck"].iter().chain(args).map(std::string::ToString::to_string);
        match crate::server::Command::parse(args.skip(1)).map_err(|e| e.to_string())? {
            crate::server::Command::Healthcheck(probe) => Ok(probe),
            other => Err(format!("not a healthcheck: {other:?}")),
        }
    }

    #[test]
    fn the_probe_defaults_to_the_servers_port_on_loopback_within_two_seconds() {
        let probe = parse(&[]).unwrap();
        assert_eq!(probe.target().to_string(), "127.0.0.1:8000");
        assert_eq!(probe.timeout(), Duration::from_millis(2000));
        assert_eq!(probe.url(), "http://127.0.0.1:8000/healthz");
    }

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        assert_eq!(parse(&["--addr", "0.0.0.0:9000"]).unwrap().target().to_string(), "127.0.0.1:9000");
        assert_eq!(parse(&["--addr=[::]:9000"]).unwrap().target().to_string(), "[::1]:9000");
        assert_eq!(parse(&["--addr", "10.0.3.7:8000"]).unwrap().target().to_string(), "10.0.3.7:8000");
    }

    #[test]
    fn the_probe_timeout_is_in_milliseconds() {
        assert_eq!(parse(&["--timeout-ms", "250"]).unwrap().timeout(), Duration::from_millis(250));
        assert_eq!(parse(&["--timeout-ms=5000"]).unwrap().timeout(), Duration::from_secs(5));
    }

    #[test]
    fn bad_probe_arguments_are_explained() {
        assert!(parse(&["--addr", "localhost:8000"]).unwrap_err().contains("--addr"));
        assert!(parse(&["--timeout-ms", "0"]).unwrap_err().contains("--timeout-ms"));
        assert!(parse(&["--timeout-ms", "2s"]).unwrap_err().contains("--timeout-ms"));
        assert!(parse(&["--timeout-ms"]).unwrap_err().contains("value"));
        assert!(parse(&["--shutdown-timeout", "1"]).unwrap_err().contains("--shutdown-timeout"));
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("HTTP/1.1 200"), Some(200));
        assert_eq!(status_code("SSH-2.0-OpenSSH_9.2"), None);
        assert_eq!(status_code("HTTP/1.1 2000 OK"), None);
    }

    /// A one-connection server that answers the first request with `response` (or never, if
    /// `None`), on a free port.
    async fn one_shot(response: Option<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let Some(response) = response else {
                return std::future::pending::<()>().await;
            };
            stream.writable().await.unwrap();
            stream.try_write(response.as_bytes()).unwrap();
            // Keep the connection until the probe has read.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        addr
    }

    fn probe(addr: SocketAddr) -> Probe {
        Probe::new(addr, Duration::from_millis(500))
    }

    #[tokio::test]
    async fn a_200_is_healthy() {
        let addr = one_shot(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        assert_eq!(probe(addr).check().await, Ok(()));
    }

    #[tokio::test]
    async fn any_other_status_is_not() {
        let addr = one_shot(Some("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")).await;
        let why = probe(addr).check().await.unwrap_err().to_string();
        assert!(why.contains("answered 503, not 200"), "{why}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let addr = one_shot(None).await;
        let why = probe(addr).check().await.unwrap_err().to_string();
        assert!(why.contains("no status line within 500 ms"), "{why}");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_refused_connection() {
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let why = probe(addr).check().await.unwrap_err().to_string();
        assert!(why.contains("cannot connect"), "{why}");
        assert!(!why.contains('\n'), "one line: {why}");
    }
}
