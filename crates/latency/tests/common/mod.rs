//! Test support shared by the `latency` binary's tests: a counting HTTP target and output text.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/hits",
                    get(move || async move { (counter.fetch_add(1, Ordering::SeqCst) + 1).to_string() }),
                )
                .route("/broken", get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }));
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serves");
        });
    });
    (addr, hits)
}
