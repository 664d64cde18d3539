//! `calc(x)` on a queue, as in the seed's "Queues" section: a message `{"x": <seconds>}` asks for
//! a calculation that takes `x` seconds; a worker runs it and then counts it in `done`.
//!
//! - [`calc`]: the message contract (parse and validate; a bad message is *poison*) and the
//!   calculation itself;
//! - [`ledger`]: the `done` counter as a port that counts each message id **once** (SQS and
//!   RabbitMQ deliver at least once), with an in-memory adapter; [`dynamodb`] is the durable one
//!   (one `TransactWriteItems`: a conditional put of the message id + `ADD done`);
//! - [`worker`]: runs a batch concurrently, one span per message, within a time budget, and
//!   says per message what happened ([`Verdict`]);
//! - sources for the plain worker binary: [`sqs`] (long poll) and [`amqp`] (RabbitMQ), which
//!   answers requests that carry `reply_to` ([`rpc`]: the request–reply protocol and its client).
//!
//! No Lambda or HTTP imports: the Lambda and the binaries are glue in `functions/calc-worker`.

pub mod calc;
pub mod error;
pub mod ledger;
pub mod worker;

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "amqp")]
pub mod rpc;
#[cfg(feature = "sqs")]
pub mod sqs;

pub use calc::{Calculation, DEFAULT_MAX_X};
pub use error::Error;
#[cfg(feature = "dynamodb")]
pub use ledger::open as open_ledger;
pub use ledger::{HalfLedger, Ledger, LedgerSpec, MemoryLedger, Outcome, SharedLedger};
pub use worker::{Answered, ConsumeStats, Message, Verdict, Worker};

/// The boxed future of the ports' methods (stores are chosen at run time, behind `dyn`).
pub use futures_util::future::BoxFuture;
