//! The built `probe` bootstrap under `cargo lambda watch` (its Lambda Runtime API emulator),
//! probing an axum server started here. Events go in through the emulator's Invoke API, the
//! endpoint the AWS SDK (and so `latency probe --via-lambda`) calls, which hands back a failed
//! invocation's error object as it is (HTTP 500, where AWS answers 200 + X-Amz-Function-Error).
//! The emulator and the bootstrap's process groups: crates/testkit (its emulator module).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// The probe bootstrap under the emulator, and a client for its Invoke API.
struct Emulator {
    client: reqwest::Client,
    emulator: testkit::emulator::Emulator,
}

impl Emulator {
    /// `None` (skip) when cargo-lambda is missing, unless TEST_REQUIRE_ALL=1 requires it.
    fn start() -> Option<Emulator> {
        let emulator = testkit::emulator::Emulator::start(
            env!("CARGO_BIN_EXE_probe"),
            "_",
            &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")],
        )?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Some(Emulator { client, emulator })
    }

    /// Invokes the function (the emulator holds the call until the bootstrap polls for it):
    /// `Ok(result)`, or `Err(error object)` when the invocation failed.
    async fn invoke(&self, event: &Value) -> Result<Value, Value> {
        let url = self.emulator.invoke_url("_");
        let response = self.client.post(url).body(event.to_string()).send().await.unwrap();
        let failed = !response.status().is_success();
        let body = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        if failed { Err(body) } else { Ok(body) }
    }
}

/// An HTTP target on 127.0.0.1: `GET /hits` answers the count; `(url, requests, connections)`
/// where connections counts the client addresses that sent a request.
async fn target() -> (String, Arc<AtomicU64>, Arc<std::sync::Mutex<std::collections::HashSet<SocketAddr>>>) {
    use axum::extract::ConnectInfo;
    let requests = Arc::new(AtomicU64::new(0));
    let peers = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (r, p) = (requests.clone(), peers.clone());
    let app = axum::Router::new().route(
        "/hits",
        axum::routing::get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            p.lock().unwrap().insert(peer);
            (r.fetch_add(1, Ordering::SeqCst) + 1).to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hits", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await.unwrap();
    });
    (url, requests, peers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_reports_stats_and_keeps_its_connections_across_invocations() {
    let Some(emulator) = Emulator::start() else { return };
    let (url, requests, peers) = target().await;

    let report = emulator.invoke(&json!({"url": url, "count": 20, "concurrency": 2})).await.unwrap();
    assert_eq!((report["count"].as_u64(), report["ok"].as_u64()), (Some(20), Some(20)), "{report}");
    assert_eq!(report["first"]["connection"], "new", "{report}");
    assert_eq!(report["first"]["status"], 200);
    assert!(report["stats"]["p50"].as_f64().is_some_and(|p50| p50 > 0.0), "{report}");
    assert!(report["setup"]["connect_ms"].is_number(), "{report}");
    assert_eq!(requests.load(Ordering::SeqCst), 1 + 2 + 20, "first, warmup and measured requests");

    // The original's event shape; the second invocation finds the first one's connections.
    let second = emulator.invoke(&json!({"url": url, "hits": 5})).await.unwrap();
    assert_eq!((second["count"].as_u64(), second["ok"].as_u64()), (Some(5), Some(5)), "{second}");
    assert_eq!(second["first"]["connection"], "reused", "{second}");
    assert_eq!(requests.load(Ordering::SeqCst), 23 + 1 + 1 + 5);
    assert!(peers.lock().unwrap().len() <= 4, "keep-alive: {} connections", peers.lock().unwrap().len());

    let samples = emulator.invoke(&json!({"url": url, "count": 3, "samples": true})).await.unwrap();
    assert_eq!(samples["samples_ms"].as_array().map(Vec::len), Some(3), "{samples}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_returns_an_error_object_and_the_function_keeps_serving() {
    let Some(emulator) = Emulator::start() else { return };
    let (url, requests, _) = target().await;

    for (event, message) in [
        (json!({"hits": 10}), "url: missing; give the URL to probe, e.g. \"https://example.com/hits\""),
        (
            json!({"url": "ftp://example.com/hits"}),
            "url: scheme must be http or https, got \"ftp\" in \"ftp://example.com/hits\"",
        ),
        (json!({"url": url, "count": 0}), "count: must be from 1 to 100000, got 0"),
        (json!({"url": url, "timeout_ms": -1}), "timeout_ms: must be from 1 to 300000, got -1"),
        (json!({"url": url, "count": 5, "concurrency": 6}), "concurrency: must be at most count (5), got 6"),
        (
            json!({"url": url, "verbose": true}),
            "verbose: unknown field; accepted: url, count, hits, concurrency, warmup, method, timeout_ms, samples",
        ),
        (
            json!("just a string"),
            "event: must be a JSON object like {\"url\": \"https://example.com/hits\", \"count\": 100}, got a string",
        ),
    ] {
        let error = emulator.invoke(&event).await.expect_err(&event.to_string());
        assert_eq!(error, json!({"errorType": "InvalidEvent", "errorMessage": message}), "{event}");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0, "an invalid event sends nothing");

    let report = emulator.invoke(&json!({"url": url, "count": 3, "warmup": 0})).await.unwrap();
    assert_eq!(report["ok"].as_u64(), Some(3), "{report}");
    assert_eq!(requests.load(Ordering::SeqCst), 1 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_event_runs_the_load_spec_inside_the_function_and_returns_its_report() {
    let Some(emulator) = Emulator::start() else { return };
    let (url, requests, _) = target().await;

    let report = emulator
        .invoke(&json!({"load": {"url": url, "vus": 2, "iterations": 40, "preset": "hits"}}))
        .await
        .unwrap();
    assert_eq!(report["requests"].as_u64(), Some(40), "{report}");
    assert_eq!(report["passed"].as_u64(), Some(40), "{report}");
    assert_eq!(report["ending"], "finished", "{report}");
    assert!(report["duration_ms"]["p99"].as_f64().is_some_and(|p99| p99 > 0.0), "{report}");
    assert_eq!(report["scenario"], "closed loop, 2 VUs for at most 10m, 40 requests", "{report}");
    assert_eq!(requests.load(Ordering::SeqCst), 40, "no request beyond the iterations");

    let open = emulator.invoke(&json!({"load": {"url": url, "rate": 100, "duration": "1s"}})).await.unwrap();
    assert_eq!(open["requests"].as_u64(), Some(100), "{open}");
    assert!(open["latency_ms"]["med"].is_number(), "an open loop reports latency from the schedule: {open}");

    for (event, field) in [
        (json!({"load": {"url": url, "vus": 2, "rate": 5}}), "rate: give vus"),
        (json!({"load": {"url": url, "vu": 2}}), "load: unknown field `vu`"),
        (json!({"load": {"url": url}, "count": 3}), "count: a load event is"),
    ] {
        let error = emulator.invoke(&event).await.expect_err(&event.to_string());
        assert_eq!(error["errorType"], "InvalidEvent", "{event}: {error}");
        let message = error["errorMessage"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{event}: {message}");
    }
    let refused = emulator
        .invoke(
            &json!({"load": {"url": format!("http://127.0.0.1:{}/", testkit::free_port()), "iterations": 1}}),
        )
        .await
        .expect_err("nothing listens there");
    assert_eq!(refused["errorType"], "Unreachable", "{refused}");
    assert_eq!(requests.load(Ordering::SeqCst), 140, "invalid events send nothing");
}
