//! Shared by the broker tests (`amqp.rs`, `rpc.rs`): queue names, a consumer in a task of its
//! own, polling, queue depths and clean-up.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeleteOptions;
use queue::amqp::{self, ConsumeStats, ConsumerConfig, Publisher};
use queue::{Error, Worker};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A queue name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    testkit::moto::unique(&format!("test-{prefix}"))
}

/// A consumer running in a task of its own.
pub struct Running {
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<Result<ConsumeStats, Error>>,
}

pub fn start(url: &str, queue: &str, prefetch: u16, worker: Arc<Worker>) -> Running {
    let config = ConsumerConfig { uri: url.to_owned(), queue: queue.to_owned(), prefetch };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        amqp::consume(&config, worker, async {
            let _ = stopped.await;
        })
        .await
    });
    Running { stop, task }
}

impl Running {
    /// Triggers shutdown and waits (up to 30 s) for `consume` to return.
    pub async fn stop(self) -> ConsumeStats {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("consume returns within 30 s of shutdown")
            .expect("the consumer task does not panic")
            .expect("consume ends without error")
    }
}

/// Polls `check` every 10 ms until it holds; panics with `what` after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn depth(publisher: &Publisher, queue: &str) -> u64 {
    publisher.depth(queue).await.expect("depth")
}

/// Deletes the work queue, its dead-letter queue and exchange (the broker may be a shared one).
pub async fn clean_up(url: &str, queue: &str) {
    let Ok(connection) = amqp::connect(url).await else { return };
    let Ok(channel) = connection.create_channel().await else { return };
    for q in [queue.to_owned(), amqp::dead_letter_queue(queue)] {
        let _ = channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    let _ =
        channel.exchange_delete(amqp::dead_letter_exchange(queue).as_str().into(), Default::default()).await;
    let _ = connection.close(200, "OK".into()).await;
}
