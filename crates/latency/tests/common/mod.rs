//! Test support shared by the `latency` binary's tests: a counting HTTP target and output text.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `GET /hits` counter on 127.0.0.1 (a thread with its own runtime, so the CLI can be run
/// synchronously), and how many requests it has answered. `GET /broken` answers 503.
pub fn hits_server() -> (SocketAddr, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route("/hits", get(move || async move { (counter.fetch_add(1, Ordering::SeqCst) + 1).to_string() }))
        .route("/broken", get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }));
    (serve(app), hits)
}

/// Serves `app` on 127.0.0.1 from a thread with its own runtime (so tests can run the CLI
/// synchronously meanwhile); where it listens.
pub fn serve(app: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serves");
        });
    });
    addr
}

/// `latency args...` with fake credentials and none of this machine's AWS setup (the emulators
/// here take any signature), plus `env`; `meanwhile` gets the process id once it runs; killed
/// after `deadline`.
pub fn latency_with_fake_aws(
    env: &[(&str, &str)],
    args: &[&str],
    deadline: Duration,
    meanwhile: impl FnOnce(u32),
) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latency"));
    command
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "eu-west-2")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "HITS_STORE",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("runs latency");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    meanwhile(pid);
    match rx.recv_timeout(deadline) {
        Ok(output) => output.expect("latency's output"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("latency {args:?} did not finish in {deadline:?}");
        }
    }
}
