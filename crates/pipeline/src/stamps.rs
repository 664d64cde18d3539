//! The stamps an item collects on its way, the rows of the two tables, and the latencies.
//!
//! | stamp | set by | clock |
//! |---|---|---|
//! | `client_ms` | the client's `timestamp` ([`crate::item`]'s rule) | the client's |
//! | `upstream_ms` | upstream, when the request arrives | upstream's host |
//! | `kinesis_ms` | Kinesis: the record's `approximateArrivalTimestamp` (ms) | Kinesis |
//! | `midstream_ms` | midstream, when its batch arrives | midstream's host |
//! | `stream_ms` | DynamoDB Streams: `ApproximateCreationDateTime` (whole **seconds** on AWS) | DynamoDB |
//! | `downstream_ms` | downstream, when its batch arrives | downstream's host |

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// How long the rows live: `expires` = now + one day (the tables' TTL attribute).
pub const ROW_TTL: Duration = Duration::from_secs(86_400);

/// The host clock, epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `expires` for a row written at `now_ms`: epoch seconds, [`ROW_TTL`] later.
pub fn expires(now_ms: u64) -> u64 {
    now_ms / 1000 + ROW_TTL.as_secs()
}

/// What midstream writes into the items table: the client's object and the first stamps.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: String,
    /// The client's object as JSON text.
    pub item: String,
    pub client_ms: f64,
    pub upstream_ms: u64,
    pub kinesis_ms: u64,
    pub midstream_ms: u64,
}

/// What downstream writes into the results table: every stamp of one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamps {
    pub client_ms: f64,
    pub upstream_ms: u64,
    pub kinesis_ms: u64,
    pub midstream_ms: u64,
    pub stream_ms: u64,
    pub downstream_ms: u64,
}

/// A table attribute: a string or a number (DynamoDB's `S` and `N`, the number as its text).
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    S(String),
    N(String),
}

/// One row of a table: its key `id` and the other attributes, `expires` included.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub attributes: Vec<(&'static str, Attr)>,
}

fn n(value: u64) -> Attr {
    Attr::N(value.to_string())
}

/// Milliseconds as a DynamoDB number: to the microsecond, without trailing zeros (`Display`
/// would write a tiny float with hundreds of digits, which DynamoDB refuses past 38).
fn ms(value: f64) -> Attr {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    Attr::N(if text.is_empty() || text == "-" { "0".to_owned() } else { text.to_owned() })
}

impl Row {
    /// The items table's row: `id`, `item`, `client_ms`, `upstream_ms`, `kinesis_ms`,
    /// `midstream_ms`, `expires`.
    pub fn item(row: &ItemRow) -> Row {
        Row {
            id: row.id.clone(),
            attributes: vec![
                ("item", Attr::S(row.item.clone())),
                ("client_ms", ms(row.client_ms)),
                ("upstream_ms", n(row.upstream_ms)),
                ("kinesis_ms", n(row.kinesis_ms)),
                ("midstream_ms", n(row.midstream_ms)),
                ("expires", n(expires(row.midstream_ms))),
            ],
        }
    }

    /// The results table's row: `id`, every stamp, `expires`.
    pub fn result(id: &str, stamps: &Stamps) -> Row {
        Row {
            id: id.to_owned(),
            attributes: vec![
                ("client_ms", ms(stamps.client_ms)),
                ("upstream_ms", n(stamps.upstream_ms)),
                ("kinesis_ms", n(stamps.kinesis_ms)),
                ("midstream_ms", n(stamps.midstream_ms)),
                ("stream_ms", n(stamps.stream_ms)),
                ("downstream_ms", n(stamps.downstream_ms)),
                ("expires", n(expires(stamps.downstream_ms))),
            ],
        }
    }

    /// The number attribute `name`, if there is one.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.attributes.iter().find_map(|(k, v)| match v {
            Attr::N(text) if *k == name => text.parse().ok(),
            _ => None,
        })
    }

    /// The string attribute `name`, if there is one.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|(k, v)| match v {
            Attr::S(text) if *k == name => Some(text.as_str()),
            _ => None,
        })
    }
}

/// The items table's row as the table's stream shows it (`NewImage` in DynamoDB JSON:
/// `{"id": {"S": "1"}, "client_ms": {"N": "1733450000000"}, …}`), back as the stamps downstream
/// starts from. Anything else is [`Error::Poison`].
pub fn item_row_from_image(image: &serde_json::Value) -> Result<ItemRow, Error> {
    let attribute = |name: &str, kind: &str| -> Result<&str, Error> {
        image
            .get(name)
            .and_then(|v| v.get(kind))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| Error::Poison(format!("NewImage has no {name} ({kind})")))
    };
    let number = |name: &str| -> Result<u64, Error> {
        let text = attribute(name, "N")?;
        // Every host stamp here is whole milliseconds.
        text.parse::<u64>()
            .map_err(|_| Error::Poison(format!("NewImage {name} = {text:?} is not whole milliseconds")))
    };
    let client = attribute("client_ms", "N")?;
    let client_ms = client
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .ok_or_else(|| Error::Poison(format!("NewImage client_ms = {client:?} is not a number of ms")))?;
    let id = attribute("id", "S")?;
    if id.is_empty() {
        return Err(Error::Poison("NewImage id is empty".into()));
    }
    Ok(ItemRow {
        id: id.to_owned(),
        item: attribute("item", "S").unwrap_or_default().to_owned(),
        client_ms,
        upstream_ms: number("upstream_ms")?,
        kinesis_ms: number("kinesis_ms")?,
        midstream_ms: number("midstream_ms")?,
    })
}

impl Stamps {
    /// The item's stamps once downstream has it: the row's, the stream record's and its own.
    pub fn of(row: &ItemRow, stream_ms: u64, downstream_ms: u64) -> Stamps {
        Stamps {
            client_ms: row.client_ms,
            upstream_ms: row.upstream_ms,
            kinesis_ms: row.kinesis_ms,
            midstream_ms: row.midstream_ms,
            stream_ms,
            downstream_ms,
        }
    }

    /// The latencies, ms, as the metrics are named: `EndToEnd` (downstream − client), `Server`
    /// (downstream − upstream), and the hops `UpstreamToKinesis`, `KinesisToMidstream`,
    /// `MidstreamToDownstream`, `MidstreamToStream` and `StreamToDownstream` (the last two
    /// second-precise on AWS, where `stream_ms` is whole seconds). Negative when clocks
    /// disagree: kept as they are, never clamped, so skew shows.
    pub fn latencies(&self) -> [(&'static str, f64); 7] {
        let ms = |later: u64, earlier: u64| later as f64 - earlier as f64;
        [
            ("EndToEnd", self.downstream_ms as f64 - self.client_ms),
            ("Server", ms(self.downstream_ms, self.upstream_ms)),
            ("UpstreamToKinesis", ms(self.kinesis_ms, self.upstream_ms)),
            ("KinesisToMidstream", ms(self.midstream_ms, self.kinesis_ms)),
            ("MidstreamToDownstream", ms(self.downstream_ms, self.midstream_ms)),
            ("MidstreamToStream", ms(self.stream_ms, self.midstream_ms)),
            ("StreamToDownstream", ms(self.downstream_ms, self.stream_ms)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ItemRow {
        ItemRow {
            id: "1".into(),
            item: r#"{"id":"1","message":"m","timestamp":1733450000}"#.into(),
            client_ms: 1_733_450_000_000.0,
            upstream_ms: 1_733_450_000_040,
            kinesis_ms: 1_733_450_000_055,
            midstream_ms: 1_733_450_000_120,
        }
    }

    #[test]
    fn every_latency_is_the_later_stamp_minus_the_earlier() {
        let stamps = Stamps::of(&row(), 1_733_450_000_000, 1_733_450_000_900);
        assert_eq!(
            stamps.latencies(),
            [
                ("EndToEnd", 900.0),
                ("Server", 860.0),
                ("UpstreamToKinesis", 15.0),
                ("KinesisToMidstream", 65.0),
                ("MidstreamToDownstream", 780.0),
                // The stream's stamp is whole seconds: before midstream's by up to a second.
                ("MidstreamToStream", -120.0),
                ("StreamToDownstream", 900.0),
            ]
        );
    }

    #[test]
    fn rows_carry_every_stamp_and_expire_a_day_later() {
        let item = Row::item(&row());
        assert_eq!(item.id, "1");
        assert_eq!(item.string("item"), Some(row().item.as_str()));
        assert_eq!(item.number("kinesis_ms"), Some(1_733_450_000_055.0));
        assert_eq!(item.number("expires"), Some(1_733_450_000.0 + 86_400.0));
        let result = Row::result("1", &Stamps::of(&row(), 1_733_450_001_000, 1_733_450_001_200));
        let names: Vec<_> = result.attributes.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "client_ms",
                "upstream_ms",
                "kinesis_ms",
                "midstream_ms",
                "stream_ms",
                "downstream_ms",
                "expires"
            ]
        );
        assert_eq!(result.number("expires"), Some(1_733_450_001.0 + 86_400.0));
    }

    #[test]
    fn client_milliseconds_are_written_to_the_microsecond_as_dynamodb_takes_them() {
        let text = |value: f64| match ms(value) {
            Attr::N(text) => text,
            Attr::S(_) => unreachable!(),
        };
        assert_eq!(text(1_796_525_120_004.0), "1796525120004");
        assert_eq!(text(1_796_525_120_004.5), "1796525120004.5");
        assert_eq!(text(1_796_525_120_004.123_2), "1796525120004.123");
        assert_eq!(text(5e-321), "0");
        assert_eq!(text(1e15 - 1.0), "999999999999999");
    }

    #[test]
    fn a_new_image_reads_back_as_the_row_midstream_wrote() {
        let image = serde_json::json!({
            "id": {"S": "1"},
            "item": {"S": row().item},
            "client_ms": {"N": "1733450000000"},
            "upstream_ms": {"N": "1733450000040"},
            "kinesis_ms": {"N": "1733450000055"},
            "midstream_ms": {"N": "1733450000120"},
            "expires": {"N": "1733536400"},
        });
        assert_eq!(item_row_from_image(&image).unwrap(), row());
        let mut broken = image.clone();
        broken["kinesis_ms"] = serde_json::json!({"S": "soon"});
        assert!(item_row_from_image(&broken).unwrap_err().is_poison());
        assert!(item_row_from_image(&serde_json::json!({})).unwrap_err().is_poison());
    }
}
