//! `calc-worker-server`: the calc worker as a plain process (RabbitMQ or SQS).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = calc_worker::config::ServerArgs::parse();
    edge::server::main("calc-worker-server", args.shutdown_timeout, |shutdown| {
        calc_worker::server::run(args, shutdown)
    })
}
