//! `hits-server` against the attacks of issue 19, with raw sockets as the attacking clients:
//! slowloris and silent connections (header-read timeout), kept-alive connections left idle
//! (idle timeout), a flood past the connection cap (503 and a counted log line), and SIGTERM
//! while connections hold partial request heads. Short timeouts through the flags keep it fast.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::raw::{Conn, Outcome};
use common::{Server, hold_store_lock, socket_addr, waiting_for_a_lock};
use testkit::eventually_blocking;
use testkit::process::Process;

/// `hits-server` on a free port with the memory store and `limits` (flags).
fn server(limits: &[&str]) -> Process {
    let mut args = vec!["--addr", "127.0.0.1:0", "--shutdown-timeout", "10"];
    args.extend_from_slice(limits);
    Server::spawn_with_args(&args, &[("RUST_LOG", "info")])
}

/// Reads until the server ends the connection (EOF or a reset), at most `limit`: when it did,
/// and what it sent before.
fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<(Instant, Vec<u8>)> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Some((Instant::now(), got)),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                return Some((Instant::now(), got));
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_slowloris_client_and_a_silent_one_are_closed_at_the_header_read_timeout() {
    let timeout = Duration::from_secs(1);
    let server = server(&["--header-read-timeout", "1", "--idle-timeout", "30"]);
    let addr = socket_addr(&server.url);

    // A byte of headers every 100 ms, never the blank line that ends them.
    let slow = std::thread::spawn(move || {
        let opened = Instant::now();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /hits HTTP/1.1\r\nHost: hits\r\nX-Slow: ").unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut byte = [0u8; 1];
        while opened.elapsed() < Duration::from_secs(20) {
            if stream.write_all(b"a").is_err() {
                return Some(opened.elapsed());
            }
            match stream.read(&mut byte) {
                Ok(0) => return Some(opened.elapsed()),
                Ok(_) => panic!("the server answered a request it never got whole"),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(opened.elapsed()),
            }
        }
        None
    });
    let opened = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let (closed, sent) =
        until_closed(&mut silent, Duration::from_secs(20)).expect("the silent connection stays open");
    let silent_for = closed - opened;
    let slow_for = slow.join().unwrap().expect("the slowloris connection stays open 20 s");
    eprintln!(
        "header-read timeout {timeout:?}: silent connection closed after {:.0} ms, slowloris after {:.0} ms",
        silent_for.as_secs_f64() * 1e3,
        slow_for.as_secs_f64() * 1e3
    );
    assert!(sent.is_empty(), "closed without an answer: {:?}", String::from_utf8_lossy(&sent));
    for took in [silent_for, slow_for] {
        assert!(took >= timeout && took < timeout + Duration::from_secs(5), "closed after {took:?}");
    }
    // A client that sends its request in time is answered.
    let (answer, _) = Conn::open(addr, Duration::from_secs(5)).unwrap().get("/hits");
    assert!(matches!(&answer, Outcome::Answered(r) if r.count() == Some(1)), "{answer:?}");
}

#[test]
fn a_kept_alive_connection_is_closed_at_the_idle_timeout_not_the_header_read_one() {
    let idle = Duration::from_secs(2);
    let server = server(&["--header-read-timeout", "0.3", "--idle-timeout", "2"]);
    let addr = socket_addr(&server.url);
    let mut conn = Conn::open(addr, Duration::from_secs(5)).unwrap();
    for expected in 1..=2 {
        let (answer, keep) = conn.get("/hits");
        assert!(matches!(&answer, Outcome::Answered(r) if r.count() == Some(expected)) && keep, "{answer:?}");
    }
    let answered = Instant::now();
    assert!(conn.ended_by_server(Duration::from_secs(20)), "the idle connection stays open");
    let idle_for = answered.elapsed();
    eprintln!("idle timeout {idle:?}: closed {:.0} ms after the last answer", idle_for.as_secs_f64() * 1e3);
    // The header-read timeout (0.3 s) does not count the wait for a next request.
    assert!(idle_for >= idle - Duration::from_millis(100), "closed after {idle_for:?}");
    assert!(idle_for < idle + Duration::from_secs(5), "closed after {idle_for:?}");
}

#[test]
fn a_request_begun_after_an_idle_pause_has_the_header_read_timeout_from_its_first_byte() {
    let server = server(&["--header-read-timeout", "1", "--idle-timeout", "10"]);
    let addr = socket_addr(&server.url);
    let mut conn = Conn::open(addr, Duration::from_secs(5)).unwrap();
    let (answer, keep) = conn.get("/hits");
    assert!(matches!(&answer, Outcome::Answered(r) if r.count() == Some(1)) && keep, "{answer:?}");
    // Idle for longer than the header-read timeout (the client's pace, not a wait for the server).
    std::thread::sleep(Duration::from_secs(2));
    conn.send(b"GET /hits HTTP/1.1\r\nHost: hits\r\n").unwrap();
    let begun = Instant::now();
    assert!(conn.ended_by_server(Duration::from_secs(20)), "the half-sent request keeps its connection");
    let took = begun.elapsed();
    eprintln!("a head begun after 2 s idle: closed {:.0} ms after its first byte", took.as_secs_f64() * 1e3);
    // From the first byte: not at once (the idle pause does not count), not at the idle deadline (8 s on).
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");
}

/// The `refused=N` counts of the server's cap lines so far: how many lines, and their sum.
fn cap_lines(server: &Process) -> (usize, u64) {
    let lines: Vec<u64> = server
        .log()
        .lines()
        .filter(|l| l.contains("connection limit reached"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("refused=")?.parse().ok()))
        .collect();
    (lines.len(), lines.iter().sum())
}

#[test]
fn past_the_connection_cap_new_connections_get_503_and_one_log_line_a_second_counts_them() {
    const CAP: usize = 4;
    const REFUSED: u64 = 30;
    let server = server(&["--max-connections", "4", "--header-read-timeout", "30"]);
    let addr = socket_addr(&server.url);
    // The cap, taken by connections that send nothing or half a head.
    let mut held: Vec<Conn> = (0..CAP).map(|_| Conn::open(addr, Duration::from_secs(5)).unwrap()).collect();
    for conn in &mut held[CAP / 2..] {
        conn.send(b"GET /hits HTTP/1.1\r\nHost: hits\r\n").unwrap();
    }
    // Connections are accepted in order: every later one finds the cap taken.
    let started = Instant::now();
    for _ in 0..REFUSED {
        let mut conn = Conn::open(addr, Duration::from_secs(5)).unwrap();
        let (answer, keep) = conn.response();
        match answer {
            Outcome::Answered(r) => {
                assert_eq!(r.status, 503, "{r:?}");
                assert_eq!(r.header("retry-after"), Some("1"));
                assert!(r.closes() && !keep, "{r:?}");
            }
            other => panic!("a connection past the cap: {other:?}"),
        }
        assert!(conn.ended_by_server(Duration::from_secs(5)), "closed after the 503");
    }
    let flood = started.elapsed();
    assert!(
        eventually_blocking(Duration::from_secs(5), || cap_lines(&server).1 == REFUSED),
        "the cap lines do not count {REFUSED} refusals:\n{}",
        server.log()
    );
    let (lines, _) = cap_lines(&server);
    eprintln!("{REFUSED} connections past a cap of {CAP} in {flood:?}: 503 each, {lines} log line(s)");
    // One line at the first refusal, then one a second: not one per connection.
    let seconds = flood.as_secs() as usize;
    assert!(lines <= seconds + 2, "{lines} cap lines for {REFUSED} refusals in {flood:?}");

    // A connection that goes frees its place.
    drop(held.remove(0));
    let answered = eventually_blocking(Duration::from_secs(5), || {
        let (answer, _) = Conn::open(addr, Duration::from_secs(5)).unwrap().get("/hits");
        matches!(answer, Outcome::Answered(r) if r.status == 200)
    });
    assert!(answered, "no place freed under the cap:\n{}", server.log());
}

#[test]
fn the_cap_is_lowered_to_what_the_descriptor_limit_leaves_room_for() {
    let command = format!("ulimit -n 100 && exec {} \"$@\"", env!("CARGO_BIN_EXE_hits-server"));
    let server =
        Process::serve(Command::new("sh").args(["-c", &command, "hits-server", "--addr", "127.0.0.1:0"]));
    assert!(
        server.wait_for_log("capping at 36", Duration::from_secs(5)),
        "no warning about the descriptor limit:\n{}",
        server.log()
    );
}

#[test]
fn sigterm_closes_partial_heads_at_once_and_still_answers_the_request_in_flight() {
    const PARTIAL: usize = 50;
    let shutdown_timeout = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let mut server = Server::spawn_with_args(
        &["--addr", "127.0.0.1:0", "--shutdown-timeout", "10", "--header-read-timeout", "60"],
        &[("HITS_STORE", &store)],
    );
    let addr = socket_addr(&server.url);
    let (first, _) = Conn::open(addr, Duration::from_secs(5)).unwrap().get("/hits");
    assert!(matches!(&first, Outcome::Answered(r) if r.count() == Some(1)), "{first:?}");

    // A request held in the store: the handler waits for the lock.
    let lock = hold_store_lock(&path);
    let in_flight =
        std::thread::spawn(move || Conn::open(addr, Duration::from_secs(30)).unwrap().get("/hits").0);
    let pid = server.child.id();
    assert!(
        eventually_blocking(Duration::from_secs(10), || waiting_for_a_lock(pid)),
        "the request never reached the store"
    );

    // Connections that sent half a request head, all read by the server.
    let mut partial: Vec<Conn> = (0..PARTIAL)
        .map(|_| {
            let mut conn = Conn::open(addr, Duration::from_secs(5)).unwrap();
            conn.send(b"GET /hits HTTP/1.1\r\nHost: hits\r\nUser-Agent: half").unwrap();
            conn
        })
        .collect();
    assert!(
        eventually_blocking(Duration::from_secs(10), || partial.iter().all(|c| c.read_by_server(addr))),
        "the server did not read the partial heads"
    );

    let signalled = Instant::now();
    server.signal("TERM");
    for conn in &mut partial {
        assert!(
            conn.ended_by_server(Duration::from_secs(2)),
            "a partial head kept its connection open past SIGTERM"
        );
    }
    let all_closed = signalled.elapsed();
    assert!(server.child.try_wait().unwrap().is_none(), "exited with a request in flight");

    drop(lock);
    let answer = in_flight.join().unwrap();
    assert!(
        matches!(&answer, Outcome::Answered(r) if r.count() == Some(2) && r.closes()),
        "the request in flight: {answer:?}"
    );
    let status = server.wait_exit(shutdown_timeout).expect("exits after SIGTERM");
    let exited = signalled.elapsed();
    eprintln!(
        "{PARTIAL} partial heads closed {:.1} ms after SIGTERM; the held request answered, exit {status} after {:.0} ms \
         (--shutdown-timeout {shutdown_timeout:?})",
        all_closed.as_secs_f64() * 1e3,
        exited.as_secs_f64() * 1e3
    );
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert!(exited < shutdown_timeout / 2, "took {exited:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n");
}
