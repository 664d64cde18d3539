//! What upstream accepts: `POST` with `Content-Type: application/json` and a body that is a JSON
//! object `{"id": string of 1–256 characters, "message": non-empty string, "timestamp": number}`
//! plus any other fields, which are kept verbatim.
//!
//! The **timestamp rule**: a finite number greater than 0; below [`SECONDS_BELOW`] (1e11, the
//! year 5138 in seconds, March 1973 in milliseconds) it is epoch **seconds**, as the seed's k6
//! script sends it (`Date.now() / 1000`, fractions allowed), otherwise epoch **milliseconds**.
//! Either way it becomes `client_ms`, epoch milliseconds as an `f64`, which must be below
//! [`MAX_CLIENT_MS`] (1e15, the year 33658).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Error;

/// The largest body accepted, in bytes (1 MiB, Kinesis's record size).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The longest `id`, in characters (Kinesis's partition key limit).
pub const MAX_ID_CHARS: usize = 256;
/// Timestamps below this are epoch seconds, the others epoch milliseconds.
pub const SECONDS_BELOW: f64 = 1e11;
/// Milliseconds from here on are refused (the year 33658): no clock sends them, and DynamoDB
/// numbers stop at 38 digits.
pub const MAX_CLIENT_MS: f64 = 1e15;

/// An accepted item: the client's object as it sent it, its id and its timestamp in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    /// The client's timestamp, epoch milliseconds.
    pub client_ms: f64,
    /// The client's JSON object, verbatim (whitespace around it trimmed).
    pub json: String,
}

/// The fields checked; the rest of the object is kept, not read.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Checks the request's `Content-Type`: `application/json`, any case, parameters allowed.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), Error> {
    let Some(value) = content_type else {
        return Err(Error::ContentType("none".into()));
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Error::ContentType(value.chars().take(100).collect()))
    }
}

/// Validates a body: the accepted [`Item`], or the first field that is wrong.
pub fn parse(body: &[u8]) -> Result<Item, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge { limit: MAX_BODY_BYTES });
    }
    let text = std::str::from_utf8(body).map_err(|_| Error::field("body", "must be UTF-8 JSON"))?;
    let raw: &RawValue =
        serde_json::from_str(text).map_err(|e| Error::field("body", format!("not JSON: {e}")))?;
    parse_object(raw)
}

/// Validates one JSON value as an item (upstream's body, midstream's record).
pub fn parse_object(raw: &RawValue) -> Result<Item, Error> {
    let json = raw.get();
    if !json.starts_with('{') {
        return Err(Error::field("body", "must be a JSON object"));
    }
    let fields: Fields<'_> =
        serde_json::from_str(json).map_err(|e| Error::field("body", format!("not a JSON object: {e}")))?;
    let id = match fields.id.map(|v| serde_json::from_str::<Value>(v.get())) {
        Some(Ok(Value::String(id))) if (1..=MAX_ID_CHARS).contains(&id.chars().count()) => id,
        _ => return Err(Error::field("id", format!("must be a string of 1 to {MAX_ID_CHARS} characters"))),
    };
    match fields.message.map(|v| serde_json::from_str::<Value>(v.get())) {
        Some(Ok(Value::String(m))) if !m.is_empty() => {}
        _ => return Err(Error::field("message", "must be a non-empty string")),
    }
    let timestamp = fields.timestamp.and_then(|v| serde_json::from_str::<f64>(v.get()).ok());
    let client_ms = timestamp.and_then(client_ms).ok_or_else(|| {
        Error::field(
            "timestamp",
            "must be a number greater than 0: epoch seconds (below 1e11) or milliseconds (below 1e15)",
        )
    })?;
    Ok(Item { id, client_ms, json: json.to_owned() })
}

/// The timestamp rule: epoch seconds below [`SECONDS_BELOW`], milliseconds from there; `None`
/// for anything not finite and greater than 0, or from [`MAX_CLIENT_MS`] on.
pub fn client_ms(timestamp: f64) -> Option<f64> {
    if !timestamp.is_finite() || timestamp <= 0.0 {
        return None;
    }
    let ms = if timestamp < SECONDS_BELOW { timestamp * 1e3 } else { timestamp };
    (ms < MAX_CLIENT_MS).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_error(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn the_seeds_item_is_accepted_with_its_timestamp_in_seconds() {
        let body = r#"{"id":"1","message":"Hello World","timestamp":1733450000}"#;
        let item = parse(body.as_bytes()).unwrap();
        assert_eq!(item.id, "1");
        assert_eq!(item.client_ms, 1_733_450_000_000.0);
        assert_eq!(item.json, body);
    }

    #[test]
    fn fractions_of_seconds_and_milliseconds_both_become_milliseconds() {
        assert_eq!(client_ms(1_733_450_000.123), Some(1_733_450_000_123.0));
        assert_eq!(client_ms(1_733_450_000_123.0), Some(1_733_450_000_123.0));
        assert_eq!(client_ms(99_999_999_999.0), Some(99_999_999_999_000.0));
        assert_eq!(client_ms(1e11), Some(1e11));
        assert_eq!(client_ms(0.0), None);
        assert_eq!(client_ms(-5.0), None);
        assert_eq!(client_ms(f64::NAN), None);
        assert_eq!(client_ms(f64::INFINITY), None);
        assert_eq!(client_ms(1e15), None);
    }

    #[test]
    fn other_fields_are_kept_verbatim_and_surrounding_whitespace_is_trimmed() {
        let object = r#"{"id":"a", "extra": {"n": [1, 2.50]}, "message":"m","timestamp":1.5}"#;
        let item = parse(format!("  \n{object}\n ").as_bytes()).unwrap();
        assert_eq!(item.json, object);
    }

    #[test]
    fn each_bad_field_is_named_with_its_reason() {
        assert_eq!(
            field_error(r#"{"message":"m","timestamp":1}"#),
            "id: must be a string of 1 to 256 characters"
        );
        assert_eq!(
            field_error(r#"{"id":"","message":"m","timestamp":1}"#),
            "id: must be a string of 1 to 256 characters"
        );
        assert_eq!(
            field_error(r#"{"id":7,"message":"m","timestamp":1}"#),
            "id: must be a string of 1 to 256 characters"
        );
        let long = "é".repeat(257);
        assert!(
            field_error(&format!(r#"{{"id":"{long}","message":"m","timestamp":1}}"#)).starts_with("id: ")
        );
        let longest = "é".repeat(256);
        assert!(parse(format!(r#"{{"id":"{longest}","message":"m","timestamp":1}}"#).as_bytes()).is_ok());
        assert_eq!(
            field_error(r#"{"id":"a","message":"","timestamp":1}"#),
            "message: must be a non-empty string"
        );
        assert_eq!(
            field_error(r#"{"id":"a","message":null,"timestamp":1}"#),
            "message: must be a non-empty string"
        );
        for ts in ["0", "-1", "\"1\"", "null", "[]", "1e300"] {
            let error = field_error(&format!(r#"{{"id":"a","message":"m","timestamp":{ts}}}"#));
            assert!(error.starts_with("timestamp: must be a number greater than 0"), "{ts}: {error}");
        }
        assert!(field_error(r#"{"id":"a","message":"m"}"#).starts_with("timestamp: "));
    }

    #[test]
    fn a_body_that_is_not_a_json_object_is_a_body_error() {
        for body in ["", "{", "[1,2,3]", r#"["1","m",1]"#, "42", "\"text\"", "null"] {
            let error = field_error(body);
            assert!(error.starts_with("body: "), "{body:?}: {error}");
        }
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err().to_string(), "body: must be UTF-8 JSON");
    }

    #[test]
    fn a_body_over_one_mebibyte_is_too_large() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse(&body).unwrap_err(), Error::TooLarge { limit: MAX_BODY_BYTES });
        assert_eq!(Error::TooLarge { limit: MAX_BODY_BYTES }.status(), 413);
    }

    #[test]
    fn json_with_parameters_in_any_case_is_the_only_content_type() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        for bad in [Some("text/plain"), Some("application/jsonx"), Some(""), None] {
            let error = check_content_type(bad).unwrap_err();
            assert_eq!(error.status(), 415, "{bad:?}");
        }
    }
}
