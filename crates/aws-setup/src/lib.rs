//! How every crate here configures the AWS SDK, in one place.
//!
//! * **TLS through rustls with `ring`.** The SDK's default HTTPS client brings rustls with
//!   aws-lc, a large C library: it made the `hits` Lambda zip 4.1 MB and slows every clean build.
//!   `ring` serves the same TLS 1.2/1.3 suites AWS endpoints use.
//! * **`AWS_ENDPOINT_URL` is honoured** (standard SDK behaviour), so tests and the local stack
//!   talk to moto; S3 then switches to path-style addressing (`http://127.0.0.1:PORT/bucket/key`),
//!   since virtual-hosted names cannot resolve on an IP address.
//!
//! Build the config once per process (in `main`, at Lambda init), never per request.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

/// The SDK configuration: region, credentials and endpoint from the environment as usual,
/// HTTPS through rustls + ring.
pub async fn load() -> SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(https).load().await
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
