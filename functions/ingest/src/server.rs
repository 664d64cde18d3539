//! The serverful host: the router on a TCP listener in front of the batching buffer, with a
//! graceful shutdown that loses nothing accepted.
//!
//! On SIGTERM / Ctrl-C: stop accepting connections, let in-flight requests finish (their events
//! join the buffer), flush the buffer with retries, write whatever the sink still has not
//! acknowledged to the spill file (replayed on the next start), exit 0 — all within
//! `--shutdown-timeout`.

use std::sync::Arc;
use std::time::Duration;

use ingest::SharedIngest;
use ingest::batcher::{Buffered, ShutdownReport};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// The share of the shutdown deadline the HTTP drain may use; the rest is for the flush.
const HTTP_DRAIN_SHARE: f64 = 0.25;

/// Serves until SIGTERM / Ctrl-C (or `stop` resolves), then drains as described above.
pub async fn serve(
    listener: TcpListener,
    buffered: Arc<Buffered>,
    shutdown_timeout: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<ShutdownReport> {
    let (stopped_tx, mut stopped_rx) = tokio::sync::watch::channel(None::<Instant>);
    let app =
        crate::router(buffered.clone() as SharedIngest).layer(tower_http::trace::TraceLayer::new_for_http());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        tokio::select! { () = edge::shutdown_signal() => {}, () = stop => {} }
        tracing::info!(?shutdown_timeout, "shutdown: finishing in-flight requests, then flushing the buffer");
        let _ = stopped_tx.send(Some(Instant::now()));
    });
    let http_deadline = async {
        let Ok(since) = stopped_rx.wait_for(Option::is_some).await.map(|s| s.unwrap_or_else(Instant::now))
        else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(since + shutdown_timeout.mul_f64(HTTP_DRAIN_SHARE)).await;
    };
    tokio::select! {
        served = server => served?,
        () = http_deadline => tracing::warn!("in-flight requests did not finish in time; flushing anyway"),
    }
    let since = (*stopped_rx.borrow()).unwrap_or_else(Instant::now);
    let left = (since + shutdown_timeout).saturating_duration_since(Instant::now());
    let report = buffered.shutdown(left).await;
    tracing::info!(
        delivered = report.delivered_records,
        spilled = report.spilled_records,
        dropped = report.dropped_records,
        "stopped"
    );
    Ok(report)
}
