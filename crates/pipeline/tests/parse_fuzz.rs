//! Arbitrary bodies and records: never a panic; a body is accepted or refused with a 4xx, a
//! record is decoded or poison.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_refused_with_a_client_error(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = pipeline::item::parse(&body) {
            prop_assert!((400..500).contains(&e.status()), "{e} → {}", e.status());
        }
    }

    #[test]
    fn json_shaped_bodies_are_accepted_only_with_every_field_valid(
        id in proptest::option::of(prop_oneof![".{0,300}".prop_map(serde_json::Value::from), any::<i64>().prop_map(serde_json::Value::from)]),
        message in proptest::option::of(".{0,4}"),
        timestamp in proptest::option::of(prop_oneof![any::<f64>().prop_filter("finite", |f| f.is_finite()), 0.0..2e12_f64]),
    ) {
        let mut object = serde_json::Map::new();
        if let Some(id) = &id { object.insert("id".into(), id.clone()); }
        if let Some(m) = &message { object.insert("message".into(), m.clone().into()); }
        if let Some(t) = timestamp { object.insert("timestamp".into(), t.into()); }
        let body = serde_json::Value::Object(object).to_string();
        let valid = matches!(&id, Some(serde_json::Value::String(s)) if (1..=256).contains(&s.chars().count()))
            && message.as_deref().is_some_and(|m| !m.is_empty())
            && timestamp.and_then(pipeline::item::client_ms).is_some();
        match pipeline::item::parse(body.as_bytes()) {
            Ok(item) => {
                prop_assert!(valid, "accepted {body}");
                let data = pipeline::record::encode(&item, 1).unwrap();
                let back = pipeline::record::decode(&data).unwrap().item;
                prop_assert_eq!((&back.id, &back.json), (&item.id, &item.json));
                // serde_json parses floats to within an ulp (no `float_roundtrip`): far below a ms.
                prop_assert!((back.client_ms - item.client_ms).abs() <= item.client_ms * 1e-15);
            }
            Err(e) => {
                prop_assert!(!valid, "refused {body}: {e}");
                prop_assert_eq!(e.status(), 400);
            }
        }
    }

    #[test]
    fn arbitrary_record_data_is_decoded_or_poison(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = pipeline::record::decode(&data) {
            prop_assert!(e.is_poison(), "{e}");
        }
    }
}
