//! The built `ingest` bootstrap under `cargo lambda watch` (its Lambda Runtime API emulator),
//! putting into moto's Firehose → S3: real API Gateway events through the Invoke API, and
//! plain HTTP through the emulator's Function URL endpoint (a CORS preflight and a beacon too).

use std::time::Duration;

use serde_json::{Value, json};
use testkit::moto;

mod common;
use common::{event, eventually, ids, s3_lines};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// HTTP API (v2) `POST /events?<query>` with a JSON body.
fn http_api_event(query: &str, body: &str) -> Value {
    let mut e = fixture("apigw_v2_proxy_request.json");
    e["rawPath"] = json!("/events");
    e["rawQueryString"] = json!(query);
    e["queryStringParameters"] = match query.split_once('=') {
        Some((k, v)) => json!({ k: v }),
        None => json!({}),
    };
    e["requestContext"]["http"]["method"] = json!("POST");
    e["requestContext"]["http"]["path"] = json!("/events");
    e["headers"] = json!({"content-type": "application/json"});
    e["body"] = json!(body);
    e
}

/// API Gateway REST (v1) `POST /events?mode=sync` on a named stage.
fn rest_api_event(body: &str) -> Value {
    let mut e = fixture("apigw_proxy_request.json");
    e["httpMethod"] = json!("POST");
    e["path"] = json!("/events");
    e["resource"] = json!("/events");
    e["headers"] = json!({"Content-Type": "application/json"});
    e["multiValueHeaders"] = json!({"Content-Type": ["application/json"]});
    e["queryStringParameters"] = json!({"mode": "sync"});
    e["multiValueQueryStringParameters"] = json!({"mode": ["sync"]});
    e["body"] = json!(body);
    e["isBase64Encoded"] = json!(false);
    e
}

/// The one page origin the function allows in this test.
const SHOP: &str = "https://shop.example";

async fn invoke(client: &reqwest::Client, url: &str, event: &Value) -> Value {
    let response = client.post(url).body(event.to_string()).send().await.unwrap();
    assert!(response.status().is_success(), "invocation failed: {}", response.text().await.unwrap());
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_puts_events_into_firehose_under_cargo_lambda_watch() {
    if !testkit::emulator::available() {
        return;
    }
    let Some(config) = moto::config().await else { return };
    let s3 = aws_setup::s3_client(&config);
    let firehose = aws_sdk_firehose::Client::new(&config);
    let bucket = moto::bucket(&s3, "ingest-lambda").await;
    let events = moto::delivery_stream(&firehose, &bucket, "events/").await;
    let invalid = moto::delivery_stream(&firehose, &bucket, "invalid/").await;
    let emulator = testkit::emulator::Emulator::start(
        env!("CARGO_BIN_EXE_ingest"),
        "_",
        &[
            ("INGEST_SINK", &format!("firehose:{events}")),
            ("INGEST_INVALID_SINK", &format!("firehose:{invalid}")),
            ("INGEST_ALLOWED_ORIGINS", SHOP),
        ],
    )
    .expect("cargo-lambda is there (checked above)");
    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let invoke_url = emulator.invoke_url("_");

    // HTTP API: three events and one invalid, async.
    let body = json!([event(0), event(1), {"type": "x"}, event(2)]).to_string();
    let reply = invoke(&client, &invoke_url, &http_api_event("", &body)).await;
    assert_eq!(reply["statusCode"], 202, "{reply}");
    assert_eq!(
        serde_json::from_str::<Value>(reply["body"].as_str().unwrap()).unwrap(),
        json!({"accepted": 3, "invalid": 1})
    );

    // REST API on a named stage, sync: the invalid event refuses the whole request.
    let body = json!([event(3), {"type": "x", "timestamp": -5}]).to_string();
    let reply = invoke(&client, &invoke_url, &rest_api_event(&body)).await;
    assert_eq!(reply["statusCode"], 400, "{reply}");
    let errors: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(errors["errors"][0]["index"], 1, "{errors}");
    let reply = invoke(&client, &invoke_url, &rest_api_event(&event(3).to_string())).await;
    assert_eq!(reply["statusCode"], 200, "{reply}");

    // Function URL, plain HTTP, 40 at once (the emulator takes up to ~100).
    let calls: Vec<_> = (0..40u64)
        .map(|i| {
            let (client, url) = (client.clone(), emulator.function_url("_", "/events?mode=sync"));
            tokio::spawn(async move {
                let first = 100 + i * 10;
                let body = Value::Array((first..first + 10).map(event).collect()).to_string();
                let r = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    let bad = client.post(emulator.function_url("_", "/events")).body("{}").send().await.unwrap();
    assert_eq!(bad.status(), 415);

    // A page on the allowed origin: the preflight of a JSON fetch, then a beacon (text/plain),
    // answered with the CORS headers the bootstrap read from INGEST_ALLOWED_ORIGINS.
    let preflight = client
        .request(reqwest::Method::OPTIONS, emulator.function_url("_", "/events"))
        .header("origin", SHOP)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], SHOP);
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");
    let beacon = client
        .post(emulator.function_url("_", "/events?mode=sync"))
        .header("origin", SHOP)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(event(600).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(beacon.status(), 200);
    assert_eq!(beacon.headers()["access-control-allow-origin"], SHOP);

    let mut expected: Vec<u64> = (0..4).chain(100..500).chain([600]).collect();
    expected.sort_unstable();
    let landed = eventually(Duration::from_secs(10), || async {
        ids(&s3_lines(&s3, &bucket, "events/").await).len() >= expected.len()
    })
    .await;
    assert!(landed);
    assert_eq!(
        ids(&s3_lines(&s3, &bucket, "events/").await),
        expected,
        "sync answers came after Firehose took them"
    );
    let routed = s3_lines(&s3, &bucket, "invalid/").await;
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0]["error"], "`timestamp` is missing");
}
