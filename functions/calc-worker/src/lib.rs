//! The calc worker's hosts, around `queue::Worker`:
//! - [`lambda`]: the `calc-worker` Lambda on the SQS queue, answering with partial batch
//!   responses (`ReportBatchItemFailures`): only the failed messages go back to the queue;
//! - [`server`]: `calc-worker-server`, the same worker as a plain process consuming RabbitMQ or
//!   long-polling SQS (EC2, Fargate, Kubernetes), with a health endpoint and SIGTERM draining.

pub mod config;
pub mod lambda;
pub mod server;

pub use config::ConfigError;
