//! SIGTERM during a slow start: the server kit listens for the signal before the sinks are
//! opened and warmed, so an orchestrator that gives up on a task that never got ready (the sink
//! does not answer) stops it cleanly instead of killing it by the signal's default action.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use testkit::process::Process;

#[test]
fn sigterm_while_the_sink_does_not_answer_at_start_is_a_clean_exit() {
    // A "Firehose" that accepts the connection and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let mut server = Process::start(&mut common::Server::command(
        &["--sink", "firehose:events", "--spill", "off"],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "eu-west-2"),
        ],
    ));
    // The sink's warm-up has connected and waits for its answer: the start is under way.
    let started = Instant::now();
    let _held = loop {
        match silent.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no warm-up call came:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", server.log()));
    assert!(status.success(), "{status} (a signal's default action?):\n{}", server.log());
    assert!(!server.log().contains("listening on"), "it never got ready:\n{}", server.log());
}
