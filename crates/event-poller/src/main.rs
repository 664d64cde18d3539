//! `event-poller`: Lambda's event source mappings for the local stack only — SQS, Kinesis and
//! DynamoDB Streams, one subcommand each. On AWS the mappings poll the source and invoke the
//! function; here this process does, against the emulators (moto, the function under `cargo
//! lambda watch`). Nothing here is deployed.
//!
//! * `sqs` ([`sqs`]): receive, invoke, delete all but the reported `batchItemFailures`.
//! * `kinesis` ([`kinesis`]) and `dynamodb-streams` ([`dynamodb_streams`]): the shard loop of
//!   [`shards`] — iterators per shard, checkpoints ([`checkpoint`]), batches, retries, bisect,
//!   partial batch responses, the on-failure destination ([`on_failure`]).
//!
//! Every subcommand runs in the server kit ([`edge::server`]): SIGTERM/SIGINT stop the polling,
//! the invocations in flight settle within `--shutdown-timeout`.

mod checkpoint;
mod dynamodb_streams;
mod error;
mod invoke;
mod kinesis;
mod on_failure;
mod shards;
mod sqs;

use std::time::Duration;

use clap::{Parser, Subcommand};
use edge::server::{Exit, Shutdown};
pub use error::Error;

#[derive(Debug, Parser)]
#[command(
    name = "event-poller",
    about = "Local stand-in for Lambda's event source mappings (SQS, Kinesis, DynamoDB Streams)"
)]
struct Cli {
    #[command(subcommand)]
    source: Source,
}

#[derive(Debug, Subcommand)]
enum Source {
    /// An SQS queue (long poll; delete all but the reported failures).
    Sqs(sqs::Args),
    /// A Kinesis data stream (per shard, checkpointed).
    Kinesis(kinesis::Args),
    /// A DynamoDB table's stream (per shard, checkpointed).
    DynamodbStreams(dynamodb_streams::Args),
}

impl Source {
    fn shutdown_timeout(&self) -> Duration {
        match self {
            Source::Sqs(args) => args.shutdown_timeout,
            Source::Kinesis(args) => args.mapping.shutdown_timeout,
            Source::DynamodbStreams(args) => args.mapping.shutdown_timeout,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let timeout = cli.source.shutdown_timeout();
    edge::server::main("event-poller", timeout, |shutdown| run(cli.source, shutdown))
}

async fn run(source: Source, shutdown: Shutdown) -> Result<(), Exit> {
    match source {
        Source::Sqs(args) => sqs::run(args, shutdown).await,
        Source::Kinesis(args) => {
            aws_setup::install_tls_provider();
            let aws = aws_setup::load().await;
            let Some(stream) = shutdown.unless_requested(kinesis::Kinesis::open(&aws, &args.stream)).await
            else {
                return Ok(());
            };
            let stream = stream.map_err(Exit::start)?;
            shards::run(stream, args.mapping, Vec::new(), &aws, shutdown).await
        }
        Source::DynamodbStreams(args) => {
            aws_setup::install_tls_provider();
            let aws = aws_setup::load().await;
            let Some(stream) =
                shutdown.unless_requested(dynamodb_streams::DynamoDbStreams::open(&aws, &args)).await
            else {
                return Ok(());
            };
            let stream = stream.map_err(Exit::start)?;
            shards::run(stream, args.mapping, args.filter_event_names, &aws, shutdown).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_sqs_subcommand_takes_the_flags_sqs_poller_took() {
        let cli = Cli::try_parse_from([
            "event-poller",
            "sqs",
            "--queue-url",
            "http://q",
            "--invoke-url",
            "http://f",
            "--batch-size",
            "10",
            "--batching-window-ms",
            "0",
            "--max-concurrency",
            "2",
            "--pollers",
            "5",
            "--timeout",
            "10",
            "--shutdown-timeout",
            "35",
        ]);
        assert!(cli.is_ok(), "{cli:?}");
    }
}
