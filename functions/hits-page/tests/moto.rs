//! The custom resource against moto (S3) and a local stand-in for CloudFormation's presigned
//! response URL: it writes, moves and deletes the page, and always answers.
//!
//! Needs `AWS_ENDPOINT_URL` pointing at moto (`scripts/test` exports it with fake credentials
//! and a region). Without it the tests are skipped, unless `TEST_REQUIRE_ALL=1`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use hits_page::{CACHE_CONTROL, CONTENT_TYPE, PAGE, PageWriter, Request};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

const CREATE: &str = include_str!("fixtures/create.json");
const UPDATE: &str = include_str!("fixtures/update.json");
const DELETE: &str = include_str!("fixtures/delete.json");

/// One answer as the stand-in for CloudFormation received it.
#[derive(Debug, Clone)]
struct Answer {
    method: Method,
    path: String,
    content_type: Option<String>,
    body: Value,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Answer>>>);

impl Recorder {
    fn take(&self) -> Vec<Answer> {
        std::mem::take(&mut *self.0.lock().expect("recorder lock"))
    }
}

async fn record(
    State(recorder): State<Recorder>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type =
        headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    recorder.0.lock().expect("recorder lock").push(Answer {
        method,
        path: uri.path().to_owned(),
        content_type,
        body,
    });
    StatusCode::OK
}

/// Starts the stand-in on `127.0.0.1:0`; returns its base URL.
async fn start_recorder() -> (String, Recorder) {
    let recorder = Recorder::default();
    let app = axum::Router::new().fallback(record).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), recorder)
}

/// The moto-backed S3 client, or `None` (skip) when no emulator is configured.
async fn moto() -> Option<aws_sdk_s3::Client> {
    Some(hits_page::s3_client(&testkit::moto::config().await?))
}

/// A bucket no other test run uses.
async fn new_bucket(s3: &aws_sdk_s3::Client, label: &str) -> String {
    testkit::moto::bucket(s3, &format!("hits-page-{label}")).await
}

/// A request built from a fixture, answering to `response_url`, with `edit` applied.
fn event(fixture: &str, response_url: &str, edit: impl FnOnce(&mut Value)) -> LambdaEvent<Request> {
    let mut json: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    json["ResponseURL"] = Value::String(response_url.to_owned());
    edit(&mut json);
    let request = serde_json::from_value(json).expect("fixture is a CloudFormation request");
    LambdaEvent::new(request, Context::default())
}

fn set_page(json: &mut Value, bucket: &str, key: &str) {
    json["ResourceProperties"]["Bucket"] = bucket.into();
    json["ResourceProperties"]["Key"] = key.into();
}

/// The one answer since the last call; checks what every answer must look like.
fn one_answer(recorder: &Recorder, path: &str, fixture: &str) -> Value {
    let answers = recorder.take();
    assert_eq!(answers.len(), 1, "exactly one answer per request: {answers:?}");
    let answer = answers.into_iter().next().expect("one answer");
    let request: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    assert_eq!(answer.method, Method::PUT);
    assert_eq!(answer.path, path);
    assert_eq!(answer.content_type.as_deref(), Some(""), "the presigned URL needs an empty content type");
    for field in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(answer.body[field], request[field], "{field}");
    }
    assert!(answer.body["Reason"].is_string(), "{:?}", answer.body);
    answer.body
}

async fn object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Option<(String, Option<String>, Option<String>)> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let content_type = out.content_type().map(str::to_owned);
            let cache_control = out.cache_control().map(str::to_owned);
            let bytes = out.body.collect().await.expect("object body").into_bytes();
            Some((String::from_utf8(bytes.to_vec()).expect("utf-8 page"), content_type, cache_control))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) =>
        {
            None
        }
        Err(e) => panic!("GetObject s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)),
    }
}

#[tokio::test]
async fn create_writes_the_page_update_moves_it_and_delete_removes_it_answering_success_each_time() {
    let Some(s3) = moto().await else { return };
    let bucket = new_bucket(&s3, "ok").await;
    let (base, recorder) = start_recorder().await;
    let writer = PageWriter::new(s3.clone(), hits_page::http_client().expect("http client"));
    let page_id = format!("s3://{bucket}/index.html");

    // Create: the page is there, as HTML, briefly cacheable.
    writer
        .handle(event(CREATE, &format!("{base}/create"), |j| set_page(j, &bucket, "index.html")))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/create", CREATE);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], page_id.as_str());
    let (body, content_type, cache_control) =
        object(&s3, &bucket, "index.html").await.expect("page after Create");
    assert_eq!(body, PAGE);
    assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
    assert_eq!(cache_control.as_deref(), Some(CACHE_CONTROL));

    // Update in place (new code version): same id, so CloudFormation sends no Delete.
    writer
        .handle(event(UPDATE, &format!("{base}/update"), |j| {
            set_page(j, &bucket, "index.html");
            j["PhysicalResourceId"] = page_id.as_str().into();
        }))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/update", UPDATE);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], page_id.as_str());

    // Update to another key: a new id; CloudFormation then deletes the old id.
    let moved_id = format!("s3://{bucket}/v2/index.html");
    writer
        .handle(event(UPDATE, &format!("{base}/move"), |j| {
            set_page(j, &bucket, "v2/index.html");
            j["PhysicalResourceId"] = page_id.as_str().into();
        }))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/move", UPDATE);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], moved_id.as_str());
    assert_eq!(object(&s3, &bucket, "v2/index.html").await.map(|o| o.0).as_deref(), Some(PAGE));

    writer
        .handle(event(DELETE, &format!("{base}/delete-old"), |j| {
            set_page(j, &bucket, "index.html");
            j["PhysicalResourceId"] = page_id.as_str().into();
        }))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/delete-old", DELETE);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], page_id.as_str());
    assert!(object(&s3, &bucket, "index.html").await.is_none(), "old page gone after Delete");
    assert!(object(&s3, &bucket, "v2/index.html").await.is_some(), "moved page untouched");

    // Stack delete: the page goes, so the bucket can be deleted.
    writer
        .handle(event(DELETE, &format!("{base}/delete"), |j| {
            set_page(j, &bucket, "v2/index.html");
            j["PhysicalResourceId"] = moved_id.as_str().into();
        }))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/delete", DELETE);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert!(object(&s3, &bucket, "v2/index.html").await.is_none(), "page gone after Delete");
    s3.delete_bucket().bucket(&bucket).send().await.expect("the emptied bucket can be deleted");
}

#[tokio::test]
async fn create_into_a_missing_bucket_answers_failed_with_a_reason() {
    let Some(s3) = moto().await else { return };
    let (base, recorder) = start_recorder().await;
    let writer = PageWriter::new(s3, hits_page::http_client().expect("http client"));
    let bucket = format!("hits-page-missing-{}", std::process::id());

    writer
        .handle(event(CREATE, &format!("{base}/create"), |j| set_page(j, &bucket, "index.html")))
        .await
        .expect("a FAILED answer is still an answer");
    let answer = one_answer(&recorder, "/create", CREATE);
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("PutObject s3://{bucket}/index.html failed")), "{reason}");
    assert!(reason.contains("NoSuchBucket"), "{reason}");
    let id = answer["PhysicalResourceId"].as_str().unwrap_or_default();
    assert!(!id.is_empty() && !id.starts_with("s3://"), "a failed Create names no object: {id}");

    // CloudFormation's rollback then deletes that id: nothing to do, SUCCESS.
    writer
        .handle(event(DELETE, &format!("{base}/rollback"), |j| j["PhysicalResourceId"] = id.into()))
        .await
        .expect("answered");
    assert_eq!(one_answer(&recorder, "/rollback", DELETE)["Status"], "SUCCESS");
}

#[tokio::test]
async fn deleting_a_page_that_is_already_gone_answers_success() {
    let Some(s3) = moto().await else { return };
    let bucket = new_bucket(&s3, "gone").await;
    let (base, recorder) = start_recorder().await;
    let writer = PageWriter::new(s3.clone(), hits_page::http_client().expect("http client"));

    for (path, id) in [
        ("/no-key", format!("s3://{bucket}/index.html")),
        ("/no-bucket", format!("s3://{bucket}-deleted/index.html")),
    ] {
        writer
            .handle(event(DELETE, &format!("{base}{path}"), |j| j["PhysicalResourceId"] = id.as_str().into()))
            .await
            .expect("answered");
        let answer = one_answer(&recorder, path, DELETE);
        assert_eq!(answer["Status"], "SUCCESS", "{answer}");
        assert_eq!(answer["PhysicalResourceId"], id.as_str());
    }
    s3.delete_bucket().bucket(&bucket).send().await.expect("bucket deleted");
}

#[tokio::test]
async fn bad_properties_answer_failed_without_touching_s3() {
    let Some(s3) = moto().await else { return };
    let (base, recorder) = start_recorder().await;
    let writer = PageWriter::new(s3, hits_page::http_client().expect("http client"));

    writer
        .handle(event(CREATE, &format!("{base}/create"), |j| {
            if let Some(props) = j["ResourceProperties"].as_object_mut() {
                props.remove("Key");
            }
        }))
        .await
        .expect("answered");
    let answer = one_answer(&recorder, "/create", CREATE);
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(answer["Reason"].as_str().unwrap_or_default().contains("Key"), "{answer}");
}
