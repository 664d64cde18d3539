//! Pages on another origin post events, in a real browser: headless Chromium (`testkit::browser`)
//! loads a page from a little server of this test (one origin) and runs, in that page, what a
//! site's metrics code does to send events to `ingest-server` on another port (another origin):
//! `fetch` with `application/json` (preflighted), gzip'd with `CompressionStream`, and
//! `navigator.sendBeacon` with a string (`text/plain`, no preflight). The server writes to the
//! file sink, read back here: the events arrive.
//!
//! Skipped with a note when chromium / chromedriver are not installed, unless
//! `TEST_REQUIRE_ALL=1`, which turns the skip into a failure (`testkit::skip`).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use serde_json::{Value, json};
use testkit::browser::{self, Browser};
use testkit::process::Process;

mod common;
use common::Server;

/// The page: nothing but a title; the test runs its scripts in it.
const PAGE: &str = "<!doctype html><meta charset=utf-8><title>a page on another origin</title><p>metrics</p>";

/// What a page's metrics code does, one way of sending `events` to `url`, as WebDriver's async
/// script (arguments: url, how, events, then the callback). Resolves to what the page could see:
/// `{status, body}` of a `fetch` (the browser shows a page the answer only when its
/// `Access-Control-Allow-Origin` allows the page: the header itself is not one a page may read),
/// `{queued}` of a beacon, or `{error}` when the browser refused the page the answer (a CORS
/// failure is a `TypeError`).
const SEND: &str = r#"
const [url, how, events, done] = arguments;
const body = JSON.stringify(events);
const seen = async (r) => ({status: r.status, body: await r.text()});
(async () => {
    try {
        switch (how) {
        case 'fetch json':
            return await seen(await fetch(url, {
                method: 'POST', headers: {'content-type': 'application/json'}, body,
            }));
        case 'fetch gzip': {
            const gzip = new Blob([body]).stream().pipeThrough(new CompressionStream('gzip'));
            return await seen(await fetch(url, {
                method: 'POST',
                headers: {'content-type': 'application/json', 'content-encoding': 'gzip'},
                body: await new Response(gzip).arrayBuffer(),
            }));
        }
        case 'fetch text':
            return await seen(await fetch(url, {method: 'POST', headers: {'content-type': 'text/plain'}, body}));
        case 'beacon text':
            return {queued: navigator.sendBeacon(url, body)};
        case 'beacon json blob':
            return {queued: navigator.sendBeacon(url, new Blob([body], {type: 'application/json'}))};
        }
        return {error: 'unknown way ' + how};
    } catch (e) {
        return {error: String(e)};
    }
})().then(done);
"#;

/// A little server of this test: the page, on two origins (two ports of 127.0.0.1).
struct Pages {
    origins: [String; 2],
    served: Vec<tokio::task::JoinHandle<()>>,
}

impl Pages {
    async fn start() -> Pages {
        let mut origins = Vec::new();
        let mut served = Vec::new();
        for _ in 0..2 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            origins.push(format!("http://{}", listener.local_addr().unwrap()));
            let app = Router::new().route("/", get(|| async { Html(PAGE) }));
            served.push(tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            }));
        }
        Pages { origins: [origins[0].clone(), origins[1].clone()], served }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.served.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// `ingest-server` writing events to `file`, flushing 10 ms after the first event waits.
fn ingest_server(file: &Path, extra: &[&str]) -> Process {
    let sink = format!("file:{}", file.display());
    let mut args = vec!["--sink", sink.as_str(), "--spill", "off", "--linger-ms", "10"];
    args.extend_from_slice(extra);
    Server::spawn(&args, &[])
}

/// Sends `events` from the page the browser shows, `how` a page would.
async fn send(browser: &Browser, server: &Process, how: &str, events: Value) -> Value {
    let url = format!("{}/events", server.url);
    let seen = browser.execute_async(SEND, vec![json!(url), json!(how), events]).await;
    eprintln!("{how:<16} -> {seen}");
    seen
}

fn event(id: u64, how: &str) -> Value {
    json!({"type": "web_vital", "timestamp": 1_700_000_000_000u64 + id, "id": id, "how": how})
}

/// The ids in the sink's file (one event per line).
fn ids_in(file: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let events: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    common::ids(&events)
}

/// Waits until every id of `want` is in the file; the ids found.
async fn arrive(file: &Path, want: &[u64]) -> Vec<u64> {
    let want: BTreeSet<u64> = want.iter().copied().collect();
    let found = testkit::eventually(Duration::from_secs(10), || async {
        want.is_subset(&ids_in(file).into_iter().collect())
    })
    .await;
    let ids = ids_in(file);
    assert!(found, "events {want:?} did not all arrive within 10 s; the file holds {ids:?}");
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_posts_events_with_fetch_and_with_send_beacon() {
    if !browser::installed() {
        return;
    }
    let _one = browser::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let server = ingest_server(&file, &[]);
    let pages = Pages::start().await;
    let browser = Browser::start().await;
    browser.goto(&format!("{}/", pages.origins[0])).await;
    assert_ne!(pages.origins[0], server.url, "the page and ingest are two origins");

    // application/json is not a "simple" request: the browser asks first (OPTIONS), and posts
    // only because the preflight allows it.
    let seen =
        send(&browser, &server, "fetch json", json!([event(1, "fetch json"), event(2, "fetch json")])).await;
    assert_eq!(seen["status"], 202, "{seen}");
    assert_eq!(
        serde_json::from_str::<Value>(seen["body"].as_str().unwrap()).unwrap(),
        json!({"accepted": 2, "invalid": 0})
    );
    // Content-Encoding is allowed by the preflight too.
    let seen = send(&browser, &server, "fetch gzip", json!(event(3, "fetch gzip"))).await;
    assert_eq!(seen["status"], 202, "{seen}");
    // A beacon: text/plain, no preflight, no answer for the page; 415 before this change.
    let seen = send(&browser, &server, "beacon text", json!(event(4, "beacon text"))).await;
    assert_eq!(seen["queued"], true, "{seen}");

    let ids = arrive(&file, &[1, 2, 3, 4]).await;
    assert_eq!(ids, vec![1, 2, 3, 4], "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_list_of_origins_only_a_listed_page_reads_answers_and_an_unlisted_ones_beacons_still_arrive() {
    if !browser::installed() {
        return;
    }
    let _one = browser::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let pages = Pages::start().await;
    let [listed, unlisted] = &pages.origins;
    let server = ingest_server(&file, &["--allowed-origins", listed]);
    let browser = Browser::start().await;

    browser.goto(&format!("{listed}/")).await;
    let seen = send(&browser, &server, "fetch json", json!(event(10, "fetch json"))).await;
    assert_eq!(seen["status"], 202, "{seen}: the listed page reads the answer");
    // A beacon of a JSON Blob is not a simple request: Chromium preflights it, with credentials
    // (a beacon always sends them), which only the page's own origin and
    // Access-Control-Allow-Credentials pass, never `*`.
    let seen = send(&browser, &server, "beacon json blob", json!([event(14, "beacon json blob")])).await;
    assert_eq!(seen["queued"], true, "{seen}");

    browser.goto(&format!("{unlisted}/")).await;
    // The preflight carries no permission: the browser never posts, and the page sees a
    // network error.
    let seen = send(&browser, &server, "fetch json", json!(event(11, "fetch json"))).await;
    assert!(seen["error"].as_str().is_some_and(|e| e.starts_with("TypeError")), "{seen}");
    // A simple request is posted and taken as any other; only its answer is hidden from the page.
    let seen = send(&browser, &server, "fetch text", json!(event(12, "fetch text"))).await;
    assert!(seen["error"].as_str().is_some_and(|e| e.starts_with("TypeError")), "{seen}");
    let seen = send(&browser, &server, "beacon text", json!(event(13, "beacon text"))).await;
    assert_eq!(seen["queued"], true, "{seen}");

    let ids = arrive(&file, &[10, 12, 13, 14]).await;
    // Event 11 was never sent: the fetch had failed before the beacon that arrived was queued.
    assert_eq!(ids, vec![10, 12, 13, 14]);
}
