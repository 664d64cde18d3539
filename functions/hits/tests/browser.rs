//! The page in a real browser: Debian's headless Chromium driven through chromedriver with the
//! raw W3C WebDriver protocol over reqwest (no automation crate). Everything stays on 127.0.0.1.
//!
//! Skipped with a note when chromium / chromedriver are not installed, unless
//! `TEST_REQUIRE_ALL=1`, which turns the skip into a failure (`testkit::skip`).

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::Server;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The page bytes, for the test's own little servers.
const PAGE: &str = include_str!("../../../static/index.html");
/// The key under which W3C WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long the page gets to show a result after a click.
const RESULT_WAIT: Duration = Duration::from_secs(10);

/// One browser at a time: two cores do not run three Chromiums and keep 10 s deadlines.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_button_shows_the_count_and_the_time() {
    if !browser_installed() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
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
    if !browser_installed() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
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

    if !browser_installed() {
        return;
    }
    let _one = ONE_BROWSER.lock().await;
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

fn browser_installed() -> bool {
    let missing: Vec<&str> =
        [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let note =
        format!("{} not installed (Debian: apt-get install chromium chromium-driver)", missing.join(" and "));
    testkit::skip(&note);
    false
}

/// A chromedriver with one headless Chromium session. Dropping it (also when a test fails)
/// deletes the session, which closes Chromium, then kills chromedriver's whole process group,
/// so no browser is left behind even if the session could not be deleted.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>` of chromedriver.
    driver: String,
    chromedriver: Option<Child>,
    session: Option<String>,
    /// Chromium's profile and chromedriver's log; removed after both have stopped.
    dir: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        aws_setup::install_tls_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut browser = Browser { http, driver: String::new(), chromedriver: None, session: None, dir };
        browser.start_chromedriver().await;

        let profile = browser.dir.path().join("profile");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-proxy-server".to_owned(),
            // Belt and braces for "nothing but 127.0.0.1": no host name resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".to_owned(),
            "--window-size=800,600".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                    "timeouts": { "pageLoad": 20_000, "script": 10_000, "implicit": 0 },
                }
            }
        });
        let session = browser.call(reqwest::Method::POST, "/session", Some(capabilities)).await;
        let id = session["sessionId"].as_str().unwrap_or_else(|| panic!("no sessionId in {session}"));
        browser.session = Some(id.to_owned());
        browser
    }

    /// Starts chromedriver on a free port and waits until `/status` says ready. The port is
    /// found by binding and releasing it, so another process may take it first: retried.
    async fn start_chromedriver(&mut self) {
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let out = File::create(self.dir.path().join("chromedriver.out")).unwrap();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", self.dir.path().join("chromedriver.log").display()))
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e}"));
            self.chromedriver = Some(child);
            self.driver = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Some(status) = self.chromedriver.as_mut().unwrap().try_wait().unwrap() {
                    eprintln!("chromedriver on port {port} exited ({status}): {}", self.log_tail());
                    self.chromedriver = None;
                    break;
                }
                let ready = async {
                    let response = self.http.get(format!("{}/status", self.driver)).send().await.ok()?;
                    let status: Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
                    status["value"]["ready"].as_bool()
                };
                if ready.await == Some(true) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if self.chromedriver.is_some() {
                panic!("chromedriver on port {port} not ready within 20 s: {}", self.log_tail());
            }
        }
        panic!("chromedriver did not start in 3 attempts");
    }

    /// One WebDriver command; returns its `value`, panics with the driver's message on error.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.driver));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("WebDriver {method} {path}: {status}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        if !status.is_success() {
            let value = &answer["value"];
            panic!("WebDriver {method} {path}: {status} {}: {}", value["error"], value["message"]);
        }
        answer["value"].take()
    }

    async fn session_call(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> Value {
        let id = self.session.as_deref().expect("a session");
        self.call(method, &format!("/session/{id}{rest}"), body).await
    }

    async fn goto(&self, url: &str) {
        self.session_call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn title(&self) -> String {
        self.session_call(reqwest::Method::GET, "/title", None).await.as_str().unwrap().to_owned()
    }

    /// The element reference of the first match of a CSS selector.
    async fn find(&self, css: &str) -> String {
        let found = self
            .session_call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
            .to_owned()
    }

    async fn click(&self, element: &str) {
        self.session_call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    async fn text(&self, element: &str) -> String {
        let text = self.session_call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    async fn enabled(&self, element: &str) -> bool {
        let enabled =
            self.session_call(reqwest::Method::GET, &format!("/element/{element}/enabled"), None).await;
        enabled.as_bool().unwrap()
    }

    async fn attribute(&self, element: &str, name: &str) -> Value {
        self.session_call(reqwest::Method::GET, &format!("/element/{element}/attribute/{name}"), None).await
    }

    async fn execute(&self, script: &str) -> Value {
        self.session_call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Polls the element's text until `ok` accepts it; panics with the last text after 10 s.
    async fn wait_for_text(&self, element: &str, expected: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + RESULT_WAIT;
        loop {
            let text = self.text(element).await;
            if ok(&text) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("expected {expected}, but the page still shows {text:?} after {RESULT_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the viewport.
    async fn screenshot(&self, path: &Path) {
        let encoded = self.session_call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(encoded.as_str().expect("base64 text"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is a PNG");
        fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn log_tail(&self) -> String {
        let mut tail = String::new();
        for name in ["chromedriver.out", "chromedriver.log"] {
            let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            tail += &format!(
                "\n--- {name} (last lines) ---\n{}",
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        tail
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take() {
            // Drop cannot await, and this thread may be inside the test's runtime: delete the
            // session from a thread of its own, with its own runtime and client.
            let url = format!("{}/session/{id}", self.driver);
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let http = reqwest::Client::builder()
                        .no_proxy()
                        .timeout(Duration::from_secs(15))
                        .build()
                        .ok()?;
                    http.delete(url).send().await.ok()
                })
            })
            .join();
        }
        if let Some(mut chromedriver) = self.chromedriver.take() {
            if std::thread::panicking() {
                eprintln!("chromedriver output at the failure:{}", self.log_tail());
            }
            // chromedriver leads its own process group; Chromium runs inside it.
            let group = format!("-{}", chromedriver.id());
            let killed = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
            if !killed.is_ok_and(|s| s.success()) {
                let _ = chromedriver.kill();
            }
            let _ = chromedriver.wait();
        }
    }
}

/// Standard base64 (with or without padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            other => panic!("not base64: byte {other:#04x}"),
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGl0cw=="), b"hits");
    assert_eq!(base64_decode("aGl0cyE="), b"hits!");
    assert_eq!(base64_decode("aGl0cyEh"), b"hits!!");
    assert_eq!(base64_decode(""), b"");
}
