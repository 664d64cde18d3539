//! The `hits-server` and `hits` binaries as processes: the file store shared by two servers,
//! `kill -9` under load, SIGTERM (under load on keep-alive connections, every outcome read byte
//! by byte; with requests held up in the store; with the store stuck past the deadline), and a
//! bad `HITS_STORE`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::raw::{Conn, Outcome};
use common::{Server, client, hit, hold_store_lock, socket_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_file_never_lose_increments() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("count").display());
    let a = Server::spawn(&[("HITS_STORE", &store)]);
    let b = Server::spawn(&[("HITS_STORE", &store)]);
    let client = client();
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let url = if i % 2 == 0 { a.url.clone() } else { b.url.clone() };
            let client = client.clone();
            tokio::spawn(async move { hit(&client, &url).await.expect("every call succeeds") })
        })
        .collect();
    let mut seen = Vec::new();
    for c in calls {
        seen.push(c.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=200).collect::<Vec<_>>(), "no count handed out twice, none skipped");
    assert_eq!(std::fs::read_to_string(dir.path().join("count")).unwrap(), "200\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_restarts_at_or_above_every_acknowledged_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let server = Server::spawn(&[("HITS_STORE", &store)]);
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = client();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, acknowledged, stop) =
                (client.clone(), server.url.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match hit(&client, &url).await {
                        Some(n) => {
                            acknowledged.fetch_max(n, Ordering::SeqCst);
                        }
                        None => break, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let it commit a few hundred increments, then pull the plug mid-stream.
    while acknowledged.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.signal("KILL");
    let mut server = server;
    server.wait_exit(Duration::from_secs(5)).expect("killed");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked = acknowledged.load(Ordering::SeqCst);

    let on_disk: u64 =
        std::fs::read_to_string(&path).unwrap().trim().parse().expect("the file is whole, never torn");
    assert!(on_disk >= acked, "on disk {on_disk} < acknowledged {acked}: an acknowledged increment was lost");
    let restarted = Server::spawn(&[("HITS_STORE", &store)]);
    let next = hit(&client, &restarted.url).await.unwrap();
    assert_eq!(next, on_disk + 1);
    eprintln!("killed after {acked} acknowledged; {on_disk} on disk; restart answered {next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_requests_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let mut server = Server::spawn(&[("HITS_STORE", &store)]);
    let client = client();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (client.clone(), server.url.clone());
            tokio::spawn(async move { hit(&client, &url).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.signal("TERM");
    let mut answered = Vec::new();
    for c in calls {
        answered.extend(c.await.unwrap());
    }
    let status = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap()
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let on_disk: u64 = std::fs::read_to_string(&path).unwrap().trim().parse().unwrap();
    let highest = answered.iter().copied().max().unwrap_or(0);
    assert!(on_disk >= highest, "every answered count is on disk ({on_disk} < {highest})");
    let answers = answered.len();
    answered.sort_unstable();
    answered.dedup();
    assert_eq!(answered.len(), answers, "no count handed out twice");
}

fn run_with_store(binary: &str, store: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(binary)
        .env("HITS_STORE", store)
        // The Lambda binary must fail on the store before it ever looks for the runtime API.
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout))
}

#[test]
fn a_bad_hits_store_fails_fast_with_the_accepted_forms() {
    for binary in [env!("CARGO_BIN_EXE_hits-server"), env!("CARGO_BIN_EXE_hits")] {
        for bad in ["redis://localhost", "dynamodb:", "s3:bucket-without-key"] {
            let started = std::time::Instant::now();
            let (status, output) = run_with_store(binary, bad);
            assert!(!status.success(), "{binary} accepted HITS_STORE={bad}");
            assert!(
                output.contains(counter::ACCEPTED_FORMS),
                "{binary} with HITS_STORE={bad} said: {output}"
            );
            assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
        }
    }
}

#[test]
fn a_corrupt_count_file_stops_the_server_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    std::fs::write(&path, "not a number").unwrap();
    let (status, output) =
        run_with_store(env!("CARGO_BIN_EXE_hits-server"), &format!("file:{}", path.display()));
    assert!(!status.success());
    assert!(output.contains("not a number"), "{output}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a number", "left alone");
}

// --- SIGTERM under load, byte by byte. ------------------------------------------------------------

/// Waits for the server to exit, polling every millisecond: the exit status and when it was seen.
fn exit_within(
    server: &mut testkit::process::Process,
    limit: Duration,
) -> Option<(std::process::ExitStatus, Instant)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = server.child.try_wait().unwrap() {
            return Some((status, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// One call of a load client: when it was sent and answered, whether on a connection that had
/// already carried a request (keep-alive), and how it ended.
struct Call {
    sent: Instant,
    done: Instant,
    reused: bool,
    outcome: Outcome,
}

/// `GET /hits` in a loop on one keep-alive connection at a time, reconnecting whenever the server
/// ends one, until `stop`.
fn load_client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, answered: Arc<AtomicU64>) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let reused = conn.is_some();
        let (outcome, keep) = match &mut conn {
            Some(c) => c.get("/hits"),
            None => match Conn::open(addr, Duration::from_secs(30)) {
                Ok(c) => conn.insert(c).get("/hits"),
                Err(refused) => (refused, false),
            },
        };
        if !keep {
            conn = None;
        }
        match &outcome {
            Outcome::Answered(r) if r.status == 200 => {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            // Nothing listens any more: do not spin on connect.
            Outcome::Refused => std::thread::sleep(Duration::from_millis(2)),
            _ => {}
        }
        calls.push(Call { sent, done: Instant::now(), reused, outcome });
    }
    calls
}

#[test]
fn sigterm_under_load_completes_in_flight_requests_and_refuses_the_rest_cleanly() {
    const CLIENTS: usize = 64;
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let mut server = Server::spawn_with_args(
        &["--addr", "127.0.0.1:0", "--shutdown-timeout", &SHUTDOWN_TIMEOUT.as_secs().to_string()],
        &[("HITS_STORE", &store)],
    );
    let addr = socket_addr(&server.url);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || load_client(addr, stop, answered))
        })
        .collect();

    // Mid-load: every client has a kept-alive connection and a request in flight or about to be.
    let load_started = Instant::now();
    while answered.load(Ordering::Relaxed) < 2000 {
        assert!(load_started.elapsed() < Duration::from_secs(60), "the load never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let before_signal = answered.load(Ordering::Relaxed);
    let rate = before_signal as f64 / load_started.elapsed().as_secs_f64();
    let signalled = Instant::now();
    server.signal("TERM");
    let signal_sent = Instant::now();
    let exit = exit_within(&mut server, SHUTDOWN_TIMEOUT + Duration::from_secs(5));
    // The clients go on after the exit too: those calls must find nothing listening.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let calls: Vec<Call> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();

    let (status, exited) = exit.expect("hits-server did not exit after SIGTERM");
    let to_exit = exited - signalled;
    let mut counts = Vec::new();
    let mut broken = Vec::new();
    let (mut unavailable, mut refused, mut closed_fresh, mut closed_reused) = (0, 0, 0, 0);
    let mut closed_how = std::collections::BTreeMap::<&str, usize>::new();
    let (mut ok_across, mut ok_after, mut after_signal) = (0, 0, 0);
    for call in &calls {
        let after = call.sent >= signal_sent;
        after_signal += usize::from(after);
        match &call.outcome {
            Outcome::Answered(r) => match (r.status, r.count()) {
                (200, Some(n)) => {
                    counts.push(n);
                    ok_across += usize::from(call.sent < signalled && call.done > signal_sent);
                    ok_after += usize::from(after);
                }
                (503, _) if !r.body.is_empty() => unavailable += 1,
                _ => broken.push(format!(
                    "{} {:?}: {:?}",
                    r.status,
                    r.headers,
                    String::from_utf8_lossy(&r.body)
                )),
            },
            Outcome::Refused => refused += 1,
            Outcome::Closed(how) => {
                *closed_how.entry(how.as_str()).or_insert(0) += 1;
                if call.reused {
                    closed_reused += 1;
                } else {
                    closed_fresh += 1;
                }
            }
            Outcome::Broken(why) => broken.push(why.clone()),
        }
    }
    let n = counts.len() as u64;
    eprintln!(
        "{CLIENTS} keep-alive clients at {rate:.0} req/s; SIGTERM after {before_signal} answers; \
         SIGTERM → exit {:.1} ms (deadline {SHUTDOWN_TIMEOUT:?}), {status}",
        to_exit.as_secs_f64() * 1e3
    );
    eprintln!(
        "{} calls: {n} × 200 ({ok_across} sent before SIGTERM and answered after it, {ok_after} sent \
         after it), {unavailable} × 503, {closed_reused} closed before any byte on a kept-alive connection, {closed_fresh} on a new one \
         ({closed_how:?}), {refused} refused; {after_signal} sent after SIGTERM; {} partial",
        calls.len(),
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "{} partial or malformed responses, e.g. {:?}",
        broken.len(),
        &broken[..broken.len().min(5)]
    );
    assert!(status.success(), "exit status {status}");
    assert!(to_exit < SHUTDOWN_TIMEOUT, "took {to_exit:?} to exit, past the {SHUTDOWN_TIMEOUT:?} deadline");
    counts.sort_unstable();
    assert!(counts.windows(2).all(|w| w[0] != w[1]), "a count was handed out twice");
    assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "the answered counts are exactly 1..={n}");
    let on_disk: u64 = std::fs::read_to_string(&path).unwrap().trim().parse().unwrap();
    assert_eq!(
        on_disk, n,
        "on disk {on_disk}, answered {n}: every count on disk was acknowledged, and only those"
    );
    assert!(refused > 0 && after_signal > 0, "the clients went on after SIGTERM");
}

/// `requests` clients, each sending one `GET /hits` on a connection of its own.
fn one_call_each(
    addr: std::net::SocketAddr,
    requests: usize,
) -> Vec<std::thread::JoinHandle<(Outcome, Instant)>> {
    (0..requests)
        .map(|_| {
            std::thread::spawn(move || {
                let outcome = match Conn::open(addr, Duration::from_secs(30)) {
                    Ok(mut c) => c.get("/hits").0,
                    Err(refused) => refused,
                };
                (outcome, Instant::now())
            })
        })
        .collect()
}

#[test]
fn sigterm_waits_for_requests_held_up_in_the_store_and_answers_every_one() {
    const IN_FLIGHT: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let mut server = Server::spawn_with_args(
        &["--addr", "127.0.0.1:0", "--shutdown-timeout", "10"],
        &[("HITS_STORE", &store)],
    );
    let addr = socket_addr(&server.url);
    // A kept-alive connection that has carried one call and sits idle at SIGTERM.
    let mut idle = Conn::open(addr, Duration::from_secs(5)).unwrap();
    let (first, keep) = idle.get("/hits");
    assert!(matches!(&first, Outcome::Answered(r) if r.count() == Some(1) && keep), "{first:?}");

    let lock = hold_store_lock(&path);
    let calls = one_call_each(addr, IN_FLIGHT);
    std::thread::sleep(Duration::from_millis(300)); // read, routed, queued behind the lock
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.child.try_wait().unwrap().is_none(), "exited with {IN_FLIGHT} requests in flight");
    assert!(
        idle.ended_by_server(Duration::from_secs(2)),
        "the idle keep-alive connection is closed at SIGTERM"
    );
    let (late, _) = idle.get("/hits");
    assert!(matches!(late, Outcome::Closed(_)), "a request on it finds it closed, before any byte: {late:?}");
    assert!(
        matches!(Conn::open(addr, Duration::from_secs(2)), Err(Outcome::Refused)),
        "a new connection after SIGTERM is refused"
    );

    let released = Instant::now();
    drop(lock);
    let mut counts = Vec::new();
    for call in calls {
        match call.join().unwrap() {
            (Outcome::Answered(r), _) if r.count().is_some() => {
                assert!(r.closes(), "an answer during the drain says Connection: close: {:?}", r.headers);
                counts.push(r.count().unwrap());
            }
            (other, _) => panic!("an in-flight request was not answered: {other:?}"),
        }
    }
    let (status, exited) = exit_within(&mut server, Duration::from_secs(15)).expect("exits");
    eprintln!(
        "{IN_FLIGHT} requests held in the store across SIGTERM, all answered; lock released → exit {:.1} ms",
        (exited - released).as_secs_f64() * 1e3
    );
    assert!(status.success(), "exit status {status}");
    counts.sort_unstable();
    assert_eq!(counts, (2..=IN_FLIGHT as u64 + 1).collect::<Vec<_>>());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n", IN_FLIGHT + 1));
}

#[test]
fn a_store_stuck_past_the_shutdown_deadline_does_not_keep_the_process_alive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count");
    let store = format!("file:{}", path.display());
    let deadline = Duration::from_secs(1);
    let mut server = Server::spawn_with_args(
        &["--addr", "127.0.0.1:0", "--shutdown-timeout", "1"],
        &[("HITS_STORE", &store)],
    );
    let addr = socket_addr(&server.url);
    assert_eq!(hit_blocking(addr), Some(1));

    let lock = hold_store_lock(&path);
    let calls = one_call_each(addr, 4);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    server.signal("TERM");
    let exit = exit_within(&mut server, deadline + Duration::from_secs(10));
    drop(lock);
    let (status, exited) = exit.expect("still running 10 s past the deadline: the stuck store held it");
    let took = exited - signalled;
    eprintln!(
        "store stuck: SIGTERM → exit {:.0} ms (deadline {deadline:?}), {status}",
        took.as_secs_f64() * 1e3
    );
    assert!(took >= deadline && took < deadline + Duration::from_secs(2), "exited after {took:?}");
    assert_eq!(status.code(), Some(1), "a shutdown that cut requests off is not a clean exit");
    for call in calls {
        let (outcome, _) = call.join().unwrap();
        assert!(
            matches!(outcome, Outcome::Closed(_)),
            "cut off at the deadline before any byte: {outcome:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n", "nothing committed for calls never answered");
}

/// One `GET /hits` on a new connection → the count, if the answer was a 200 with one.
fn hit_blocking(addr: std::net::SocketAddr) -> Option<u64> {
    match Conn::open(addr, Duration::from_secs(10)).ok()?.get("/hits").0 {
        Outcome::Answered(r) => r.count(),
        _ => None,
    }
}
