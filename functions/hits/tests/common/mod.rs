//! Test support: the real `hits-server` binary as a child process, and real Lambda events.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub url: String,
    pub child: Child,
}

impl Server {
    /// Starts `hits-server --addr 127.0.0.1:0` with `env` and waits for its `listening on` line.
    pub fn spawn(env: &[(&str, &str)]) -> Server {
        Server::spawn_with_args(&["--addr", "127.0.0.1:0", "--shutdown-timeout", "10"], env)
    }

    /// Starts `hits-server` with `args` (which must listen on a port it prints) and `env`.
    pub fn spawn_with_args(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hits-server"));
        command
            .args(args)
            .env_remove("HITS_STORE")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start hits-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(20)).expect("hits-server did not say where it listens");
        Server { url, child }
    }

    /// Kills the server now (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, at most `limit`; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
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
