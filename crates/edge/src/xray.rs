//! X-Ray subsegments from `tracing` spans, sent to the X-Ray daemon over UDP.
//!
//! Rust's `tracing` spans do not reach X-Ray by themselves, and the X-Ray SDKs that would send
//! them do not exist for Rust. On Lambda with tracing on (`Tracing: Active`, or an upstream that
//! sampled the request), Lambda records the function's segment itself and runs an X-Ray daemon
//! at `AWS_XRAY_DAEMON_ADDRESS`; what a function adds are **subsegments** under it, one UDP
//! datagram each: `{"format": "json", "version": 1}\n` and the subsegment document.
//!
//! # Which spans
//!
//! A span becomes a subsegment when it has a field **`xray`**: its value is the subsegment's
//! name (`DynamoDB`, `S3`, …, as X-Ray's service map shows it). Other fields it may carry:
//!
//! * `xray.namespace`: `aws` for an AWS service call, `remote` for another downstream call;
//!   absent for local work.
//! * `aws.<key>`: goes to the subsegment's `aws` object (`aws.operation = "UpdateItem"`,
//!   `aws.table_name = …`).
//! * `error`: once recorded (with any value but `false`), the subsegment is a `fault` and the
//!   value is the message of its `cause`.
//!
//! Fields can be declared `tracing::field::Empty` and recorded later. The span's creation and
//! close are the subsegment's `start_time` and `end_time`.
//!
//! ```
//! # use tracing::field::{Empty, display};
//! let span = tracing::info_span!("store", xray = "DynamoDB", xray.namespace = "aws",
//!     aws.operation = "UpdateItem", error = Empty);
//! // … the call, `.instrument(span.clone())`; on failure: span.record("error", display(&e));
//! ```
//!
//! # Which invocation
//!
//! The trace id and the parent come from the invocation's trace header
//! (`Root=1-…;Parent=…;Sampled=1`), read from the field **`xrayTraceId`** of an enclosing span:
//! lambda_runtime's per-invocation span (`Lambda runtime invoke`) carries it. Nothing is sent
//! when that header is missing or says `Sampled=0`, or when no daemon address is set (then
//! [`layer_from_env`] is `None` and the layer is not even installed: `hits-server` and tests
//! pay nothing). Reading it from the span rather than from the `_X_AMZN_TRACE_ID` variable
//! (which lambda_runtime 1.5 sets per invocation, but only when it runs them one at a time)
//! keeps concurrent invocations apart.
//!
//! Sending never blocks or fails the request: the socket is non-blocking, a failed send is
//! dropped (and logged once, at debug).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

/// Where Lambda tells the function its X-Ray daemon listens (`host:port`).
pub const DAEMON_ADDRESS_VAR: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// The field that marks a span for X-Ray; its value is the subsegment's name.
pub const NAME_FIELD: &str = "xray";
/// The field of the per-invocation span that holds the trace header (lambda_runtime's name).
pub const TRACE_HEADER_FIELD: &str = "xrayTraceId";
const NAMESPACE_FIELD: &str = "xray.namespace";
const ERROR_FIELD: &str = "error";
const AWS_PREFIX: &str = "aws.";
/// The line before every document, as the daemon's protocol has it.
const DATAGRAM_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";
/// Error messages are cut here: a datagram stays far below what the daemon accepts (64 KB).
const MAX_MESSAGE: usize = 1024;

/// An invocation's trace header: `Root=1-…;Parent=…;Sampled=1` (other keys, such as
/// `Lineage`, are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    pub parent: Option<String>,
    pub sampled: bool,
}

impl TraceHeader {
    /// `None` without a `Root`. `sampled` only for `Sampled=1`.
    pub fn parse(header: &str) -> Option<TraceHeader> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) if !v.is_empty() => root = Some(v.to_owned()),
                Some(("Parent", v)) if !v.is_empty() => parent = Some(v.to_owned()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        Some(TraceHeader { root: root?, parent, sampled })
    }

    /// The (trace id, parent id) to send subsegments under: only for a sampled header with a
    /// parent.
    fn target(&self) -> Option<(&str, &str)> {
        match (&self.parent, self.sampled) {
            (Some(parent), true) => Some((&self.root, parent)),
            _ => None,
        }
    }
}

/// The daemon address as Lambda sets it (`169.254.79.129:2000`), or as the X-Ray SDKs accept
/// it (`tcp:127.0.0.1:2000 udp:127.0.0.2:2001`: the `udp:` one).
pub fn parse_daemon_address(value: &str) -> Option<SocketAddr> {
    let mut parts = value.split_whitespace();
    let udp = match value.split_whitespace().find_map(|p| p.strip_prefix("udp:")) {
        Some(udp) => udp,
        None => parts.find(|p| !p.starts_with("tcp:"))?,
    };
    udp.to_socket_addrs().ok()?.next()
}

/// The layer that sends subsegments, already behind its filter ([`XraySpans`]); `None` when
/// `AWS_XRAY_DAEMON_ADDRESS` is unset or unusable.
pub fn layer_from_env<S>() -> Option<impl Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let address = std::env::var(DAEMON_ADDRESS_VAR).ok()?;
    layer_to(&address).ok()
}

/// The layer that sends subsegments to the daemon at `address` (see
/// [`parse_daemon_address`]), behind its filter.
pub fn layer_to<S>(address: &str) -> io::Result<impl Layer<S> + Send + Sync + 'static + use<S>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    Ok(XrayLayer::to(address)?.with_filter(XraySpans))
}

/// Sends a subsegment per closed X-Ray span; see the module's documentation.
#[derive(Debug)]
pub struct XrayLayer {
    socket: UdpSocket,
    daemon: SocketAddr,
    send_failed: AtomicBool,
}

impl XrayLayer {
    /// A layer for the daemon at `address`: a non-blocking UDP socket on an ephemeral port.
    pub fn to(address: &str) -> io::Result<XrayLayer> {
        let daemon = parse_daemon_address(address).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("not an X-Ray daemon address: {address:?}"))
        })?;
        let local: SocketAddr =
            if daemon.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(XrayLayer { socket, daemon, send_failed: AtomicBool::new(false) })
    }

    fn send(&self, document: &Value) {
        let datagram = format!("{DATAGRAM_HEADER}{document}");
        if let Err(e) = self.socket.send_to(datagram.as_bytes(), self.daemon)
            && !self.send_failed.swap(true, Ordering::Relaxed)
        {
            tracing::debug!(daemon = %self.daemon, error = %e, "cannot send to the X-Ray daemon; dropping subsegments");
        }
    }
}

/// The per-layer filter of [`XrayLayer`]: spans with an `xray` or an `xrayTraceId` field, and
/// nothing else (decided once per call site, so every other span and event costs nothing more).
#[derive(Debug, Clone, Copy)]
pub struct XraySpans;

impl XraySpans {
    fn wants(meta: &Metadata<'_>) -> bool {
        meta.is_span()
            && (meta.fields().field(NAME_FIELD).is_some()
                || meta.fields().field(TRACE_HEADER_FIELD).is_some())
    }
}

impl<S> Filter<S> for XraySpans {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        XraySpans::wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if XraySpans::wants(meta) { Interest::always() } else { Interest::never() }
    }
}

/// Stored on a span with an `xrayTraceId` field: the header (`None` if it was not one).
struct Invocation(Option<TraceHeader>);

/// Stored on an X-Ray span until it closes.
struct Pending {
    start: f64,
    fields: Fields,
}

/// The fields this layer reads, as recorded so far.
#[derive(Default)]
struct Fields {
    trace_header: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    aws: Map<String, Value>,
    error: Option<String>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: Value) {
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match field.name() {
            TRACE_HEADER_FIELD => self.trace_header = Some(text()),
            NAME_FIELD => self.name = Some(text()),
            NAMESPACE_FIELD => self.namespace = Some(text()),
            ERROR_FIELD => self.error = (value != Value::Bool(false)).then(text),
            name => {
                if let Some(key) = name.strip_prefix(AWS_PREFIX) {
                    self.aws.insert(key.to_owned(), value);
                }
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}").into());
    }
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut extensions = span.extensions_mut();
        if attrs.metadata().fields().field(TRACE_HEADER_FIELD).is_some() {
            extensions.insert(Invocation(fields.trace_header.as_deref().and_then(TraceHeader::parse)));
        }
        if attrs.metadata().fields().field(NAME_FIELD).is_some() {
            extensions.insert(Pending { start: now(), fields });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(pending) = extensions.get_mut::<Pending>() {
            values.record(&mut pending.fields);
        }
        if let Some(invocation) = extensions.get_mut::<Invocation>() {
            let mut fields = Fields::default();
            values.record(&mut fields);
            if let Some(header) = fields.trace_header {
                invocation.0 = TraceHeader::parse(&header);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let end = now();
        let Some(span) = ctx.span(&id) else { return };
        let Some(pending) = span.extensions_mut().remove::<Pending>() else { return };
        // The nearest enclosing invocation decides: an unsampled one sends nothing.
        let header = span.scope().find_map(|s| s.extensions().get::<Invocation>().map(|i| i.0.clone()));
        let Some(header) = header.flatten() else { return };
        let Some((trace_id, parent_id)) = header.target() else { return };
        let Some(name) = &pending.fields.name else { return };
        let document = subsegment(name, trace_id, parent_id, &pending, end);
        drop(span);
        self.send(&document);
    }
}

/// The subsegment document of a closed span.
fn subsegment(name: &str, trace_id: &str, parent_id: &str, pending: &Pending, end: f64) -> Value {
    let fields = &pending.fields;
    let mut document = json!({
        "name": name,
        "id": new_id(),
        "trace_id": trace_id,
        "parent_id": parent_id,
        "start_time": pending.start,
        "end_time": end.max(pending.start),
        "type": "subsegment",
    });
    if let Some(namespace) = &fields.namespace {
        document["namespace"] = namespace.as_str().into();
    }
    if !fields.aws.is_empty() {
        document["aws"] = Value::Object(fields.aws.clone());
    }
    if let Some(message) = &fields.error {
        let message: String = message.chars().take(MAX_MESSAGE).collect();
        document["fault"] = true.into();
        document["cause"] = json!({ "exceptions": [{ "id": new_id(), "message": message }] });
    }
    document
}

/// Seconds since the epoch, as X-Ray wants them (microseconds kept).
fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// A new 64-bit id as 16 hex digits: a per-process random key (std's `RandomState`) hashing a
/// counter and the clock, so ids are unpredictable across processes and distinct within one.
fn new_id() -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = KEY.get_or_init(RandomState::new).build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use tracing::field::{Empty, display};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::tests::one_at_a_time;

    const SAMPLED: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    /// A UDP socket on 127.0.0.1 playing the daemon.
    fn daemon() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        socket
    }

    /// Every datagram the daemon got, as (header line, document).
    fn received(daemon: &UdpSocket) -> Vec<(String, Value)> {
        let mut got = Vec::new();
        let mut buffer = [0u8; 65536];
        while let Ok(n) = daemon.recv(&mut buffer) {
            let text = std::str::from_utf8(&buffer[..n]).unwrap();
            let (header, body) = text.split_once('\n').expect("a header line, then the document");
            got.push((header.to_owned(), serde_json::from_str(body).unwrap()));
        }
        got
    }

    /// Runs `f` inside an invocation span with `header` (none: no `xrayTraceId` field), with
    /// the layer sending to `daemon`.
    fn in_invocation(daemon: &UdpSocket, header: Option<&str>, f: impl FnOnce()) {
        let _turn = one_at_a_time();
        let address = daemon.local_addr().unwrap().to_string();
        let subscriber = tracing_subscriber::registry().with(layer_to(&address).unwrap());
        tracing::subscriber::with_default(subscriber, || {
            let invocation = match header {
                Some(header) => {
                    tracing::info_span!("Lambda runtime invoke", requestId = "r-1", xrayTraceId = header)
                }
                None => tracing::info_span!("Lambda runtime invoke", requestId = "r-1"),
            };
            invocation.in_scope(f);
        });
    }

    fn store_call(error: Option<&str>) {
        let span = tracing::info_span!(
            "store",
            xray = "DynamoDB",
            xray.namespace = "aws",
            aws.operation = "UpdateItem",
            error = Empty
        );
        span.in_scope(|| std::thread::sleep(Duration::from_millis(2)));
        if let Some(e) = error {
            span.record("error", display(e));
        }
    }

    #[test]
    fn trace_headers_parse_in_any_order_and_only_sampled_1_counts() {
        let h = TraceHeader::parse(SAMPLED).unwrap();
        assert_eq!(h.root, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(h.parent.as_deref(), Some("53995c3f42cd8ad8"));
        assert!(h.sampled);
        let h = TraceHeader::parse("Sampled=0;Parent=53995c3f42cd8ad8;Root=1-a-b;Lineage=x:1").unwrap();
        assert_eq!((h.root.as_str(), h.sampled), ("1-a-b", false));
        assert_eq!(h.target(), None);
        assert_eq!(TraceHeader::parse("Root=1-a-b;Sampled=1").unwrap().target(), None, "no parent");
        assert_eq!(TraceHeader::parse("Parent=1;Sampled=1"), None);
        assert_eq!(TraceHeader::parse(""), None);
    }

    #[test]
    fn daemon_addresses_are_host_port_or_the_sdk_pair() {
        assert_eq!(parse_daemon_address("169.254.79.129:2000"), Some("169.254.79.129:2000".parse().unwrap()));
        assert_eq!(
            parse_daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"),
            Some("127.0.0.2:2001".parse().unwrap())
        );
        assert_eq!(parse_daemon_address(""), None);
        assert_eq!(parse_daemon_address("nonsense"), None);
    }

    #[test]
    fn a_span_closed_in_a_sampled_invocation_sends_one_subsegment() {
        let daemon = daemon();
        in_invocation(&daemon, Some(SAMPLED), || store_call(None));
        let got = received(&daemon);
        assert_eq!(got.len(), 1, "{got:?}");
        let (header, doc) = &got[0];
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        assert_eq!(doc["type"], "subsegment");
        assert_eq!(doc["name"], "DynamoDB");
        assert_eq!(doc["namespace"], "aws");
        assert_eq!(doc["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(doc["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(doc["aws"], json!({"operation": "UpdateItem"}));
        let id = doc["id"].as_str().unwrap();
        assert!(id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        let (start, end) = (doc["start_time"].as_f64().unwrap(), doc["end_time"].as_f64().unwrap());
        assert!(start > 1.6e9 && start < end && end - start < 5.0, "{start} {end}");
        assert!(doc.get("fault").is_none() && doc.get("error").is_none(), "{doc}");
    }

    #[test]
    fn a_span_that_recorded_an_error_is_a_fault_with_its_cause() {
        let daemon = daemon();
        in_invocation(&daemon, Some(SAMPLED), || store_call(Some("dynamodb unavailable: timeout")));
        let got = received(&daemon);
        assert_eq!(got.len(), 1, "{got:?}");
        let doc = &got[0].1;
        assert_eq!(doc["fault"], true);
        assert_eq!(doc["cause"]["exceptions"][0]["message"], "dynamodb unavailable: timeout");
    }

    #[test]
    fn nothing_is_sent_when_not_sampled_or_without_a_header_or_outside_an_invocation() {
        let daemon = daemon();
        let unsampled = SAMPLED.replace("Sampled=1", "Sampled=0");
        in_invocation(&daemon, Some(&unsampled), || store_call(None));
        in_invocation(&daemon, None, || store_call(None));
        {
            let _turn = one_at_a_time();
            let address = daemon.local_addr().unwrap().to_string();
            let subscriber = tracing_subscriber::registry().with(layer_to(&address).unwrap());
            tracing::subscriber::with_default(subscriber, || store_call(None));
        }
        assert_eq!(received(&daemon), vec![]);
    }

    #[test]
    fn ids_are_16_hex_digits_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit())));
    }

    #[test]
    fn a_daemon_that_is_not_there_costs_the_caller_nothing() {
        // A port nobody listens on: the sends fail or vanish; the span still closes normally.
        let gone = daemon();
        let address = gone.local_addr().unwrap();
        drop(gone);
        let layer = XrayLayer::to(&address.to_string()).unwrap();
        for _ in 0..3 {
            layer.send(&json!({"name": "x"}));
        }
    }
}
