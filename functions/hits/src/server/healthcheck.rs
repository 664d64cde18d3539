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
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Where the server listens, as a client reaches it: an unspecified address (`0.0.0.0`,
    /// `[::]`, what the server binds in a container) becomes the loopback of its family.
    pub addr: SocketAddr,
    /// The whole probe: connect, send, read the status line.
    pub timeout: Duration,
}

impl Default for Probe {
    fn default() -> Self {
        Probe { addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)), timeout: Duration::from_millis(2000) }
    }
}

/// The status line is all the probe reads; a server that sends more than this without one is
/// not a healthy hits-server.
const MAX_STATUS_LINE: usize = 1024;

impl Probe {
    /// Parses the arguments after `healthcheck`; `Err` holds the message to print.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Probe, String> {
        let mut probe = Probe::default();
        let mut flags = super::Flags::new(args, "healthcheck ");
        while let Some((flag, inline)) = flags.next_flag() {
            match flag.as_str() {
                "--addr" => {
                    let v = flags.value("--addr", inline)?;
                    let addr: SocketAddr = v.parse().map_err(|_| {
                        format!("healthcheck --addr {v:?} is not HOST:PORT (e.g. 127.0.0.1:8000)")
                    })?;
                    probe.addr = reachable(addr);
                }
                "--timeout-ms" => {
                    let v = flags.value("--timeout-ms", inline)?;
                    let ms: u64 =
                        v.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                            format!("healthcheck --timeout-ms {v:?} is not a positive number")
                        })?;
                    probe.timeout = Duration::from_millis(ms);
                }
                "-h" | "--help" => return Err(super::USAGE.to_owned()),
                other => return Err(format!("unknown healthcheck argument {other:?}\n\n{}", super::USAGE)),
            }
        }
        Ok(probe)
    }

    /// The URL probed, for messages.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    /// `Ok` on a 200 within the timeout; `Err` says why not, in one line.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.status()).await {
            Ok(Ok(200)) => Ok(()),
            Ok(Ok(status)) => Err(format!("{} answered {status}, not 200", self.url())),
            Ok(Err(why)) => Err(format!("{}: {why}", self.url())),
            Err(_) => Err(format!("{}: no status line within {} ms", self.url(), self.timeout.as_millis())),
        }
    }

    /// Connects, sends `GET /healthz`, and reads up to the end of the status line.
    async fn status(&self) -> Result<u16, String> {
        let stream = TcpStream::connect(self.addr).await.map_err(|e| format!("cannot connect: {e}"))?;
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nUser-Agent: hits-server-healthcheck\r\nConnection: close\r\n\r\n",
            self.addr
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
        Probe::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_probe_defaults_to_the_servers_port_on_loopback_within_two_seconds() {
        let probe = parse(&[]).unwrap();
        assert_eq!(probe.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(probe.timeout, Duration::from_millis(2000));
        assert_eq!(probe.url(), "http://127.0.0.1:8000/healthz");
    }

    #[test]
    fn an_unspecified_listen_address_is_probed_on_loopback() {
        assert_eq!(parse(&["--addr", "0.0.0.0:9000"]).unwrap().addr.to_string(), "127.0.0.1:9000");
        assert_eq!(parse(&["--addr=[::]:9000"]).unwrap().addr.to_string(), "[::1]:9000");
        assert_eq!(parse(&["--addr", "10.0.3.7:8000"]).unwrap().addr.to_string(), "10.0.3.7:8000");
    }

    #[test]
    fn the_probe_timeout_is_in_milliseconds() {
        assert_eq!(parse(&["--timeout-ms", "250"]).unwrap().timeout, Duration::from_millis(250));
        assert_eq!(parse(&["--timeout-ms=5000"]).unwrap().timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_probe_arguments_are_explained() {
        assert!(parse(&["--addr", "localhost:8000"]).unwrap_err().contains("HOST:PORT"));
        assert!(parse(&["--timeout-ms", "0"]).unwrap_err().contains("positive"));
        assert!(parse(&["--timeout-ms", "2s"]).unwrap_err().contains("positive"));
        assert!(parse(&["--timeout-ms"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--shutdown-timeout", "1"]).unwrap_err().contains("unknown healthcheck argument"));
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
        Probe { addr, timeout: Duration::from_millis(500) }
    }

    #[tokio::test]
    async fn a_200_is_healthy() {
        let addr = one_shot(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        assert_eq!(probe(addr).check().await, Ok(()));
    }

    #[tokio::test]
    async fn any_other_status_is_not() {
        let addr = one_shot(Some("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")).await;
        let why = probe(addr).check().await.unwrap_err();
        assert!(why.contains("answered 503, not 200"), "{why}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let addr = one_shot(None).await;
        let why = probe(addr).check().await.unwrap_err();
        assert!(why.contains("no status line within 500 ms"), "{why}");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_refused_connection() {
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let why = probe(addr).check().await.unwrap_err();
        assert!(why.contains("cannot connect"), "{why}");
        assert!(!why.contains('\n'), "one line: {why}");
    }
}
