//! `ingest-server` holds its connections to the server kit's limits, set by the same flags as
//! every server: a silent connection and a half-sent request head are closed at the
//! header-read timeout, a kept-alive one at the idle timeout. (The attacks themselves are in
//! the hits-server tests, which share the kit.)

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Server;

/// Reads until the server ends the connection, at most 20 s: how long after `since`, and what it
/// sent before.
fn closed_after(stream: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (since.elapsed(), got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                return (since.elapsed(), got);
            }
            Err(e) => panic!("still open after 20 s ({e}); got {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

#[test]
fn silent_half_sent_and_idle_connections_are_closed_at_their_timeouts() {
    let server = Server::spawn(
        &["--sink", "null", "--spill", "off", "--header-read-timeout", "1", "--idle-timeout", "2"],
        &[],
    );
    let addr: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();

    let opened = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"POST /events HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n").unwrap();
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let answered = Instant::now();

    for (name, stream, since, timeout) in [
        ("silent", &mut silent, opened, Duration::from_secs(1)),
        ("half-sent head", &mut half, opened, Duration::from_secs(1)),
        ("idle after an answer", &mut idle, answered, Duration::from_secs(2)),
    ] {
        let (took, got) = closed_after(stream, since);
        let got = String::from_utf8_lossy(&got);
        eprintln!("{name}: closed after {:.0} ms", took.as_secs_f64() * 1e3);
        assert!(
            took >= timeout - Duration::from_millis(100) && took < timeout + Duration::from_secs(5),
            "{name}: closed after {took:?}"
        );
        assert!(!got.contains("HTTP/1.1 4") && !got.contains("HTTP/1.1 5"), "{name}: answered {got:?}");
    }
}
