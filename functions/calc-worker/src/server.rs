//! `calc-worker-server`: consume RabbitMQ or SQS until SIGTERM, then drain.
//!
//! GET /healthz on `--health-addr` answers 200 while consuming and 503 while starting or
//! draining (Kubernetes probes; the process has no other HTTP surface). On SIGTERM (or Ctrl-C;
//! the server kit, `edge::server`) it stops taking messages, finishes those in flight, acknowledges them, and exits 0; if that
//! takes longer than `--shutdown-timeout`, it exits non-zero and the broker redelivers what was
//! not acknowledged (the ledger keeps the count exact).
//!
//! On RabbitMQ a request that carries `reply_to` is answered on that queue with its
//! `correlation_id` once counted (seed 000's request–reply; `queue::rpc`), the queue named by
//! `--queue` / `CALC_QUEUE` (`rpc_queue` in the Kubernetes manifests, as the seed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use edge::server::{Exit, Shutdown};
use queue::{ConsumeStats, Worker};

use crate::config::{ServerArgs, Source};

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

/// Runs the server with these arguments until the shutdown is requested (or a fatal source
/// error), then drains within the shutdown's timeout.
pub async fn run(args: ServerArgs, shutdown: Shutdown) -> Result<(), Exit> {
    let source = args.source().map_err(Exit::start)?;
    let max_x = args.checked_max_x().map_err(Exit::start)?;
    let spec = args.ledger().map_err(Exit::start)?;
    let timeouts = args.aws.timeouts().map_err(Exit::start)?;
    let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(timeouts);
    let ledger = queue::open_ledger(&spec, &aws).await.map_err(Exit::start)?;
    if ledger.describe() == "memory" {
        tracing::warn!("no --done-table/--messages-table: counting in memory (lost on exit)");
    }
    let worker = Arc::new(Worker::new(ledger.clone(), max_x));

    let health = Health::default();
    let listener = edge::server::listen(
        args.health_addr,
        &format!("health; ledger: {}, max x: {max_x}", ledger.describe()),
    )
    .await?;
    let app = health_router(health.clone());
    let limits = args.http;
    tokio::spawn(async move {
        // It answers "draining" through the drain too: its own shutdown never comes (the
        // trigger is dropped), the process's exit ends it.
        let (never, _) = Shutdown::manual(std::time::Duration::ZERO);
        if let Err(e) = edge::server::serve_http(listener, app, &limits, &never, 1.0).await {
            tracing::error!(error = %e, "health endpoint stopped");
        }
    });
    {
        let (health, requested, timeout) = (health.clone(), shutdown.requested(), shutdown.timeout());
        tokio::spawn(async move {
            requested.await;
            health.set(DRAINING);
            tracing::info!(timeout_s = timeout.as_secs_f64(), "shutdown requested: draining");
        });
    }

    health.set(CONSUMING);
    let consuming = async {
        match &source {
            Source::Amqp { uri } => {
                let config = queue::amqp::ConsumerConfig {
                    uri: uri.clone(),
                    queue: args.queue.clone(),
                    prefetch: args.concurrency,
                };
                queue::amqp::consume(&config, worker, shutdown.requested()).await
            }
            Source::Sqs { queue_url } => {
                let config = aws.config().await.map_err(|e| Exit::start(format!("cannot use SQS: {e}")))?;
                let sqs = queue::sqs::SqsSource::new(config, queue_url.clone());
                let config = queue::sqs::ConsumerConfig {
                    concurrency: usize::from(args.concurrency),
                    wait: std::time::Duration::from_secs(args.wait_seconds),
                };
                queue::sqs::consume(&sqs, worker, &config, shutdown.requested()).await
            }
        }
        .map_err(Exit::failed)
    };
    let Some(stats) = shutdown.until_deadline(1.0, consuming).await else {
        return Err(Exit::failed(format!(
            "messages still in flight {:.1} s after SIGTERM; exiting (they will be redelivered)",
            shutdown.timeout().as_secs_f64()
        )));
    };
    let stats: ConsumeStats = stats?;
    health.set(DRAINING);
    tracing::info!(?stats, "calc-worker-server stopped");
    Ok(())
}
