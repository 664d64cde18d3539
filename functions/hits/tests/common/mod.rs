//! Test support: the real `hits-server` binary as a child process, HTTP/1.1 spoken by hand
//! ([`raw`]), the file store's lock held from outside, and real Lambda events.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use testkit::process::Process;

pub mod raw;

/// The real `hits-server` binary, started with `HITS_STORE` cleared and then `env`.
pub struct Server;

impl Server {
    /// `hits-server --addr 127.0.0.1:0 --shutdown-timeout 10` with `env`, once it listens.
    pub fn spawn(env: &[(&str, &str)]) -> Process {
        Server::spawn_with_args(&["--addr", "127.0.0.1:0", "--shutdown-timeout", "10"], env)
    }

    /// `hits-server` with `args` (which must listen on a port it prints) and `env`.
    pub fn spawn_with_args(args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::serve(
            Command::new(env!("CARGO_BIN_EXE_hits-server"))
                .args(args)
                .env_remove("HITS_STORE")
                .envs(env.iter().copied()),
        )
    }
}

/// `http://127.0.0.1:PORT` → the socket address.
pub fn socket_addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Holds the file store's lock (`<path>.lock`, `flock(2)`) as a second task on the same EFS
/// volume would mid-commit: the server's next commit waits for it, so every `GET /hits` sent
/// meanwhile stays in flight, for as long as the test likes.
pub fn hold_store_lock(path: &std::path::Path) -> std::fs::File {
    let lock = std::fs::File::options().read(true).write(true).open(path.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    lock
}

/// Whether process `pid` is waiting for a file lock (a blocked `flock(2)` shows in /proc/locks
/// as `->` with its pid): with [`hold_store_lock`], that a request has reached the store and
/// waits there.
pub fn waiting_for_a_lock(pid: u32) -> bool {
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid))
}

pub fn client() -> reqwest::Client {
    aws_setup::install_tls_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// `GET {url}/hits` → the count, or `None` if the call did not get a 200 with a count.
pub async fn hit(client: &reqwest::Client, url: &str) -> Option<u64> {
    let response = client.get(format!("{url}/hits")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().await.ok()?.parse().ok()
}

/// A fixture from `tests/fixtures` (real events; see the README there).
pub fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// API Gateway REST (v1) `GET path`: the stage lives in `requestContext.stage`.
pub fn rest_api_event(path: &str) -> serde_json::Value {
    let mut e = fixture("apigw_proxy_request.json");
    e["httpMethod"] = serde_json::json!("GET");
    e["path"] = serde_json::json!(path);
    e["resource"] = serde_json::json!(path);
    e["body"] = serde_json::Value::Null;
    e
}

/// HTTP API (v2) or Function URL `GET raw_path` from fixture `file`: a stage that is not
/// `$default` is part of `rawPath`.
pub fn http_api_event(file: &str, raw_path: &str) -> serde_json::Value {
    let mut e = fixture(file);
    e["rawPath"] = serde_json::json!(raw_path);
    e["requestContext"]["http"]["method"] = serde_json::json!("GET");
    e["requestContext"]["http"]["path"] = serde_json::json!(raw_path);
    e.as_object_mut().unwrap().remove("body");
    e
}
