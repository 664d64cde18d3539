//! `calc-worker-server`: consume RabbitMQ or SQS until SIGTERM, then drain.
//!
//! GET /healthz on `--health-addr` answers 200 while consuming and 503 while starting or
//! draining (Kubernetes probes; the process has no other HTTP surface). On SIGTERM (or Ctrl-C)
//! it stops taking messages, finishes those in flight, acknowledges them, and exits 0; if that
//! takes longer than `--shutdown-timeout`, it exits non-zero and the broker redelivers what was
//! not acknowledged (the ledger keeps the count exact).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use queue::{ConsumeStats, Worker};
use tokio::sync::watch;

use crate::config::{self, ServerArgs, Source};

/// Why the server stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("health endpoint {addr}: {source}")]
    Health { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Queue(#[from] queue::Error),
    #[error("messages still in flight {0:.1} s after SIGTERM; exiting (they will be redelivered)")]
    DrainTimeout(f64),
}

// 0 (the default) is starting.
const CONSUMING: u8 = 1;
const DRAINING: u8 = 2;

/// The health state the endpoint reports.
#[derive(Clone, Default)]
pub struct Health(Arc<AtomicU8>);

impl Health {
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::SeqCst);
    }

    fn answer(&self) -> (StatusCode, &'static str) {
        match self.0.load(Ordering::SeqCst) {
            CONSUMING => (StatusCode::OK, "consuming\n"),
            DRAINING => (StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        }
    }
}

/// The health router.
pub fn health_router(health: Health) -> Router {
    Router::new().route("/healthz", get(move || std::future::ready(health.answer())))
}

/// Runs the server with these arguments until SIGTERM (or a fatal source error).
pub async fn run(args: ServerArgs) -> Result<(), ServerError> {
    let source = args.source()?;
    let max_x = args.checked_max_x()?;
    let drain_timeout = args.shutdown_timeout()?;
    let needs_aws = matches!(source, Source::Sqs { .. }) || args.done_table.is_some();
    let aws = if needs_aws { Some(aws_setup::load().await) } else { None };
    let ledger = config::ledger(aws.as_ref(), args.done_table.clone(), args.messages_table.clone())?;
    if ledger.describe() == "memory" {
        tracing::warn!("no --done-table/--messages-table: counting in memory (lost on exit)");
    }
    let worker = Arc::new(Worker::new(ledger.clone(), max_x));

    let health = Health::default();
    let listener = tokio::net::TcpListener::bind(args.health_addr)
        .await
        .map_err(|source| ServerError::Health { addr: args.health_addr, source })?;
    let health_addr = listener.local_addr().unwrap_or(args.health_addr);
    let app = health_router(health.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        edge::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let draining = {
        let health = health.clone();
        let stop = stopped(stop_rx.clone());
        async move {
            stop.await;
            health.set(DRAINING);
            tracing::info!(timeout_s = drain_timeout.as_secs_f64(), "SIGTERM: draining");
            tokio::time::sleep(drain_timeout).await;
        }
    };

    tracing::info!(%health_addr, ledger = %ledger.describe(), max_x, "calc-worker-server starting");
    health.set(CONSUMING);
    let consuming = async {
        match &source {
            Source::Amqp { uri } => {
                let config = queue::amqp::ConsumerConfig {
                    uri: uri.clone(),
                    queue: args.queue.clone(),
                    prefetch: args.concurrency,
                };
                queue::amqp::consume(&config, worker, stopped(stop_rx.clone())).await
            }
            Source::Sqs { queue_url } => {
                let aws = aws.as_ref().ok_or(config::ConfigError::Missing("the AWS configuration"))?;
                let sqs = queue::sqs::SqsSource::new(aws, queue_url.clone());
                let config = queue::sqs::ConsumerConfig {
                    concurrency: usize::from(args.concurrency),
                    wait: std::time::Duration::from_secs(args.wait_seconds),
                };
                queue::sqs::consume(&sqs, worker, &config, stopped(stop_rx.clone())).await
            }
        }
        .map_err(ServerError::from)
    };
    let stats: ConsumeStats = tokio::select! {
        result = consuming => result?,
        () = draining => return Err(ServerError::DrainTimeout(drain_timeout.as_secs_f64())),
    };
    health.set(DRAINING);
    tracing::info!(?stats, "calc-worker-server stopped");
    Ok(())
}
