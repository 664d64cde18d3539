//! One HTTP/1.1 connection spoken by hand, so that every way a call can end is told apart: a
//! whole response, a connection that ended before a single byte of one, or anything in between
//! (which is what a graceful shutdown must never produce). An HTTP client library would fold
//! "closed before the status line" and "closed inside the headers" into one error.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// `Connection: close`: the server ends the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// A 200 whose whole body is a count.
    pub fn count(&self) -> Option<u64> {
        (self.status == 200).then(|| std::str::from_utf8(&self.body).ok()?.parse().ok()).flatten()
    }
}

#[derive(Debug)]
pub enum Outcome {
    /// A whole response: status line, headers, and exactly `Content-Length` bytes of body.
    Answered(Response),
    /// `connect` refused: nothing listens any more.
    Refused,
    /// The connection ended (FIN, RST, broken pipe) before one byte of a response arrived.
    Closed(String),
    /// Anything else: part of a response, no answer in time, a malformed one.
    Broken(String),
}

pub struct Conn {
    stream: TcpStream,
}

/// How a connection that ends shows up in `read` / `write`.
fn ended(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

impl Conn {
    /// Connects; `answer_within` bounds every later wait for a response.
    pub fn open(addr: SocketAddr, answer_within: Duration) -> Result<Conn, Outcome> {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(stream) => {
                stream.set_read_timeout(Some(answer_within)).unwrap();
                stream.set_nodelay(true).unwrap();
                Ok(Conn { stream })
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Err(Outcome::Refused),
            Err(e) => Err(Outcome::Broken(format!("connect: {e}"))),
        }
    }

    /// `GET path` on this connection; the flag says whether it may carry another request.
    pub fn get(&mut self, path: &str) -> (Outcome, bool) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: hits\r\nUser-Agent: raw-test-client\r\n\r\n");
        if let Err(e) = self.stream.write_all(request.as_bytes()) {
            let outcome = if ended(&e) {
                Outcome::Closed(format!("write: {e}"))
            } else {
                Outcome::Broken(format!("write: {e}"))
            };
            return (outcome, false);
        }
        self.response()
    }

    /// Sends `bytes` as they are (part of a request, say).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// This end's address (the server sees it as the client's).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Reads one response (for a request sent before, or one the server sends unasked); the flag
    /// says whether the connection may carry another request.
    pub fn response(&mut self) -> (Outcome, bool) {
        let mut buf = Vec::new();
        let head_len = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return (Outcome::Broken("a response head over 16 KiB".into()), false);
            }
            match self.read_more(&mut buf) {
                Ok(0) if buf.is_empty() => return (Outcome::Closed("EOF".into()), false),
                Ok(0) => {
                    return (
                        Outcome::Broken(format!("EOF inside the head: {:?}", String::from_utf8_lossy(&buf))),
                        false,
                    );
                }
                Ok(_) => {}
                Err(e) if buf.is_empty() && ended(&e) => {
                    return (Outcome::Closed(format!("read: {e}")), false);
                }
                Err(e) => {
                    return (
                        Outcome::Broken(format!("read after {} bytes of the head: {e}", buf.len())),
                        false,
                    );
                }
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len - 4]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = match status_line.split(' ').collect::<Vec<_>>()[..] {
            ["HTTP/1.1", code, ..] => code.parse().ok(),
            _ => None,
        };
        let Some(status) = status else {
            return (Outcome::Broken(format!("status line {status_line:?}")), false);
        };
        let mut headers = Vec::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return (Outcome::Broken(format!("header line {line:?}")), false);
            };
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let mut response = Response { status, headers, body: buf.split_off(head_len) };
        if response.header("transfer-encoding").is_some() {
            return (
                Outcome::Broken(format!("a chunked response (this client reads Content-Length): {head}")),
                false,
            );
        }
        let Some(length) = response.header("content-length").and_then(|v| v.parse::<usize>().ok()) else {
            return (Outcome::Broken(format!("no Content-Length: {head}")), false);
        };
        while response.body.len() < length {
            match self.read_more(&mut response.body) {
                Ok(0) => {
                    let got = response.body.len();
                    return (
                        Outcome::Broken(format!("EOF after {got} of {length} body bytes: {head}")),
                        false,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    let got = response.body.len();
                    return (
                        Outcome::Broken(format!("{e} after {got} of {length} body bytes: {head}")),
                        false,
                    );
                }
            }
        }
        if response.body.len() > length {
            return (Outcome::Broken(format!("bytes after the body: {:?}", response.body)), false);
        }
        let keep = !response.closes();
        (Outcome::Answered(response), keep)
    }

    /// Whether the server ends this (idle) connection within `limit`: EOF or a reset, with no
    /// byte sent.
    pub fn ended_by_server(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => ended(&e),
        }
    }

    fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}

impl Conn {
    /// Whether every byte sent on this connection has been read by the server process: none
    /// left in this socket's send queue (the server's kernel has them) nor in the server
    /// socket's receive queue (the server read them). From /proc/net/tcp, so IPv4 only.
    pub fn read_by_server(&self, server: SocketAddr) -> bool {
        let client = self.local_addr();
        matches!(tcp_queues(client, server), Some((0, _)))
            && matches!(tcp_queues(server, client), Some((_, 0)))
    }
}

/// The send and receive queues, in bytes, of the IPv4 TCP socket from `local` to `remote` on
/// this machine (/proc/net/tcp: `local_address rem_address st tx_queue:rx_queue …`).
fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 || port(fields[1]) != Some(local.port()) || port(fields[2]) != Some(remote.port())
        {
            continue;
        }
        let (tx, rx) = fields[4].split_once(':')?;
        return Some((u64::from_str_radix(tx, 16).ok()?, u64::from_str_radix(rx, 16).ok()?));
    }
    None
}
