//! Shared by the stream tests: a stand-in for the function (an in-process HTTP server that
//! plays Lambda's Invoke endpoint — the function is not what is tested, the poller is), the
//! poller as a child process, and the on-failure queue in moto.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use testkit::process::Process;

/// What the stand-in answers to one event: a status and a body.
pub type Reply = Arc<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

/// One invocation as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub event: Value,
    pub status: u16,
    pub body: Value,
}

impl Invocation {
    /// The event's records.
    pub fn records(&self) -> &[Value] {
        self.event["Records"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The sequence numbers the function took (all of the batch but those it reported failed,
    /// none when it failed).
    pub fn done(&self, sequence: impl Fn(&Value) -> String) -> Vec<String> {
        if self.status != 200 {
            return Vec::new();
        }
        let failed: Vec<String> = self.body["batchItemFailures"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        // As the poller reads a report: everything from the lowest reported record on is retried.
        let records: Vec<String> = self.records().iter().map(&sequence).collect();
        let cut = records.iter().position(|s| failed.contains(s)).unwrap_or(records.len());
        records[..cut].to_vec()
    }
}

/// The function's stand-in.
pub struct Function {
    pub invoke_url: String,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    entered: Arc<AtomicUsize>,
    /// Invocations running now, and the most at once.
    running: Arc<(AtomicUsize, AtomicUsize)>,
}

#[derive(Clone)]
struct Stub {
    reply: Reply,
    delay: Duration,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    entered: Arc<AtomicUsize>,
    /// Invocations running now, and the most at once.
    running: Arc<(AtomicUsize, AtomicUsize)>,
}

async fn invoke(State(stub): State<Stub>, body: String) -> (StatusCode, String) {
    let event: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    stub.entered.fetch_add(1, Ordering::SeqCst);
    let now = stub.running.0.fetch_add(1, Ordering::SeqCst) + 1;
    stub.running.1.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(stub.delay).await;
    stub.running.0.fetch_sub(1, Ordering::SeqCst);
    let (status, answer) = (stub.reply)(&event);
    testkit::lock(&stub.invocations).push(Invocation { event, status, body: answer.clone() });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), answer.to_string())
}

impl Function {
    /// Serves on a free port of 127.0.0.1; each invocation takes `delay`, then answers `reply`.
    pub async fn start(
        delay: Duration,
        reply: impl Fn(&Value) -> (u16, Value) + Send + Sync + 'static,
    ) -> Function {
        let invocations = Arc::new(Mutex::new(Vec::new()));
        let entered = Arc::new(AtomicUsize::new(0));
        let running = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let stub = Stub {
            reply: Arc::new(reply),
            delay,
            invocations: invocations.clone(),
            entered: entered.clone(),
            running: running.clone(),
        };
        let app = axum::Router::new()
            .route("/2015-03-31/functions/stub/invocations", axum::routing::post(invoke))
            .with_state(stub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Function {
            invoke_url: format!("http://{addr}/2015-03-31/functions/stub/invocations"),
            invocations,
            entered,
            running,
        }
    }

    /// The most invocations that ran at once.
    pub fn most_at_once(&self) -> usize {
        self.running.1.load(Ordering::SeqCst)
    }

    /// Invocations begun (answered or not).
    pub fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        testkit::lock(&self.invocations).clone()
    }

    /// Every sequence number the function took, in the order it took them.
    pub fn done(&self, sequence: impl Fn(&Value) -> String + Copy) -> Vec<String> {
        self.invocations().iter().flat_map(|i| i.done(sequence)).collect()
    }
}

/// Every record done: `{}` (no failures).
pub fn all_done(_: &Value) -> (u16, Value) {
    (200, serde_json::json!({"batchItemFailures": []}))
}

/// `event-poller SUBCOMMAND ARGS… --invoke-url URL --checkpoint-dir DIR` as a child process
/// (moto's endpoint comes from the test's environment).
pub fn poller(subcommand: &[&str], function: &Function, checkpoints: &PathBuf, more: &[&str]) -> Process {
    Process::start(
        Command::new(env!("CARGO_BIN_EXE_event-poller"))
            .args(subcommand)
            .args(["--invoke-url", &function.invoke_url])
            .arg("--checkpoint-dir")
            .arg(checkpoints)
            .args(["--poll-interval-ms", "50"])
            .args(more)
            .env("RUST_LOG", "info"),
    )
}

/// A fresh, empty directory for one test's checkpoints.
pub fn checkpoint_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::moto::unique(name));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh queue for on-failure records; its URL.
pub async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    let name = testkit::moto::unique(prefix);
    let out = sqs.create_queue().queue_name(&name).send().await.expect("create the on-failure queue");
    out.queue_url().expect("a queue URL").to_owned()
}

/// Every message in the queue now (each received once; they stay invisible after).
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive");
        if out.messages().is_empty() {
            return bodies;
        }
        bodies
            .extend(out.messages().iter().map(|m| serde_json::from_str(m.body().unwrap_or("null")).unwrap()));
    }
}
