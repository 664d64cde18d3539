//! Posting one calculation: the [`Post`] port and its two transports, `POST {"x": …}` to an
//! HTTP API and a persistent, confirmed publish to RabbitMQ.

use std::sync::Arc;
use std::time::Duration;

use queue::BoxFuture;

use crate::error::Error;

/// One HTTP post gives up after this long (and is retried).
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of an error answer's body shown.
const BODY_SHOWN: usize = 500;

/// Why a post failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// Refused for good (a 4xx answer): not retried.
    Rejected(String),
    /// May succeed if tried again (connection, timeout, 5xx, 429, a broker nack).
    Failed(String),
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Rejected(why) | PostError::Failed(why) => f.write_str(why),
        }
    }
}

/// Sends one calculation request.
pub trait Post: Send + Sync {
    /// Posts `body`; `message_id` is unique across runs (used where the transport carries it).
    fn post<'a>(&'a self, message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>>;
}

/// `POST {"x": …}` to an API (API Gateway → SQS, or scripts/calc_api.py locally).
pub struct HttpPoster {
    client: reqwest::Client,
    url: String,
}

impl HttpPoster {
    pub fn new(url: &str) -> Result<HttpPoster, Error> {
        aws_setup::install_tls_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("latency-queue/", env!("CARGO_PKG_VERSION")))
            .timeout(POST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .build()
            .map_err(|e| Error::Invalid(format!("building the HTTP client: {e}")))?;
        Ok(HttpPoster { client, url: url.to_owned() })
    }
}

impl Post for HttpPoster {
    fn post<'a>(&'a self, _message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned())
                .send()
                .await
                .map_err(|e| PostError::Failed(error_chain(&e)))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(BODY_SHOWN).collect();
            let why = format!("HTTP {status}: {}", text.trim());
            if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                Err(PostError::Rejected(why))
            } else {
                Err(PostError::Failed(why))
            }
        })
    }
}

/// An error with its causes: reqwest's own message is often just "error sending request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Publishes to RabbitMQ, persistent and confirmed.
pub(super) struct AmqpPoster(pub(super) Arc<queue::amqp::Publisher>);

impl Post for AmqpPoster {
    fn post<'a>(&'a self, message_id: &'a str, body: &'a str) -> BoxFuture<'a, Result<(), PostError>> {
        Box::pin(async move {
            self.0.publish(message_id, body).await.map_err(|e| PostError::Failed(e.to_string()))
        })
    }
}
