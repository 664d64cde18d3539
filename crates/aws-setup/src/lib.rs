//! How every crate here configures the AWS SDK, in one place.
//!
//! * **TLS through rustls with `ring`.** The SDK's default HTTPS client brings rustls with
//!   aws-lc, a large C library: it makes the `hits` Lambda zip much larger and slows every clean
//!   build (`scripts/bench-build`; figures in docs/results.md).
//!   `ring` serves the same TLS 1.2/1.3 suites AWS endpoints use.
//! * **`AWS_ENDPOINT_URL` is honoured** (standard SDK behaviour), so tests and the local stack
//!   talk to moto; S3 then switches to path-style addressing (`http://127.0.0.1:PORT/bucket/key`),
//!   since virtual-hosted names cannot resolve on an IP address.
//!
//! * **Amazon's root CAs only, by default.** Reading and parsing the platform's trust store
//!   (~150 PEM certificates in /etc/ssl/certs) costs every cold start milliseconds (`latency
//!   cold-start` with and without `--env TLS_ROOTS=platform`; figures in docs/results.md). Every
//!   AWS endpoint chains to one of the five Amazon Trust Services roots, embedded here
//!   (`amazon-trust-roots.pem`); `TLS_ROOTS=platform` brings the platform's store back (a
//!   TLS-intercepting proxy, an HTTPS emulator with its own CA).
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
    /// `TLS_ROOTS=platform` → [`TrustRoots::Platform`]; anything else (or unset) →
    /// [`TrustRoots::Amazon`]. The old name `HITS_TLS_ROOTS` still works, with a warning on
    /// stderr, until the next release. For the hosts' `main`s, not for libraries.
    pub fn from_env() -> TrustRoots {
        let value = std::env::var("TLS_ROOTS").ok().or_else(|| {
            let old = std::env::var("HITS_TLS_ROOTS").ok()?;
            eprintln!("warning: HITS_TLS_ROOTS is renamed TLS_ROOTS; the old name goes in the next release");
            Some(old)
        });
        match value {
            Some(v) if v.eq_ignore_ascii_case("platform") => TrustRoots::Platform,
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

/// The SDK configuration of one process, loaded on first use and then shared: a host makes one
/// in `main` and hands it to every adapter it opens (`counter::open`, `ingest::open_sinks`, the
/// queue's ledger), so a store that needs no AWS loads nothing, and several that do load once.
#[derive(Debug)]
pub struct Aws {
    roots: TrustRoots,
    endpoint: Option<String>,
    config: tokio::sync::OnceCell<SdkConfig>,
}

impl Aws {
    /// Loads with these trust roots when first asked (region, credentials and endpoint from the
    /// environment, as [`load_with`]).
    pub fn new(roots: TrustRoots) -> Aws {
        Aws { roots, endpoint: None, config: tokio::sync::OnceCell::new() }
    }

    /// Every client sends to `endpoint` (see [`load_at`]).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Aws {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// A configuration already loaded.
    pub fn loaded(config: SdkConfig) -> Aws {
        Aws { roots: TrustRoots::Amazon, endpoint: None, config: tokio::sync::OnceCell::from(config) }
    }

    /// The configuration, loaded now if this is the first call.
    pub async fn config(&self) -> &SdkConfig {
        self.config.get_or_init(|| load_at(self.roots, self.endpoint.as_deref())).await
    }
}

/// Makes `ring` the process-wide rustls provider, for HTTP clients built without one of their
/// own (reqwest with `rustls-no-provider`). Idempotent; call it before building such a client.
pub fn install_tls_provider() {
    // Err means a provider is already installed, which is all this asks for.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
