//! `ingest-server`: the same router as the Lambda in front of a batching buffer, for EC2,
//! Fargate and Kubernetes.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ingest::batcher::Buffered;
use ingest_fn::config::ServerArgs;

#[tokio::main]
async fn main() -> ExitCode {
    let args = ServerArgs::parse();
    edge::init_server_tracing();
    let fail = |what: String| {
        eprintln!("ingest-server: {what}");
        ExitCode::from(2)
    };
    let config = match args.buffer_config() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (sink, invalid_sink) = match ingest::open_sinks(&args.sink, args.invalid_sink.as_ref()).await {
        Ok(sinks) => sinks,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = sink.warm().await {
        tracing::warn!(sink = %sink.describe(), error = %e, "could not pre-connect to the sink; buffering anyway");
    }
    let describe = sink.describe();
    let buffered = match Buffered::start(sink, invalid_sink, config) {
        Ok(b) => Arc::new(b),
        Err(e) => return fail(format!("cannot replay the spill file: {e}")),
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {}: {e}", args.addr)),
    };
    match listener.local_addr() {
        // Scripts and tests read this line to find the port (`--addr 127.0.0.1:0`).
        // On stderr: stdout may be the sink.
        Ok(addr) => eprintln!("listening on http://{addr} (sink: {describe})"),
        Err(e) => return fail(e.to_string()),
    }
    match ingest_fn::server::serve(listener, buffered, args.shutdown_timeout(), std::future::pending()).await
    {
        Ok(report) if report.dropped_records == 0 => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!(
                "ingest-server: {} records could be neither delivered nor spilled",
                report.dropped_records
            );
            ExitCode::FAILURE
        }
        Err(e) => fail(e.to_string()),
    }
}
