//! How every crate here configures the AWS SDK, in one place.
//!
//! * **TLS through rustls with `ring`.** The SDK's default HTTPS client brings rustls with
//!   aws-lc, a large C library: it made the `hits` Lambda zip 4.1 MB and slows every clean build.
//!   `ring` serves the same TLS 1.2/1.3 suites AWS endpoints use.
//! * **`AWS_ENDPOINT_URL` is honoured** (standard SDK behaviour), so tests and the local stack
//!   talk to moto; S3 then switches to path-style addressing (`http://127.0.0.1:PORT/bucket/key`),
//!   since virtual-hosted names cannot resolve on an IP address.
//!
//! * **Amazon's root CAs only, by default.** Reading and parsing the platform's trust store
//!   (~150 PEM certificates in /etc/ssl/certs) took 7 ms of every cold start (`latency
//!   cold-start`: init 12.2 → 5.1 ms). Every AWS endpoint chains to one of the five Amazon Trust
//!   Services roots, embedded here (`amazon-trust-roots.pem`); `HITS_TLS_ROOTS=platform` brings
//!   the platform's store back (a TLS-intercepting proxy, an HTTPS emulator with its own CA).
//!
//! Build the config once per process (in `main`, at Lambda init), never per request.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

/// The root CAs every AWS service endpoint chains to (Amazon Root CA 1–4 and Starfield
/// Services Root CA G2, from <https://www.amazontrust.com/repository/>).
pub const AMAZON_TRUST_ROOTS: &str = include_str!("../amazon-trust-roots.pem");

/// Which certificates HTTPS to AWS trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// [`AMAZON_TRUST_ROOTS`]: nothing to read from disk at start-up.
    Amazon,
    /// The platform's trust store, read once per process.
    Platform,
}

impl TrustRoots {
    /// `HITS_TLS_ROOTS=platform` → [`TrustRoots::Platform`]; anything else (or unset) →
    /// [`TrustRoots::Amazon`].
    pub fn from_env() -> TrustRoots {
        match std::env::var("HITS_TLS_ROOTS") {
            Ok(v) if v.eq_ignore_ascii_case("platform") => TrustRoots::Platform,
            _ => TrustRoots::Amazon,
        }
    }

    fn context(self) -> tls::TlsContext {
        let store = match self {
            TrustRoots::Platform => tls::TrustStore::default(),
            TrustRoots::Amazon => {
                tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(AMAZON_TRUST_ROOTS)
            }
        };
        // Building only fails on certificates that do not parse; the embedded ones do (tested),
        // and the platform store is the SDK's own default.
        tls::TlsContext::builder().with_trust_store(store).build().unwrap_or_default()
    }
}

/// The SDK configuration: region, credentials and endpoint from the environment as usual,
/// HTTPS through rustls + ring, trusting [`TrustRoots::from_env`].
pub async fn load() -> SdkConfig {
    load_with(TrustRoots::from_env()).await
}

/// [`load`] with the given trust roots (the `latency` CLI runs on people's machines, behind
/// their proxies: it uses the platform's store).
pub async fn load_with(roots: TrustRoots) -> SdkConfig {
    load_at(roots, None).await
}

/// [`load_with`], and every client sends to `endpoint` when given (an emulator named in a file,
/// such as the local stack's): it wins over `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`
/// in the environment. (Setting it afterwards on the `SdkConfig` does not: the clients would
/// still take the environment's.)
pub async fn load_at(roots: TrustRoots, endpoint: Option<&str>) -> SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(roots.context())
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// S3 configuration: path-style addressing when an endpoint override (an emulator) is
/// configured, virtual-hosted style on AWS. Add settings, then `build()`.
#[cfg(feature = "s3")]
pub fn s3_config(config: &SdkConfig) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::from(config).force_path_style(config.endpoint_url().is_some())
}

/// An S3 client with [`s3_config`].
#[cfg(feature = "s3")]
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config(config).build())
}

/// Makes `ring` the process-wide rustls provider, for HTTP clients built without one of their
/// own (reqwest with `rustls-no-provider`). Idempotent; call it before building such a client.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Test support: resources on the emulator that `scripts/test` starts (moto, via
/// `AWS_ENDPOINT_URL`), named so that concurrent tests and runs never collide.
#[cfg(feature = "emulator")]
pub mod emulator {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_config::SdkConfig;

    /// The emulator's configuration, or `None` (skip the test) when `AWS_ENDPOINT_URL` is not
    /// set. With `HITS_TEST_REQUIRE_ALL=1` (scripts/test sets it) a missing emulator panics,
    /// so a CI run can never pass by skipping.
    pub async fn config() -> Option<SdkConfig> {
        if std::env::var_os("AWS_ENDPOINT_URL").is_none_or(|v| v.is_empty()) {
            assert!(
                std::env::var("HITS_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                "AWS_ENDPOINT_URL is not set but HITS_TEST_REQUIRE_ALL=1: run scripts/test, or start \
                 moto (scripts/moto start <pidfile>) and export AWS_ENDPOINT_URL"
            );
            eprintln!("skipped: AWS_ENDPOINT_URL is not set (no moto); scripts/test runs this against moto");
            return None;
        }
        Some(crate::load().await)
    }

    /// The RabbitMQ broker that `scripts/test` starts (`scripts/rabbitmq`, exported as
    /// `CALC_TEST_AMQP_URL`), or `None` (skip the test) when it is not set; with
    /// `HITS_TEST_REQUIRE_ALL=1` a missing broker panics, as a missing moto does. Not AWS, but the
    /// same kind of local stand-in, so it lives with the others.
    pub fn amqp_url() -> Option<String> {
        match std::env::var("CALC_TEST_AMQP_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("HITS_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
                    "CALC_TEST_AMQP_URL is not set but HITS_TEST_REQUIRE_ALL=1: run scripts/test, or start \
                     a broker (scripts/rabbitmq start <pidfile>) and export CALC_TEST_AMQP_URL"
                );
                eprintln!(
                    "skipped: CALC_TEST_AMQP_URL is not set (no RabbitMQ); scripts/rabbitmq starts one"
                );
                None
            }
        }
    }

    /// A name no other test or run uses: lowercase, valid for buckets and tables.
    pub fn unique(prefix: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
        format!("{prefix}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
            .to_lowercase()
    }

    /// A new bucket in the client's region.
    pub async fn bucket(s3: &aws_sdk_s3::Client, prefix: &str) -> String {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let bucket = unique(prefix);
        let mut create = s3.create_bucket().bucket(&bucket);
        if let Some(region) = s3.config().region().map(|r| r.as_ref().to_owned()).filter(|r| r != "us-east-1")
        {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        if let Err(e) = create.send().await {
            panic!("create bucket {bucket}: {}", aws_sdk_s3::error::DisplayErrorContext(e));
        }
        bucket
    }

    /// A new counter table as template.yaml declares `CounterTable`: partition key `id` (N),
    /// on-demand.
    pub async fn counter_table(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
        table(dynamodb, prefix, "id", aws_sdk_dynamodb::types::ScalarAttributeType::N).await
    }

    /// A new on-demand table named after `prefix`, with the partition key `key` of type `kind`.
    async fn table(
        dynamodb: &aws_sdk_dynamodb::Client,
        prefix: &str,
        key: &str,
        kind: aws_sdk_dynamodb::types::ScalarAttributeType,
    ) -> String {
        use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType};
        let table = unique(prefix);
        let attribute = AttributeDefinition::builder().attribute_name(key).attribute_type(kind);
        let schema = KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash);
        let created = dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute.build().expect("complete attribute definition"))
            .key_schema(schema.build().expect("complete key schema"))
            .send()
            .await;
        if let Err(e) = created {
            panic!("create table {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e));
        }
        table
    }

    /// A new Firehose delivery stream as template.yaml declares `EventsDeliveryStream`: DirectPut
    /// (producers call `PutRecord(Batch)`), an extended S3 destination writing into `bucket` under
    /// the key prefix `s3_prefix`. Without the transform and the compression: moto runs no Lambda, ignores
    /// `CompressionFormat`, and writes each `PutRecord(Batch)` call straight into one object
    /// (`<s3_prefix>YYYY/MM/DD/HH/<stream>-1-<time>-<uuid>`), the records' bytes concatenated.
    #[cfg(feature = "emulator-firehose")]
    pub async fn delivery_stream(
        firehose: &aws_sdk_firehose::Client,
        bucket: &str,
        s3_prefix: &str,
    ) -> String {
        use aws_sdk_firehose::types::{DeliveryStreamType, ExtendedS3DestinationConfiguration};
        let stream = unique("events");
        let destination = ExtendedS3DestinationConfiguration::builder()
            // moto checks neither the role nor the ARN's account.
            .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
            .bucket_arn(format!("arn:aws:s3:::{bucket}"))
            .prefix(s3_prefix)
            .build()
            .expect("role and bucket ARNs are set");
        let created = firehose
            .create_delivery_stream()
            .delivery_stream_name(&stream)
            .delivery_stream_type(DeliveryStreamType::DirectPut)
            .extended_s3_destination_configuration(destination)
            .send()
            .await;
        if let Err(e) = created {
            panic!("create delivery stream {stream}: {}", aws_sdk_firehose::error::DisplayErrorContext(e));
        }
        stream
    }

    /// A new standard queue with a dead-letter queue, as template.yaml declares `CalcQueue` and
    /// `CalcDeadLetterQueue`: a message received `max_receive_count` times without being deleted
    /// moves to the DLQ on its next receive (moto does the redrive, as SQS does).
    /// Returns `(queue_url, dlq_url)`.
    #[cfg(feature = "emulator-sqs")]
    pub async fn queue_with_dlq(
        sqs: &aws_sdk_sqs::Client,
        prefix: &str,
        max_receive_count: u32,
        visibility_timeout_s: u32,
    ) -> (String, String) {
        use aws_sdk_sqs::error::DisplayErrorContext;
        use aws_sdk_sqs::types::QueueAttributeName;
        let name = unique(prefix);
        let dlq = match sqs.create_queue().queue_name(format!("{name}-dlq")).send().await {
            Ok(out) => out.queue_url().unwrap_or_default().to_owned(),
            Err(e) => panic!("create queue {name}-dlq: {}", DisplayErrorContext(e)),
        };
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .ok()
            .and_then(|out| out.attributes().and_then(|a| a.get(&QueueAttributeName::QueueArn)).cloned())
            .unwrap_or_else(|| panic!("no ARN for queue {dlq}"));
        let redrive = format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receive_count}"}}"#);
        let created = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout_s.to_string())
            .send()
            .await;
        match created {
            Ok(out) => (out.queue_url().unwrap_or_default().to_owned(), dlq),
            Err(e) => panic!("create queue {name}: {}", DisplayErrorContext(e)),
        }
    }

    /// The calc tables as template.yaml declares them: `CalcTable` (partition key `id` (N); the
    /// item `id = 0` holds `done`) and `CalcMessagesTable` (partition key `message_id` (S), one
    /// TTL'd item per counted message). Returns `(done_table, messages_table)`.
    #[cfg(feature = "emulator-sqs")]
    pub async fn calc_tables(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> (String, String) {
        use aws_sdk_dynamodb::types::ScalarAttributeType;
        let done = table(dynamodb, &format!("{prefix}-done"), "id", ScalarAttributeType::N).await;
        let messages =
            table(dynamodb, &format!("{prefix}-messages"), "message_id", ScalarAttributeType::S).await;
        (done, messages)
    }

    /// A new provisioned Kinesis data stream of `shards` shards. moto makes it `ACTIVE` at once
    /// (AWS takes seconds); this checks that rather than waiting, so a slower emulator fails here
    /// with a clear message instead of in the test.
    #[cfg(feature = "emulator-kinesis")]
    pub async fn kinesis_stream(kinesis: &aws_sdk_kinesis::Client, prefix: &str, shards: i32) -> String {
        use aws_sdk_kinesis::error::DisplayErrorContext;
        use aws_sdk_kinesis::types::StreamStatus;
        let stream = unique(prefix);
        if let Err(e) = kinesis.create_stream().stream_name(&stream).shard_count(shards).send().await {
            panic!("create kinesis stream {stream}: {}", DisplayErrorContext(e));
        }
        let described = kinesis.describe_stream_summary().stream_name(&stream).send().await;
        let status = match described {
            Ok(out) => out.stream_description_summary().map(|s| s.stream_status().clone()),
            Err(e) => panic!("describe kinesis stream {stream}: {}", DisplayErrorContext(e)),
        };
        assert_eq!(
            status,
            Some(StreamStatus::Active),
            "kinesis stream {stream} is not ACTIVE right after creation"
        );
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_amazon_roots_are_five_parsable_certificates() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_TRUST_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (valid, invalid) = store.add_parsable_certificates(certs);
        assert_eq!((valid, invalid), (5, 0));
        assert!(
            tls::TlsContext::builder()
                .with_trust_store(tls::TrustStore::empty().with_pem_certificate(AMAZON_TRUST_ROOTS))
                .build()
                .is_ok()
        );
    }
}
