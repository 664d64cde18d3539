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
//! * **Timeouts on every call of the hosts** ([`Timeouts`], through [`Aws`]): connect, attempt
//!   and operation timeouts and the attempts per call, so that a stalled service ends a call
//!   within [`Timeouts::operation`] instead of holding it for minutes; [`timed_out`] tells such
//!   a failure from the others.
//! * **A region, or a clear error at startup** ([`Aws::config`] refuses a configuration without
//!   one, [`Error::NoRegion`]), rather than a process that starts and then fails every call.
//!
//! Build the config once per process (in `main`, at Lambda init), never per request.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls;

mod timeouts;

pub use timeouts::{Timeouts, is_timeout, long_poll, timed_out};

/// Why the SDK configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No region anywhere the SDK looks: every call would fail.
    #[error(
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or `region` in the AWS profile); \
         off EC2 nothing else can tell it (on EC2 the instance metadata service does, unless \
         AWS_EC2_METADATA_DISABLED is set)"
    )]
    NoRegion,
    /// Timeouts that cannot all fire.
    #[error("bad AWS timeouts: {0}")]
    Timeouts(String),
}

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
///
/// The SDK's own timeouts (a 3.1 s connect timeout, no limit on a call): the `latency` CLI's
/// calls (a Lambda invocation of several minutes) must not be cut short. Hosts use [`Aws`],
/// which sets [`Timeouts`].
pub async fn load_at(roots: TrustRoots, endpoint: Option<&str>) -> SdkConfig {
    load_configured(roots, endpoint, None, None).await
}

async fn load_configured(
    roots: TrustRoots,
    endpoint: Option<&str>,
    region: Option<&str>,
    timeouts: Option<&Timeouts>,
) -> SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(roots.context())
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(timeouts) = timeouts {
        loader = loader.timeout_config(timeouts.timeout_config()).retry_config(timeouts.retry_config());
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
/// Every client built from it has the host's [`Timeouts`].
#[derive(Debug)]
pub struct Aws {
    roots: TrustRoots,
    endpoint: Option<String>,
    region: Option<String>,
    timeouts: Timeouts,
    config: tokio::sync::OnceCell<SdkConfig>,
}

impl Aws {
    /// Loads with these trust roots and the default [`Timeouts`] when first asked (region,
    /// credentials and endpoint from the environment, as [`load_with`]).
    pub fn new(roots: TrustRoots) -> Aws {
        Aws {
            roots,
            endpoint: None,
            region: None,
            timeouts: Timeouts::DEFAULT,
            config: tokio::sync::OnceCell::new(),
        }
    }

    /// Every client sends to `endpoint` (see [`load_at`]).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Aws {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Every client calls this region, whatever the environment says (a region named in a file,
    /// such as the local stack's).
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Aws {
        self.region = Some(region.into());
        self
    }

    /// Every call of every client within these timeouts (the host's settings; see [`Timeouts`]).
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Aws {
        self.timeouts = timeouts;
        self
    }

    /// A configuration already loaded, used as it is (its own timeouts, if any).
    pub fn loaded(config: SdkConfig) -> Aws {
        let timeouts = Timeouts::DEFAULT;
        Aws {
            roots: TrustRoots::Amazon,
            endpoint: None,
            region: None,
            timeouts,
            config: tokio::sync::OnceCell::from(config),
        }
    }

    /// The configuration, loaded now if this is the first call. [`Error::NoRegion`] when no
    /// region was found (environment, profile, and on EC2 the instance metadata service): the
    /// hosts open their AWS adapters at startup, so such a process stops there with the reason
    /// instead of failing every call. On Lambda and ECS `AWS_REGION` is always set.
    pub async fn config(&self) -> Result<&SdkConfig, Error> {
        let config = self
            .config
            .get_or_init(|| {
                load_configured(
                    self.roots,
                    self.endpoint.as_deref(),
                    self.region.as_deref(),
                    Some(&self.timeouts),
                )
            })
            .await;
        match config.region() {
            Some(_) => Ok(config),
            None => Err(Error::NoRegion),
        }
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

    #[tokio::test]
    async fn a_configuration_without_a_region_is_refused_with_what_to_set() {
        let aws = Aws::loaded(SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build());
        let e = aws.config().await.unwrap_err();
        assert_eq!(e, Error::NoRegion);
        assert!(e.to_string().contains("set AWS_REGION"), "{e}");
        let region = aws_config::Region::from_static("eu-west-2");
        let aws = Aws::loaded(SdkConfig::builder().region(region).build());
        assert!(aws.config().await.is_ok());
    }

    #[tokio::test]
    async fn a_region_named_by_the_host_wins_over_the_environments() {
        // Whatever AWS_REGION says (the test environment sets one, or none).
        let aws = Aws::new(TrustRoots::Amazon).with_region("ap-southeast-2");
        let config = aws.config().await.expect("a region");
        assert_eq!(config.region().map(AsRef::as_ref), Some("ap-southeast-2"));
    }

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
