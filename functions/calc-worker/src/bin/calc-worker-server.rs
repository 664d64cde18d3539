//! `calc-worker-server`: the calc worker as a plain process (RabbitMQ or SQS).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    edge::init_server_tracing();
    let args = calc_worker::config::ServerArgs::parse();
    match calc_worker::server::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("calc-worker-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
