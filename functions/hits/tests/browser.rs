//! The page in a real browser: headless Chromium through chromedriver (`testkit::browser`).
//! Everything stays on 127.0.0.1.
//!
//! Skipped with a note when chromium / chromedriver are not installed, unless
//! `TEST_REQUIRE_ALL=1`, which turns the skip into a failure (`testkit::skip`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::browser::{self, Browser};

mod common;
use common::Server;

/// The page bytes, for the test's own little servers.
const PAGE: &str = include_str!("../../../static/index.html");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_button_shows_the_count_and_the_time() {
    if !browser::installed() {
        return;
    }
    let _one = browser::one_at_a_time().await;
    let server = Server::spawn(&[]);
    let browser = Browser::start().await;

    browser.goto(&format!("{}/", server.url)).await;
    assert_eq!(browser.title().await, "hits");
    let hit = browser.find("#hit").await;
    let result = browser.find("#result").await;
    assert!(browser.text(&hit).await.contains("Hit"), "the button says what it does");
    assert_eq!(browser.attribute(&result, "aria-live").await, json!("polite"));

    browser.click(&hit).await;
    let first = browser.wait_for_text(&result, "`1 - <ms>ms`", |t| is_count_and_time(t, 1)).await;
    browser.click(&hit).await;
    let second = browser.wait_for_text(&result, "`2 - <ms>ms`", |t| is_count_and_time(t, 2)).await;
    eprintln!("page showed {first:?}, then {second:?}");
    assert!(browser.enabled(&hit).await, "the button is enabled again after the request");

    // Dependency-free: everything the page loaded came from the server itself.
    let loaded = browser.execute("return performance.getEntriesByType('resource').map(e => e.name)").await;
    let loaded: Vec<&str> = loaded.as_array().expect("an array").iter().filter_map(Value::as_str).collect();
    let own = format!("{}/", server.url);
    assert!(loaded.iter().all(|url| url.starts_with(&own)), "only same-origin loads: {loaded:?}");
    let hits = format!("{}/hits", server.url);
    assert_eq!(loaded.iter().filter(|url| **url == hits).count(), 2, "two calls to /hits: {loaded:?}");

    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page.png");
    browser.screenshot(&png).await;
    eprintln!("screenshot: {}", png.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_an_error_when_the_store_fails() {
    if !browser::installed() {
        return;
    }
    let _one = browser::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("count");
    fs::write(&count, "41\n").unwrap();
    let mut server = Server::spawn(&[("HITS_STORE", &format!("file:{}", count.display()))]);
    let browser = Browser::start().await;

    browser.goto(&format!("{}/", server.url)).await;
    let hit = browser.find("#hit").await;
    let result = browser.find("#result").await;
    browser.click(&hit).await;
    browser.wait_for_text(&result, "`42 - <ms>ms`", |t| is_count_and_time(t, 42)).await;

    // The file store re-reads the file under its lock on every commit: garbage in it makes the
    // next increment fail (503 with a short reason), and leaves the file alone.
    fs::write(&count, "not a count\n").unwrap();
    browser.click(&hit).await;
    let error = browser.wait_for_text(&result, "an error", |t| t.starts_with("error")).await;
    eprintln!("store failure: page showed {error:?}");
    assert_eq!(error, "error: 503 file store holds an unreadable count");
    assert!(browser.enabled(&hit).await, "the button is enabled again after an error");
    assert_eq!(fs::read_to_string(&count).unwrap(), "not a count\n", "a corrupt count is left alone");
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-error.png");
    browser.screenshot(&png).await;
    eprintln!("screenshot: {}", png.display());

    // The store recovers, and so does the page.
    fs::write(&count, "42\n").unwrap();
    browser.click(&hit).await;
    browser.wait_for_text(&result, "`43 - <ms>ms`", |t| is_count_and_time(t, 43)).await;

    // The server is gone: a network failure, not a count.
    server.kill();
    browser.click(&hit).await;
    let error = browser.wait_for_text(&result, "an error", |t| t.starts_with("error")).await;
    eprintln!("server gone: page showed {error:?}");
    assert!(error.starts_with("error: network failure"), "{error:?}");
    assert!(browser.enabled(&hit).await, "the button is enabled again after a network failure");
}

/// The page fetches `hits` next to itself, wherever it is served: at `/`, under an API Gateway
/// stage, under a function-URL emulator path, with or without the trailing slash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_fetches_hits_relative_to_its_own_path() {
    use axum::Router;
    use axum::response::Html;
    use axum::routing::get;

    if !browser::installed() {
        return;
    }
    let _one = browser::one_at_a_time().await;
    let page = || get(|| async { Html(PAGE) });
    // Each prefix answers its own `hits` with a different number, so a wrong URL shows.
    let app = Router::new()
        .route("/", page())
        .route("/index.html", page())
        .route("/hits", get(|| async { "1" }))
        .route("/prod", page())
        .route("/prod/", page())
        .route("/prod/index.html", page())
        .route("/prod/hits", get(|| async { "2" }))
        .route("/lambda-url/hits", page())
        .route("/lambda-url/hits/", page())
        .route("/lambda-url/hits/hits", get(|| async { "3" }))
        .route("/slow/", page())
        .route(
            "/slow/hits",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                "4"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let browser = Browser::start().await;

    for (path, expected) in [
        ("/", 1),
        ("/index.html", 1),
        ("/prod", 2),
        ("/prod/", 2),
        ("/prod/index.html", 2),
        ("/prod/?from=test#top", 2),
        ("/lambda-url/hits", 3),
        ("/lambda-url/hits/", 3),
    ] {
        browser.goto(&format!("{origin}{path}")).await;
        let hit = browser.find("#hit").await;
        let result = browser.find("#result").await;
        browser.click(&hit).await;
        let shown = browser
            .wait_for_text(&result, &format!("`{expected} - <ms>ms` at {path}"), |t| {
                is_count_and_time(t, expected)
            })
            .await;
        eprintln!("{path:<24} -> {shown}");
    }

    // The button is disabled while a request is in flight.
    browser.goto(&format!("{origin}/slow/")).await;
    let hit = browser.find("#hit").await;
    let result = browser.find("#result").await;
    browser.click(&hit).await;
    assert!(!browser.enabled(&hit).await, "the button is disabled while the request is in flight");
    let shown = browser.wait_for_text(&result, "`4 - <ms>ms`", |t| is_count_and_time(t, 4)).await;
    let ms: u64 = shown.trim_start_matches("4 - ").trim_end_matches("ms").parse().unwrap();
    assert!(ms >= 1400, "the time covers the whole request: {shown:?}");
    assert!(browser.enabled(&hit).await);
    served.abort();
}

/// `<count> - <digits>ms`, as the page shows a successful hit.
fn is_count_and_time(text: &str, count: u64) -> bool {
    text.strip_prefix(&format!("{count} - "))
        .and_then(|rest| rest.strip_suffix("ms"))
        .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
}
