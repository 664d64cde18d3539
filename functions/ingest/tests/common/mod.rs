//! Test support: the real `ingest-server` binary as a child process, moto's S3 read back, and
//! event generators with unique ids.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Server {
    pub url: String,
    pub child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `ingest-server --addr 127.0.0.1:0 <args>` with `env` and waits for its
    /// `listening on` line (on stderr: stdout may be the sink).
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ingest-server"));
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("INGEST_SINK")
            .env_remove("INGEST_INVALID_SINK")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start ingest-server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                keep.lock().unwrap().push(line);
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("ingest-server did not say where it listens: {:?}", log.lock().unwrap())
        });
        Server { url, child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
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

    /// SIGTERM, then the exit status (panics if it takes longer than `limit`).
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit)
            .unwrap_or_else(|| panic!("no exit within {limit:?} of SIGTERM:\n{}", self.log()))
    }

    /// Resident set size in bytes, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// `GET /metrics` as name → value (label-less series only).
    pub async fn metrics(&self, client: &reqwest::Client) -> BTreeMap<String, f64> {
        let text = client.get(format!("{}/metrics", self.url)).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    aws_setup::install_tls_provider();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(64).build().unwrap()
}

/// A valid event with a unique id.
pub fn event(id: u64) -> Value {
    json!({"type": "page_view", "timestamp": 1_700_000_000_000u64 + id, "id": id, "path": "/pricing"})
}

/// Every line of every object under `prefix` in `bucket`, parsed.
pub async fn s3_lines(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap();
            let body =
                s3.get_object().bucket(bucket).key(key).send().await.unwrap().body.collect().await.unwrap();
            for line in body.into_bytes().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(line).unwrap_or_else(|e| panic!("{key}: {e}")));
            }
        }
    }
    lines
}

/// The `id`s of `events`, sorted (duplicates kept, so a double delivery shows).
pub fn ids(events: &[Value]) -> Vec<u64> {
    let mut ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().expect("an id")).collect();
    ids.sort_unstable();
    ids
}

/// Polls `check` every 100 ms until it is true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
