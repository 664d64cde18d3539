//! The serverful host: the router on a TCP listener in front of the batching buffer, with a
//! graceful shutdown that loses nothing accepted.
//!
//! On SIGTERM / Ctrl-C (the server kit, `edge::server`): stop accepting connections, let in-flight requests finish (their events
//! join the buffer), flush the buffer with retries, write whatever the sink still has not
//! acknowledged to the spill file (replayed on the next start), exit 0 — all within
//! `--shutdown-timeout`.

use std::sync::Arc;

use edge::server::{Exit, Shutdown};
use ingest::SharedIngest;
use ingest::batcher::{Buffered, ShutdownReport};
use tokio::net::TcpListener;

use crate::config::ServerArgs;
use crate::cors::AllowedOrigins;

/// The share of the shutdown deadline the HTTP drain may use; the rest is for the flush.
const HTTP_DRAIN_SHARE: f64 = 0.25;

/// The whole server: checks that the spill file can be written (exit 2 if not), opens and warms
/// the sinks (unless the shutdown is requested first: nothing was accepted yet, so that is a
/// clean stop), starts the replay of a spill file, listens, serves until the signal, and drains
/// as the module doc says. A record neither delivered nor spilled fails it.
pub async fn run(args: ServerArgs, shutdown: Shutdown) -> Result<(), Exit> {
    let config = args.buffer_config().map_err(Exit::start)?;
    if let Some(path) = &config.spill_path {
        // Found now, not at SIGTERM when the events would have nowhere to go.
        ingest::spill::check_writable(path).map_err(|e| {
            Exit::start(format!(
                "cannot write the spill file {}: {e}; point --spill (INGEST_SPILL) at a writable path, or run with --spill off (what the sink has not taken by the shutdown deadline is then logged and dropped)",
                path.display()
            ))
        })?;
    }
    let timeouts = args.aws.timeouts().map_err(Exit::start)?;
    let aws = ingest::AwsConfig::new(aws_setup::TrustRoots::from_env()).with_timeouts(timeouts);
    let opening = async {
        let (sink, invalid) = ingest::open_sinks(&args.sink, args.invalid_sink.as_ref(), &aws).await?;
        if let Err(e) = sink.warm().await {
            tracing::warn!(sink = %sink.describe(), error = %e, "could not pre-connect to the sink; buffering anyway");
        }
        Ok::<_, ingest::OpenError>((sink, invalid))
    };
    let Some(opened) = shutdown.unless_requested(opening).await else {
        return Ok(());
    };
    let (sink, invalid_sink) = opened.map_err(Exit::start)?;
    let describe = sink.describe();
    let buffered = Buffered::start(sink, invalid_sink, config)
        .map_err(|e| Exit::start(format!("cannot replay the spill file {}: {e}", args.spill)))?;
    let listener = edge::server::listen(args.addr, &format!("sink: {describe}")).await?;
    let origins = args.allowed_origins.clone();
    let report =
        serve(listener, Arc::new(buffered), origins, &args.http, &shutdown).await.map_err(Exit::failed)?;
    if report.dropped_records > 0 {
        return Err(Exit::failed(format!(
            "{} records could be neither delivered nor spilled",
            report.dropped_records
        )));
    }
    Ok(())
}

/// Serves until the shutdown is requested, then drains as described above. `origins` may read
/// `/events`' answers from a browser ([`crate::cors`]).
pub async fn serve(
    listener: TcpListener,
    buffered: Arc<Buffered>,
    origins: AllowedOrigins,
    limits: &edge::server::HttpLimits,
    shutdown: &Shutdown,
) -> std::io::Result<ShutdownReport> {
    // Request lines at DEBUG (`RUST_LOG=tower_http=debug`); not its line per 5xx at ERROR: the
    // router counts refusals and logs them about once a second.
    let trace = tower_http::trace::TraceLayer::new_for_http().on_failure(());
    let app = crate::router(buffered.clone() as SharedIngest, origins).layer(trace);
    if !edge::server::serve_http(listener, app, limits, shutdown, HTTP_DRAIN_SHARE).await? {
        tracing::warn!("flushing anyway");
    }
    let report = buffered.shutdown(shutdown.remaining()).await;
    tracing::info!(
        delivered = report.delivered_records,
        spilled = report.spilled_records,
        dropped = report.dropped_records,
        "stopped"
    );
    Ok(report)
}
