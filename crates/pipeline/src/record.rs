//! The **Kinesis record data** upstream puts and midstream reads: UTF-8 JSON
//! `{"item": <the client's object verbatim>, "client_ms": f64, "upstream_ms": u64}`, with the
//! item's `id` as the partition key.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Error;
use crate::item::{self, Item};

/// Kinesis's limit on one record: data and partition key together, in bytes.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    item: &'a RawValue,
    client_ms: f64,
    upstream_ms: u64,
}

/// What a record carries, decoded and checked again.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub item: Item,
    /// When upstream received the request, epoch milliseconds (its host clock).
    pub upstream_ms: u64,
}

/// The record data for `item` received at `upstream_ms`. [`Error::TooLarge`] when it would not
/// fit one Kinesis record with its partition key (a body of nearly 1 MiB).
pub fn encode(item: &Item, upstream_ms: u64) -> Result<Vec<u8>, Error> {
    let raw: &RawValue =
        serde_json::from_str(&item.json).map_err(|e| Error::field("body", format!("not JSON: {e}")))?;
    let data = serde_json::to_vec(&Envelope { item: raw, client_ms: item.client_ms, upstream_ms })
        .map_err(|e| Error::field("body", format!("cannot be encoded: {e}")))?;
    if data.len() + item.id.len() > MAX_RECORD_BYTES {
        // What the envelope and the key leave for the client's object.
        let overhead = data.len() - item.json.len() + item.id.len();
        return Err(Error::TooLarge { limit: MAX_RECORD_BYTES.saturating_sub(overhead) });
    }
    Ok(data)
}

/// Decodes record data: anything but an envelope holding a valid item is [`Error::Poison`].
pub fn decode(data: &[u8]) -> Result<Record, Error> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(data).map_err(|e| Error::Poison(format!("not a pipeline record: {e}")))?;
    let mut item = item::parse_object(envelope.item).map_err(|e| Error::Poison(format!("item: {e}")))?;
    if item::client_ms(envelope.client_ms).is_none() {
        return Err(Error::Poison(format!("client_ms must be greater than 0, got {}", envelope.client_ms)));
    }
    item.client_ms = envelope.client_ms;
    Ok(Record { item, upstream_ms: envelope.upstream_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_the_item_verbatim_with_both_stamps() {
        let item = item::parse(br#"{"id":"7","message":"Hello World","timestamp":1733450000.5,"x":[1, 2]}"#)
            .unwrap();
        let data = encode(&item, 1_733_450_001_000).unwrap();
        assert_eq!(
            String::from_utf8(data.clone()).unwrap(),
            r#"{"item":{"id":"7","message":"Hello World","timestamp":1733450000.5,"x":[1, 2]},"client_ms":1733450000500.0,"upstream_ms":1733450001000}"#
        );
        let record = decode(&data).unwrap();
        assert_eq!(record, Record { item, upstream_ms: 1_733_450_001_000 });
    }

    #[test]
    fn anything_else_is_poison() {
        for data in [
            &b"Hello World"[..],
            b"{}",
            br#"{"item":{"id":"a","message":"m","timestamp":1},"client_ms":1000}"#,
            br#"{"item":{"id":"","message":"m","timestamp":1},"client_ms":1000,"upstream_ms":5}"#,
            br#"{"item":[1],"client_ms":1000,"upstream_ms":5}"#,
            br#"{"item":{"id":"a","message":"m","timestamp":1},"client_ms":-1,"upstream_ms":5}"#,
            br#"{"item":{"id":"a","message":"m","timestamp":1},"client_ms":1000,"upstream_ms":-5}"#,
            &[0xff, 0x00],
        ] {
            let error = decode(data).unwrap_err();
            assert!(error.is_poison(), "{}: {error}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn an_item_too_large_for_one_kinesis_record_is_refused_as_too_large() {
        let filler = "x".repeat(MAX_RECORD_BYTES - 60);
        let item =
            item::parse(format!(r#"{{"id":"a","message":"m","timestamp":1,"f":"{filler}"}}"#).as_bytes())
                .unwrap();
        assert_eq!(encode(&item, 1).unwrap_err().status(), 413);
    }
}
