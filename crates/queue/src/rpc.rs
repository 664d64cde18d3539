//! Request–reply over RabbitMQ: RabbitMQ's RPC pattern, as the seed's driver and server use it.
//!
//! # The protocol
//! A **request** is a message on the work queue with `reply_to` (the caller's callback queue)
//! and a `correlation_id`; its body is x as plain text (`1.5`, Python's `str(x)`) or
//! `{"x": 1.5}` ([`crate::calc`]). The worker answers once the calculation is done **and
//! counted**, before it acknowledges the request: it publishes the **reply** on the default
//! exchange with routing key = `reply_to` and the request's `correlation_id`:
//!
//! | outcome | reply body | `type` property |
//! |---|---|---|
//! | calculated and counted (or a redelivery, already counted) | x as text (`1.5`) | none |
//! | poison: not a number, out of range, not UTF-8, … | `error: <reason>` | `error` ([`ERROR_TYPE`]) |
//!
//! A request that fails for a reason that may pass (the ledger is down) is not answered yet: it
//! goes back to the queue and is answered when it succeeds. A redelivered request (a worker died
//! after counting it, before its ack) is calculated and answered again, and not counted again: a
//! caller may see two replies with one correlation id and should ignore the second
//! ([`RpcClient`] does).
//!
//! Exactly-once counting keys on the request's `message_id`; a request without one (the seed's
//! driver sets none) is keyed by its `reply_to` and `correlation_id` ([`ReplyTo::message_id`]):
//! both are the same on every redelivery, and a callback queue is exclusive to one connection.
//!
//! Replies are transient, published `mandatory` with publisher confirms: a reply whose callback
//! queue is gone (the caller left) comes back unroutable; the worker logs it and acknowledges
//! the request (the count stands; nobody is left to answer). A reply the broker refuses (nack)
//! puts the request back on the queue, to be answered on its redelivery.
//!
//! # The caller ([`RpcClient`])
//! As the seed's driver: an exclusive, auto-delete, server-named callback queue consumed without
//! acks, one correlation id per call, any number of calls in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Error;
use crate::amqp::{connect, declare, publish_confirmed, redact};
use crate::calc::result_text;

const SOURCE: &str = "amqp";

/// The `type` property of an error reply.
pub const ERROR_TYPE: &str = "error";

/// The prefix of an error reply's body: `error: <reason>`.
pub const ERROR_PREFIX: &str = "error: ";

fn failed(what: impl std::fmt::Display, e: lapin::Error) -> Error {
    Error::source(SOURCE, format!("{what}: {e}"))
}

/// Where a request asks to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The callback queue (`reply_to`).
    pub queue: String,
    /// The request's `correlation_id`, copied onto the reply.
    pub correlation_id: Option<String>,
}

impl ReplyTo {
    /// The reply address of a request; `None` when it has no (or an empty) `reply_to`.
    pub fn of(properties: &BasicProperties) -> Option<ReplyTo> {
        let queue =
            properties.reply_to().as_ref().map(|q| q.as_str().to_owned()).filter(|q| !q.is_empty())?;
        let correlation_id =
            properties.correlation_id().as_ref().map(|c| c.as_str().to_owned()).filter(|c| !c.is_empty());
        Some(ReplyTo { queue, correlation_id })
    }

    /// The exactly-once key of a request without a `message_id`: `rpc:<reply_to>:<correlation_id>`
    /// (the same on every redelivery); `None` without a correlation id.
    pub fn message_id(&self) -> Option<String> {
        self.correlation_id.as_ref().map(|c| format!("rpc:{}:{c}", self.queue))
    }
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `calc(x)` returned this.
    Result(f64),
    /// The request was refused (poison); the reason.
    Error(String),
}

impl Reply {
    /// The reply's body: x as text, or `error: <reason>`.
    pub fn body(&self) -> String {
        match self {
            Reply::Result(x) => result_text(*x),
            Reply::Error(reason) => format!("{ERROR_PREFIX}{reason}"),
        }
    }

    /// The reply's properties: transient, `text/plain`, the request's correlation id, and
    /// `type = error` for an error.
    pub fn properties(&self, correlation_id: Option<&str>) -> BasicProperties {
        let mut properties = BasicProperties::default().with_content_type("text/plain".into());
        if let Some(id) = correlation_id {
            properties = properties.with_correlation_id(id.into());
        }
        if let Reply::Error(_) = self {
            properties = properties.with_type(ERROR_TYPE.into());
        }
        properties
    }

    /// Reads a reply as the worker sends it. A body that is not a number (without `type =
    /// error`) is read as an error that says so.
    pub fn read(properties: &BasicProperties, body: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(body);
        let is_error = properties.kind().as_ref().is_some_and(|k| k.as_str() == ERROR_TYPE);
        if is_error {
            let reason = text.strip_prefix(ERROR_PREFIX).unwrap_or(&text);
            return Reply::Error(reason.to_owned());
        }
        match text.trim().parse::<f64>() {
            Ok(x) => Reply::Result(x),
            Err(_) => {
                Reply::Error(format!("unreadable reply {:?}", text.chars().take(80).collect::<String>()))
            }
        }
    }
}

/// What became of a reply the broker confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Routed to the callback queue.
    Delivered,
    /// The callback queue does not exist (any more): the caller is gone.
    NoRoute,
}

/// Publishes `reply` to `to` on `channel`, which must be in confirm mode, and waits for the
/// broker's confirm. `Err` when the broker refused it (nack) or the channel failed.
pub async fn send(channel: &Channel, to: &ReplyTo, reply: &Reply) -> Result<Sent, Error> {
    let confirm = channel
        .basic_publish(
            "".into(),
            to.queue.as_str().into(),
            BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() },
            reply.body().as_bytes(),
            reply.properties(to.correlation_id.as_deref()),
        )
        .await
        .map_err(|e| failed(format_args!("reply to {}", to.queue), e))?
        .await
        .map_err(|e| failed(format_args!("confirm of the reply to {}", to.queue), e))?;
    match confirm {
        Confirmation::Ack(None) => Ok(Sent::Delivered),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Ok(Sent::NoRoute),
        Confirmation::Nack(None) => {
            Err(Error::source(SOURCE, format!("the reply to {} was nacked by the broker", to.queue)))
        }
        Confirmation::NotRequested => {
            Err(Error::source(SOURCE, "reply sent without publisher confirms (confirm mode is off)"))
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// Calls `calc(x)` over RabbitMQ and awaits the replies, as the seed's driver does.
pub struct RpcClient {
    connection: Connection,
    channel: Channel,
    queue: String,
    callback: String,
    pending: Pending,
    /// Why the reply consumer stopped, once it has.
    stopped: Arc<Mutex<Option<String>>>,
    prefix: String,
    next: AtomicU64,
    reader: JoinHandle<()>,
}

/// A request published and not answered yet.
#[derive(Debug)]
pub struct PendingCall {
    pub correlation_id: String,
    reply: oneshot::Receiver<Reply>,
    stopped: Arc<Mutex<Option<String>>>,
}

impl PendingCall {
    /// Waits for the reply. `Err` when the reply consumer stopped first (connection lost).
    pub async fn reply(self) -> Result<Reply, Error> {
        self.reply.await.map_err(|_| {
            let why = self.stopped.lock().clone().unwrap_or_else(|| "the client was closed".into());
            Error::source(SOURCE, format!("no reply to {}: {why}", self.correlation_id))
        })
    }
}

impl RpcClient {
    /// Connects, declares the work queue `queue` as the worker does ([`declare`]: requests wait
    /// there until a worker takes them), enables publisher confirms, declares the callback
    /// queue (exclusive, auto-delete, named by the broker) and starts consuming it.
    pub async fn connect(uri: &str, queue: &str) -> Result<RpcClient, Error> {
        let connection = connect(uri).await?;
        let channel = connection.create_channel().await.map_err(|e| failed("create channel", e))?;
        declare(&channel, queue).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| failed("enable publisher confirms", e))?;
        let declared = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed("declare the callback queue", e))?;
        let callback = declared.name().as_str().to_owned();
        let mut consumer = channel
            .basic_consume(
                callback.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, exclusive: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| failed(format_args!("consume {callback}"), e))?;
        let pending: Pending = Arc::default();
        let stopped: Arc<Mutex<Option<String>>> = Arc::default();
        let reader = {
            let (pending, stopped) = (pending.clone(), stopped.clone());
            tokio::spawn(async move {
                let why = loop {
                    match consumer.next().await {
                        Some(Ok(delivery)) => {
                            let reply = Reply::read(&delivery.properties, &delivery.data);
                            let id =
                                delivery.properties.correlation_id().as_ref().map(|c| c.as_str().to_owned());
                            let waiting = id.as_ref().and_then(|id| pending.lock().remove(id));
                            match waiting {
                                Some(waiting) => {
                                    // The caller may have given up; nothing to do then.
                                    let _ = waiting.send(reply);
                                }
                                None => tracing::debug!(
                                    correlation_id = ?id,
                                    ?reply,
                                    "a reply nobody waits for (a second answer to a redelivered request)"
                                ),
                            }
                        }
                        Some(Err(e)) => break format!("the callback queue's consumer failed: {e}"),
                        None => break "the broker cancelled the callback queue's consumer".to_owned(),
                    }
                };
                // Under the pending lock (then the reason's, as in `send_with`): a call is either
                // registered before and woken here, or refused after.
                let mut waiting = pending.lock();
                *stopped.lock() = Some(why);
                // Dropping the senders wakes every caller still waiting, with the reason above.
                waiting.clear();
            })
        };
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        tracing::debug!(uri = %redact(uri), queue, callback, "request–reply client connected");
        Ok(RpcClient {
            connection,
            channel,
            queue: queue.to_owned(),
            callback,
            pending,
            stopped,
            prefix: format!("{nanos:x}-{}", std::process::id()),
            next: AtomicU64::new(0),
            reader,
        })
    }

    /// The callback queue's name (the `reply_to` of every request).
    pub fn callback_queue(&self) -> &str {
        &self.callback
    }

    /// The work queue requests go to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Publishes a request with `body` (confirmed by the broker) under a new correlation id;
    /// the reply is awaited with [`PendingCall::reply`].
    pub async fn send(&self, body: &str) -> Result<PendingCall, Error> {
        let id = format!("{}-{}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed));
        let properties = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_reply_to(self.callback.as_str().into())
            .with_correlation_id(id.as_str().into());
        self.send_with(body, properties).await
    }

    /// Publishes a request with these `properties`, which must carry `reply_to` = this client's
    /// callback queue and a `correlation_id` (to resend a request as a redelivery would look,
    /// or to add a `message_id`). Confirmed by the broker; `Err` if it refused or could not
    /// route it, or the properties lack a correlation id.
    pub async fn send_with(&self, body: &str, properties: BasicProperties) -> Result<PendingCall, Error> {
        let Some(id) = properties.correlation_id().as_ref().map(|c| c.as_str().to_owned()) else {
            return Err(Error::source(SOURCE, "a request needs a correlation_id"));
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock();
            if let Some(why) = self.stopped.lock().clone() {
                return Err(Error::source(SOURCE, format!("cannot send {id}: {why}")));
            }
            pending.insert(id.clone(), tx);
        }
        let published = self.publish(&id, body, properties).await;
        if let Err(e) = published {
            self.pending.lock().remove(&id);
            return Err(e);
        }
        Ok(PendingCall { correlation_id: id, reply: rx, stopped: self.stopped.clone() })
    }

    async fn publish(&self, id: &str, body: &str, properties: BasicProperties) -> Result<(), Error> {
        publish_confirmed(&self.channel, &self.queue, id, body, properties).await
    }

    /// One call: publishes `body`, waits for its reply.
    pub async fn call(&self, body: &str) -> Result<Reply, Error> {
        self.send(body).await?.reply().await
    }

    /// Closes the channel (the broker deletes the callback queue) and the connection.
    pub async fn close(self) -> Result<(), Error> {
        self.reader.abort();
        self.channel.close(200, "OK".into()).await.map_err(|e| failed("close channel", e))?;
        self.connection.close(200, "OK".into()).await.map_err(|e| failed("close connection", e))
    }
}

impl Drop for RpcClient {
    /// Stops the reply consumer's task (the connection closes as it is dropped).
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::ShortString;

    use super::*;

    #[test]
    fn a_result_reply_is_x_as_text_with_the_correlation_id() {
        let reply = Reply::Result(1.5);
        assert_eq!(reply.body(), "1.5");
        let properties = reply.properties(Some("abc"));
        assert_eq!(properties.correlation_id().as_ref().map(ShortString::as_str), Some("abc"));
        assert_eq!(properties.kind(), &None);
        assert_eq!(Reply::read(&properties, b"1.5"), reply);
    }

    #[test]
    fn an_error_reply_says_error_in_its_body_and_its_type() {
        let reply = Reply::Error("\"x\" = 3 is out of range: 0 <= x <= 2".into());
        assert_eq!(reply.body(), "error: \"x\" = 3 is out of range: 0 <= x <= 2");
        let properties = reply.properties(None);
        assert_eq!(properties.kind().as_ref().map(ShortString::as_str), Some(ERROR_TYPE));
        assert_eq!(properties.correlation_id(), &None);
        assert_eq!(Reply::read(&properties, reply.body().as_bytes()), reply);
        let unreadable = Reply::read(&BasicProperties::default(), b"oops");
        assert!(
            matches!(&unreadable, Reply::Error(why) if why.contains("unreadable reply")),
            "{unreadable:?}"
        );
    }

    #[test]
    fn a_request_without_a_message_id_is_keyed_by_its_reply_address() {
        let properties =
            BasicProperties::default().with_reply_to("amq.gen-1".into()).with_correlation_id("c-7".into());
        let to = ReplyTo::of(&properties).expect("has reply_to");
        assert_eq!(to, ReplyTo { queue: "amq.gen-1".into(), correlation_id: Some("c-7".into()) });
        assert_eq!(to.message_id().as_deref(), Some("rpc:amq.gen-1:c-7"));
        let no_id = ReplyTo::of(&BasicProperties::default().with_reply_to("q".into())).expect("has reply_to");
        assert_eq!(no_id.message_id(), None);
        assert_eq!(ReplyTo::of(&BasicProperties::default()), None);
        assert_eq!(ReplyTo::of(&BasicProperties::default().with_reply_to("".into())), None);
    }
}
