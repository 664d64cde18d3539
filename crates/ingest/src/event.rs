//! The event contract: a request body is one event object or an array of up to 500; an event is
//! an object with `type` (a non-empty string of at most 128 characters) and `timestamp` (epoch
//! milliseconds, a number ≥ 0), plus any other fields, which are kept as they came.
//!
//! The body is JSON whatever its label says, as long as the label is `application/json` (or a
//! `+json` type) or `text/plain`: `navigator.sendBeacon(url, string)` — how pages send metrics
//! when they are closed — can only send `text/plain;charset=UTF-8`, and a `text/plain` `fetch`
//! needs no CORS preflight. A `text/plain` body that is not JSON is the same 400 as any body that
//! is not JSON. Other types (forms, multipart) are a 415.
//!
//! A body may come compressed: [`decode`] takes `Content-Encoding: gzip` (what browsers'
//! `CompressionStream("gzip")` makes) and `identity`, and refuses every other encoding by name,
//! so a body is never parsed as something it is not.
//!
//! Two kinds of failure. A [`BodyError`] means the body is not events at all (wrong content
//! type or encoding, empty, not JSON, too large, too many): a 4xx in both modes. An [`EventError`] is one bad
//! event in a good body: sync mode refuses the request with the per-index list, async mode
//! routes the event to the invalid sink as an [`Invalid`] line.

use std::borrow::Cow;
use std::io::Read as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The largest body taken: 1 MiB, as sent and, for a compressed body, once decompressed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most events per request.
pub const MAX_EVENTS: usize = 500;
/// The most characters in `type`.
pub const MAX_TYPE_CHARS: usize = 128;
/// The largest single event: a Firehose record holds at most 1,000 KiB (with its newline). A
/// body can be 1 MiB, so one event can be larger than any record; it is refused with 413 in both
/// modes, since no sink could store it whole.
pub const MAX_EVENT_BYTES: usize = 1000 * 1024 - 1;

/// The body is not a batch of events. Maps to 4xx in both modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(
        "Content-Type must be application/json (or text/plain holding JSON, as navigator.sendBeacon sends a string), got {0:?}"
    )]
    UnsupportedContentType(String),
    #[error("Content-Type application/json (or text/plain holding JSON) is required (the header is missing)")]
    MissingContentType,
    #[error("the body is empty; send one event object or an array of them")]
    Empty,
    /// Only "more than" is known: the server stops reading a body at the limit.
    #[error("the body is more than 1 MiB ({MAX_BODY_BYTES} bytes); send at most 1 MiB per request")]
    TooLarge,
    #[error(
        "the body is more than 1 MiB ({MAX_BODY_BYTES} bytes) once decompressed ({encoding}); send at most 1 MiB of events per request"
    )]
    DecodedTooLarge { encoding: &'static str },
    #[error("Content-Encoding {0:?} is not supported; send the body as it is (identity) or gzip")]
    UnsupportedEncoding(String),
    #[error("the body is not valid {encoding} (as its Content-Encoding says): {detail}")]
    BadEncoding { encoding: &'static str, detail: String },
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body must be an event object or an array of event objects, not {0}")]
    NotEvents(&'static str),
    #[error("the array is empty; send at least one event")]
    EmptyArray,
    #[error("{count} events in one request; at most {MAX_EVENTS}")]
    TooManyEvents { count: usize },
    #[error(
        "event {index} is {bytes} bytes of compact JSON; a Firehose record holds at most 1,024,000 bytes, so no sink can store it whole"
    )]
    EventTooLarge { index: usize, bytes: usize },
}

impl BodyError {
    /// The HTTP status this error maps to at the edge.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::UnsupportedContentType(_)
            | BodyError::MissingContentType
            | BodyError::UnsupportedEncoding(_) => 415,
            BodyError::TooLarge | BodyError::DecodedTooLarge { .. } | BodyError::EventTooLarge { .. } => 413,
            _ => 400,
        }
    }
}

/// What is wrong with one event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("an event must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("`type` is missing")]
    MissingType,
    #[error("`type` must be a string")]
    TypeNotString,
    #[error("`type` is empty")]
    EmptyType,
    #[error("`type` is {chars} characters; at most {MAX_TYPE_CHARS}")]
    TypeTooLong { chars: usize },
    #[error("`timestamp` is missing")]
    MissingTimestamp,
    #[error("`timestamp` must be a number (epoch milliseconds)")]
    TimestampNotNumber,
    #[error("`timestamp` must be epoch milliseconds ≥ 0, got {0}")]
    TimestampOutOfRange(String),
    #[error("{0}")]
    Malformed(String),
}

/// One invalid event of an accepted body, kept so it can be inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Position in the request (0 for a single-object body).
    pub index: usize,
    pub error: EventError,
    /// The event as sent, as compact JSON.
    pub event: Bytes,
}

impl Invalid {
    /// The line routed to the invalid sink: `{"index":3,"error":"`type` is missing","event":{…}}`.
    pub fn to_line(&self) -> Bytes {
        let error = serde_json::to_string(&self.error.to_string()).unwrap_or_else(|_| "\"?\"".into());
        let mut line = BytesMut::with_capacity(self.event.len() + error.len() + 40);
        line.put_slice(b"{\"index\":");
        line.put_slice(self.index.to_string().as_bytes());
        line.put_slice(b",\"error\":");
        line.put_slice(error.as_bytes());
        line.put_slice(b",\"event\":");
        line.put_slice(&self.event);
        line.put_u8(b'}');
        line.freeze()
    }
}

/// A parsed body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Valid events in request order, each compact JSON (one line, no trailing newline).
    pub valid: Vec<Bytes>,
    /// Invalid events in request order.
    pub invalid: Vec<Invalid>,
}

impl Parsed {
    pub fn total(&self) -> usize {
        self.valid.len() + self.invalid.len()
    }
}

/// Checks the `Content-Type` header: `application/json` (any parameters, any case), a `+json`
/// suffix type, or `text/plain` (what `navigator.sendBeacon` sends with a string; the body must
/// still be JSON, which [`parse`] checks).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), BodyError> {
    let Some(value) = content_type else {
        return Err(BodyError::MissingContentType);
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json"
        || essence == "text/plain"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(BodyError::UnsupportedContentType(value.to_owned()))
    }
}

/// The body as sent, decoded as its `Content-Encoding` header says: none or `identity` → the
/// bytes as they are; `gzip` (or `x-gzip`) → decompressed, at most [`MAX_BODY_BYTES`] of it (a
/// "gzip bomb" stops there, with [`BodyError::DecodedTooLarge`], never eating memory); anything
/// else (`br`, `deflate`, `zstd`, two encodings stacked) → [`BodyError::UnsupportedEncoding`]
/// naming it, a 415. Never panics, whatever the bytes.
pub fn decode<'a>(content_encoding: Option<&str>, body: &'a [u8]) -> Result<Cow<'a, [u8]>, BodyError> {
    let Some(header) = content_encoding else {
        return Ok(Cow::Borrowed(body));
    };
    let codings: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    match codings.as_slice() {
        [] => Ok(Cow::Borrowed(body)),
        [one] if one == "gzip" || one == "x-gzip" => gunzip(body).map(Cow::Owned),
        _ => Err(BodyError::UnsupportedEncoding(header.to_owned())),
    }
}

/// Decompresses a gzip body (one member or several, as RFC 1952 allows), reading at most one byte
/// past [`MAX_BODY_BYTES`] of output.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, BodyError> {
    let limit = MAX_BODY_BYTES as u64 + 1;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY_BYTES + 1));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadEncoding { encoding: "gzip", detail: e.to_string() })?;
    if out.len() > MAX_BODY_BYTES {
        return Err(BodyError::DecodedTooLarge { encoding: "gzip" });
    }
    Ok(out)
}

/// Parses and validates a body (after [`check_content_type`] and [`decode`]). Never panics,
/// whatever the bytes.
pub fn parse(body: &[u8]) -> Result<Parsed, BodyError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    let first = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(first) = first else {
        return Err(BodyError::Empty);
    };
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotJson(format!("not UTF-8: {e}")))?;
    let elements: Vec<&RawValue> = match body[first] {
        b'[' => {
            let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(not_json)?;
            if elements.is_empty() {
                return Err(BodyError::EmptyArray);
            }
            if elements.len() > MAX_EVENTS {
                return Err(BodyError::TooManyEvents { count: elements.len() });
            }
            elements
        }
        _ => {
            let element: &RawValue = serde_json::from_str(text).map_err(not_json)?;
            if !element.get().starts_with('{') {
                return Err(BodyError::NotEvents(kind_of(element.get())));
            }
            vec![element]
        }
    };
    let mut parsed = Parsed { valid: Vec::with_capacity(elements.len()), invalid: Vec::new() };
    for (index, element) in elements.into_iter().enumerate() {
        let event = compact(element.get());
        if event.len() > MAX_EVENT_BYTES {
            return Err(BodyError::EventTooLarge { index, bytes: event.len() });
        }
        match validate(element.get()) {
            Ok(()) => parsed.valid.push(event),
            Err(error) => parsed.invalid.push(Invalid { index, error, event }),
        }
    }
    Ok(parsed)
}

fn not_json(e: serde_json::Error) -> BodyError {
    BodyError::NotJson(e.to_string())
}

fn kind_of(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Validates one event given as JSON text (already known to be well-formed).
pub fn validate(json: &str) -> Result<(), EventError> {
    #[derive(Deserialize)]
    struct Fields<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a RawValue>,
        #[serde(borrow)]
        timestamp: Option<&'a RawValue>,
    }
    if !json.starts_with('{') {
        return Err(EventError::NotAnObject(kind_of(json)));
    }
    let fields: Fields<'_> = serde_json::from_str(json).map_err(|e| EventError::Malformed(e.to_string()))?;
    let kind = fields.kind.ok_or(EventError::MissingType)?;
    let kind: Cow<'_, str> = if kind.get().starts_with('"') {
        serde_json::from_str(kind.get()).map_err(|_| EventError::TypeNotString)?
    } else {
        return Err(EventError::TypeNotString);
    };
    if kind.is_empty() {
        return Err(EventError::EmptyType);
    }
    let chars = kind.chars().count();
    if chars > MAX_TYPE_CHARS {
        return Err(EventError::TypeTooLong { chars });
    }
    let timestamp = fields.timestamp.ok_or(EventError::MissingTimestamp)?.get();
    if !timestamp.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Err(EventError::TimestampNotNumber);
    }
    match timestamp.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(()),
        _ => Err(EventError::TimestampOutOfRange(timestamp.to_owned())),
    }
}

/// Removes the whitespace between tokens of well-formed JSON, so an event is one line. Strings
/// (where whitespace is content, and newlines are always escaped) are copied as they are.
pub fn compact(json: &str) -> Bytes {
    let bytes = json.as_bytes();
    if !bytes.iter().any(|b| matches!(b, b'\n' | b'\r' | b'\t' | b' ')) {
        return Bytes::copy_from_slice(bytes);
    }
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            out.put_u8(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
            out.put_u8(b);
        } else if !matches!(b, b'\n' | b'\r' | b'\t' | b' ') {
            out.put_u8(b);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Parsed {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn one_event_or_an_array_of_them_is_accepted() {
        let p = ok(r#"{"type":"click","timestamp":1700000000000,"x":1}"#);
        assert_eq!(p.valid, vec![Bytes::from(r#"{"type":"click","timestamp":1700000000000,"x":1}"#)]);
        let p = ok(r#"[{"type":"a","timestamp":1},{"type":"b","timestamp":2.5}]"#);
        assert_eq!(p.valid.len(), 2);
        assert!(p.invalid.is_empty());
    }

    #[test]
    fn events_are_made_one_line_with_strings_untouched() {
        let p = ok("[\n  {\n \"type\" : \"a b\",\n \"timestamp\": 1,\n \"s\": \"x \\\" \\n y\" }\n]\n");
        assert_eq!(p.valid, vec![Bytes::from(r#"{"type":"a b","timestamp":1,"s":"x \" \n y"}"#)]);
    }

    #[test]
    fn each_bad_event_is_reported_with_its_index() {
        let p = ok(
            r#"[{"type":"ok","timestamp":1},{"timestamp":1},{"type":7,"timestamp":1},{"type":"","timestamp":1},
               {"type":"t"},{"type":"t","timestamp":"1"},{"type":"t","timestamp":-1},3,{"type":"t","type":"u","timestamp":1}]"#,
        );
        assert_eq!(p.valid.len(), 1);
        let errors: Vec<(usize, EventError)> = p.invalid.iter().map(|i| (i.index, i.error.clone())).collect();
        assert_eq!(errors[0], (1, EventError::MissingType));
        assert_eq!(errors[1], (2, EventError::TypeNotString));
        assert_eq!(errors[2], (3, EventError::EmptyType));
        assert_eq!(errors[3], (4, EventError::MissingTimestamp));
        assert_eq!(errors[4], (5, EventError::TimestampNotNumber));
        assert_eq!(errors[5], (6, EventError::TimestampOutOfRange("-1".into())));
        assert_eq!(errors[6], (7, EventError::NotAnObject("a number")));
        assert!(matches!(errors[7], (8, EventError::Malformed(ref m)) if m.contains("duplicate field")));
    }

    #[test]
    fn type_is_limited_to_128_characters_not_bytes() {
        let long = "é".repeat(128);
        assert!(ok(&format!(r#"{{"type":"{long}","timestamp":0}}"#)).invalid.is_empty());
        let longer = "é".repeat(129);
        let p = ok(&format!(r#"{{"type":"{longer}","timestamp":0}}"#));
        assert_eq!(p.invalid[0].error, EventError::TypeTooLong { chars: 129 });
    }

    #[test]
    fn bodies_that_are_not_events_are_refused_with_a_reason() {
        assert_eq!(parse(b"").unwrap_err(), BodyError::Empty);
        assert_eq!(parse(b"  \n").unwrap_err(), BodyError::Empty);
        assert!(matches!(parse(b"{nope").unwrap_err(), BodyError::NotJson(_)));
        assert!(matches!(parse(b"{} {}").unwrap_err(), BodyError::NotJson(_)));
        assert!(matches!(parse(b"\xff\xfe").unwrap_err(), BodyError::NotJson(_)));
        assert_eq!(parse(b"\"hi\"").unwrap_err(), BodyError::NotEvents("a string"));
        assert_eq!(parse(b"[]").unwrap_err(), BodyError::EmptyArray);
        let many = format!("[{}]", vec![r#"{"type":"a","timestamp":1}"#; 501].join(","));
        assert_eq!(parse(many.as_bytes()).unwrap_err(), BodyError::TooManyEvents { count: 501 });
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let err = parse(&big).unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(err.to_string().contains("more than 1 MiB"), "{err}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_gzip_body_is_decoded_and_identity_is_the_body_as_it_is() {
        let json = br#"{"type":"a","timestamp":1}"#;
        for header in ["gzip", "GZIP", "x-gzip", "identity, gzip", " gzip "] {
            assert_eq!(decode(Some(header), &gzip(json)).unwrap().as_ref(), json, "{header}");
        }
        for header in [None, Some("identity"), Some(""), Some("Identity")] {
            assert!(matches!(decode(header, json).unwrap(), Cow::Borrowed(b) if b == json), "{header:?}");
        }
        let two_members = [gzip(b"[{\"type\":\"a\","), gzip(b"\"timestamp\":1}]")].concat();
        assert_eq!(decode(Some("gzip"), &two_members).unwrap().as_ref(), br#"[{"type":"a","timestamp":1}]"#);
    }

    #[test]
    fn other_encodings_are_415_naming_them() {
        for header in ["br", "deflate", "zstd", "gzip, gzip", "gzip, br", "compress"] {
            let err = decode(Some(header), b"{}").unwrap_err();
            assert_eq!(err.status(), 415, "{header}");
            assert!(err.to_string().contains(header), "{header}: {err}");
        }
    }

    #[test]
    fn a_body_that_is_not_gzip_is_400_and_a_gzip_bomb_stops_at_1_mib() {
        let err = decode(Some("gzip"), br#"{"type":"a","timestamp":1}"#).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
        assert!(err.to_string().contains("not valid gzip"), "{err}");
        let truncated = gzip(&[b' '; 4096]);
        assert_eq!(decode(Some("gzip"), &truncated[..truncated.len() / 2]).unwrap_err().status(), 400);
        // 1 MiB of output exactly is taken; one byte more is not, and 64 MiB of zeros (64 KiB
        // compressed) is refused after reading 1 MiB of it.
        assert_eq!(decode(Some("gzip"), &gzip(&vec![b' '; MAX_BODY_BYTES])).unwrap().len(), MAX_BODY_BYTES);
        let err = decode(Some("gzip"), &gzip(&vec![b' '; MAX_BODY_BYTES + 1])).unwrap_err();
        assert_eq!(err, BodyError::DecodedTooLarge { encoding: "gzip" });
        let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
        assert!(bomb.len() < 128 * 1024, "{} bytes", bomb.len());
        let err = decode(Some("gzip"), &bomb).unwrap_err();
        assert_eq!(err.status(), 413);
        assert!(
            err.to_string().contains("more than 1 MiB") && err.to_string().contains("decompressed"),
            "{err}"
        );
    }

    #[test]
    fn one_event_larger_than_a_firehose_record_is_413() {
        let pad = "x".repeat(MAX_EVENT_BYTES);
        let body = format!(r#"[{{"type":"a","timestamp":1}},{{"type":"big","timestamp":1,"pad":"{pad}"}}]"#);
        let err = parse(body.as_bytes()).unwrap_err();
        assert!(matches!(err, BodyError::EventTooLarge { index: 1, .. }), "{err:?}");
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn content_type_must_be_json_or_the_text_plain_of_a_beacon() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/vnd.events+json")).is_ok());
        assert!(check_content_type(Some("text/plain;charset=UTF-8")).is_ok(), "navigator.sendBeacon's type");
        assert!(check_content_type(Some("Text/Plain")).is_ok());
        assert_eq!(check_content_type(None).unwrap_err().status(), 415);
        for other in ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/html"] {
            let e = check_content_type(Some(other)).unwrap_err();
            assert_eq!(e.status(), 415, "{other}");
            assert!(e.to_string().contains("text/plain holding JSON"), "{e}");
        }
    }

    #[test]
    fn an_invalid_event_line_keeps_the_event_and_the_reason() {
        let p = ok(r#"{"timestamp":1,"note":"a\"b"}"#);
        let line = p.invalid[0].to_line();
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["index"], 0);
        assert_eq!(v["error"], "`type` is missing");
        assert_eq!(v["event"]["note"], "a\"b");
    }
}
