//! The parser and validator against arbitrary input (proptest): never a panic, and every
//! accepted body accounts for each of its events exactly once.

use ingest::event::{self, MAX_EVENTS};
use proptest::prelude::*;

/// JSON-ish text: the bytes a parser trips on, in random order.
fn jsonish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        "\\u",
        "\\ud800",
        "type",
        "\"type\"",
        "\"timestamp\"",
        "0",
        "-1",
        "1e999",
        "1.5",
        "null",
        "true",
        " ",
        "\n",
        "\t",
        "é",
        "\u{0}",
        "\"x\"",
    ]);
    prop::collection::vec(pieces, 0..64).prop_map(|v| v.concat())
}

/// Well-formed events, some valid, some not: (event JSON, whether it should be valid).
fn event() -> impl Strategy<Value = (serde_json::Value, bool)> {
    let kind = prop_oneof![
        Just(None),
        Just(Some(serde_json::json!(""))),
        Just(Some(serde_json::json!(7))),
        "[a-z é\"\\\\\n]{1,130}".prop_map(|s| Some(serde_json::json!(s))),
    ];
    let timestamp = prop_oneof![
        Just(None),
        Just(Some(serde_json::json!("1"))),
        Just(Some(serde_json::json!(-3))),
        (0u64..u64::MAX).prop_map(|t| Some(serde_json::json!(t))),
        (0.0f64..1e15).prop_map(|t| Some(serde_json::json!(t))),
    ];
    let extra = prop::collection::btree_map("[a-z]{1,8}", "[ -~]{0,20}", 0..4);
    (kind, timestamp, extra).prop_map(|(kind, timestamp, extra)| {
        let mut object = serde_json::Map::new();
        for (k, v) in extra {
            if k != "type" && k != "timestamp" {
                object.insert(k, serde_json::json!(v));
            }
        }
        let valid = matches!((&kind, &timestamp),
            (Some(serde_json::Value::String(k)), Some(t))
                if !k.is_empty() && k.chars().count() <= 128 && t.as_f64().is_some_and(|t| t >= 0.0));
        if let Some(k) = kind {
            object.insert("type".into(), k);
        }
        if let Some(t) = timestamp {
            object.insert("timestamp".into(), t);
        }
        (serde_json::Value::Object(object), valid)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_are_an_answer_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = event::parse(&bytes);
    }

    #[test]
    fn any_jsonish_text_is_an_answer_never_a_panic(text in jsonish()) {
        if let Ok(parsed) = event::parse(text.as_bytes()) {
            for line in &parsed.valid {
                prop_assert!(serde_json::from_slice::<serde_json::Value>(line).is_ok());
                prop_assert!(!line.contains(&b'\n'));
            }
        }
    }

    #[test]
    fn every_event_of_a_body_is_either_valid_or_reported_once(
        events in prop::collection::vec(event(), 1..40),
        pretty in any::<bool>(),
    ) {
        let values: Vec<_> = events.iter().map(|(v, _)| v.clone()).collect();
        let body = if pretty { serde_json::to_string_pretty(&values) } else { serde_json::to_string(&values) }.unwrap();
        let parsed = event::parse(body.as_bytes()).unwrap();
        prop_assert_eq!(parsed.total(), events.len());
        let expected_valid = events.iter().filter(|(_, valid)| *valid).count();
        prop_assert_eq!(parsed.valid.len(), expected_valid);
        // Valid events come out as one line each, byte for byte what was sent (compacted).
        let sent_valid: Vec<String> =
            events.iter().filter(|(_, v)| *v).map(|(e, _)| serde_json::to_string(e).unwrap()).collect();
        let got: Vec<String> = parsed.valid.iter().map(|l| String::from_utf8(l.to_vec()).unwrap()).collect();
        prop_assert_eq!(got, sent_valid);
        for invalid in &parsed.invalid {
            prop_assert!(!events[invalid.index].1);
            let sent = serde_json::to_string(&events[invalid.index].0).unwrap();
            prop_assert_eq!(&invalid.event[..], sent.as_bytes());
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&invalid.to_line()).is_ok());
        }
        prop_assert!(parsed.total() <= MAX_EVENTS);
    }
}
