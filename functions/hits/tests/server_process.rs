//! The `hits-server` and `hits` binaries as processes: the file store shared by two servers,
//! `kill -9` under load, SIGTERM, and a bad `HITS_STORE`.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Server, client, hit};

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
                output.contains("memory | file:<path> | dynamodb:<table> | s3:<bucket>/<key>"),
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
