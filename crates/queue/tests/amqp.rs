#![cfg(feature = "amqp")]
//! The RabbitMQ source against a real broker: `CALC_TEST_AMQP_URL` (scripts/rabbitmq starts a
//! private one: `export CALC_TEST_AMQP_URL=$(scripts/rabbitmq start /tmp/rmq.pid)`). Without it
//! the tests skip, unless `TEST_REQUIRE_ALL=1`, when they fail.
//!
//! Every test uses queues of its own and a worker on an in-memory ledger (wrapped to tally the
//! ledger calls, which is how a test knows what the consumer has done so far).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::try_join_all;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use queue::amqp::{self, ConsumeStats, Publisher};
use queue::{BoxFuture, Error, Ledger, MemoryLedger, Outcome, Worker, calc};
use tokio::time::Instant;

use testkit::moto::amqp_url;

mod common;
use common::{clean_up, depth, eventually, start, unique};

/// A [`MemoryLedger`] that tallies the calls to `record`, and can hold each successful one
/// back a while before returning it (the gap between counting and acking a crash falls into).
#[derive(Default)]
struct Tally {
    inner: MemoryLedger,
    recorded: AtomicU64,
    failed: AtomicU64,
    hold: Duration,
    holding: AtomicU64,
}

impl Tally {
    fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::SeqCst)
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    async fn done(&self) -> u64 {
        self.inner.done().await.unwrap()
    }
}

impl Ledger for Tally {
    fn record<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Outcome, Error>> {
        Box::pin(async move {
            let result = self.inner.record(message_id).await;
            if result.is_ok() {
                self.recorded.fetch_add(1, Ordering::SeqCst);
                if !self.hold.is_zero() {
                    self.holding.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(self.hold).await;
                    self.holding.fetch_sub(1, Ordering::SeqCst);
                }
            } else {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
            result
        })
    }

    fn done(&self) -> BoxFuture<'_, Result<u64, Error>> {
        self.inner.done()
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.reset()
    }

    fn describe(&self) -> String {
        "tally(memory)".into()
    }
}

fn worker(ledger: &Arc<Tally>) -> Arc<Worker> {
    Arc::new(Worker::new(ledger.clone(), 2.0))
}

async fn publish_all(publisher: &Publisher, messages: &[(String, String)]) {
    try_join_all(messages.iter().map(|(id, body)| publisher.publish(id, body))).await.expect("published");
}

fn calculations(prefix: &str, n: usize, x: f64) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("{prefix}-{i}"), calc::body(x))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_calculation_is_counted_once() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("all");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("m", 200, 0.05)).await;
    assert_eq!(depth(&publisher, &queue).await, 200);

    let ledger = Arc::new(Tally::default());
    let consumer = start(&url, &queue, 50, worker(&ledger));
    eventually("200 are counted", Duration::from_secs(60), || async { ledger.done().await == 200 }).await;
    let stats = consumer.stop().await;

    assert_eq!(ledger.done().await, 200);
    assert_eq!(depth(&publisher, &queue).await, 0, "nothing is left in the queue");
    assert_eq!(depth(&publisher, &amqp::dead_letter_queue(&queue)).await, 0);
    assert_eq!(stats, ConsumeStats { counted: 200, duplicates: 0, dead_lettered: 0, requeued: 0 });
    publisher.close().await.expect("close");
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_published_twice_are_counted_once() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("dup");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    let messages = calculations("m", 150, 0.05);
    publish_all(&publisher, &messages).await;
    publish_all(&publisher, &messages[..50]).await;

    let ledger = Arc::new(Tally::default());
    let consumer = start(&url, &queue, 40, worker(&ledger));
    eventually("all 200 deliveries are recorded", Duration::from_secs(60), || async {
        ledger.recorded() == 200
    })
    .await;
    let stats = consumer.stop().await;

    assert_eq!(ledger.done().await, 150);
    assert_eq!(stats, ConsumeStats { counted: 150, duplicates: 50, dead_lettered: 0, requeued: 0 });
    assert_eq!(depth(&publisher, &queue).await, 0);
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_go_to_the_dead_letter_queue_and_the_rest_are_counted() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("poison");
    let dlq = amqp::dead_letter_queue(&queue);
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("good", 20, 0.05)).await;
    publisher.publish("bad-json", "{oops").await.unwrap();
    publisher.publish("out-of-range", &calc::body(5.0)).await.unwrap();
    // Published without a message_id, and one whose body is not UTF-8: straight on a channel.
    let connection = amqp::connect(&url).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let raw = [
        (BasicProperties::default(), calc::body(0.05).into_bytes()),
        (BasicProperties::default().with_message_id("not-utf8".into()), vec![b'{', 0xff, 0xfe, b'}']),
    ];
    for (properties, body) in raw {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
    connection.close(200, "OK".into()).await.unwrap();

    let ledger = Arc::new(Tally::default());
    let consumer = start(&url, &queue, 10, worker(&ledger));
    eventually("20 are counted and 4 dead-lettered", Duration::from_secs(60), || async {
        ledger.done().await == 20 && depth(&publisher, &dlq).await == 4
    })
    .await;
    let stats = consumer.stop().await;

    assert_eq!(stats, ConsumeStats { counted: 20, duplicates: 0, dead_lettered: 4, requeued: 0 });
    assert_eq!(depth(&publisher, &queue).await, 0);
    assert_eq!(depth(&publisher, &dlq).await, 4, "bad JSON, x out of range, no message_id, not UTF-8");
    assert_eq!(ledger.failed(), 0, "poison never reaches the ledger");
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_ledger_requeues_and_counts_once_it_is_back() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("down");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("m", 30, 0.05)).await;

    let ledger = Arc::new(Tally::default());
    ledger.inner.set_down(true);
    let consumer = start(&url, &queue, 30, worker(&ledger));
    eventually("every message failed at least twice", Duration::from_secs(60), || async {
        ledger.failed() >= 60
    })
    .await;
    assert_eq!(ledger.recorded(), 0);
    ledger.inner.set_down(false);
    eventually("30 are counted once the ledger is back", Duration::from_secs(60), || async {
        ledger.done().await == 30
    })
    .await;
    let stats = consumer.stop().await;

    assert_eq!(ledger.done().await, 30);
    assert_eq!(stats.counted, 30);
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.dead_lettered, 0, "a down ledger is not poison");
    assert!(stats.requeued >= 60, "requeued {} times", stats.requeued);
    assert_eq!(depth(&publisher, &queue).await, 0);
    assert_eq!(depth(&publisher, &amqp::dead_letter_queue(&queue)).await, 0);
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_messages_before_returning() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("shutdown");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("m", 20, 0.5)).await;

    let ledger = Arc::new(Tally::default());
    let consumer = start(&url, &queue, 10, worker(&ledger));
    // The broker has handed out a prefetch's worth; a moment later the consumer has them all
    // (a delivery that reaches it only after the shutdown is given back unstarted): 10
    // calculations of 0.5 s are running.
    eventually("10 are delivered", Duration::from_secs(30), || async {
        depth(&publisher, &queue).await <= 10
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(ledger.done().await, 0, "none has finished yet");
    let stopping = Instant::now();
    let stats = consumer.stop().await;
    let took = stopping.elapsed();

    let done = ledger.done().await;
    let left = depth(&publisher, &queue).await;
    assert!(done >= 10, "the 10 in flight were finished and counted, not dropped (done = {done})");
    assert!(took >= Duration::from_millis(200), "it waited for them ({took:?})");
    assert_eq!(stats.counted, done);
    assert_eq!(stats.dead_lettered, 0);
    assert_eq!(done + left, 20, "nothing lost: {done} counted + {left} still queued");
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_redelivered_after_the_consumer_dies() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("crash");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("m", 100, 0.1)).await;

    // Each count is held 100 ms before it returns (and is acked): the crash below lands after
    // some were counted and before they were acked.
    let ledger = Arc::new(Tally { hold: Duration::from_millis(100), ..Tally::default() });
    let first = start(&url, &queue, 20, worker(&ledger));
    eventually("some are counted and some are counted but not acked", Duration::from_secs(30), || async {
        ledger.done().await >= 10 && ledger.holding.load(Ordering::SeqCst) > 0
    })
    .await;
    first.task.abort(); // the crash: the connection goes, with the deliveries in flight
    assert!(first.task.await.unwrap_err().is_cancelled());
    let counted_before = ledger.done().await;
    assert!(counted_before < 100, "the crash came mid-batch");

    let second = start(&url, &queue, 20, worker(&ledger));
    eventually("all 100 are counted", Duration::from_secs(60), || async { ledger.done().await == 100 }).await;
    eventually("the queue is empty", Duration::from_secs(30), || async {
        depth(&publisher, &queue).await == 0
    })
    .await;
    let stats = second.stop().await;

    assert_eq!(ledger.done().await, 100, "exactly once: published 100");
    assert_eq!(stats.counted, 100 - counted_before);
    assert!(stats.duplicates >= 1, "those counted but not acked came back and were not counted again");
    assert_eq!(depth(&publisher, &queue).await, 0);
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_under_the_consumer_ends_consume_with_an_error() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("deleted");
    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    publish_all(&publisher, &calculations("m", 5, 0.05)).await;
    let ledger = Arc::new(Tally::default());
    let consumer = start(&url, &queue, 5, worker(&ledger));
    eventually("5 are counted", Duration::from_secs(30), || async { ledger.done().await == 5 }).await;

    clean_up(&url, &queue).await;
    let ended = tokio::time::timeout(Duration::from_secs(30), consumer.task)
        .await
        .expect("consume returns by itself when its queue goes")
        .expect("no panic");
    let error = ended.expect_err("an error, so that the process exits non-zero and is restarted");
    assert!(matches!(error, Error::Source { source_kind: "amqp", .. }), "{error}");
}
