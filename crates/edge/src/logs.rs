//! Logs of the Lambda functions: what `lambda_runtime::tracing::init_default_subscriber` does,
//! plus the request id on every JSON line and the X-Ray layer ([`crate::xray`]).
//!
//! * Format: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (the template's
//!   `LoggingConfig.LogFormat: JSON`), text otherwise; stdout, no time (Lambda stamps each
//!   line), no target, never ANSI colours.
//! * Level: `AWS_LAMBDA_LOG_LEVEL` (Lambda sets it from `ApplicationLogLevel`; `FATAL` counts
//!   as `ERROR`), else `RUST_LOG`, else `INFO`; `RUST_LOG` directives then apply on top
//!   (`tower_http=debug` adds to the level, a bare `debug` replaces it). lambda_runtime's
//!   subscriber dropped the level as soon as `RUST_LOG` named any target.
//! * Request id: lambda_runtime's per-invocation span carries `requestId`. That span is always
//!   kept, whatever the level, so every line logged during an invocation carries its id: as a
//!   top-level `"requestId"` in JSON (where Lambda's own JSON records have it, so one
//!   CloudWatch Logs Insights filter finds both), in the span prefix in text.
//!
//! A JSON line: `{"requestId":"8f5…","level":"INFO","fields":{"message":"…",…},"span":{…},
//! "spans":[{"requestId":"8f5…","xrayTraceId":"Root=…","name":"Lambda runtime invoke"},…]}`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// The field of lambda_runtime's per-invocation span that holds the request id.
pub const REQUEST_ID_FIELD: &str = "requestId";

/// How the Lambda logs are written; [`LogConfig::from_env`] reads what Lambda sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub json: bool,
    pub level: LevelFilter,
    /// `RUST_LOG`-style directives on top of `level`.
    pub directives: String,
}

impl LogConfig {
    pub fn from_env() -> LogConfig {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
        let format = var("AWS_LAMBDA_LOG_FORMAT").unwrap_or_default();
        let level = var("AWS_LAMBDA_LOG_LEVEL").or_else(|| var("RUST_LOG"));
        LogConfig {
            json: format.eq_ignore_ascii_case("json"),
            level: parse_level(level.as_deref().unwrap_or("INFO")),
            directives: var("RUST_LOG").unwrap_or_default(),
        }
    }

    /// The formatting layer, with its filter, writing to `writer`.
    pub fn layer<S, W>(self, writer: W) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        // The level first: later directives for the same target win, so `RUST_LOG` adds to it
        // (`tower_http=debug`) or overrides it (`debug`).
        let filter = EnvFilter::builder()
            .parse_lossy(format!("{},{}", self.level, self.directives))
            .or(InvocationSpans);
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .with_target(false)
            .without_time();
        if self.json {
            let format = tracing_subscriber::fmt::format().json().with_target(false).without_time();
            Box::new(layer.json().event_format(WithRequestId(format)).with_filter(filter))
        } else {
            Box::new(layer.with_filter(filter))
        }
    }
}

/// `AWS_LAMBDA_LOG_LEVEL` values (`TRACE` … `FATAL`) and plain levels; anything else is `INFO`.
fn parse_level(level: &str) -> LevelFilter {
    let level = level.trim();
    if level.eq_ignore_ascii_case("fatal") {
        return LevelFilter::ERROR;
    }
    LevelFilter::from_str(level).unwrap_or(LevelFilter::INFO)
}

/// Installs the Lambda subscriber: the logs ([`LogConfig::from_env`]) on stdout and, when
/// `AWS_XRAY_DAEMON_ADDRESS` is set, the X-Ray layer. Does nothing if a subscriber is already
/// installed.
pub fn init_lambda_tracing() {
    let subscriber = subscriber(LogConfig::from_env(), std::io::stdout, crate::xray::layer_from_env());
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The Lambda subscriber with logs to `writer` and an optional extra layer (the X-Ray one).
pub fn subscriber<W, L>(config: LogConfig, writer: W, extra: Option<L>) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    L: Layer<tracing_subscriber::layer::Layered<Box<dyn Layer<Registry> + Send + Sync>, Registry>>
        + Send
        + Sync
        + 'static,
{
    tracing_subscriber::registry().with(config.layer(writer)).with(extra)
}

/// Keeps the spans that carry a `requestId` for the log layer, whatever the level (decided
/// once per call site).
#[derive(Debug, Clone, Copy)]
struct InvocationSpans;

impl InvocationSpans {
    fn wants(meta: &Metadata<'_>) -> bool {
        meta.is_span() && meta.fields().field(REQUEST_ID_FIELD).is_some()
    }
}

impl<S> Filter<S> for InvocationSpans {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        InvocationSpans::wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if InvocationSpans::wants(meta) { Interest::always() } else { Interest::never() }
    }
}

/// tracing-subscriber's JSON line with the request id of the enclosing invocation in front.
struct WithRequestId(Format<Json, ()>);

impl<S> FormatEvent<S, JsonFields> for WithRequestId
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(request_id) = request_id(ctx) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let rest = line.strip_prefix('{').ok_or(fmt::Error)?;
        let request_id = Value::from(request_id);
        write!(writer, "{{\"{REQUEST_ID_FIELD}\":{request_id},{rest}")
    }
}

/// The `requestId` of the nearest enclosing span that has one, from the JSON of its fields
/// that the formatting layer keeps.
fn request_id<S>(ctx: &FmtContext<'_, S, JsonFields>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.event_scope()?.find_map(|span| {
        span.metadata().fields().field(REQUEST_ID_FIELD)?;
        let extensions = span.extensions();
        let fields = extensions.get::<FormattedFields<JsonFields>>()?;
        let fields: Value = serde_json::from_str(&fields.fields).ok()?;
        fields.get(REQUEST_ID_FIELD)?.as_str().map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::tests::one_at_a_time;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `f` logs under `config`.
    fn logged(config: LogConfig, f: impl FnOnce()) -> Vec<String> {
        let _turn = one_at_a_time();
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let no_extra: Option<tracing_subscriber::layer::Identity> = None;
        let subscriber = subscriber(config, move || writer.clone(), no_extra);
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    fn config(json: bool, level: LevelFilter) -> LogConfig {
        LogConfig { json, level, directives: String::new() }
    }

    /// An invocation as lambda_runtime opens it, logging at `info` and `warn`.
    fn invocation(request_id: &str) {
        let span = tracing::info_span!(
            "Lambda runtime invoke",
            requestId = request_id,
            xrayTraceId = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        span.in_scope(|| {
            tracing::info!(count = 3, "counted");
            tracing::warn!("slow store");
        });
    }

    #[test]
    fn json_lines_carry_the_request_id_of_their_invocation_at_the_top() {
        let lines = logged(config(true, LevelFilter::INFO), || {
            tracing::info!(warm_ms = 12, "store connection open");
            invocation("req-1");
            invocation("req-2");
        });
        assert_eq!(lines.len(), 5, "{lines:#?}");
        let json: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(json[0].get("requestId").is_none(), "init: no invocation: {}", lines[0]);
        assert_eq!(json[0]["fields"]["warm_ms"], 12);
        assert!(lines[0].contains("\"warm_ms\":12"), "latency cold-start reads it so: {}", lines[0]);
        for (line, id) in json[1..].iter().zip(["req-1", "req-1", "req-2", "req-2"]) {
            assert_eq!(line["requestId"], id, "{line}");
            assert_eq!(line["spans"][0]["requestId"], id, "{line}");
            assert!(line["level"] == "INFO" || line["level"] == "WARN", "{line}");
        }
        assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "no ANSI");
    }

    #[test]
    fn the_request_id_stays_on_warn_lines_when_the_level_is_warn() {
        let lines = logged(config(true, LevelFilter::WARN), || invocation("req-w"));
        assert_eq!(lines.len(), 1, "only the warning: {lines:#?}");
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((line["level"].as_str(), line["requestId"].as_str()), (Some("WARN"), Some("req-w")));
    }

    #[test]
    fn text_lines_name_the_request_id_in_their_span_prefix_without_colours() {
        let lines = logged(config(false, LevelFilter::INFO), || invocation("req-t"));
        assert_eq!(lines.len(), 2, "{lines:#?}");
        for line in &lines {
            assert!(line.contains("requestId=\"req-t\""), "{line}");
            assert!(!line.contains('\u{1b}'), "{line:?}");
        }
    }

    #[test]
    fn directives_apply_on_top_of_the_level() {
        let config = LogConfig { json: true, level: LevelFilter::WARN, directives: "edge=debug".into() };
        let lines = logged(config, || {
            tracing::debug!(target: "edge::x", "from edge");
            tracing::info!(target: "other", "not at warn");
            tracing::warn!(target: "other", "at warn");
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        let config = LogConfig { json: true, level: LevelFilter::INFO, directives: "warn".into() };
        let lines = logged(config, || {
            tracing::info!(target: "other", "not at warn");
            tracing::warn!(target: "other", "at warn");
        });
        assert_eq!(lines.len(), 1, "a bare level replaces it: {lines:#?}");
    }

    #[test]
    fn lambda_levels_parse_and_fatal_is_error() {
        assert_eq!(parse_level("DEBUG"), LevelFilter::DEBUG);
        assert_eq!(parse_level("warn"), LevelFilter::WARN);
        assert_eq!(parse_level("FATAL"), LevelFilter::ERROR);
        assert_eq!(parse_level("info,tower_http=debug"), LevelFilter::INFO);
    }
}
