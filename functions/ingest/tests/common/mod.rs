//! Test support: the real `ingest-server` binary as a child process, moto's S3 read back, and
//! event generators with unique ids.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::process::Process;

#[allow(unused_imports)] // not every test file polls
pub use testkit::eventually;

/// The real `ingest-server` binary.
pub struct Server;

impl Server {
    /// `ingest-server --addr 127.0.0.1:0 <args>` with the sinks cleared and then `env`, once it
    /// listens.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::serve(&mut Server::command(args, env))
    }

    /// The same command, for a test that does not wait for it to listen.
    pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ingest-server"));
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("INGEST_SINK")
            .env_remove("INGEST_INVALID_SINK")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        command
    }
}

/// `GET /metrics` as name → value (label-less series only).
pub async fn metrics(server: &Process, client: &reqwest::Client) -> BTreeMap<String, f64> {
    let text = client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect()
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
