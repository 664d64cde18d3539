//! Real API Gateway v1 / v2 and Function URL events through the Lambda handler, stage prefixes
//! included, and the warmer; and why the handler strips stages itself rather than rely on
//! lambda_http's `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` (see `edge::strip_stage`).

use std::sync::Arc;

use counter::SharedCounter;
use counter::memory::MemoryCounter;
use hits::lambda::{Event, Reply, handler};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::{http_api_event as v2, rest_api_event as v1};

async fn invoke(counter: &SharedCounter, event: Value) -> Result<Value, lambda_runtime::Error> {
    let event: Event = serde_json::from_value(event)?;
    let reply = handler(counter.clone()).oneshot(LambdaEvent::new(event, Context::default())).await?;
    Ok(serde_json::to_value(match reply {
        Reply::Http(v) => v,
        other => serde_json::to_value(other)?,
    })?)
}

fn memory() -> SharedCounter {
    Arc::new(MemoryCounter::default())
}

#[tokio::test]
async fn a_rest_api_event_with_a_stage_reaches_hits() {
    let counter = memory();
    let reply = invoke(&counter, v1("/hits")).await.unwrap();
    assert_eq!(reply["statusCode"], 200, "{reply}");
    assert_eq!(reply["body"], "1");
    let ct = &reply["multiValueHeaders"]["content-type"][0];
    assert!(ct.as_str().unwrap().starts_with("text/plain"), "{reply}");
}

#[tokio::test]
async fn an_http_api_event_on_the_default_stage_reaches_hits() {
    let counter = memory();
    let reply = invoke(&counter, v2("apigw_v2_proxy_request.json", "/hits")).await.unwrap();
    assert_eq!(reply["statusCode"], 200, "{reply}");
    assert_eq!(reply["body"], "1");
    assert!(reply["headers"]["content-type"].as_str().unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn an_http_api_event_with_the_stage_in_the_path_reaches_hits() {
    let counter = memory();
    let event = v2("apigw_v2_proxy_request_with_stage_in_path.json", "/Prod/hits");
    let reply = invoke(&counter, event).await.unwrap();
    assert_eq!(reply["statusCode"], 200, "{reply}");
    assert_eq!(reply["body"], "1");
}

#[tokio::test]
async fn a_function_url_event_reaches_hits_healthz_and_the_page() {
    let counter = memory();
    let file = "lambda_function_url_request.json";
    assert_eq!(invoke(&counter, v2(file, "/hits")).await.unwrap()["body"], "1");
    let health = invoke(&counter, v2(file, "/healthz")).await.unwrap();
    assert_eq!(health["statusCode"], 200);
    assert_eq!(health["body"], r#"{"status":"pass"}"#);
    let page = invoke(&counter, v2(file, "/")).await.unwrap();
    assert_eq!(page["statusCode"], 200);
    assert_eq!(page["body"], hits::PAGE);
    assert_eq!(invoke(&counter, v2(file, "/hits")).await.unwrap()["body"], "2");
}

#[tokio::test]
async fn unknown_paths_and_methods_through_api_gateway_are_404_and_405() {
    let counter = memory();
    let missing = invoke(&counter, v1("/nope")).await.unwrap();
    assert_eq!(missing["statusCode"], 404);
    let mut post = v2("apigw_v2_proxy_request_with_stage_in_path.json", "/Prod/hits");
    post["requestContext"]["http"]["method"] = json!("POST");
    let post = invoke(&counter, post).await.unwrap();
    assert_eq!(post["statusCode"], 405, "{post}");
    assert!(post["headers"]["allow"].as_str().unwrap().contains("GET"));
    // A path that merely starts with the stage's letters is not stripped.
    let near =
        invoke(&counter, v2("apigw_v2_proxy_request_with_stage_in_path.json", "/Prodhits")).await.unwrap();
    assert_eq!(near["statusCode"], 404);
    assert_eq!(invoke(&counter, v1("/hits")).await.unwrap()["body"], "1");
}

/// `method path` as an HTTP API (`$default` stage, route `ANY path`, as template.yaml routes
/// the contract's paths; scripts/test_template.py checks the routes) or a Function URL sends it.
fn front_door_event(file: &str, method: &str, path: &str) -> Value {
    let mut e = v2(file, path);
    e["requestContext"]["http"]["method"] = json!(method);
    if file.starts_with("apigw") {
        e["routeKey"] = json!(format!("ANY {path}"));
        e["requestContext"]["routeKey"] = json!(format!("ANY {path}"));
    }
    e
}

/// The README's contract through both of the function's front doors: what the HTTP API sends
/// it (every method on /hits, /healthz and /; GET and HEAD / are the page on S3 there) and the
/// Function URL (everything) is answered as `hits-server` answers it.
#[tokio::test]
async fn head_healthz_and_wrong_methods_through_the_http_api_and_the_function_url_keep_the_contract() {
    for file in ["apigw_v2_proxy_request.json", "lambda_function_url_request.json"] {
        let counter = memory();
        let call = |method: &str, path: &str| invoke(&counter, front_door_event(file, method, path));
        let head = call("HEAD", "/hits").await.unwrap();
        assert_eq!(head["statusCode"], 200, "{file}: {head}");
        assert!(head["headers"]["content-type"].as_str().unwrap().starts_with("text/plain"), "{head}");
        assert!(head["body"].as_str().unwrap_or_default().is_empty(), "{file}: {head}");
        let health = call("GET", "/healthz").await.unwrap();
        assert_eq!((&health["statusCode"], &health["body"]), (&json!(200), &json!(r#"{"status":"pass"}"#)));
        let head = call("HEAD", "/healthz").await.unwrap();
        assert_eq!(head["statusCode"], 200, "{file}: {head}");
        assert!(head["body"].as_str().unwrap_or_default().is_empty(), "{file}: {head}");
        for (method, path) in [("POST", "/hits"), ("DELETE", "/hits"), ("PUT", "/healthz"), ("POST", "/")] {
            let reply = call(method, path).await.unwrap();
            assert_eq!(reply["statusCode"], 405, "{file}: {method} {path}: {reply}");
            let allow = reply["headers"]["allow"].as_str().unwrap_or_default();
            assert!(
                allow.contains("GET") && allow.contains("HEAD"),
                "{file}: {method} {path}: Allow = {allow}"
            );
        }
        let hit = call("GET", "/hits").await.unwrap();
        assert_eq!(hit["body"], "1", "{file}: only GET /hits counts");
    }
}

#[tokio::test]
async fn the_warmer_event_leaves_the_count_unchanged() {
    let counter = memory();
    for _ in 0..3 {
        let reply = invoke(&counter, json!({"instruction": "warmer"})).await.unwrap();
        assert_eq!(reply, json!({"warmed": true, "store": "memory"}));
    }
    assert_eq!(invoke(&counter, v1("/hits")).await.unwrap()["body"], "1");
}

#[tokio::test]
async fn an_unknown_instruction_or_event_is_an_error_not_a_panic() {
    let counter = memory();
    let err = invoke(&counter, json!({"instruction": "explode"})).await.unwrap_err();
    assert!(err.to_string().contains("warmer"), "{err}");
    assert!(invoke(&counter, json!({"hello": "world"})).await.is_err());
    assert!(invoke(&counter, json!([1, 2, 3])).await.is_err());
    assert_eq!(invoke(&counter, v1("/hits")).await.unwrap()["body"], "1");
}

/// lambda_http 1.3.2 reads this on every request (`env::var` in `apigw_path_with_stage`).
const IGNORE_STAGE: &str = "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH";

/// The path lambda_http makes of `event`, before any of our code runs.
fn lambda_http_path(event: &Value) -> String {
    lambda_http::request::from_str(&event.to_string()).unwrap().uri().path().to_owned()
}

/// The variable covers the REST API but not an HTTP API on a named stage, whose `rawPath`
/// carries the stage itself: so `edge::strip_stage` stays. Setting the variable here would reach
/// every other test of this process, so its half runs in a child process of this test binary,
/// started with the variable set: all of this file again (every test above must pass that way
/// too), this test taking its other branch there.
#[tokio::test]
async fn the_ignore_stage_variable_leaves_a_named_http_api_stage_in_the_path() {
    let named = "apigw_v2_proxy_request_with_stage_in_path.json";
    if std::env::var_os(IGNORE_STAGE).is_none() {
        // As deployed: lambda_http puts the stage in front of both; strip_stage takes it off.
        assert_eq!(lambda_http_path(&v1("/hits")), "/test/hits");
        assert_eq!(lambda_http_path(&v2(named, "/Prod/hits")), "/Prod/hits");
        let this = "the_ignore_stage_variable_leaves_a_named_http_api_stage_in_the_path";
        testkit::rerun_with(IGNORE_STAGE, "true", this);
        return;
    }
    // The REST path arrives without its stage: the variable is enough there...
    assert_eq!(lambda_http_path(&v1("/hits")), "/hits");
    assert_eq!(lambda_http_path(&v2("apigw_v2_proxy_request.json", "/hits")), "/hits");
    // ...but the HTTP API's named stage stays, and the router alone does not find the route.
    assert_eq!(lambda_http_path(&v2(named, "/Prod/hits")), "/Prod/hits");
    let request = lambda_http::request::from_str(&v2(named, "/Prod/hits").to_string()).unwrap();
    let bare = hits::router(memory(), hits::StoreCalls::Skip).oneshot(request).await.unwrap();
    assert_eq!(bare.status(), 404);
    // The handler as deployed (with strip_stage) reaches it either way.
    let counter = memory();
    assert_eq!(invoke(&counter, v2(named, "/Prod/hits")).await.unwrap()["body"], "1");
    assert_eq!(invoke(&counter, v1("/hits")).await.unwrap()["body"], "2");
}
