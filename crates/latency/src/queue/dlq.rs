//! Queue depths: the [`Depth`] port and its two readers, an SQS queue's and a RabbitMQ queue's —
//! for the dead-letter queue read when a run times out, and the work queue that must be empty
//! before a run starts.

use std::sync::Arc;

use queue::BoxFuture;

/// The dead-letter queue, read when a run times out.
pub trait Depth: Send + Sync {
    /// Messages in it now.
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>>;
    /// What it is, for the timeout message: `the dead-letter queue <url> (why messages go there)`.
    fn describe(&self) -> String;
}

/// Something whose depth the run reads: a work queue or a dead-letter queue.
pub(super) type DepthBox = Box<dyn Depth>;

pub(super) struct AmqpDlq {
    pub(super) publisher: Arc<queue::amqp::Publisher>,
    pub(super) queue: String,
}

impl Depth for AmqpDlq {
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move { self.publisher.depth(&self.queue).await.map_err(|e| e.to_string()) })
    }

    fn describe(&self) -> String {
        format!("the dead-letter queue {} (poison: the worker rejected them)", self.queue)
    }
}

pub(super) struct SqsDlq {
    pub(super) config: aws_config::SdkConfig,
    pub(super) url: String,
}

impl Depth for SqsDlq {
    fn depth(&self) -> BoxFuture<'_, Result<u64, String>> {
        Box::pin(async move { queue::sqs::depth(&self.config, &self.url).await.map_err(|e| e.to_string()) })
    }

    fn describe(&self) -> String {
        format!("the dead-letter queue {} (poison or failed maxReceiveCount times)", self.url)
    }
}
