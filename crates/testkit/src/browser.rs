//! A real browser for tests: Debian's headless Chromium driven through chromedriver with the raw
//! W3C WebDriver protocol over reqwest (no automation crate). Everything stays on 127.0.0.1: no
//! proxy, and no host name resolves but 127.0.0.1.
//!
//! A test calls [`installed`] first, which skips it with a note when chromium / chromedriver are
//! missing (or fails it under `TEST_REQUIRE_ALL=1`, [`crate::skip`]), then holds
//! [`one_at_a_time`] while its [`Browser`] runs.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The key under which W3C WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long [`Browser::wait_for_text`] waits.
const RESULT_WAIT: Duration = Duration::from_secs(10);

/// One browser at a time in a test binary: two cores do not run three Chromiums and keep 10 s
/// deadlines.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held while a test's browser runs.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_BROWSER.lock().await
}

/// Whether chromium and chromedriver are installed; if not, the test is skipped with a note
/// ([`crate::skip`]: a failure under `TEST_REQUIRE_ALL=1`).
pub fn installed() -> bool {
    let missing: Vec<&str> =
        [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let note =
        format!("{} not installed (Debian: apt-get install chromium chromium-driver)", missing.join(" and "));
    crate::skip(&note);
    false
}

/// A chromedriver with one headless Chromium session. Dropping it (also when a test fails)
/// deletes the session, which closes Chromium, then kills chromedriver's whole process group,
/// so no browser is left behind even if the session could not be deleted.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>` of chromedriver.
    driver: String,
    chromedriver: Option<Child>,
    session: Option<String>,
    /// Chromium's profile and chromedriver's log; removed after both have stopped.
    dir: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
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

    pub async fn goto(&self, url: &str) {
        self.session_call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn title(&self) -> String {
        self.session_call(reqwest::Method::GET, "/title", None).await.as_str().unwrap().to_owned()
    }

    /// The element reference of the first match of a CSS selector.
    pub async fn find(&self, css: &str) -> String {
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

    pub async fn click(&self, element: &str) {
        self.session_call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    pub async fn text(&self, element: &str) -> String {
        let text = self.session_call(reqwest::Method::GET, &format!("/element/{element}/text"), None).await;
        text.as_str().unwrap_or_default().to_owned()
    }

    pub async fn enabled(&self, element: &str) -> bool {
        let enabled =
            self.session_call(reqwest::Method::GET, &format!("/element/{element}/enabled"), None).await;
        enabled.as_bool().unwrap()
    }

    pub async fn attribute(&self, element: &str, name: &str) -> Value {
        self.session_call(reqwest::Method::GET, &format!("/element/{element}/attribute/{name}"), None).await
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.session_call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs `script` in the page as WebDriver's asynchronous script: the body of a function
    /// whose arguments are `args` followed by the callback that ends it with its value (at most
    /// 10 s, the session's script timeout).
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.session_call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls the element's text until `ok` accepts it; panics with the last text after 10 s.
    pub async fn wait_for_text(&self, element: &str, expected: &str, ok: impl Fn(&str) -> bool) -> String {
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
    pub async fn screenshot(&self, path: &Path) {
        let encoded = self.session_call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64_decode(encoded.as_str().expect("base64 text"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is a PNG");
        fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    pub fn log_tail(&self) -> String {
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
pub fn base64_decode(text: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes_what_webdriver_sends() {
        use super::base64_decode;
        assert_eq!(base64_decode("aGl0cw=="), b"hits");
        assert_eq!(base64_decode("aGl0cyE="), b"hits!");
        assert_eq!(base64_decode("aGl0cyEh"), b"hits!!");
        assert_eq!(base64_decode(""), b"");
    }
}
