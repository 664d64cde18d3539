//! The router behind real HTTP API (v2) events, putting on a Kinesis stream in moto: an item is
//! on the stream before the 200, bad bodies are refused with a 4xx and put nothing, a stalled
//! stream is a 503 with `Retry-After`.

use std::time::{Duration, Instant};

use lambda_http::{Body, Request};
use pipeline::SharedStream;
use serde_json::{Value, json};
use testkit::moto;
use tower::ServiceExt;

/// The fixture, with this method, path, content type and body.
fn request(method: &str, path: &str, content_type: Option<&str>, body: &str) -> Request {
    let path_file = format!("{}/tests/fixtures/http-api-post-items.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(&path_file).unwrap()).unwrap();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["routeKey"] = format!("{method} {path}").into();
    event["body"] = body.into();
    match content_type {
        Some(t) => event["headers"]["content-type"] = t.into(),
        None => {
            event["headers"].as_object_mut().unwrap().remove("content-type");
        }
    }
    lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    allow: Option<String>,
    body: Value,
}

async fn call(stream: &SharedStream, request: Request) -> Answer {
    let response = pipeline_upstream::lambda::service(stream.clone()).oneshot(request).await.unwrap();
    let header =
        |name| response.headers().get(name).map(|v: &axum::http::HeaderValue| v.to_str().unwrap().to_owned());
    let (status, retry_after, allow) = (response.status().as_u16(), header("retry-after"), header("allow"));
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    Answer { status, retry_after, allow, body }
}

/// A stream in moto and the adapter on it: `(stream, kinesis client, name)`.
async fn stream() -> Option<(SharedStream, aws_sdk_kinesis::Client, String)> {
    let config = moto::config().await?;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let name = moto::kinesis_stream(&kinesis, "pipeline-upstream", 1).await;
    let stream = pipeline::open_stream(&name, &aws_setup::Aws::loaded(config)).await.unwrap();
    Some((stream, kinesis, name))
}

const SEED_ITEM: &str = r#"{"id":"1","message":"Hello World","timestamp":1796525120}"#;

#[tokio::test]
async fn an_item_is_on_the_stream_keyed_by_its_id_before_the_200_success() {
    let Some((stream, kinesis, name)) = stream().await else { return };
    let before = pipeline::stamps::now_ms();
    let answer = call(&stream, request("POST", "/items", Some("application/json"), SEED_ITEM)).await;
    let after = pipeline::stamps::now_ms();
    assert_eq!((answer.status, answer.body), (200, json!({"message": "success"})));
    let records = moto::kinesis_records(&kinesis, &name).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "1", "the partition key is the id");
    let record = pipeline::record::decode(&records[0].1).unwrap();
    assert_eq!(record.item.json, SEED_ITEM, "the client's object verbatim");
    assert_eq!(record.item.client_ms, 1_796_525_120_000.0);
    assert!((before..=after).contains(&record.upstream_ms), "{before} ≤ {} ≤ {after}", record.upstream_ms);
}

#[tokio::test]
async fn the_seeds_post_to_the_api_root_is_taken_like_post_items() {
    let Some((stream, kinesis, name)) = stream().await else { return };
    let answer =
        call(&stream, request("POST", "/", Some("application/json; charset=utf-8"), SEED_ITEM)).await;
    assert_eq!((answer.status, answer.body), (200, json!({"message": "success"})));
    assert_eq!(moto::kinesis_records(&kinesis, &name).await.len(), 1);
}

#[tokio::test]
async fn bad_bodies_are_refused_with_a_clear_4xx_and_nothing_is_put() {
    let Some((stream, kinesis, name)) = stream().await else { return };
    let json_type = Some("application/json");
    let huge = format!(r#"{{"id":"1","message":"m","timestamp":1,"pad":"{}"}}"#, "x".repeat(1024 * 1024));
    let cases: [(Option<&str>, &str, u16, &str); 9] = [
        (Some("text/plain"), SEED_ITEM, 415, "content type must be application/json, got text/plain"),
        (None, SEED_ITEM, 415, "content type must be application/json, got none"),
        (json_type, &huge, 413, "body: larger than 1048576 bytes"),
        (json_type, "", 400, "body: not JSON"),
        (json_type, "[1,2]", 400, "body: must be a JSON object"),
        (
            json_type,
            r#"{"id":"","message":"m","timestamp":1}"#,
            400,
            "id: must be a string of 1 to 256 characters",
        ),
        (json_type, r#"{"id":"1","timestamp":1}"#, 400, "message: must be a non-empty string"),
        (
            json_type,
            r#"{"id":"1","message":"m","timestamp":"now"}"#,
            400,
            "timestamp: must be a number greater than 0",
        ),
        (
            json_type,
            r#"{"id":"1","message":"m","timestamp":-3}"#,
            400,
            "timestamp: must be a number greater than 0",
        ),
    ];
    for (content_type, body, status, message) in cases {
        let answer = call(&stream, request("POST", "/items", content_type, body)).await;
        let got = answer.body["message"].as_str().unwrap_or_default().to_owned();
        assert_eq!(answer.status, status, "{content_type:?} {:.60}: {got}", body);
        assert!(got.starts_with(message), "{got:?} should start with {message:?}");
        assert_eq!(answer.retry_after, None);
    }
    assert!(moto::kinesis_records(&kinesis, &name).await.is_empty(), "nothing was put");
}

#[tokio::test]
async fn other_methods_are_405_with_allow_post_and_other_paths_404() {
    let stream: SharedStream = std::sync::Arc::new(pipeline::memory::MemoryStream::new());
    for path in ["/items", "/"] {
        let answer = call(&stream, request("GET", path, None, "")).await;
        assert_eq!((answer.status, answer.allow.as_deref()), (405, Some("POST")), "GET {path}");
        assert_eq!(answer.body["message"], json!("method GET not allowed; POST /items"));
    }
    let answer = call(&stream, request("POST", "/events", Some("application/json"), SEED_ITEM)).await;
    assert_eq!((answer.status, answer.body), (404, json!({"message": "not found; POST /items"})));
}

#[tokio::test]
async fn a_stalled_stream_is_a_503_with_retry_after_within_the_timeouts() {
    let endpoint = testkit::stalled::Endpoint::start();
    let Some(aws) = endpoint.aws(testkit::stalled::SHORT) else { return };
    let stream = pipeline::open_stream("items", &aws).await.unwrap();
    let started = Instant::now();
    let answer = call(&stream, request("POST", "/items", Some("application/json"), SEED_ITEM)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answers instead of hanging: {:?}",
        started.elapsed()
    );
    assert_eq!((answer.status, answer.retry_after.as_deref()), (503, Some("1")));
    let message = answer.body["message"].as_str().unwrap();
    assert!(message.starts_with("kinesis: PutRecord: "), "{message}");
    assert!(endpoint.accepted() >= 1);
}

#[test]
fn the_fixture_is_an_http_api_event_for_post_items() {
    let request = request("POST", "/items", Some("application/json"), SEED_ITEM);
    assert_eq!(request.uri().path(), "/items");
    assert!(matches!(request.body(), Body::Text(t) if t == SEED_ITEM));
}
