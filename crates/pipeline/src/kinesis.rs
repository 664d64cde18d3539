//! The [`Stream`] on a Kinesis data stream: one `PutRecord` per item, the item's id as the
//! partition key. The SDK retries within its attempts and timeouts (`aws_setup::Timeouts`);
//! what still fails comes back as [`Error::Stream`] (upstream answers 503 + `Retry-After`).
//!
//! IAM: `kinesis:PutRecord` and, for the warm-up, `kinesis:DescribeStreamSummary`.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;

use crate::aws_error::describe;
use crate::{BoxFuture, Error, Stream};

pub struct KinesisStream {
    client: Client,
    stream: String,
}

impl KinesisStream {
    pub fn new(client: Client, stream: impl Into<String>) -> KinesisStream {
        KinesisStream { client, stream: stream.into() }
    }
}

fn failed<E, R>(operation: &str, e: &aws_sdk_kinesis::error::SdkError<E, R>) -> Error
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let (detail, timed_out) = describe(e);
    Error::Stream { detail: format!("{operation}: {detail}"), timed_out }
}

impl Stream for KinesisStream {
    fn put<'a>(&'a self, partition_key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>> {
        let span = crate::call_span("Kinesis", "PutRecord");
        let call = async move {
            self.client
                .put_record()
                .stream_name(&self.stream)
                .partition_key(partition_key)
                .data(Blob::new(data))
                .send()
                .await
                .map_err(|e| failed("PutRecord", &e))?;
            Ok(())
        };
        Box::pin(crate::traced(call, span))
    }

    fn warm(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.client
                .describe_stream_summary()
                .stream_name(&self.stream)
                .send()
                .await
                .map_err(|e| failed("DescribeStreamSummary", &e))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!("kinesis:{}", self.stream)
    }
}
