//! `hits-server`: the same router as the Lambda, for EC2, Fargate and Kubernetes; and
//! `hits-server healthcheck`, the container's HEALTHCHECK (deploy/hits-server/Dockerfile).

use std::process::ExitCode;

use hits::server::{Command, Options, Probe, serve, shutdown_signal};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let probing = args.first().is_some_and(|a| a == "healthcheck");
    match Command::parse(args) {
        Ok(Command::Serve(options)) => run(options),
        Ok(Command::Healthcheck(probe)) => healthcheck(&probe),
        Err(message) => {
            eprintln!("{message}");
            // Docker reserves exit status 2 of a HEALTHCHECK: a probe that cannot start is
            // unhealthy (1).
            ExitCode::from(if probing { 1 } else { 2 })
        }
    }
}

/// One probe on one thread: it runs every few seconds next to the server it checks.
fn healthcheck(probe: &Probe) -> ExitCode {
    let checked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(probe.check()));
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("hits-server healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hits-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(serve_until_signalled(options));
    // Past the shutdown deadline a connection or a store commit (a hung EFS mount) may still be
    // stuck; dropping the runtime would wait for them, past the deadline that `serve` kept.
    runtime.shutdown_background();
    status
}

async fn serve_until_signalled(options: Options) -> ExitCode {
    edge::init_server_tracing();
    let fail = |what: String| {
        eprintln!("hits-server: {what}");
        ExitCode::from(2)
    };
    // Before the store and the `listening on` line: SIGTERM from then on starts the drain.
    let stop = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => return fail(format!("cannot listen for SIGTERM: {e}")),
    };
    let counter = match counter::open_from_env().await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(options.addr).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", options.addr)),
    };
    match listener.local_addr() {
        // Scripts and tests read this line to find the port (`--addr 127.0.0.1:0`).
        Ok(addr) => println!("listening on http://{addr} (store: {})", counter.kind()),
        Err(e) => eprintln!("hits-server: {e}"),
    }
    match serve(listener, counter, options.shutdown_timeout, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hits-server: {e}");
            ExitCode::FAILURE
        }
    }
}
