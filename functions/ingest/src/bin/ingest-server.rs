//! `ingest-server`: the same router as the Lambda in front of a batching buffer, for EC2,
//! Fargate and Kubernetes.

use std::process::ExitCode;

use clap::Parser;
use ingest_fn::config::ServerArgs;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    edge::server::main("ingest-server", args.shutdown_timeout, |shutdown| {
        ingest_fn::server::run(args, shutdown)
    })
}
