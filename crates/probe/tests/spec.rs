//! Specs from Lambda events and from the CLI's input: defaults, both event shapes, and a clear
//! message for every way a spec can be wrong.

use std::time::{Duration, Instant};

use probe::{Method, ProbeError, Spec, SpecInput};
use serde_json::{Value, json};

#[test]
fn the_originals_event_shape_is_accepted() {
    let spec = Spec::from_event(json!({"url": "https://example.com/hits", "hits": 1000})).unwrap();
    assert_eq!(spec.url().as_str(), "https://example.com/hits");
    assert_eq!(spec.count(), 1000);
    assert_eq!((spec.concurrency(), spec.warmup(), spec.method()), (1, 1, Method::Get));
    assert_eq!(spec.timeout(), Duration::from_secs(10));
    assert!(!spec.samples());
}

#[test]
fn the_full_event_shape_sets_every_field() {
    let spec = Spec::from_event(json!({
        "url": "http://10.0.0.1:8000/hits", "count": 500, "concurrency": 8, "warmup": 0,
        "method": "HEAD", "timeout_ms": 2500, "samples": true
    }))
    .unwrap();
    assert_eq!((spec.count(), spec.concurrency(), spec.warmup()), (500, 8, 0));
    assert_eq!(
        (spec.method(), spec.timeout(), spec.samples()),
        (Method::Head, Duration::from_millis(2500), true)
    );
}

#[test]
fn defaults_fill_what_is_left_out_and_nulls_count_as_left_out() {
    let spec =
        Spec::from_event(json!({"url": "http://h/", "concurrency": 4, "warmup": null, "method": null}))
            .unwrap();
    assert_eq!((spec.count(), spec.concurrency(), spec.warmup(), spec.method()), (100, 4, 4, Method::Get));
}

#[test]
fn the_cli_input_validates_the_same_way() {
    let input =
        SpecInput { url: Some("https://example.com/hits".into()), count: Some(10), ..Default::default() };
    assert_eq!(
        input.clone().validate().unwrap(),
        Spec::from_event(json!({"url": "https://example.com/hits", "count": 10})).unwrap()
    );
    let bad = SpecInput { concurrency: Some(0), ..input };
    assert_eq!(bad.validate().unwrap_err().to_string(), "concurrency: must be from 1 to 256, got 0");
}

/// (event, field named, the whole message)
fn invalid_events() -> Vec<(Value, &'static str, &'static str)> {
    let url = "https://example.com/hits";
    vec![
        (
            json!([1, 2]),
            "event",
            "event: must be a JSON object like {\"url\": \"https://example.com/hits\", \"count\": 100}, got an array",
        ),
        (
            json!("https://example.com"),
            "event",
            "event: must be a JSON object like {\"url\": \"https://example.com/hits\", \"count\": 100}, got a string",
        ),
        (json!({}), "url", "url: missing; give the URL to probe, e.g. \"https://example.com/hits\""),
        (
            json!({"hits": 10}),
            "url",
            "url: missing; give the URL to probe, e.g. \"https://example.com/hits\"",
        ),
        (json!({"url": 42}), "url", "url: must be a string, got a number"),
        (
            json!({"url": "example.com/hits"}),
            "url",
            "url: \"example.com/hits\" is not a URL: relative URL without a base",
        ),
        (
            json!({"url": "ftp://example.com/hits"}),
            "url",
            "url: scheme must be http or https, got \"ftp\" in \"ftp://example.com/hits\"",
        ),
        (
            json!({"url": "file:///etc/passwd"}),
            "url",
            "url: scheme must be http or https, got \"file\" in \"file:///etc/passwd\"",
        ),
        (json!({"url": url, "count": 0}), "count", "count: must be from 1 to 100000, got 0"),
        (json!({"url": url, "count": 100_001}), "count", "count: must be from 1 to 100000, got 100001"),
        (json!({"url": url, "count": -3}), "count", "count: must be from 1 to 100000, got -3"),
        (json!({"url": url, "count": 2.5}), "count", "count: must be a whole number, got 2.5"),
        (json!({"url": url, "count": "10"}), "count", "count: must be a whole number, got a string"),
        (json!({"url": url, "count": u64::MAX}), "count", "count: 18446744073709551615 is far too large"),
        (json!({"url": url, "hits": 0}), "hits", "hits: must be from 1 to 100000, got 0"),
        (
            json!({"url": url, "hits": 5, "count": 5}),
            "hits",
            "hits: give count or hits (the original's name for it), not both",
        ),
        (json!({"url": url, "concurrency": 0}), "concurrency", "concurrency: must be from 1 to 256, got 0"),
        (
            json!({"url": url, "count": 1000, "concurrency": 257}),
            "concurrency",
            "concurrency: must be from 1 to 256, got 257",
        ),
        (
            json!({"url": url, "count": 10, "concurrency": 11}),
            "concurrency",
            "concurrency: must be at most count (10), got 11",
        ),
        (json!({"url": url, "warmup": -1}), "warmup", "warmup: must be from 0 to 100000, got -1"),
        (json!({"url": url, "method": "POST"}), "method", "method: must be GET or HEAD, got \"POST\""),
        (json!({"url": url, "method": 1}), "method", "method: must be a string, got a number"),
        (json!({"url": url, "timeout_ms": -5}), "timeout_ms", "timeout_ms: must be from 1 to 300000, got -5"),
        (json!({"url": url, "timeout_ms": 0}), "timeout_ms", "timeout_ms: must be from 1 to 300000, got 0"),
        (json!({"url": url, "samples": "yes"}), "samples", "samples: must be true or false, got a string"),
        (
            json!({"url": url, "concurency": 4}),
            "concurency",
            "concurency: unknown field; accepted: url, count, hits, concurrency, warmup, method, timeout_ms, samples",
        ),
    ]
}

#[test]
fn every_invalid_event_gives_a_clear_message_naming_its_field() {
    for (event, field, message) in invalid_events() {
        let error = Spec::from_event(event.clone()).expect_err(&event.to_string());
        assert!(matches!(error, ProbeError::Invalid { .. }), "{event}: {error:?}");
        assert_eq!(error.field(), Some(field), "{event}");
        assert_eq!(error.to_string(), message, "{event}");
    }
}

#[test]
fn the_method_is_case_insensitive() {
    let spec = Spec::from_event(json!({"url": "http://h/", "method": "get"})).unwrap();
    assert_eq!(spec.method(), Method::Get);
}

#[test]
fn the_limits_themselves_are_accepted() {
    let spec = Spec::from_event(json!({
        "url": "http://h/", "count": 100_000, "concurrency": 256, "warmup": 100_000, "timeout_ms": 300_000
    }))
    .unwrap();
    assert_eq!((spec.count(), spec.concurrency(), spec.warmup()), (100_000, 256, 100_000));
    let one =
        Spec::from_event(json!({"url": "http://h/", "count": 1, "concurrency": 1, "timeout_ms": 1})).unwrap();
    assert_eq!((one.count(), one.warmup()), (1, 1));
}

#[test]
fn a_deadline_leaves_room_for_the_last_requests_timeout() {
    let spec = Spec::from_event(json!({"url": "http://h/", "timeout_ms": 10_000})).unwrap();
    assert_eq!(spec.stop_at(), None);
    let now = Instant::now();
    let far = spec.clone().with_deadline(now + Duration::from_secs(300)).stop_at().unwrap();
    assert_eq!(far, now + Duration::from_millis(300_000 - 10_500));
    // Less time left than a timeout: stop at half of it rather than at once.
    let near = spec.with_deadline(now + Duration::from_secs(4)).stop_at().unwrap();
    assert!(near >= now + Duration::from_millis(1990) && near <= now + Duration::from_millis(2010));
}
