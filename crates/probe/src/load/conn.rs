//! The load generator's HTTP/1.1 client: one connection per virtual user, driven through
//! hyper's connection API directly — no pool to search, no per-request bookkeeping beyond the
//! measurement — TLS by rustls (verified like the probe's client, by the platform verifier),
//! and the bytes on the wire counted below TLS.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header::HeaderValue;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use rustls_platform_verifier::ConfigVerifierExt as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::ProbeError;

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TCP connect failed (refused, unreachable).
    Connect,
    /// The TLS handshake failed.
    Tls,
    /// No answer within the timeout.
    Timeout,
    /// The connection closed before the whole answer came.
    Closed,
    /// The answer was not HTTP/1.1.
    BadResponse,
    /// Anything else.
    Request,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Tls => "tls",
            Failure::Timeout => "timeout",
            Failure::Closed => "closed",
            Failure::BadResponse => "bad_response",
            Failure::Request => "request",
        }
    }
}

/// Bytes and connections on the wire, for the whole run.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) opened: AtomicU64,
}

/// Where every request goes: the URL resolved once (as k6 caches DNS), and TLS set up once.
pub(crate) struct Target {
    addresses: Vec<SocketAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    pub(crate) authority: HeaderValue,
    pub(crate) uri: Uri,
    pub(crate) wire: Arc<Wire>,
}

impl Target {
    /// Resolves `url`'s host and checks that it accepts a connection (and, for https, a TLS
    /// handshake), so a wrong URL or a target that is down is one clear error before the run.
    pub(crate) async fn reach(url: &Url, timeout: Duration) -> Result<Target, ProbeError> {
        let unreachable = |reason: String| ProbeError::Unreachable { url: url.to_string(), reason };
        let host =
            url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addresses: Vec<SocketAddr> =
            tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port)))
                .await
                .map_err(|_| unreachable(format!("DNS lookup of {host} timed out after {timeout:?}")))?
                .map_err(|e| unreachable(format!("DNS lookup of {host} failed: {e}")))?
                .collect();
        if addresses.is_empty() {
            return Err(unreachable(format!("DNS lookup of {host} returned no addresses")));
        }
        let tls = if url.scheme() == "https" {
            // One process-wide provider (ring); an `Err` means it is installed already.
            let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
            let mut config = tokio_rustls::rustls::ClientConfig::with_platform_verifier()
                .map_err(|e| unreachable(format!("cannot set up TLS: {e}")))?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.clone())
                .map_err(|e| unreachable(format!("{host:?} is not a TLS server name: {e}")))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let target = Target {
            addresses,
            tls,
            authority: HeaderValue::from_str(&authority)
                .map_err(|_| unreachable(format!("{authority:?} is not a Host header")))?,
            uri: path.parse().map_err(|_| unreachable(format!("{path:?} is not a request path")))?,
            wire: Arc::new(Wire::default()),
        };
        let first = tokio::time::timeout(timeout, target.open()).await;
        match first {
            Ok(Ok(_)) => {
                // The check's connection is closed again and not counted as the run's.
                for counter in [&target.wire.sent, &target.wire.received, &target.wire.opened] {
                    counter.store(0, Ordering::Relaxed);
                }
                Ok(target)
            }
            Ok(Err((failure, detail))) => Err(unreachable(format!("{}: {detail}", failure.as_str()))),
            Err(_) => Err(unreachable(format!("no connection within {timeout:?}"))),
        }
    }

    /// A new connection: TCP to the first address that accepts, TLS if https, then HTTP/1.1.
    pub(crate) async fn connect(&self) -> Result<Conn, Failure> {
        self.open().await.map_err(|(failure, _)| failure)
    }

    async fn open(&self) -> Result<Conn, (Failure, String)> {
        let mut last = String::new();
        let mut tcp = None;
        for address in &self.addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = format!("{address}: {e}"),
            }
        }
        let tcp = tcp.ok_or((Failure::Connect, last))?;
        let _ = tcp.set_nodelay(true);
        self.wire.opened.fetch_add(1, Ordering::Relaxed);
        let counted = Counted { inner: tcp, wire: self.wire.clone() };
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), counted)
                    .await
                    .map_err(|e| (Failure::Tls, e.to_string()))?;
                handshake(stream).await
            }
            None => handshake(counted).await,
        }
    }
}

async fn handshake<S>(stream: S) -> Result<Conn, (Failure, String)>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) =
        http1::handshake(TokioIo::new(stream)).await.map_err(|e| (Failure::Request, e.to_string()))?;
    // The connection's I/O runs beside the requests; it ends when the sender is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::trace!(%error, "load connection ended");
        }
    });
    Ok(Conn { sender })
}

/// One HTTP/1.1 connection; a request at a time.
pub(crate) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Sends `request` and reads the whole answer; its status.
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<u16, Failure> {
        self.sender.ready().await.map_err(|_| Failure::Closed)?;
        let response = self.sender.send_request(request).await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| classify(&e))?;
        }
        Ok(status)
    }

    /// Whether the connection can take another request (not closed by either side).
    pub(crate) fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

fn classify(e: &hyper::Error) -> Failure {
    if e.is_parse() || e.is_parse_status() {
        Failure::BadResponse
    } else if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        Failure::Closed
    } else if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Request
    }
}

/// A stream that counts the bytes through it into the run's [`Wire`].
struct Counted {
    inner: TcpStream,
    wire: Arc<Wire>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.wire.received.fetch_add(read as u64, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            self.wire.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &poll {
            self.wire.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
