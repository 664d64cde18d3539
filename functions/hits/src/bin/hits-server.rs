//! `hits-server`: the same router as the Lambda, for EC2, Fargate and Kubernetes; and
//! `hits-server healthcheck`, the container's HEALTHCHECK (deploy/hits-server/Dockerfile).

use std::process::ExitCode;

use clap::Parser;
use hits::server::{Cli, Sub};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Docker reserves exit status 2 of a HEALTHCHECK: a probe that cannot start is
            // unhealthy (1).
            let probing = std::env::args().nth(1).is_some_and(|a| a == "healthcheck");
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ if probing => ExitCode::FAILURE,
                _ => ExitCode::from(2),
            };
        }
    };
    match cli.command {
        Some(Sub::Healthcheck(probe)) => probe.run(),
        None => edge::server::main("hits-server", cli.serve.shutdown_timeout, |shutdown| {
            hits::server::run(cli.serve, shutdown)
        }),
    }
}
