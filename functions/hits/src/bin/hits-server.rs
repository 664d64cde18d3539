//! `hits-server`: the same router as the Lambda, for EC2, Fargate and Kubernetes.

use std::process::ExitCode;

use hits::server::{Options, serve};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    edge::init_server_tracing();
    let counter = match counter::open_from_env().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hits-server: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hits-server: cannot listen on {}: {e}", options.addr);
            return ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        // Scripts and tests read this line to find the port (`--addr 127.0.0.1:0`).
        Ok(addr) => println!("listening on http://{addr} (store: {})", counter.kind()),
        Err(e) => eprintln!("hits-server: {e}"),
    }
    match serve(listener, counter, options.shutdown_timeout).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hits-server: {e}");
            ExitCode::FAILURE
        }
    }
}
