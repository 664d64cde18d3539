//! The HTTP contract of `POST /events`, on the router both hosts serve, with in-memory sinks:
//! the Lambda's direct delivery and the server's buffer answer the same way.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use ingest::batcher::{BufferConfig, Buffered};
use ingest::direct::{Direct, DirectConfig};
use ingest::metrics::MetricsSnapshot;
use ingest::sinks::{FaultSink, MemorySink};
use ingest::{BoxFuture, Ingest, IngestError, Receipt, SharedIngest, Sink, Submission};
use ingest_fn::cors::AllowedOrigins;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(ingest: &SharedIngest, request: Request<Body>) -> Reply {
    let response = ingest_fn::router(ingest.clone(), AllowedOrigins::Any).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply { status, headers, body }
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap()
}

fn event(i: usize) -> Value {
    json!({"type": "click", "timestamp": 1_700_000_000_000u64 + i as u64, "id": i})
}

fn direct(sink: Arc<dyn Sink>, invalid: Option<Arc<dyn Sink>>) -> SharedIngest {
    let config = DirectConfig { budget: Duration::from_millis(300), ..DirectConfig::for_sink(sink.as_ref()) };
    Arc::new(Direct::new(sink, invalid, config))
}

fn buffered(sink: Arc<dyn Sink>, invalid: Option<Arc<dyn Sink>>) -> (SharedIngest, Arc<Buffered>) {
    let config = BufferConfig {
        linger: Duration::from_millis(5),
        sync_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let b = Arc::new(Buffered::start(sink, invalid, config).unwrap());
    (b.clone(), b)
}

/// Both hosts, each with a fresh valid and invalid memory sink.
fn hosts() -> Vec<(&'static str, SharedIngest, Arc<MemorySink>, Arc<MemorySink>)> {
    let (s1, i1) = (Arc::new(MemorySink::default()), Arc::new(MemorySink::default()));
    let (s2, i2) = (Arc::new(MemorySink::default()), Arc::new(MemorySink::default()));
    vec![
        ("lambda", direct(s1.clone(), Some(i1.clone())), s1, i1),
        ("server", buffered(s2.clone(), Some(i2.clone())).0, s2, i2),
    ]
}

async fn eventually(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(check(), "condition not met within 2 s");
}

#[tokio::test]
async fn async_mode_accepts_valid_events_and_routes_invalid_ones() {
    for (host, ingest, sink, invalid) in hosts() {
        let body = json!([event(1), {"type": "", "timestamp": 1}, event(2)]).to_string();
        let r = send(&ingest, post("/events", body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{host}: {:?}", r.body);
        assert_eq!(r.body, json!({"accepted": 2, "invalid": 1}), "{host}");
        eventually(|| sink.events().len() == 2 && invalid.events().len() == 1).await;
        let line: Value = serde_json::from_slice(&invalid.events()[0]).unwrap();
        assert_eq!(line["index"], 1, "{host}");
        assert_eq!(line["error"], "`type` is empty", "{host}");
        let metrics = send(&ingest, Request::get("/metrics").body(Body::empty()).unwrap()).await;
        let text = metrics.body.as_str().unwrap().to_owned();
        assert!(text.contains("ingest_accepted_events_total 2"), "{host}: {text}");
        assert!(text.contains("ingest_invalid_events_total 1"), "{host}: {text}");
    }
}

#[tokio::test]
async fn sync_mode_is_all_or_nothing() {
    for (host, ingest, sink, invalid) in hosts() {
        let body = json!([event(1), {"timestamp": 1}, event(2), {"type": "t", "timestamp": "x"}]).to_string();
        let r = send(&ingest, post("/events?mode=sync", body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(
            r.body["errors"],
            json!([{"index": 1, "error": "`type` is missing"}, {"index": 3, "error": "`timestamp` must be a number (epoch milliseconds)"}]),
            "{host}"
        );
        let r = send(
            &ingest,
            Request::post("/events")
                .header("content-type", "application/json")
                .header("x-ingest-mode", "sync")
                .body(Body::from(event(7).to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"accepted": 1})), "{host}");
        // Acknowledged means already in the sink, with nothing of the refused request.
        let events = sink.events();
        assert_eq!(events.len(), 1, "{host}");
        assert_eq!(serde_json::from_slice::<Value>(&events[0]).unwrap(), event(7), "{host}");
        assert!(invalid.events().is_empty(), "{host}");
    }
}

#[tokio::test]
async fn bodies_that_are_not_events_get_a_clear_4xx_in_both_modes() {
    for (host, ingest, sink, _) in hosts() {
        for mode in ["async", "sync"] {
            let uri = format!("/events?mode={mode}");
            let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
                (
                    Request::post(&uri).body(Body::from(event(1).to_string())).unwrap(),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Content-Type",
                ),
                (
                    Request::post(&uri)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Body::from("type=click"))
                        .unwrap(),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "text/plain holding JSON",
                ),
                (
                    Request::post(&uri).header("content-type", "text/plain").body(Body::from("hi")).unwrap(),
                    StatusCode::BAD_REQUEST,
                    "not JSON",
                ),
                (post(&uri, ""), StatusCode::BAD_REQUEST, "empty"),
                (post(&uri, "{\"type\":"), StatusCode::BAD_REQUEST, "not JSON"),
                (post(&uri, "[]"), StatusCode::BAD_REQUEST, "empty"),
                (post(&uri, "42"), StatusCode::BAD_REQUEST, "not a number"),
                (post(&uri, vec![b' '; 1024 * 1024 + 10]), StatusCode::PAYLOAD_TOO_LARGE, "1 MiB"),
                (post(&uri, json!(vec![event(0); 501]).to_string()), StatusCode::BAD_REQUEST, "at most 500"),
            ];
            for (request, status, needle) in cases {
                let r = send(&ingest, request).await;
                assert_eq!(r.status, status, "{host} {mode}: {:?}", r.body);
                let message = r.body["error"].as_str().unwrap_or_default();
                assert!(
                    message.contains(needle) || (needle == "not a number" && message.contains("a number")),
                    "{host} {mode}: {message}"
                );
            }
        }
        let r = send(&ingest, post("/events?mode=later", event(1).to_string())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}");
        assert!(r.body["error"].as_str().unwrap().contains("sync or async"));
        let r = send(&ingest, Request::get("/events").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{host}");
        let r = send(&ingest, Request::get("/nope").body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{host}");
        let r = send(&ingest, Request::get("/healthz").body(Body::empty()).unwrap()).await;
        assert_eq!(r.body["status"], "pass", "{host}");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(sink.events().is_empty(), "{host}: nothing reaches the sink from a refused body");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn post_encoded(uri: &str, encoding: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, encoding)
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_gzip_body_is_decompressed_and_its_events_arrive_in_both_modes() {
    for (host, ingest, sink, _) in hosts() {
        let body = gzip(json!([event(1), event(2)]).to_string().as_bytes());
        let r = send(&ingest, post_encoded("/events", "gzip", body)).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::ACCEPTED, &json!({"accepted": 2, "invalid": 0})),
            "{host}"
        );
        let body = gzip(event(3).to_string().as_bytes());
        let r = send(&ingest, post_encoded("/events?mode=sync", "gzip", body)).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"accepted": 1})), "{host}");
        eventually(|| sink.events().len() == 3).await;
        let mut got: Vec<Value> = sink.events().iter().map(|e| serde_json::from_slice(e).unwrap()).collect();
        got.sort_by_key(|e| e["id"].as_u64());
        assert_eq!(got, vec![event(1), event(2), event(3)], "{host}");
        let r = send(&ingest, post_encoded("/events", "identity", event(4).to_string().into_bytes())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{host}: identity is the body as it is");
    }
}

#[tokio::test]
async fn a_body_in_an_encoding_other_than_gzip_is_415_naming_it_and_nothing_is_taken() {
    for (host, ingest, sink, _) in hosts() {
        // Plain JSON labelled br used to be accepted as if the label were not there.
        let r = send(&ingest, post_encoded("/events", "br", event(1).to_string().into_bytes())).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{host}: {:?}", r.body);
        let message = r.body["error"].as_str().unwrap();
        assert!(message.contains("\"br\"") && message.contains("gzip"), "{host}: {message}");
        // A gzip body that says nothing about it is not JSON; one that lies about it is not gzip.
        let r = send(&ingest, post("/events", gzip(event(2).to_string().as_bytes()))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}");
        let r = send(&ingest, post_encoded("/events", "gzip", event(3).to_string().into_bytes())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}");
        assert!(r.body["error"].as_str().unwrap().contains("not valid gzip"), "{host}: {:?}", r.body);
        assert_eq!(ingest.metrics_snapshot().accepted_events, 0, "{host}: nothing was submitted");
        assert!(sink.events().is_empty(), "{host}");
    }
}

#[tokio::test]
async fn a_gzip_bomb_is_413_after_1_mib_of_output_and_a_2_mib_body_is_more_than_1_mib() {
    for (host, ingest, _, _) in hosts() {
        // 64 MiB of spaces in about 64 KiB: refused once 1 MiB of it is out, never held whole.
        let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
        assert!(bomb.len() < 1024 * 1024);
        let r = send(&ingest, post_encoded("/events", "gzip", bomb)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{host}: {:?}", r.body);
        let message = r.body["error"].as_str().unwrap();
        assert!(message.contains("more than 1 MiB") && message.contains("decompressed"), "{host}: {message}");
        // The size of a body that is too large is not known (reading stops at the limit): the
        // message says so rather than name a size it does not have.
        let r = send(&ingest, post("/events", vec![b' '; 2 * 1024 * 1024])).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{host}");
        let message = r.body["error"].as_str().unwrap();
        assert!(message.contains("more than 1 MiB"), "{host}: {message}");
        assert!(!message.contains("1048577") && !message.contains("2097152"), "{host}: {message}");
        assert_eq!(ingest.metrics_snapshot().accepted_events, 0, "{host}: nothing was submitted");
    }
}

#[tokio::test]
async fn a_sink_that_stays_down_is_a_503_in_sync_mode_and_counted_in_async_mode_on_lambda() {
    let sink = Arc::new(FaultSink::new(MemorySink::default()));
    sink.down();
    let ingest = direct(sink.clone(), None);
    let r = send(&ingest, post("/events?mode=sync", json!([event(1), event(2)]).to_string())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body["error"].as_str().unwrap().contains("not acknowledged"), "{:?}", r.body);
    let r = send(&ingest, post("/events", json!([event(1), event(2)]).to_string())).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body, json!({"accepted": 0, "invalid": 0, "undelivered": 2}));
    let metrics = send(&ingest, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert!(metrics.body.as_str().unwrap().contains("ingest_undelivered_events_total 2"));
}

#[tokio::test]
async fn a_full_buffer_answers_503_with_retry_after_and_takes_nothing() {
    let sink = Arc::new(FaultSink::new(MemorySink::default()));
    sink.down();
    let config =
        BufferConfig { max_buffer_bytes: 4096, linger: Duration::from_millis(1), ..Default::default() };
    let buffered = Arc::new(Buffered::start(sink.clone(), None, config).unwrap());
    let ingest: SharedIngest = buffered.clone();
    let mut statuses = Vec::new();
    for i in 0..100 {
        let r = send(&ingest, post("/events", event(i).to_string())).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.headers.get(header::RETRY_AFTER).unwrap(), "1");
            assert!(r.body["error"].as_str().unwrap().contains("buffer is full"));
        }
        statuses.push(r.status);
    }
    let accepted = statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count();
    assert!(accepted > 0 && accepted < 100, "{accepted} accepted");
    sink.up();
    let report = buffered.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.dropped_records, 0);
    let inner = sink.inner();
    assert_eq!(inner.events().len(), accepted, "every 202 is delivered once the sink is back");
}

/// An [`Ingest`] whose metrics are fixed numbers.
struct Fixed(MetricsSnapshot);

impl Ingest for Fixed {
    fn submit(&self, _: Submission) -> BoxFuture<'_, Result<Receipt, IngestError>> {
        Box::pin(async { Err(IngestError::ShuttingDown) })
    }

    fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.0
    }

    fn describe(&self) -> String {
        "fixed".into()
    }
}

#[tokio::test]
async fn metrics_serves_the_prometheus_text_of_the_ports_numbers_and_nothing_else() {
    let numbers = MetricsSnapshot {
        accepted_events: 11,
        undelivered_events: 2,
        buffer_bytes: 77,
        flush_calls: 3,
        flush_buckets: [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        flush_nanos: 12_502_000_000,
        ..MetricsSnapshot::default()
    };
    let ingest: SharedIngest = Arc::new(Fixed(numbers));
    let response = ingest_fn::router(ingest, AllowedOrigins::Any)
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap());
    let response = response.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], ingest_fn::prometheus::CONTENT_TYPE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, ingest_fn::prometheus::render(&numbers).as_bytes());
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("\ningest_accepted_events_total 11\n"), "{text}");
    assert!(text.contains("\ningest_flush_seconds_bucket{le=\"10\"} 2\n"), "{text}");
    assert!(text.contains("\ningest_flush_seconds_sum 12.502\n"), "{text}");
}

/// The page origins of the CORS tests.
const SHOP: &str = "https://shop.example";
const BLOG: &str = "http://localhost:8080";
const ELSEWHERE: &str = "https://elsewhere.example";

async fn send_from(ingest: &SharedIngest, origins: &str, request: Request<Body>) -> Reply {
    let origins: AllowedOrigins = origins.parse().unwrap();
    let response = ingest_fn::router(ingest.clone(), origins).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Reply { status, headers, body }
}

/// A browser's preflight of a JSON `fetch` from `origin`.
fn preflight(origin: &str) -> Request<Body> {
    Request::options("/events")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type,content-encoding")
        .body(Body::empty())
        .unwrap()
}

/// `navigator.sendBeacon(url, string)` from `origin`: text/plain, no preflight.
fn beacon(origin: &str, uri: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from(body))
        .unwrap()
}

fn header_of(r: &Reply, name: header::HeaderName) -> Option<&str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_text_plain_body_that_is_json_is_taken_like_application_json_in_both_modes() {
    for (host, ingest, sink, _) in hosts() {
        let r = send(&ingest, beacon(SHOP, "/events", json!([event(1), event(2)]).to_string())).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::ACCEPTED, &json!({"accepted": 2, "invalid": 0})),
            "{host}"
        );
        let r = send(&ingest, beacon(SHOP, "/events?mode=sync", event(3).to_string())).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &json!({"accepted": 1})), "{host}");
        eventually(|| sink.events().len() == 3).await;
        // Not JSON: the very answer a JSON-labelled body gets.
        let text = send(&ingest, beacon(SHOP, "/events", "{\"type\":".into())).await;
        let json = send(&ingest, post("/events", "{\"type\":")).await;
        assert_eq!((text.status, &text.body), (StatusCode::BAD_REQUEST, &json.body), "{host}");
        assert!(text.body["error"].as_str().unwrap().contains("not JSON"), "{host}: {:?}", text.body);
        assert_eq!(ingest.metrics_snapshot().accepted_events, 3, "{host}");
    }
}

#[tokio::test]
async fn the_preflight_of_events_is_answered_204_with_the_method_the_headers_and_a_max_age() {
    for (host, ingest, sink, _) in hosts() {
        let r = send(&ingest, preflight(SHOP)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{host}: {:?}", r.body);
        assert_eq!(
            header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("*"),
            "{host}: the default, as the seed"
        );
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_METHODS), Some("POST"), "{host}");
        let allowed = header_of(&r, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
        for name in ["content-type", "content-encoding", "x-ingest-mode"] {
            assert!(allowed.split(", ").any(|h| h == name), "{host}: {name} in {allowed}");
        }
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_MAX_AGE), Some("7200"), "{host}");
        assert_eq!(header_of(&r, header::VARY), None, "{host}: `*` does not depend on the origin");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None, "{host}: never with `*`");
        // The answer to the POST itself, its errors included, may be read by the page.
        let r = send(&ingest, post("/events", event(1).to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_EXPOSE_HEADERS), Some("retry-after"), "{host}");
        let r = send(&ingest, post("/events", "[]")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"), "{host}");
        eventually(|| sink.events().len() == 1).await;
        assert_eq!(ingest.metrics_snapshot().accepted_events, 1, "{host}: a preflight submits nothing");
        // Only /events speaks CORS: the operations endpoints are for the operators.
        let r =
            send(&ingest, Request::get("/metrics").header(header::ORIGIN, SHOP).body(Body::empty()).unwrap())
                .await;
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "{host}");
        let mut healthz = preflight(SHOP);
        *healthz.uri_mut() = "/healthz".parse().unwrap();
        let r = send(&ingest, healthz).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "{host}");
    }
}

#[tokio::test]
async fn with_a_list_of_origins_an_allowed_origin_gets_itself_back_with_vary_origin() {
    let origins = format!("{SHOP}, {BLOG}");
    for (host, ingest, sink, _) in hosts() {
        for page in [SHOP, BLOG] {
            let r = send_from(&ingest, &origins, preflight(page)).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{host}");
            assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(page), "{host}");
            assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_METHODS), Some("POST"), "{host}");
            assert_eq!(header_of(&r, header::VARY), Some("origin"), "{host}");
            // A beacon sends credentials: a preflighted one (a JSON Blob) passes only with these.
            assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"), "{host}");
            let r = send_from(&ingest, &origins, beacon(page, "/events", event(1).to_string())).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{host}");
            assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(page), "{host}");
            assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), Some("true"), "{host}");
            assert_eq!(header_of(&r, header::VARY), Some("origin"), "{host}");
        }
        // Browsers send the origin in lower case; a configured `HTTPS://Shop.example` matches it.
        let r =
            send_from(&ingest, "HTTPS://Shop.example", beacon(SHOP, "/events", event(2).to_string())).await;
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(SHOP), "{host}");
        eventually(|| sink.events().len() == 3).await;
    }
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_headers_and_its_request_is_still_handled() {
    for (host, ingest, sink, _) in hosts() {
        let r = send_from(&ingest, SHOP, preflight(ELSEWHERE)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{host}: answered, but without permission");
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        ] {
            assert_eq!(header_of(&r, name.clone()), None, "{host}: {name}");
        }
        // The answer depends on the origin, so caches are told so even here.
        assert_eq!(header_of(&r, header::VARY), Some("origin"), "{host}");
        // A beacon needs no preflight: it is taken as the contract says; the page cannot read
        // the answer, and the events arrive.
        let r = send_from(&ingest, SHOP, beacon(ELSEWHERE, "/events", event(1).to_string())).await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::ACCEPTED, &json!({"accepted": 1, "invalid": 0})),
            "{host}"
        );
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_EXPOSE_HEADERS), None, "{host}");
        let r = send_from(&ingest, SHOP, beacon(ELSEWHERE, "/events", "not json".into())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{host}: refused as documented");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "{host}");
        // No Origin at all (curl, a server): no CORS headers either, and taken.
        let r = send_from(&ingest, SHOP, post("/events", event(2).to_string())).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{host}");
        assert_eq!(header_of(&r, header::ACCESS_CONTROL_ALLOW_ORIGIN), None, "{host}");
        eventually(|| sink.events().len() == 2).await;
    }
}
