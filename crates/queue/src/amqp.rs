//! RabbitMQ (AMQP 0-9-1, via lapin) as a source for the plain worker, and the driver's side:
//! declaring the queues, publishing with confirms, reading a queue's depth.
//!
//! # Topology ([`declare`])
//! For a work queue `q`:
//! - `q.dlx`: a durable fanout exchange, the dead-letter exchange;
//! - `q.dlq`: a durable queue bound to `q.dlx`: poison messages end up here;
//! - `q`: a durable **classic** queue with `x-dead-letter-exchange = q.dlx`.
//!
//! Classic, not quorum (`x-queue-type = quorum`): the broker we test against is Debian's
//! RabbitMQ 3.10 on a single node, where a quorum queue buys nothing. A classic queue has no
//! delivery limit, so a message that keeps failing with a *retryable* error (the ledger stays
//! down) is redelivered until the ledger is back; only poison is dead-lettered. Declaring is
//! idempotent with the same arguments; a queue that already exists with other arguments makes
//! the broker refuse (`PRECONDITION_FAILED`), which [`declare`] reports as an error.
//!
//! # Consuming ([`consume`])
//! `basic.qos(prefetch)` bounds the unacknowledged messages; each delivery is processed as soon
//! as it arrives, concurrently with the others, and is settled only after the worker's verdict:
//! - `Ok` (counted, or a redelivery already counted; the ledger write is durable): `basic.ack`;
//! - poison (bad JSON or not a number, x out of range, a body that is not UTF-8, **no
//!   `message_id`** and no `reply_to` + `correlation_id` to stand for one, which cannot be
//!   counted exactly once): `basic.nack(requeue = false)`, and the broker routes it through
//!   `q.dlx` to `q.dlq`;
//! - any other error (ledger down): `basic.nack(requeue = true)` after [`RETRY_DELAY`], so a
//!   store that is down is not hammered.
//!
//! A request with `reply_to` is answered before it is settled ([`crate::rpc`]): with x once
//! counted, with `error: <reason>` (`type = error`) before it is dead-lettered; a retryable
//! failure is answered when it succeeds on a redelivery. The channel is in confirm mode, so an
//! answer is on the broker before its request is acked; an answer the broker refuses requeues
//! the request instead (it is answered, not counted, again).
//!
//! A connection or channel error ends [`consume`] with `Err`: the process exits non-zero, the
//! orchestrator restarts it, and the broker redelivers whatever was not acknowledged (the ledger
//! makes that harmless). On shutdown it cancels the consumer (`basic.cancel`), gives back the
//! deliveries it had not started (`nack`, requeue), finishes those in flight, settles them,
//! closes the channel and the connection, and returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};

use crate::rpc::{self, Reply, ReplyTo, Sent};
pub use crate::worker::ConsumeStats;
use crate::{Error, Message, Verdict, Worker};

const SOURCE: &str = "amqp";

/// How long a delivery that failed with a retryable error (ledger down) is held before it is
/// given back to the broker, which redelivers it at once.
pub const RETRY_DELAY: Duration = Duration::from_millis(200);

/// The dead-letter exchange of work queue `queue`: `queue.dlx`.
pub fn dead_letter_exchange(queue: &str) -> String {
    format!("{queue}.dlx")
}

/// The dead-letter queue of work queue `queue`: `queue.dlq`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

fn failed(what: impl std::fmt::Display, e: lapin::Error) -> Error {
    Error::source(SOURCE, format!("{what}: {e}"))
}

/// Publishes `body` to `queue` through the default exchange, mandatory, and waits for the
/// broker's confirm (the channel is in confirm mode): `Ok` only once the broker took it; a
/// message returned (no such queue) or nacked is an error naming `id`.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    id: &str,
    body: &str,
    properties: BasicProperties,
) -> Result<(), Error> {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            body.as_bytes(),
            properties,
        )
        .await
        .map_err(|e| failed(format_args!("publish {id}"), e))?
        .await
        .map_err(|e| failed(format_args!("confirm of {id}"), e))?;
    match confirm {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => Err(Error::source(
            SOURCE,
            format!("publish {id}: returned by the broker: {} {}", returned.reply_code, returned.reply_text),
        )),
        Confirmation::Nack(None) => Err(Error::source(SOURCE, format!("publish {id}: nacked by the broker"))),
        Confirmation::NotRequested => {
            Err(Error::source(SOURCE, format!("publish {id}: no confirm (confirms not enabled)")))
        }
    }
}

/// `amqp://user:secret@host/…` → `amqp://user:***@host/…`, for logs and errors (only the
/// authority is looked at: an `@` or `:` later in the URL is left alone).
pub fn redact(uri: &str) -> String {
    let Some(start) = uri.find("://").map(|i| i + 3) else { return uri.to_owned() };
    let authority_end = uri[start..].find('/').map_or(uri.len(), |i| start + i);
    let authority = &uri[start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!("{}{}:***{}", &uri[..start], &authority[..colon], &uri[start + at..])
        }
        _ => uri.to_owned(),
    }
}

/// Connects to the broker at `uri` (`amqp://user:password@host:port/%2f`; `%2f` is the vhost
/// `/`). No automatic recovery: a lost connection is an error for the caller.
pub async fn connect(uri: &str) -> Result<Connection, Error> {
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("calc pid {}", std::process::id()).into());
    Connection::connect(uri, properties)
        .await
        .map_err(|e| failed(format_args!("connect to {}", redact(uri)), e))
}

/// Declares the dead-letter exchange `queue.dlx`, the dead-letter queue `queue.dlq` bound to it,
/// and the work queue `queue` (durable, classic) that dead-letters to `queue.dlx`. Idempotent.
pub async fn declare(channel: &Channel, queue: &str) -> Result<(), Error> {
    let dlx = dead_letter_exchange(queue);
    let dlq = dead_letter_queue(queue);
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
            FieldTable::default(),
        )
        .await
        .map_err(|e| failed(format_args!("declare exchange {dlx}"), e))?;
    channel
        .queue_declare(dlq.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default())
        .await
        .map_err(|e| failed(format_args!("declare queue {dlq}"), e))?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| failed(format_args!("bind {dlq} to {dlx}"), e))?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from(dlx.as_str())));
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .map_err(|e| failed(format_args!("declare queue {queue} (dead-lettering to {dlx})"), e))?;
    Ok(())
}

/// Publishes calculation requests to one work queue, each confirmed by the broker.
pub struct Publisher {
    connection: Connection,
    channel: Channel,
    queue: String,
}

impl Publisher {
    /// Connects, declares `queue` (see [`declare`]) and enables publisher confirms.
    pub async fn connect(uri: &str, queue: &str) -> Result<Publisher, Error> {
        let connection = connect(uri).await?;
        let channel = connection.create_channel().await.map_err(|e| failed("create channel", e))?;
        declare(&channel, queue).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| failed("enable publisher confirms", e))?;
        Ok(Publisher { connection, channel, queue: queue.to_owned() })
    }

    /// The work queue it publishes to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Publishes `body` as a persistent JSON message with `message_id`, and waits until the
    /// broker has taken responsibility for it (its confirm). A nack, or a message the broker
    /// could not route to the queue (published as mandatory), is an error. Can be called
    /// concurrently: each call waits for its own confirm.
    pub async fn publish(&self, message_id: &str, body: &str) -> Result<(), Error> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into());
        publish_confirmed(&self.channel, &self.queue, message_id, body, properties).await
    }

    /// Messages ready for delivery in `queue` (not counting those delivered and not yet
    /// acknowledged). A passive declare, on a channel of its own: a queue that does not exist
    /// is an error and must not close the publishing channel.
    pub async fn depth(&self, queue: &str) -> Result<u64, Error> {
        let channel = self.connection.create_channel().await.map_err(|e| failed("create channel", e))?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed(format_args!("depth of {queue}"), e))?;
        if let Err(e) = channel.close(200, "OK".into()).await {
            tracing::debug!(error = %e, "closing the depth channel");
        }
        Ok(u64::from(declared.message_count()))
    }

    /// Closes the channel and the connection (dropping the publisher does it too, without waiting).
    pub async fn close(self) -> Result<(), Error> {
        self.channel.close(200, "OK".into()).await.map_err(|e| failed("close channel", e))?;
        self.connection.close(200, "OK".into()).await.map_err(|e| failed("close connection", e))
    }
}

/// How the plain worker consumes RabbitMQ.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `amqp://user:password@host:port/%2f`.
    pub uri: String,
    /// The work queue (declared with its dead-letter queue if missing).
    pub queue: String,
    /// Unacknowledged messages at most, all processed concurrently (`basic.qos`). 0 is taken
    /// as 1 (in AMQP 0 would mean unlimited).
    pub prefetch: u16,
}

/// What happened to one delivery once settled: the worker's verdict (`Err(ShuttingDown)` for a
/// delivery given back unstarted), or `Err` when it could not be settled (channel gone).
type Settled = Result<Verdict, Error>;
type InFlight = Pin<Box<dyn Future<Output = Settled> + Send>>;

/// Consumes `config.queue` until `shutdown` resolves (see the module docs), then stops
/// consuming (basic.cancel), finishes the messages in flight, acks/nacks them, closes the
/// channel and connection, and returns what it did. `Err` on a connection or channel error.
pub async fn consume(
    config: &ConsumerConfig,
    worker: Arc<Worker>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<ConsumeStats, Error> {
    let prefetch = config.prefetch.max(1);
    let queue = config.queue.as_str();
    let connection = connect(&config.uri).await?;
    let channel = connection.create_channel().await.map_err(|e| failed("create channel", e))?;
    declare(&channel, queue).await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(|e| failed("basic.qos", e))?;
    // Replies to requests with reply_to are confirmed before the request is acked.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| failed("enable publisher confirms (for replies)", e))?;
    static CONSUMERS: AtomicU64 = AtomicU64::new(0);
    let tag = format!("calc-{}-{}", std::process::id(), CONSUMERS.fetch_add(1, Ordering::Relaxed));
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| failed(format_args!("consume {queue}"), e))?;
    tracing::info!(queue, prefetch, uri = %redact(&config.uri), ledger = %worker.ledger().describe(), "consuming RabbitMQ");

    let mut stats = ConsumeStats::default();
    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    tokio::pin!(shutdown);
    let stopped: Result<(), Error> = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            Some(settled) = in_flight.next(), if !in_flight.is_empty() => match settled {
                Ok(verdict) => stats.add(&verdict),
                Err(e) => break Err(e),
            },
            delivery = consumer.next() => match delivery {
                Some(Ok(delivery)) => in_flight.push(Box::pin(settle(worker.clone(), channel.clone(), delivery))),
                Some(Err(e)) => break Err(failed(format_args!("consuming {queue}"), e)),
                None => break Err(Error::source(SOURCE, format!("the broker cancelled the consumer of {queue} (queue deleted?)"))),
            },
        }
    };
    if let Err(e) = stopped {
        // Dropping the connection closes it; the broker redelivers everything unacknowledged.
        tracing::error!(error = %e, in_flight = in_flight.len(), ?stats, "stopped consuming RabbitMQ");
        return Err(e);
    }

    tracing::info!(
        in_flight = in_flight.len(),
        "stopping: cancelling the consumer, finishing the messages in flight"
    );
    channel
        .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
        .await
        .map_err(|e| failed("basic.cancel", e))?;
    // After the cancel, the stream yields what the broker had already sent, then ends.
    let mut consumer_done = false;
    while !consumer_done || !in_flight.is_empty() {
        tokio::select! {
            Some(settled) = in_flight.next(), if !in_flight.is_empty() => stats.add(&settled?),
            delivery = consumer.next(), if !consumer_done => match delivery {
                Some(Ok(delivery)) => in_flight.push(Box::pin(give_back(delivery))),
                Some(Err(e)) => return Err(failed(format_args!("consuming {queue}"), e)),
                None => consumer_done = true,
            },
        }
    }
    drop(consumer);
    if let Err(e) = channel.close(200, "OK".into()).await {
        tracing::warn!(error = %e, "closing the channel");
    }
    if let Err(e) = connection.close(200, "OK".into()).await {
        tracing::warn!(error = %e, "closing the connection");
    }
    tracing::info!(
        queue,
        counted = stats.counted,
        duplicates = stats.duplicates,
        dead_lettered = stats.dead_lettered,
        requeued = stats.requeued,
        "stopped consuming RabbitMQ"
    );
    Ok(stats)
}

/// The message in a delivery, or why it is poison. Its id is its `message_id`, or for a
/// request–reply call without one, its reply address ([`ReplyTo::message_id`]).
fn message(delivery: &Delivery, reply_to: Option<&ReplyTo>) -> Result<Message, Error> {
    let id = match delivery.properties.message_id() {
        Some(id) if !id.as_str().is_empty() => id.as_str().to_owned(),
        _ => match reply_to.and_then(ReplyTo::message_id) {
            Some(id) => id,
            None => {
                return Err(Error::Poison(
                    "no message_id property (nor reply_to with a correlation_id): it cannot be counted \
                     exactly once"
                        .into(),
                ));
            }
        },
    };
    let body = String::from_utf8(delivery.data.clone())
        .map_err(|e| Error::Poison(format!("message {id}: body is not UTF-8: {e}")))?;
    Ok(Message { id, body })
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    DeadLetter,
    Requeue,
}

/// Runs one delivery, answers it if it asks for a reply, and acks or nacks it according to the
/// verdict.
async fn settle(worker: Arc<Worker>, channel: Channel, delivery: Delivery) -> Settled {
    let reply_to = ReplyTo::of(&delivery.properties);
    let (verdict, reply) = match message(&delivery, reply_to.as_ref()) {
        Ok(message) => {
            if delivery.redelivered {
                tracing::debug!(id = %message.id, "redelivered");
            }
            match worker.answer_logged(&message, None).await {
                Ok(answered) => (Ok(answered.outcome), Some(Reply::Result(answered.result))),
                Err(e) => {
                    let reply = e.is_poison().then(|| Reply::Error(reason(&e)));
                    (Err(e), reply)
                }
            }
        }
        Err(e) => {
            tracing::warn!(delivery_tag = delivery.delivery_tag, error = %e, "poison delivery; dead-letter it");
            let reply = Reply::Error(reason(&e));
            (Err(e), Some(reply))
        }
    };
    let mut how = match &verdict {
        Ok(_) => Settle::Ack,
        Err(e) if e.is_poison() => Settle::DeadLetter,
        Err(_) => Settle::Requeue,
    };
    if let (Some(to), Some(reply)) = (&reply_to, &reply) {
        match rpc::send(&channel, to, reply).await {
            Ok(Sent::Delivered) => tracing::debug!(reply_to = %to.queue, ?reply, "answered"),
            Ok(Sent::NoRoute) => tracing::warn!(
                reply_to = %to.queue,
                correlation_id = ?to.correlation_id,
                "the caller's reply queue is gone; the answer is dropped"
            ),
            Err(e) => {
                // Not answered: the request goes back, to be answered (not counted) again.
                tracing::warn!(reply_to = %to.queue, error = %e, "the answer failed; requeueing the request");
                how = Settle::Requeue;
            }
        }
    }
    let (what, settled) = match how {
        Settle::Ack => ("basic.ack", delivery.acker.ack(BasicAckOptions::default()).await),
        Settle::DeadLetter => (
            "basic.nack",
            delivery.acker.nack(BasicNackOptions { requeue: false, ..BasicNackOptions::default() }).await,
        ),
        Settle::Requeue => {
            tokio::time::sleep(RETRY_DELAY).await;
            (
                "basic.nack",
                delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await,
            )
        }
    };
    match settled {
        Ok(true) => Ok(verdict),
        Ok(false) => {
            Err(Error::source(SOURCE, format!("{what}: the channel is closed; the broker will redeliver")))
        }
        Err(e) => Err(failed(what, e)),
    }
}

/// The reason in an error reply: a poison message's own reason, without the "poison message"
/// prefix the logs have.
fn reason(e: &Error) -> String {
    match e {
        Error::Poison(reason) => reason.clone(),
        other => other.to_string(),
    }
}

/// Gives back a delivery that arrived while shutting down, unstarted.
async fn give_back(delivery: Delivery) -> Settled {
    match delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await {
        Ok(true) => Ok(Err(Error::ShuttingDown)),
        Ok(false) => {
            Err(Error::source(SOURCE, "basic.nack: the channel is closed; the broker will redeliver"))
        }
        Err(e) => Err(failed("basic.nack", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_uris() {
        assert_eq!(redact("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact("amqp://127.0.0.1:5672/%2f"), "amqp://127.0.0.1:5672/%2f");
        assert_eq!(redact("amqp://user@host/%2f"), "amqp://user@host/%2f");
        assert_eq!(redact("https://x.example/v1/calc?a=b@c:d"), "https://x.example/v1/calc?a=b@c:d");
    }

    #[test]
    fn dead_letter_names_follow_the_work_queue() {
        assert_eq!(dead_letter_exchange("calc"), "calc.dlx");
        assert_eq!(dead_letter_queue("calc"), "calc.dlq");
    }
}
