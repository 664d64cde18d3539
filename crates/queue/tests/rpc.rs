#![cfg(feature = "amqp")]
//! The request–reply protocol (`queue::rpc`) against a real broker, with the consumer of
//! `queue::amqp` on an in-memory ledger: `CALC_TEST_AMQP_URL` (`export CALC_TEST_AMQP_URL=$(
//! scripts/rabbitmq start /tmp/rmq.pid)`). Without it the tests skip, unless
//! `TEST_REQUIRE_ALL=1`, when they fail. Every test uses queues of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::try_join_all;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use queue::amqp::{self, ConsumeStats, Publisher};
use queue::rpc::{ERROR_TYPE, Reply, RpcClient};
use queue::{BoxFuture, Error, Ledger, MemoryLedger, Outcome, Worker};

use testkit::moto::amqp_url;

mod common;
use common::{clean_up, depth, eventually, start, unique};

/// How long a test waits for a reply before it fails (instead of hanging, as the seed's driver
/// did against a worker that never answered).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A memory ledger shared by the workers of a test. While `hold` is set, a successful `record`
/// never returns: the worker has counted the message and dies before answering or acking it.
#[derive(Default)]
struct Gate {
    inner: Arc<MemoryLedger>,
    hold: AtomicBool,
    recorded: AtomicU64,
}

impl Ledger for Gate {
    fn record<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<Outcome, Error>> {
        Box::pin(async move {
            let outcome = self.inner.record(message_id).await?;
            self.recorded.fetch_add(1, Ordering::SeqCst);
            if self.hold.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok(outcome)
        })
    }

    fn done(&self) -> BoxFuture<'_, Result<u64, Error>> {
        self.inner.done()
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.inner.reset()
    }

    fn describe(&self) -> String {
        "gate(memory)".into()
    }
}

fn worker(ledger: Arc<Gate>) -> Arc<Worker> {
    Arc::new(Worker::new(ledger, 2.0))
}

async fn reply_within(call: queue::rpc::PendingCall) -> Reply {
    let id = call.correlation_id.clone();
    tokio::time::timeout(ANSWER_WITHIN, call.reply())
        .await
        .unwrap_or_else(|_| panic!("no answer to {id} within {ANSWER_WITHIN:?}"))
        .expect("the reply consumer is up")
}

/// A caller without `RpcClient`, to see every reply as it arrives (a second answer with the
/// same correlation id, an answer without one): its own exclusive callback queue.
struct RawCaller {
    connection: Connection,
    channel: Channel,
    callback: String,
    replies: Consumer,
}

impl RawCaller {
    async fn connect(url: &str) -> RawCaller {
        let connection = amqp::connect(url).await.expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        let options =
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let declared =
            channel.queue_declare("".into(), options, FieldTable::default()).await.expect("declare");
        let callback = declared.name().as_str().to_owned();
        let replies = channel
            .basic_consume(
                callback.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await
            .expect("consume the callback queue");
        RawCaller { connection, channel, callback, replies }
    }

    /// Publishes `body` to `queue` with `reply_to` = the callback queue, and the correlation id
    /// if any; confirmed.
    async fn publish(&self, queue: &str, body: &[u8], correlation_id: Option<&str>) {
        let mut properties = BasicProperties::default().with_reply_to(self.callback.as_str().into());
        if let Some(id) = correlation_id {
            properties = properties.with_correlation_id(id.into());
        }
        let confirm = self
            .channel
            .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties)
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack(), "{confirm:?}");
    }

    async fn next_reply(&mut self) -> Delivery {
        tokio::time::timeout(ANSWER_WITHIN, self.replies.next())
            .await
            .unwrap_or_else(|_| panic!("no reply within {ANSWER_WITHIN:?}"))
            .expect("the callback consumer is open")
            .expect("a delivery")
    }

    async fn close(self) {
        let _ = self.connection.close(200, "OK".into()).await;
    }
}

fn correlation_id(delivery: &Delivery) -> Option<&str> {
    delivery.properties.correlation_id().as_ref().map(ShortString::as_str)
}

fn kind(delivery: &Delivery) -> Option<&str> {
    delivery.properties.kind().as_ref().map(ShortString::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_and_json_requests_with_reply_to_get_x_back_with_their_correlation_ids() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("rpc-answers");
    let ledger = Arc::new(Gate::default());
    let consumer = start(&url, &queue, 20, worker(ledger.clone()));
    let client = RpcClient::connect(&url, &queue).await.expect("client");

    // As the seed's driver: x as text (str(x)), no message_id, all in flight at once; and JSON.
    let bodies = ["0.05", "0", "0.1", "2", "1e-05", r#"{"x": 0.02}"#, r#"{"x": 0.03, "note": "extra"}"#];
    let expected = [0.05, 0.0, 0.1, 2.0, 1e-5, 0.02, 0.03];
    let calls = try_join_all(bodies.iter().map(|body| client.send(body))).await.expect("published");
    let ids: Vec<String> = calls.iter().map(|c| c.correlation_id.clone()).collect();
    let replies = futures_util::future::join_all(calls.into_iter().map(reply_within)).await;
    for ((reply, x), body) in replies.iter().zip(expected).zip(bodies) {
        assert_eq!(reply, &Reply::Result(x), "the answer to {body:?}");
    }
    let mut unique_ids = ids.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), ids.len(), "one correlation id per call");

    // The raw reply: the body is x as text, the correlation id the request's, no error type.
    let mut raw = RawCaller::connect(&url).await;
    raw.publish(&queue, br#"{"x": 0.04}"#, Some("json-1")).await;
    let reply = raw.next_reply().await;
    assert_eq!(std::str::from_utf8(&reply.data).unwrap(), "0.04");
    assert_eq!(correlation_id(&reply), Some("json-1"));
    assert_eq!(kind(&reply), None);
    raw.close().await;

    let stats = consumer.stop().await;
    assert_eq!(ledger.inner.done().await.unwrap(), 8, "each answered call counted once");
    assert_eq!(stats, ConsumeStats { counted: 8, duplicates: 0, dead_lettered: 0, requeued: 0 });
    client.close().await.expect("close");
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_request_is_answered_again_and_counted_once() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("rpc-redelivered");
    let ledger = Arc::new(Gate::default());
    // Declared before anything is published to it (a consumer declares it too, in its own time).
    let publisher = Publisher::connect(&url, &queue).await.expect("declare the queue");

    // 1. The same request twice, as a redelivery after an answer carries it (same reply_to,
    //    same correlation id, no message_id): two answers, one count.
    let first = start(&url, &queue, 10, worker(ledger.clone()));
    let mut raw = RawCaller::connect(&url).await;
    raw.publish(&queue, b"0.05", Some("again")).await;
    raw.publish(&queue, b"0.05", Some("again")).await;
    for _ in 0..2 {
        let reply = raw.next_reply().await;
        assert_eq!(
            (std::str::from_utf8(&reply.data).unwrap(), correlation_id(&reply)),
            ("0.05", Some("again"))
        );
    }
    eventually("both deliveries are recorded", ANSWER_WITHIN, || async {
        ledger.recorded.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(ledger.inner.done().await.unwrap(), 1, "answered twice, counted once");
    let stats = first.stop().await;
    assert_eq!(stats, ConsumeStats { counted: 1, duplicates: 1, dead_lettered: 0, requeued: 0 });

    // 2. A worker that counts a request and dies before answering or acking it: the broker
    //    redelivers it to the next worker, which answers it and does not count it again.
    ledger.hold.store(true, Ordering::SeqCst);
    let dying = start(&url, &queue, 10, worker(ledger.clone()));
    let client = RpcClient::connect(&url, &queue).await.expect("client");
    let call = client.send("0.07").await.expect("published");
    eventually("the request is counted", ANSWER_WITHIN, || async { ledger.inner.done().await.unwrap() == 2 })
        .await;
    dying.task.abort(); // the crash: its connection goes, with the request unacknowledged
    assert!(dying.task.await.unwrap_err().is_cancelled());
    ledger.hold.store(false, Ordering::SeqCst);
    let next = start(&url, &queue, 10, worker(ledger.clone()));
    assert_eq!(reply_within(call).await, Reply::Result(0.07), "answered by the next worker");
    let stats = next.stop().await;
    assert_eq!(stats, ConsumeStats { counted: 0, duplicates: 1, dead_lettered: 0, requeued: 0 });
    assert_eq!(ledger.inner.done().await.unwrap(), 2, "the redelivery was not counted again");

    assert_eq!(depth(&publisher, &queue).await, 0);
    raw.close().await;
    publisher.close().await.expect("close");
    client.close().await.expect("close");
    clean_up(&url, &queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_body_gets_an_error_reply_and_is_dead_lettered() {
    let Some(url) = amqp_url() else { return };
    let queue = unique("rpc-bad");
    let ledger = Arc::new(Gate::default());
    let consumer = start(&url, &queue, 10, worker(ledger.clone()));
    let client = RpcClient::connect(&url, &queue).await.expect("client");

    let cases = [
        ("abc", "neither a number nor a JSON object"),
        ("2.5", "out of range"),
        ("nan", "not a finite number"),
        (r#"{"x": -1}"#, "out of range"),
        (r#"{"y": 1}"#, "missing \"x\""),
        ("{oops", "malformed JSON"),
    ];
    for (body, why) in cases {
        let call = client.send(body).await.expect("published");
        match reply_within(call).await {
            Reply::Error(reason) => assert!(reason.contains(why), "{body:?}: {reason:?} should say {why:?}"),
            other => panic!("{body:?} was answered {other:?}, not with an error"),
        }
    }
    // A good call between the bad ones is answered as usual.
    assert_eq!(client.call("0.01").await.expect("answered"), Reply::Result(0.01));

    // Raw: the error reply's body and type; a body that is not UTF-8; a request with reply_to
    // but neither a message_id nor a correlation id (it cannot be counted exactly once).
    let mut raw = RawCaller::connect(&url).await;
    raw.publish(&queue, b"-0.5", Some("negative")).await;
    let reply = raw.next_reply().await;
    let body = std::str::from_utf8(&reply.data).unwrap();
    assert!(body.starts_with("error: ") && body.contains("out of range"), "{body}");
    assert_eq!((correlation_id(&reply), kind(&reply)), (Some("negative"), Some(ERROR_TYPE)));
    raw.publish(&queue, &[0xff, 0xfe], Some("binary")).await;
    let reply = raw.next_reply().await;
    assert_eq!((correlation_id(&reply), kind(&reply)), (Some("binary"), Some(ERROR_TYPE)));
    assert!(std::str::from_utf8(&reply.data).unwrap().contains("not UTF-8"));
    raw.publish(&queue, b"0.01", None).await;
    let reply = raw.next_reply().await;
    assert_eq!((correlation_id(&reply), kind(&reply)), (None, Some(ERROR_TYPE)));
    assert!(std::str::from_utf8(&reply.data).unwrap().contains("cannot be counted exactly once"));
    raw.close().await;

    let publisher = Publisher::connect(&url, &queue).await.expect("publisher");
    let dlq = amqp::dead_letter_queue(&queue);
    eventually("the 9 bad requests are dead-lettered", ANSWER_WITHIN, || async {
        depth(&publisher, &dlq).await == 9
    })
    .await;
    let stats = consumer.stop().await;
    assert_eq!(stats, ConsumeStats { counted: 1, duplicates: 0, dead_lettered: 9, requeued: 0 });
    assert_eq!(ledger.inner.done().await.unwrap(), 1, "only the good call is counted");
    assert_eq!(depth(&publisher, &queue).await, 0);
    publisher.close().await.expect("close");
    client.close().await.expect("close");
    clean_up(&url, &queue).await;
}
