//! Real API Gateway REST (v1) and HTTP API (v2) events through the service the Lambda runs
//! ([`ingest_fn::lambda::service`]), stage prefixes and query strings included; and why it strips
//! stages itself rather than rely on lambda_http's `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` (see
//! `edge::strip_stage`).

use std::sync::Arc;

use http_body_util::BodyExt;
use ingest::SharedIngest;
use ingest::direct::{Direct, DirectConfig};
use ingest::sinks::MemorySink;
use ingest_fn::cors::AllowedOrigins;
use serde_json::{Value, json};
use tower::ServiceExt;

const NAMED: &str = "apigw_v2_proxy_request_with_stage_in_path.json";
const DEFAULT: &str = "apigw_v2_proxy_request.json";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// API Gateway REST (v1) `POST path?mode=<mode>` on stage `test` (in `requestContext.stage`).
fn rest_api_event(path: &str, mode: Option<&str>, body: &str) -> Value {
    let mut e = fixture("apigw_proxy_request.json");
    e["httpMethod"] = json!("POST");
    e["path"] = json!(path);
    e["resource"] = json!(path);
    e["headers"] = json!({"Content-Type": "application/json"});
    e["multiValueHeaders"] = json!({"Content-Type": ["application/json"]});
    e["queryStringParameters"] = mode.map_or(json!({}), |m| json!({"mode": m}));
    e["multiValueQueryStringParameters"] = mode.map_or(json!({}), |m| json!({"mode": [m]}));
    e["body"] = json!(body);
    e["isBase64Encoded"] = json!(false);
    e
}

/// HTTP API (v2) `POST raw_path?query` from fixture `file`: a stage that is not `$default` is
/// part of `rawPath`.
fn http_api_event(file: &str, raw_path: &str, query: &str, body: &str) -> Value {
    let mut e = fixture(file);
    e["rawPath"] = json!(raw_path);
    e["rawQueryString"] = json!(query);
    e["queryStringParameters"] = match query.split_once('=') {
        Some((k, v)) => json!({ k: v }),
        None => json!({}),
    };
    e["requestContext"]["http"]["method"] = json!("POST");
    e["requestContext"]["http"]["path"] = json!(raw_path);
    e["headers"] = json!({"content-type": "application/json"});
    e["body"] = json!(body);
    e.as_object_mut().unwrap().remove("cookies");
    e
}

fn lambda() -> (SharedIngest, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::default());
    let config = DirectConfig::for_sink(sink.as_ref());
    (Arc::new(Direct::new(sink.clone(), None, config)), sink)
}

/// The request lambda_http makes of `event`, before any of our code runs.
fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// `event` through the Lambda's service: status and body.
async fn invoke(ingest: &SharedIngest, event: &Value) -> (u16, String) {
    let response = ingest_fn::lambda::service(ingest.clone(), AllowedOrigins::Any)
        .oneshot(request(event))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn valid() -> String {
    json!({"type": "click", "timestamp": 1_700_000_000_000u64}).to_string()
}

fn one_invalid() -> String {
    json!([{"type": "click", "timestamp": 1_700_000_000_000u64}, {"type": "x"}]).to_string()
}

#[tokio::test]
async fn a_rest_api_event_on_a_stage_reaches_events_with_its_query() {
    let (ingest, sink) = lambda();
    let (status, body) = invoke(&ingest, &rest_api_event("/events", Some("sync"), &valid())).await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":1}"#));
    // `mode=sync` arrived: all-or-nothing.
    let (status, _) = invoke(&ingest, &rest_api_event("/events", Some("sync"), &one_invalid())).await;
    assert_eq!(status, 400);
    let (status, body) = invoke(&ingest, &rest_api_event("/events", None, &one_invalid())).await;
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1,"invalid":1}"#));
    assert_eq!(sink.events().len(), 2);
}

#[tokio::test]
async fn an_http_api_event_on_the_default_stage_reaches_events_with_its_query() {
    let (ingest, _) = lambda();
    let (status, body) = invoke(&ingest, &http_api_event(DEFAULT, "/events", "mode=sync", &valid())).await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":1}"#));
    let (status, _) = invoke(&ingest, &http_api_event(DEFAULT, "/events", "mode=sync", &one_invalid())).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_http_api_event_with_the_stage_in_the_path_reaches_events_with_its_query() {
    let (ingest, sink) = lambda();
    let (status, body) = invoke(&ingest, &http_api_event(NAMED, "/Prod/events", "mode=sync", &valid())).await;
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":1}"#));
    let (status, _) =
        invoke(&ingest, &http_api_event(NAMED, "/Prod/events", "mode=sync", &one_invalid())).await;
    assert_eq!(status, 400);
    let (status, body) = invoke(&ingest, &http_api_event(NAMED, "/Prod/events", "", &valid())).await;
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1,"invalid":0}"#));
    assert_eq!(sink.events().len(), 2);
}

#[tokio::test]
async fn paths_that_only_look_like_a_stage_are_not_stripped() {
    let (ingest, sink) = lambda();
    let (status, _) = invoke(&ingest, &http_api_event(NAMED, "/Prodevents", "", &valid())).await;
    assert_eq!(status, 404);
    let (status, _) = invoke(&ingest, &http_api_event(NAMED, "/prod/events", "", &valid())).await;
    assert_eq!(status, 404, "stage names are case-sensitive");
    let (status, _) = invoke(&ingest, &rest_api_event("/testevents", None, &valid())).await;
    assert_eq!(status, 404);
    assert!(sink.events().is_empty());
}

/// The page's origin in the CORS tests.
const PAGE: &str = "https://shop.example";

/// `method` on `/events` as a Function URL sends it (the HTTP API's v2 payload, from the
/// function's own `lambda-url` domain), from a page on [`PAGE`].
fn function_url_event(method: &str, headers: Value, body: &str) -> Value {
    let mut e = http_api_event(DEFAULT, "/events", "", body);
    e["routeKey"] = json!("$default");
    e["requestContext"]["domainName"] = json!("abcdefghij.lambda-url.eu-west-2.on.aws");
    e["requestContext"]["domainPrefix"] = json!("abcdefghij");
    e["requestContext"]["http"]["method"] = json!(method);
    e["headers"] = headers;
    e
}

/// CORS is the router's on Lambda too: a Function URL and the HTTP API (neither has a CORS
/// configuration of its own in the template) pass the preflight and the page's beacon to the
/// function, whose answers carry the headers the server's do.
#[tokio::test]
async fn a_preflight_and_a_beacon_from_an_allowed_page_are_answered_with_cors_by_the_function() {
    let (ingest, sink) = lambda();
    let service = || ingest_fn::lambda::service(ingest.clone(), PAGE.parse().unwrap());
    let preflight = json!({
        "origin": PAGE,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    });
    let mut through_http_api = function_url_event("OPTIONS", preflight.clone(), "");
    through_http_api["requestContext"] = fixture(DEFAULT)["requestContext"].clone();
    through_http_api["requestContext"]["http"]["method"] = json!("OPTIONS");
    through_http_api["routeKey"] = json!("ANY /events");
    for event in [function_url_event("OPTIONS", preflight, ""), through_http_api] {
        let response = service().oneshot(request(&event)).await.unwrap();
        assert_eq!(response.status(), 204);
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], PAGE);
        assert_eq!(headers["access-control-allow-methods"], "POST");
        assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("content-type"));
        assert_eq!(headers["vary"], "origin");
    }
    let beacon = json!({"origin": PAGE, "content-type": "text/plain;charset=UTF-8"});
    let response = service().oneshot(request(&function_url_event("POST", beacon, &valid()))).await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["access-control-allow-origin"], PAGE);
    let elsewhere = json!({"origin": "https://elsewhere.example", "content-type": "text/plain"});
    let response =
        service().oneshot(request(&function_url_event("POST", elsewhere, &valid()))).await.unwrap();
    assert_eq!(response.status(), 202, "another origin's beacon is still taken");
    assert!(response.headers().get("access-control-allow-origin").is_none());
    assert_eq!(sink.events().len(), 2);
}

/// lambda_http 1.3.2 reads this on every request (`env::var` in `apigw_path_with_stage`).
const IGNORE_STAGE: &str = "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH";

/// The variable covers the REST API but not an HTTP API on a named stage, whose `rawPath`
/// carries the stage itself: so `edge::strip_stage` stays. Setting the variable here would reach
/// every other test of this process, so its half runs in a child process of this test binary,
/// started with the variable set: all of this file again (every test above must pass that way
/// too), this test taking its other branch there.
#[tokio::test]
async fn the_ignore_stage_variable_leaves_a_named_http_api_stage_in_the_path() {
    let path = |event: &Value| request(event).uri().path().to_owned();
    if std::env::var_os(IGNORE_STAGE).is_none() {
        // As deployed: lambda_http puts the stage in front of both; strip_stage takes it off.
        assert_eq!(path(&rest_api_event("/events", None, "")), "/test/events");
        assert_eq!(path(&http_api_event(NAMED, "/Prod/events", "", "")), "/Prod/events");
        let this = "the_ignore_stage_variable_leaves_a_named_http_api_stage_in_the_path";
        testkit::rerun_with(IGNORE_STAGE, "true", this);
        return;
    }
    // The REST path arrives without its stage: the variable is enough there...
    assert_eq!(path(&rest_api_event("/events", None, "")), "/events");
    assert_eq!(path(&http_api_event(DEFAULT, "/events", "", "")), "/events");
    // ...but the HTTP API's named stage stays, and the router alone does not find the route.
    let named = http_api_event(NAMED, "/Prod/events", "mode=sync", &valid());
    assert_eq!(path(&named), "/Prod/events");
    let (ingest, _) = lambda();
    let bare = ingest_fn::router(ingest.clone(), AllowedOrigins::Any).oneshot(request(&named)).await.unwrap();
    assert_eq!(bare.status(), 404);
    // The service as deployed (with strip_stage) reaches it either way.
    assert_eq!(invoke(&ingest, &named).await.0, 200);
    assert_eq!(invoke(&ingest, &rest_api_event("/events", Some("sync"), &valid())).await.0, 200);
}
