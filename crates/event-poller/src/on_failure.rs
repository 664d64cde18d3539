//! The on-failure destination: what Lambda sends to an SQS queue when it gives a stream batch
//! up (its retries exhausted, or its records too old), so the shard can move on.
//!
//! The message is Lambda's invocation record for stream sources:
//!
//! ```json
//! {"requestContext": {"requestId": "…", "functionArn": "arn:aws:lambda:…:function:f",
//!                     "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
//!  "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
//!  "version": "1.0", "timestamp": "2026-12-06T03:00:00.000Z",
//!  "KinesisBatchInfo": {"shardId": "…", "startSequenceNumber": "…", "endSequenceNumber": "…",
//!                       "approximateArrivalOfFirstRecord": "…", "approximateArrivalOfLastRecord": "…",
//!                       "batchSize": 1, "streamArn": "arn:aws:kinesis:…"}}
//! ```
//!
//! (`DDBStreamBatchInfo` for DynamoDB Streams.) It names the records — the function is expected
//! to read them from the stream while they are retained — and does not carry them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Error;
use crate::invoke::Invoked;
use crate::shards::Record;

/// Why a batch was given up: Lambda's `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// What the record says about the batch given up.
pub struct GivenUp<'a> {
    pub condition: Condition,
    /// Invocations made with this batch.
    pub invocations: u32,
    /// The last of them, if there was one.
    pub last: Option<&'a Invoked>,
    pub function_arn: &'a str,
    /// `KinesisBatchInfo` or `DDBStreamBatchInfo`.
    pub info_key: &'a str,
    pub stream_arn: &'a str,
    pub shard_id: &'a str,
    /// The batch, in order (never empty).
    pub records: &'a [Record],
}

/// Lambda's on-failure record for `given_up`, stamped `now_s` (epoch seconds).
pub fn record(given_up: &GivenUp<'_>, now_s: f64) -> Value {
    let first = given_up.records.first();
    let last = given_up.records.last();
    let request_id = given_up.last.map_or_else(String::new, |i| i.request_id.clone());
    let mut response = json!({
        "statusCode": given_up.last.map_or(0, |i| i.status),
        "executedVersion": "$LATEST",
    });
    if let Some(error) = given_up.last.and_then(|i| i.function_error.clone()) {
        response["functionError"] = Value::String(error);
    }
    let mut record = json!({
        "requestContext": {
            "requestId": request_id,
            "functionArn": given_up.function_arn,
            "condition": given_up.condition.as_str(),
            "approximateInvokeCount": given_up.invocations,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso8601(now_s),
    });
    record[given_up.info_key] = json!({
        "shardId": given_up.shard_id,
        "startSequenceNumber": first.map(|r| r.sequence.as_str()),
        "endSequenceNumber": last.map(|r| r.sequence.as_str()),
        "approximateArrivalOfFirstRecord": first.map(|r| iso8601(r.arrival_s)),
        "approximateArrivalOfLastRecord": last.map(|r| iso8601(r.arrival_s)),
        "batchSize": given_up.records.len(),
        "streamArn": given_up.stream_arn,
    });
    record
}

/// Epoch seconds as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), as Lambda writes its timestamps.
pub fn iso8601(epoch_s: f64) -> String {
    let millis = if epoch_s.is_finite() && epoch_s > 0.0 { (epoch_s * 1000.0).round() as i64 } else { 0 };
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) =
        (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// Now, in epoch seconds.
pub fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Where given-up batches go: an SQS queue, or nowhere (then they are only logged, as Lambda
/// drops them without a destination).
pub struct Destination {
    sqs: aws_sdk_sqs::Client,
    queue_url: Option<String>,
}

impl Destination {
    pub fn new(config: &aws_config::SdkConfig, queue_url: Option<String>) -> Destination {
        Destination { sqs: aws_sdk_sqs::Client::new(config), queue_url }
    }

    /// Sends `record` (one attempt; the caller retries).
    pub async fn send(&self, record: &Value) -> Result<(), Error> {
        let Some(queue_url) = &self.queue_url else {
            tracing::warn!(%record, "a batch was given up and there is no on-failure destination: dropped");
            return Ok(());
        };
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(record.to_string())
            .send()
            .await
            .map_err(|e| Error::aws("SendMessage", e))?;
        tracing::warn!(%record, "a batch was given up: sent to the on-failure destination");
        Ok(())
    }
}

/// How long to wait before sending again after `attempt` failed sends.
pub fn resend_after(attempt: u32) -> Duration {
    retry::Backoff::full(Duration::from_millis(200), Duration::from_secs(5)).delay(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(sequence: &str, arrival_s: f64) -> Record {
        Record {
            sequence: sequence.into(),
            arrival_s,
            event_name: None,
            key: String::new(),
            json: Value::Null,
        }
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_573_691_886.021), "2019-11-14T00:38:06.021Z");
        assert_eq!(iso8601(951_782_400.5), "2000-02-29T00:00:00.500Z");
        assert_eq!(iso8601(f64::NAN), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn the_on_failure_record_names_the_batch_as_lambda_does() {
        let records = [rec("100", 1_573_691_884.835), rec("105", 1_573_691_885.58)];
        let invoked = Invoked {
            request_id: "c9b8fa9f".into(),
            status: 200,
            function_error: Some("Unhandled".into()),
            result: Ok(Vec::new()),
        };
        let given_up = GivenUp {
            condition: Condition::RetryAttemptsExhausted,
            invocations: 3,
            last: Some(&invoked),
            function_arn: "arn:aws:lambda:eu-west-2:123456789012:function:f",
            info_key: "KinesisBatchInfo",
            stream_arn: "arn:aws:kinesis:eu-west-2:123456789012:stream/s",
            shard_id: "shardId-000000000001",
            records: &records,
        };
        let record = record(&given_up, 1_573_691_886.021);
        assert_eq!(
            record,
            json!({
                "requestContext": {
                    "requestId": "c9b8fa9f",
                    "functionArn": "arn:aws:lambda:eu-west-2:123456789012:function:f",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 3
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": "2019-11-14T00:38:06.021Z",
                "KinesisBatchInfo": {
                    "shardId": "shardId-000000000001",
                    "startSequenceNumber": "100",
                    "endSequenceNumber": "105",
                    "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
                    "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
                    "batchSize": 2,
                    "streamArn": "arn:aws:kinesis:eu-west-2:123456789012:stream/s"
                }
            })
        );
    }
}
