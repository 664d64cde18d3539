//! [`Prober`]: the one keep-alive HTTP client and the phases of a run.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use reqwest::redirect::{Action, Attempt, Policy};
use reqwest::{StatusCode, Url};
use tracing::Instrument;

use crate::report::{Connection, First, Report, Setup};
use crate::stats::{histogram, round2, round3, summarize};
use crate::{ProbeError, Spec};

/// Same-host redirects followed per request before giving up (`too_many_redirects`).
const MAX_REDIRECTS: usize = 10;
const USER_AGENT: &str = concat!("latency-probe/", env!("CARGO_PKG_VERSION"));

/// Holds the one HTTP client of the process: build it once (in the Lambda, in `main`, outside
/// the handler) and run every probe through it, so pooled keep-alive connections carry over
/// from run to run like the original's `requests.Session`. Cloning is cheap and shares the
/// client and its pool.
///
/// The client: HTTP/1.1 keep-alive with an unbounded pool (idle connections close after 90 s);
/// TLS by rustls with the ring provider; proxies from the environment ignored (a probe measures
/// the path to the target, not to a proxy); no automatic retries (each request is measured
/// once); `User-Agent: latency-probe/<version>`; redirects followed only to the same host, at
/// most 10 — a redirect to another host is not followed and counts as `redirect_off_host`.
#[derive(Clone, Debug)]
pub struct Prober {
    client: reqwest::Client,
    /// TCP connections the client has opened since it was built.
    connections: Arc<AtomicU64>,
}

/// One request's outcome.
struct Answer {
    ms: f64,
    status: Option<u16>,
    /// The error kind; `None` for a 2xx answer.
    error: Option<String>,
}

impl Prober {
    pub fn new() -> Result<Prober, ProbeError> {
        // reqwest is built without a crypto provider (rustls-no-provider): use ring, process-wide.
        // An `Err` means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connections = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(Policy::custom(same_host_only))
            .no_proxy()
            .retry(reqwest::retry::never())
            .connector_layer(CountConnections(connections.clone()))
            .build()
            .map_err(ProbeError::Client)?;
        Ok(Prober { client, connections })
    }

    /// Runs `spec`: setup, first request, warmup, then the measured requests.
    pub async fn run(&self, spec: &Spec) -> Report {
        self.run_with_progress(spec, || {}).await
    }

    /// [`Prober::run`], calling `on_request` after each measured request (ok or not), e.g. to
    /// advance a progress bar.
    pub async fn run_with_progress(&self, spec: &Spec, on_request: impl Fn() + Send + Sync) -> Report {
        let span = tracing::info_span!(
            "probe",
            url = %spec.url(),
            method = %spec.method(),
            count = spec.count(),
            concurrency = spec.concurrency(),
        );
        self.run_phases(spec, &on_request).instrument(span).await
    }

    async fn run_phases(&self, spec: &Spec, on_request: &(dyn Fn() + Send + Sync)) -> Report {
        let setup = setup(spec.url(), spec.timeout()).instrument(tracing::debug_span!("setup")).await;
        if let Some(error) = &setup.error {
            tracing::warn!(%error, "connection setup failed");
        }

        let opened_before = self.connections.load(Ordering::Relaxed);
        let answer = self.request(spec).instrument(tracing::debug_span!("first")).await;
        let connection = if self.connections.load(Ordering::Relaxed) > opened_before {
            Connection::New
        } else {
            Connection::Reused
        };
        let first = First { ms: round2(answer.ms), status: answer.status, connection, error: answer.error };
        if let Some(error) = &first.error {
            tracing::warn!(%error, "first request failed");
        }

        let warm_workers = spec.warmup().min(u64::from(spec.concurrency()));
        let warm = self
            .phase(spec, spec.warmup(), warm_workers, &|| {})
            .instrument(tracing::debug_span!("warmup"))
            .await;
        let warm_errors = warm.iter().filter(|a| a.error.is_some()).count();
        if warm_errors > 0 {
            tracing::debug!(warm_errors, "warmup requests failed (not counted)");
        }

        let started = Instant::now();
        let measured = self
            .phase(spec, spec.count(), u64::from(spec.concurrency()), on_request)
            .instrument(tracing::debug_span!("measured"))
            .await;
        let elapsed = started.elapsed().as_secs_f64();

        let mut errors = BTreeMap::new();
        let mut ok_ms = Vec::with_capacity(measured.len());
        for answer in &measured {
            match &answer.error {
                None => ok_ms.push(answer.ms),
                Some(kind) => *errors.entry(kind.clone()).or_insert(0) += 1,
            }
        }
        let completed = measured.len() as u64;
        let report = Report {
            url: spec.url().to_string(),
            method: spec.method(),
            count: spec.count(),
            concurrency: spec.concurrency(),
            warmup: spec.warmup(),
            completed,
            ok: ok_ms.len() as u64,
            errors,
            connections: self.connections.load(Ordering::Relaxed) - opened_before,
            setup,
            first,
            stats: summarize(&ok_ms),
            histogram: histogram(&ok_ms),
            elapsed_s: round3(elapsed),
            requests_per_s: if elapsed > 0.0 { round2(completed as f64 / elapsed) } else { 0.0 },
            samples_ms: spec.samples().then(|| ok_ms.iter().copied().map(round3).collect()),
        };
        tracing::info!(
            ok = report.ok,
            errors = report.error_count(),
            p50_ms = report.stats.map(|s| s.p50),
            p99_ms = report.stats.map(|s| s.p99),
            connections = report.connections,
            "probe finished"
        );
        if report.completed < report.count {
            tracing::warn!(completed = report.completed, "stopped at the deadline");
        }
        report
    }

    /// `requests` requests over `workers` workers, each taking the next request number from a
    /// shared counter until none are left (or the spec's stop time has come). The answers come
    /// back in request-number order, that is in the order they were started.
    async fn phase(
        &self,
        spec: &Spec,
        requests: u64,
        workers: u64,
        on_request: &(dyn Fn() + Send + Sync),
    ) -> Vec<Answer> {
        let next = &AtomicU64::new(0);
        let worker = || async move {
            let mut answers = Vec::new();
            loop {
                if spec.stop_at().is_some_and(|stop| Instant::now() >= stop) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                answers.push((i, self.request(spec).await));
                on_request();
            }
            answers
        };
        let mut all: Vec<(u64, Answer)> = futures_util::future::join_all((0..workers).map(|_| worker()))
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort_unstable_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, answer)| answer).collect()
    }

    /// One request, timed from sending to the last body byte.
    async fn request(&self, spec: &Spec) -> Answer {
        let started = Instant::now();
        let result = self.exchange(spec).await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(status) if status.is_success() => Answer { ms, status: Some(status.as_u16()), error: None },
            Ok(status) => Answer {
                ms,
                status: Some(status.as_u16()),
                error: Some(format!("status_{}", status.as_u16())),
            },
            Err(e) => {
                let kind = classify(&e);
                tracing::trace!(error = %e, kind, "request failed");
                Answer { ms, status: None, error: Some(kind.to_owned()) }
            }
        }
    }

    async fn exchange(&self, spec: &Spec) -> Result<StatusCode, reqwest::Error> {
        let mut response = self
            .client
            .request(spec.method().to_reqwest(), spec.url().clone())
            .timeout(spec.timeout())
            .send()
            .await?;
        let status = response.status();
        // Read the whole body (and throw it away): the time is to the last byte.
        while response.chunk().await?.is_some() {}
        Ok(status)
    }
}

/// The error kind of a failed request, as counted in [`Report::errors`].
fn classify(e: &reqwest::Error) -> &'static str {
    if e.is_redirect() {
        let mut source = e.source();
        while let Some(err) = source {
            if err.is::<OffHostRedirect>() {
                return "redirect_off_host";
            }
            if err.is::<TooManyRedirects>() {
                return "too_many_redirects";
            }
            source = err.source();
        }
        "redirect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

/// A redirect to another host than the request's: not followed.
#[derive(Debug, thiserror::Error)]
#[error("redirect from {from} to another host ({to}) not followed")]
struct OffHostRedirect {
    from: String,
    to: String,
}

#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

/// The redirect policy: follow only to the host of the request's original URL, and at most
/// [`MAX_REDIRECTS`] times.
fn same_host_only(attempt: Attempt) -> Action {
    let origin = attempt.previous().first().and_then(Url::host_str).unwrap_or_default().to_owned();
    let next = attempt.url().host_str().unwrap_or_default().to_owned();
    if origin != next {
        attempt.error(OffHostRedirect { from: origin, to: next })
    } else if attempt.previous().len() > MAX_REDIRECTS {
        attempt.error(TooManyRedirects)
    } else {
        attempt.follow()
    }
}

/// DNS lookup, then a TCP connect to the first address that accepts; each timed, each bounded
/// by `timeout`. The connection is closed at once.
async fn setup(url: &Url, timeout: Duration) -> Setup {
    // `host_str` brackets IPv6 literals; the resolver wants them bare.
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let started = Instant::now();
    let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
    let dns_ms = Some(round2(started.elapsed().as_secs_f64() * 1000.0));
    let addresses: Vec<SocketAddr> = match lookup {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(e)) => {
            return Setup { error: Some(format!("DNS lookup of {host} failed: {e}")), ..Setup::default() };
        }
        Err(_) => {
            return Setup {
                error: Some(format!("DNS lookup of {host} timed out after {timeout:?}")),
                ..Setup::default()
            };
        }
    };
    let mut failures = Vec::new();
    for address in &addresses {
        let started = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let connect_ms = round2(started.elapsed().as_secs_f64() * 1000.0);
                drop(stream);
                return Setup {
                    dns_ms,
                    connect_ms: Some(connect_ms),
                    address: Some(address.to_string()),
                    error: None,
                };
            }
            Ok(Err(e)) => failures.push(format!("{address}: {e}")),
            Err(_) => failures.push(format!("{address}: timed out after {timeout:?}")),
        }
    }
    let error = if failures.is_empty() {
        format!("DNS lookup of {host} returned no addresses")
    } else {
        format!("TCP connect failed: {}", failures.join("; "))
    };
    Setup { dns_ms, error: Some(error), ..Setup::default() }
}

/// A connector layer counting the connections the client opens: a connect is only started when
/// the pool has no idle connection for the request.
#[derive(Clone)]
struct CountConnections(Arc<AtomicU64>);

impl<S> tower::Layer<S> for CountConnections {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner, opened: self.0.clone() }
    }
}

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    opened: Arc<AtomicU64>,
}

impl<S: tower::Service<R>, R> tower::Service<R> for Counted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.inner.call(request)
    }
}
