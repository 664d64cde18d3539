//! The HTTP contract every variant serves, checked on the router itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use counter::memory::MemoryCounter;
use counter::{BoxFuture, Counter, SharedCounter, StoreError};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(counter: &SharedCounter, method: Method, path: &str) -> Reply {
    let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
    let response = hits::router(counter.clone(), hits::StoreCalls::Skip).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

fn memory() -> SharedCounter {
    Arc::new(MemoryCounter::default())
}

/// A store that is down: every call fails, and it counts the calls.
#[derive(Default)]
struct DownStore(AtomicU64);

impl Counter for DownStore {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {
            Err(StoreError::Unavailable {
                store: "dynamodb",
                source: Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(
                    "connection refused (secret internal detail)",
                )),
            })
        })
    }

    fn kind(&self) -> &'static str {
        "dynamodb"
    }
}

#[tokio::test]
async fn get_hits_returns_the_new_count_as_plain_text() {
    let counter = memory();
    for expected in ["1", "2", "3"] {
        let r = send(&counter, Method::GET, "/hits").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, expected);
        let ct = r.headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn healthz_passes_without_touching_the_counter() {
    let counter = memory();
    for _ in 0..3 {
        let r = send(&counter, Method::GET, "/healthz").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers[header::CONTENT_TYPE], "application/json");
        let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(json, serde_json::json!({"status": "pass"}));
    }
    assert_eq!(send(&counter, Method::GET, "/hits").await.body, "1");
}

#[tokio::test]
async fn the_page_is_served_at_the_root() {
    let counter = memory();
    for path in ["/", "/index.html"] {
        let r = send(&counter, Method::GET, path).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
        assert_eq!(r.body, hits::PAGE);
        assert!(r.body.contains("hits"));
    }
    assert_eq!(send(&counter, Method::GET, "/hits").await.body, "1", "the page does not count");
}

#[tokio::test]
async fn a_wrong_method_on_a_known_path_is_405_with_allow() {
    let counter = memory();
    for (method, path) in [(Method::POST, "/hits"), (Method::DELETE, "/healthz"), (Method::PUT, "/")] {
        let r = send(&counter, method.clone(), path).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let allow = r.headers[header::ALLOW].to_str().unwrap();
        assert!(allow.contains("GET"), "{method} {path}: Allow = {allow}");
    }
    assert_eq!(send(&counter, Method::GET, "/hits").await.body, "1", "rejected calls do not count");
}

#[tokio::test]
async fn head_on_hits_does_not_count() {
    let counter = memory();
    let r = send(&counter, Method::HEAD, "/hits").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
    assert_eq!(send(&counter, Method::GET, "/hits").await.body, "1");
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let counter = memory();
    for path in ["/nope", "/hits/", "/hits/extra", "/%FF"] {
        let r = send(&counter, Method::GET, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_store_failure_is_503_with_a_short_reason_and_no_internals() {
    let store = Arc::new(DownStore::default());
    let counter: SharedCounter = store.clone();
    let r = send(&counter, Method::GET, "/hits").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body, "dynamodb store unavailable");
    assert!(!r.body.contains("secret"));
    assert_eq!(r.headers[header::RETRY_AFTER], "1");
    assert_eq!(store.0.load(Ordering::SeqCst), 1);
    // health is about the process, not the store: a load balancer must not kill a task
    // because DynamoDB is briefly throttling.
    assert_eq!(send(&counter, Method::GET, "/healthz").await.status, StatusCode::OK);
}
