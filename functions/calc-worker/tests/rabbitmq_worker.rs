//! `calc-worker-server` consuming a real RabbitMQ broker, counting in DynamoDB in moto: killed
//! with SIGKILL mid-batch it loses nothing and a second worker counts each message once, SIGTERM
//! drains the messages in flight, poison goes to the dead-letter queue, a request with reply_to
//! is answered once counted.
//!
//! Needs both `CALC_TEST_AMQP_URL` (`export CALC_TEST_AMQP_URL=$(scripts/rabbitmq start
//! /tmp/rmq.pid)`) and `AWS_ENDPOINT_URL` (moto); without either the tests skip, unless
//! `TEST_REQUIRE_ALL=1`, when they fail. Every test uses a queue of its own and fresh tables.

use std::cell::Cell;
use std::time::{Duration, Instant};

use queue::Ledger;
use queue::amqp::{Publisher, dead_letter_queue};
use queue::rpc::{Reply, RpcClient};

mod common;
use common::{Stack, bodies, eventually};
use testkit::process::Process;

use testkit::moto::amqp_url;

/// A queue name no other test or run uses.
fn unique(prefix: &str) -> String {
    testkit::moto::unique(&format!("test-{prefix}"))
}

/// One test's broker queue (declared with its dead-letter queue) and moto tables.
struct Rig {
    url: String,
    queue: String,
    publisher: Publisher,
    stack: Stack,
}

impl Rig {
    /// `None` (skip) when the broker or moto is not configured.
    async fn new(prefix: &str) -> Option<Rig> {
        let url = amqp_url()?;
        // Only the tables are used; the SQS queue Stack makes as well sits idle.
        let stack = Stack::new(prefix, 10, 30).await?;
        let queue = unique(prefix);
        let publisher =
            Publisher::connect(&url, &queue).await.expect("connect to RabbitMQ and declare the queue");
        Some(Rig { url, queue, publisher, stack })
    }

    /// Publishes each body with the message id `<queue>-<i>` (confirmed); returns the ids.
    async fn publish(&self, bodies: &[String]) -> Vec<String> {
        let mut ids = Vec::with_capacity(bodies.len());
        for (i, body) in bodies.iter().enumerate() {
            let id = format!("{}-{i}", self.queue);
            self.publisher.publish(&id, body).await.expect("publish");
            ids.push(id);
        }
        ids
    }

    /// Messages ready in the work queue (delivered and unacknowledged ones not included).
    async fn ready(&self) -> u64 {
        self.publisher.depth(&self.queue).await.expect("depth of the work queue")
    }

    /// Messages in the dead-letter queue.
    async fn dead_lettered(&self) -> u64 {
        self.publisher.depth(&dead_letter_queue(&self.queue)).await.expect("depth of the dead-letter queue")
    }

    async fn done(&self) -> u64 {
        self.stack.ledger().done().await.expect("read done")
    }

    /// `calc-worker-server` on this queue, counting in this stack's tables, `--max-x 2`.
    fn worker(&self, extra: &[&str]) -> Process {
        let mut args = vec![
            "--source",
            &self.url,
            "--queue",
            &self.queue,
            "--done-table",
            &self.stack.done_table,
            "--messages-table",
            &self.stack.messages_table,
            "--max-x",
            "2",
        ];
        args.extend_from_slice(extra);
        common::worker(&args)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_nothing_and_counts_each_message_once() {
    let Some(rig) = Rig::new("calc-rmq-kill").await else { return };
    const N: u64 = 200;
    // 0.2–1.0 s each, 32 at a time: ~4 s of work, so there is time to kill it half-way.
    let xs = (0..N).map(|i| 0.2 + 0.2 * (i % 5) as f64);
    rig.publish(&bodies(xs)).await;
    assert_eq!(rig.ready().await, N);

    let started = Instant::now();
    let mut first = rig.worker(&["--concurrency", "32"]);
    // Mid-run: some counted, and some delivered but not counted yet (in flight, unacked). The
    // depth is read before `done`, so `ready + done < N` really means messages in flight.
    let seen = Cell::new((0, 0));
    let mid_run = eventually(Duration::from_secs(60), || async {
        let ready = rig.ready().await;
        let done = rig.done().await;
        seen.set((ready, done));
        (20..=150).contains(&done) && ready + done + 8 <= N
    })
    .await;
    let (ready_at_kill, done_at_kill) = seen.get();
    assert!(mid_run, "never caught mid-run: done = {done_at_kill}, ready = {ready_at_kill}");
    first.signal("KILL");
    let status = first.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(!status.success(), "exit status {status}");
    eprintln!(
        "killed after {:.1} s: done = {done_at_kill}, ready = {ready_at_kill}, in flight ≥ {}",
        started.elapsed().as_secs_f64(),
        N - ready_at_kill - done_at_kill
    );

    // The connection is gone: the broker puts every unacknowledged delivery back. Whatever was
    // not counted is ready again (ready + done ≥ N; acked ≤ done), and nothing more is counted.
    let seen = Cell::new((0, 0));
    let requeued = eventually(Duration::from_secs(30), || async {
        let (ready, done) = (rig.ready().await, rig.done().await);
        seen.set((ready, done));
        ready > 0 && ready + done >= N
    })
    .await;
    let after = seen.get();
    assert!(requeued, "the unacknowledged deliveries did not come back: ready, done = {after:?}");
    assert!(after.0 > ready_at_kill, "ready {} after the kill, {ready_at_kill} before", after.0);

    let restarted = Instant::now();
    let mut second = rig.worker(&["--concurrency", "32"]);
    let all_done =
        eventually(Duration::from_secs(60), || async { rig.done().await >= N && rig.ready().await == 0 })
            .await;
    assert!(all_done, "done = {} of {N}, ready = {}", rig.done().await, rig.ready().await);
    eprintln!("the second worker finished in {:.1} s", restarted.elapsed().as_secs_f64());
    // Let it settle what it still holds, then: each message counted exactly once.
    second.signal("TERM");
    let status = second.wait_exit(Duration::from_secs(20)).expect("the second worker exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert_eq!(rig.done().await, N, "none lost, none counted twice");
    assert_eq!(rig.ready().await, 0);
    assert_eq!(rig.dead_lettered().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_rabbitmq_finishes_in_flight_messages_and_exits_zero() {
    let Some(rig) = Rig::new("calc-rmq-term").await else { return };
    const N: u64 = 40;
    rig.publish(&bodies(std::iter::repeat_n(1.0, N as usize))).await;
    let mut worker = rig.worker(&["--concurrency", "40", "--shutdown-timeout", "10"]);
    // All forty delivered (none ready) and running: then SIGTERM.
    let running = eventually(Duration::from_secs(60), || async {
        common::health(&worker).await == Some(200) && rig.ready().await == 0
    })
    .await;
    assert!(running, "the worker never took all {N} messages: ready = {}", rig.ready().await);
    let done_at_term = rig.done().await;
    worker.signal("TERM");
    let signalled = Instant::now();
    assert!(done_at_term < N, "all {N} were counted before SIGTERM; nothing was in flight");
    let status = worker.wait_exit(Duration::from_secs(15)).expect("exits within the shutdown timeout");
    eprintln!(
        "exited {status} {:.1} s after SIGTERM ({done_at_term} counted before it)",
        signalled.elapsed().as_secs_f64()
    );
    assert!(status.success(), "exit status {status}");
    assert_eq!(rig.done().await, N, "every message in flight was counted");
    assert_eq!(rig.ready().await, 0, "and acknowledged, not given back");
    assert_eq!(rig.dead_lettered().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_rabbitmq_goes_to_the_dead_letter_queue() {
    let Some(rig) = Rig::new("calc-rmq-poison").await else { return };
    let poison = ["not json", r#"{"x": -1}"#, r#"{"x": 3}"#, r#"{"y": 1}"#, r#"{"x": "1"}"#, "{\"x\": 1"];
    let mut messages = bodies((0..20).map(|i| 0.01 * f64::from(i % 3)));
    // Interleaved: poison between good messages, each with a message id.
    for (i, p) in poison.iter().enumerate() {
        messages.insert(i * 4, (*p).to_owned());
    }
    rig.publish(&messages).await;
    let _worker = rig.worker(&["--concurrency", "8"]);
    let settled = eventually(Duration::from_secs(60), || async {
        rig.dead_lettered().await == poison.len() as u64 && rig.done().await == 20
    })
    .await;
    assert!(settled, "done = {}, dead-lettered = {}", rig.done().await, rig.dead_lettered().await);
    assert_eq!(rig.ready().await, 0);
    // Nothing straggles in afterwards: no poison counted, no good message dead-lettered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((rig.done().await, rig.dead_lettered().await), (20, poison.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_reply_to_are_answered_once_counted_in_dynamodb_and_bad_ones_with_an_error() {
    let Some(rig) = Rig::new("calc-rmq-rpc").await else { return };
    let worker = rig.worker(&["--concurrency", "32"]);
    assert!(
        worker.wait_for_log("consuming RabbitMQ", Duration::from_secs(30)),
        "the worker never consumed:\n{}",
        worker.log()
    );
    let client = RpcClient::connect(&rig.url, &rig.queue).await.expect("client");
    // As seed 000's driver: x as text, no message_id, all in flight at once.
    let xs: Vec<f64> = (0..20).map(|i| 0.01 * f64::from(i)).collect();
    let mut calls = Vec::new();
    for x in &xs {
        calls.push(client.send(&x.to_string()).await.expect("published"));
    }
    for (call, &x) in calls.into_iter().zip(&xs) {
        let reply = tokio::time::timeout(Duration::from_secs(30), call.reply())
            .await
            .expect("answered within 30 s instead of hanging")
            .expect("the client is up");
        assert_eq!(reply, Reply::Result(x));
    }
    // Answered only once counted: done is already 20 when the last answer is in.
    assert_eq!(rig.done().await, 20);
    let reply = client.call("5").await.expect("answered");
    assert!(matches!(&reply, Reply::Error(why) if why.contains("out of range")), "{reply:?}");
    let dead = eventually(Duration::from_secs(30), || async { rig.dead_lettered().await == 1 }).await;
    assert!(dead, "the bad request is dead-lettered after its error reply");
    assert_eq!(rig.done().await, 20);
    client.close().await.expect("close");
}
