//! Shared by the process tests: a queue with its DLQ and the calc tables in moto, and the
//! worker processes (`calc-worker-server`, `event-poller sqs`) started and stopped.
#![allow(dead_code)]

use std::process::Command;

use queue::dynamodb::DynamoDbLedger;
use queue::sqs::SqsSource;
use testkit::moto;
use testkit::process::Process;

/// moto resources for one test.
pub struct Stack {
    pub config: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub done_table: String,
    pub messages_table: String,
}

impl Stack {
    /// A fresh queue (+ DLQ after `max_receive_count` receives, `visibility_s` visibility) and
    /// fresh calc tables; `None` when moto is not configured (the test skips).
    pub async fn new(prefix: &str, max_receive_count: u32, visibility_s: u32) -> Option<Stack> {
        let config = moto::config().await?;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let (queue_url, dlq_url) = moto::queue_with_dlq(&sqs, prefix, max_receive_count, visibility_s).await;
        let (done_table, messages_table) = moto::calc_tables(&dynamodb, prefix).await;
        Some(Stack { config, sqs, queue_url, dlq_url, done_table, messages_table })
    }

    pub fn ledger(&self) -> DynamoDbLedger {
        DynamoDbLedger::new(&self.config, self.done_table.clone(), self.messages_table.clone())
    }

    /// Sends bodies (10 per call); returns the message ids.
    pub async fn send(&self, bodies: &[String]) -> Vec<String> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let mut ids = Vec::new();
        for chunk in bodies.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .unwrap()
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
            assert!(out.failed().is_empty(), "send failed: {:?}", out.failed());
            ids.extend(out.successful().iter().map(|s| s.message_id().to_owned()));
        }
        ids
    }

    pub async fn dlq_depth(&self) -> u64 {
        SqsSource::from_client(self.sqs.clone(), self.dlq_url.clone()).depth().await.unwrap()
    }

    pub async fn queue_depth(&self) -> u64 {
        SqsSource::from_client(self.sqs.clone(), self.queue_url.clone()).depth().await.unwrap()
    }
}

/// `{"x": x}` bodies.
pub fn bodies(xs: impl IntoIterator<Item = f64>) -> Vec<String> {
    xs.into_iter().map(queue::calc::body).collect()
}

pub use testkit::eventually;

/// `calc-worker-server` with these extra arguments, its health endpoint on a port the system
/// picks, once that endpoint listens (`url` is its base).
pub fn worker(args: &[&str]) -> Process {
    Process::serve(
        Command::new(env!("CARGO_BIN_EXE_calc-worker-server"))
            .args(args)
            .args(["--health-addr", "127.0.0.1:0"])
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())),
    )
}

/// `calc-worker-server` on an SQS queue, counting in the stack's tables.
pub fn sqs_worker(stack: &Stack, extra: &[&str]) -> Process {
    let mut args = vec![
        "--source",
        &stack.queue_url,
        "--done-table",
        &stack.done_table,
        "--messages-table",
        &stack.messages_table,
        "--max-x",
        "2",
        "--wait-seconds",
        "1",
    ];
    args.extend_from_slice(extra);
    worker(&args)
}

/// GET /healthz of a worker: the status code, or None if nothing answers.
pub async fn health(worker: &Process) -> Option<u16> {
    aws_setup::install_tls_provider();
    reqwest::get(format!("{}/healthz", worker.url)).await.ok().map(|r| r.status().as_u16())
}
