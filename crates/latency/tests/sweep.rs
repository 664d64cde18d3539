//! `latency sweep` as a user runs it:
//!
//! - against a stand-in for the Lambda API (the real SDK calls: GetFunctionConfiguration,
//!   UpdateFunctionConfiguration, Invoke with the log tail), which answers as AWS does — an update
//!   InProgress for a while, then Successful; a REPORT record in the base64 LogResult, with an
//!   Init Duration on the first call after an update — so the whole loop runs offline;
//! - against moto (`AWS_ENDPOINT_URL`): the configuration, wait and restore path (moto runs no
//!   function without Docker, and its Invoke sends no log tail: the sweep must stop on that);
//! - on this machine: the real `hits` bootstrap at two sizes, under a CPU quota when a cgroup
//!   can be made here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

mod common;
use common::{stderr, stdout};

/// Longer than any run here should take; a hung call fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(180);

/// `latency args...` with `env` and fake credentials, nothing else from this machine's AWS setup;
/// killed after [`DEADLINE`].
fn latency(env: &[(&str, &str)], args: &[&str]) -> Output {
    latency_until(env, args, |_| {})
}

/// [`latency`], calling `meanwhile` with the process id once it runs.
fn latency_until(env: &[(&str, &str)], args: &[&str], meanwhile: impl FnOnce(u32)) -> Output {
    common::latency_with_fake_aws(env, args, DEADLINE, meanwhile)
}

fn memory_json(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("memory.json")).expect("memory.json written");
    serde_json::from_str(&text).expect("memory.json is JSON")
}

fn size(json: &Value, memory_mb: u64) -> &Value {
    json["sizes"]
        .as_array()
        .and_then(|sizes| sizes.iter().find(|s| s["memory_mb"] == memory_mb))
        .unwrap_or_else(|| panic!("no {memory_mb} MB in {json}"))
}

// --- A stand-in for the Lambda API. -------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

/// The function as the stand-in keeps it, and what was asked of it.
struct Function {
    memory_mb: u64,
    /// GetFunctionConfiguration answers InProgress this many more times after an update.
    in_progress: u32,
    /// The update to this size ends Failed.
    fail_update_at: Option<u64>,
    failed: bool,
    /// Calls at this size fail as the function running out of memory.
    fail_calls_at: Option<u64>,
    /// A published version's memory size: what a qualified call runs with.
    published_mb: u64,
    /// Each Invoke takes at least this long.
    invoke_delay: Duration,
    cold: bool,
    log: LogFormat,
    updates: Vec<u64>,
    /// (memory size, qualifier, log type, event) of each Invoke.
    calls: Vec<(u64, Option<String>, Option<String>, Value)>,
}

type Shared = Arc<Mutex<Function>>;

fn configuration(name: &str, f: &Function) -> Value {
    let status = if f.in_progress > 0 {
        "InProgress"
    } else if f.failed {
        "Failed"
    } else {
        "Successful"
    };
    let mut config = json!({
        "FunctionName": name,
        "FunctionArn": format!("arn:aws:lambda:eu-west-2:123456789012:function:{name}"),
        "Runtime": "provided.al2023",
        "MemorySize": f.memory_mb,
        "Architectures": ["arm64"],
        "State": "Active",
        "LastUpdateStatus": status,
        "Version": "$LATEST",
    });
    if f.failed {
        config["LastUpdateStatusReason"] = json!("The function could not be updated: EniLimitExceeded");
        config["LastUpdateStatusReasonCode"] = json!("EniLimitExceeded");
    }
    config
}

async fn get_configuration(State(f): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let mut f = f.lock().expect("state");
    let config = configuration(&name, &f);
    f.in_progress = f.in_progress.saturating_sub(1);
    axum::Json(config).into_response()
}

async fn update_configuration(
    State(f): State<Shared>,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Response {
    let update: Value = serde_json::from_slice(&body).expect("a JSON update");
    let mut f = f.lock().expect("state");
    let memory_mb = update["MemorySize"].as_u64().expect("MemorySize");
    f.updates.push(memory_mb);
    f.in_progress = 2;
    f.cold = true;
    if f.fail_update_at == Some(memory_mb) {
        f.failed = true;
    } else {
        f.failed = false;
        f.memory_mb = memory_mb;
    }
    axum::Json(configuration(&name, &f)).into_response()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn invoke(
    State(f): State<Shared>,
    UrlPath(_name): UrlPath<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = f.lock().expect("state").invoke_delay;
    tokio::time::sleep(delay).await;
    let mut f = f.lock().expect("state");
    let qualifier = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("Qualifier="))
        .map(str::to_owned);
    let memory_mb = if qualifier.is_some() { f.published_mb } else { f.memory_mb };
    let log_type = headers.get("x-amz-log-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    f.calls.push((memory_mb, qualifier, log_type, event));
    // 22 ms at 128 MB, 7 ms at 512, 4.5 ms at 1024: 2 ms plus 20 ms of CPU at 128 MB's share.
    let duration = 2.0 + 20.0 * 128.0 / memory_mb as f64;
    let billed = duration.ceil() as u64;
    let init = std::mem::take(&mut f.cold).then_some(40.0);
    let log = match f.log {
        LogFormat::Text => format!(
            "START RequestId: r1 Version: $LATEST\nEND RequestId: r1\nREPORT RequestId: r1\tDuration: {duration:.2} ms\t\
             Billed Duration: {} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: 19 MB\t{}\n\
             XRAY TraceId: 1-65a1b2c3-4d5e6f708192a3b4c5d6e7f8\tSegmentId: 0a1b2c3d4e5f6a7b\tSampled: true\t\n",
            billed + init.map_or(0, |i: f64| i.ceil() as u64),
            init.map(|i| format!("Init Duration: {i:.2} ms\t")).unwrap_or_default()
        ),
        LogFormat::Json => {
            let mut metrics = json!({
                "durationMs": duration, "billedDurationMs": billed, "memorySizeMB": memory_mb, "maxMemoryUsedMB": 19
            });
            if let Some(init) = init {
                metrics["initDurationMs"] = json!(init);
            }
            format!(
                "{}\n{}\n",
                json!({"time": "2025-01-01T00:00:00Z", "type": "platform.start", "record": {"requestId": "r1"}}),
                json!({"time": "2025-01-01T00:00:00Z", "type": "platform.report",
                       "record": {"requestId": "r1", "metrics": metrics, "status": "success"}})
            )
        }
    };
    let mut response = if f.fail_calls_at == Some(memory_mb) {
        let error = json!({"errorType": "Runtime.OutOfMemory", "errorMessage": "RequestId: r1 Error: Runtime exited with error: signal: killed"});
        let mut response = (StatusCode::OK, error.to_string()).into_response();
        response.headers_mut().insert("x-amz-function-error", "Unhandled".parse().expect("header"));
        response
    } else {
        (StatusCode::OK, json!({"statusCode": 200, "body": "7"}).to_string()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert("x-amz-executed-version", "$LATEST".parse().expect("header"));
    headers.insert("x-amz-log-result", base64(log.as_bytes()).parse().expect("header"));
    headers.insert("content-type", "application/json".parse().expect("header"));
    response
}

/// The stand-in on 127.0.0.1 (a thread with its own runtime), starting at `memory_mb`.
fn lambda_api(setup: impl FnOnce(&mut Function)) -> (String, Shared) {
    let mut function = Function {
        memory_mb: 256,
        in_progress: 0,
        fail_update_at: None,
        failed: false,
        fail_calls_at: None,
        published_mb: 128,
        invoke_delay: Duration::ZERO,
        cold: false,
        log: LogFormat::Text,
        updates: Vec::new(),
        calls: Vec::new(),
    };
    setup(&mut function);
    let state = Arc::new(Mutex::new(function));
    let shared = state.clone();
    let app = Router::new()
        .route("/2015-03-31/functions/{name}/configuration", get(get_configuration).put(update_configuration))
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .with_state(state);
    (format!("http://{}", common::serve(app)), shared)
}

fn sweep_fake(endpoint: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().expect("UTF-8");
    let args = [&["sweep", "--function", "hits", "-o", out], extra].concat();
    latency(&[("AWS_ENDPOINT_URL_LAMBDA", endpoint)], &args)
}

#[test]
fn a_sweep_sets_each_size_waits_for_the_update_invokes_and_restores_the_original() {
    let (endpoint, function) = lambda_api(|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let output = sweep_fake(&endpoint, dir.path(), &["--memory", "512,128,512", "-n", "3"]);
    assert!(output.status.success(), "{}", stderr(&output));

    let f = function.lock().expect("state");
    assert_eq!(f.updates, [128, 512, 256], "each size once, ascending, then the original back");
    assert_eq!(f.memory_mb, 256);
    // A cold call and 3 measured at each size, every one $LATEST with the log tail and GET /hits.
    assert_eq!(f.calls.len(), 8);
    for (memory_mb, qualifier, log_type, event) in &f.calls {
        assert!([128, 512].contains(memory_mb));
        assert_eq!((qualifier.as_deref(), log_type.as_deref()), (None, Some("Tail")));
        assert_eq!(
            (event["rawPath"].as_str(), event["requestContext"]["http"]["method"].as_str()),
            (Some("/hits"), Some("GET"))
        );
    }
    drop(f);

    let json = memory_json(dir.path());
    let small = size(&json, 128);
    assert_eq!(small["init_ms"], 40.0, "the cold call's Init Duration: {small}");
    assert_eq!(small["cold_duration_ms"], 22.0);
    assert_eq!(small["invocations"], 3);
    assert_eq!(small["duration_ms"]["p90"], 22.0);
    assert_eq!(small["billed_ms_mean"], 22.0);
    assert_eq!(small["max_memory_used_mb"], 19);
    let big = size(&json, 512);
    assert_eq!((big["duration_ms"]["p50"].as_f64(), big["billed_ms_mean"].as_f64()), (Some(7.0), Some(7.0)));
    // 512 MB × 7 ms is more GB-seconds than 128 MB × 22 ms.
    assert!(
        big["usd_per_million"].as_f64().expect("cost") > small["usd_per_million"].as_f64().expect("cost")
    );
    assert_eq!(json["picks"], json!({"cheapest": 128, "fastest": 512, "balanced": 512}));
    assert_eq!(json["arch"], "arm64", "the function's own architecture");
    assert_eq!(json["restored"]["ok"], true);

    let table = stdout(&output);
    assert!(table.contains("| 128 | 0.07 | 40.00 | 22.00 | 22.00 | 22.00 | 22.0 |"), "{table}");
    assert!(table.contains("| 512 | 0.29 | 40.00 | 7.00 | 7.00 | 7.00 | 7.0 |"), "{table}");
    assert!(table.contains("| 3.14× | fastest, balanced |"), "{table}");
    assert!(table.contains("restored the MemorySize of hits to 256 MB"), "{table}");
    assert!(dir.path().join("memory.svg").is_file() && dir.path().join("memory.md").is_file());
    assert!(stderr(&output).contains("restored the MemorySize of hits to 256 MB"), "{}", stderr(&output));
}

#[test]
fn a_function_error_fails_that_size_with_the_function_s_own_error_and_the_sweep_goes_on() {
    let (endpoint, function) = lambda_api(|f| {
        f.fail_calls_at = Some(128);
        f.log = LogFormat::Json;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let output = sweep_fake(&endpoint, dir.path(), &["--memory", "128,1024", "-n", "2"]);
    assert!(!output.status.success(), "a failed size is not a success");
    let message = stderr(&output);
    assert!(
        message.contains("latency: 1 of 2 memory sizes failed — 128 MB: hits failed (Unhandled): Runtime.OutOfMemory: RequestId: r1 Error: Runtime exited with error: signal: killed"),
        "{message}"
    );
    let json = memory_json(dir.path());
    assert!(size(&json, 128)["error"].as_str().is_some_and(|e| e.contains("Runtime.OutOfMemory")));
    // The other size was measured, from the JSON log format's platform.report records.
    let big = size(&json, 1024);
    assert_eq!((big["init_ms"].as_f64(), big["duration_ms"]["p50"].as_f64()), (Some(40.0), Some(4.5)));
    assert_eq!(json["picks"]["cheapest"], 1024);
    assert!(stdout(&output).contains(
        "| 128 | 0.07 | - | - | - | - | - | - | - | - | failed: hits failed (Unhandled): Runtime.OutOfMemory"
    ));
    assert_eq!(function.lock().expect("state").memory_mb, 256, "the original is restored");
}

#[test]
fn a_failed_configuration_update_stops_the_sweep_with_its_reason_and_the_original_is_restored() {
    let (endpoint, function) = lambda_api(|f| f.fail_update_at = Some(1024));
    let dir = tempfile::tempdir().expect("tempdir");
    let output = sweep_fake(&endpoint, dir.path(), &["--memory", "512,1024,2048", "-n", "1"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("hits: updating MemorySize to 1024 MB failed (EniLimitExceeded: The function could not be updated: EniLimitExceeded)"),
        "{message}"
    );
    assert!(message.contains("restored the MemorySize of hits to 256 MB"), "{message}");
    let f = function.lock().expect("state");
    assert_eq!(f.updates, [512, 1024, 256], "no 2048 after the failure; the original put back");
    assert_eq!((f.memory_mb, f.failed), (256, false));
}

#[test]
fn a_qualifier_whose_calls_run_another_memory_size_stops_the_sweep_with_the_reason() {
    let (endpoint, function) = lambda_api(|f| f.published_mb = 128);
    let dir = tempfile::tempdir().expect("tempdir");
    let output = sweep_fake(&endpoint, dir.path(), &["--memory", "512", "-n", "1", "--qualifier", "live"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("the call to live (version $LATEST) ran with 128 MB, not the 512 MB just set"),
        "{message}"
    );
    assert!(message.contains("sweep without --qualifier"), "{message}");
    let f = function.lock().expect("state");
    assert_eq!(f.calls[0].1.as_deref(), Some("live"));
    assert_eq!(f.memory_mb, 256, "restored");
}

#[test]
fn report_memory_sweep_appends_the_sweep_to_report_md_and_writes_memory_svg_and_json() {
    let (endpoint, function) = lambda_api(|_| {});
    let (addr, _) = common::hits_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = \"server\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\ncount = 5\n"
        ),
    )
    .expect("writes targets");
    let out = dir.path().join("out");
    let output = latency(
        &[("AWS_ENDPOINT_URL_LAMBDA", &endpoint)],
        &[
            "report",
            "-t",
            targets.to_str().expect("UTF-8"),
            "-o",
            out.to_str().expect("UTF-8"),
            "--memory-sweep",
            "hits",
            "--sweep-memory",
            "128,1024",
            "--sweep-count",
            "2",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("| server | this machine | probe | 5 |"), "the targets first: {md}");
    let sweep =
        md.split("## Memory sweep: `hits`").nth(1).unwrap_or_else(|| panic!("no sweep section: {md}"));
    assert!(sweep.contains("| 1024 | 0.58 | 40.00 | 4.50 | 4.50 | 4.50 | 5.0 |"), "{sweep}");
    assert!(
        sweep.contains("![cost per 1M calls against p90 duration, per memory size](memory.svg)"),
        "{sweep}"
    );
    assert!(out.join("memory.svg").is_file());
    assert_eq!(memory_json(&out)["picks"]["fastest"], 1024);
    let printed = stdout(&output);
    assert!(printed.contains("memory.svg") && printed.contains("memory.json"), "{printed}");
    assert_eq!(function.lock().expect("state").updates, [128, 1024, 256]);
}

#[test]
fn ctrl_c_stops_the_sweep_and_the_original_memory_size_is_restored() {
    let (endpoint, function) = lambda_api(|f| f.invoke_delay = Duration::from_millis(100));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("UTF-8");
    let args = ["sweep", "--function", "hits", "--memory", "128,512,1024", "-n", "1000", "-o", out];
    let output = latency_until(&[("AWS_ENDPOINT_URL_LAMBDA", &endpoint)], &args, |pid| {
        // Mid-sweep: the first size configured and a few calls made.
        let waited = std::time::Instant::now();
        while function.lock().expect("state").calls.len() < 3 {
            assert!(waited.elapsed() < Duration::from_secs(60), "the sweep never got going");
            std::thread::sleep(Duration::from_millis(20));
        }
        let interrupted = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill -INT");
        assert!(interrupted.success());
    });
    assert!(!output.status.success(), "an interrupted sweep is not a success");
    let message = stderr(&output);
    assert!(message.contains("interrupted (Ctrl-C) after 0 of 3 memory sizes"), "{message}");
    assert!(message.contains("restored the MemorySize of hits to 256 MB"), "{message}");
    let f = function.lock().expect("state");
    assert_eq!(f.updates, [128, 256]);
    assert_eq!(f.memory_mb, 256);
}

#[test]
fn sizes_outside_lambda_s_range_are_refused_before_anything_is_called() {
    let (endpoint, function) = lambda_api(|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    let output = sweep_fake(&endpoint, dir.path(), &["--memory", "128,64"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("64 MB is outside Lambda's 128..=10240 MB"), "{}", stderr(&output));
    let output = latency(&[], &["sweep", "--memory", "128"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--function <NAME>|--local|--bootstrap <PATH>"), "{}", stderr(&output));
    // Options of the other backend are refused, not ignored.
    for (args, first, second) in [
        (&["sweep", "--function", "hits", "--no-quota"][..], "--function", "--no-quota"),
        (&["sweep", "--bootstrap", "/bin/true", "--qualifier", "live"][..], "--bootstrap", "--qualifier"),
        (&["sweep", "--local", "--update-timeout-secs", "5"][..], "--local", "--update-timeout-secs"),
    ] {
        let output = latency(&[("AWS_ENDPOINT_URL_LAMBDA", &endpoint)], args);
        assert!(!output.status.success(), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains("cannot be used with"), "{args:?}: {message}");
        assert!(message.contains(first) && message.contains(second), "{args:?}: {message}");
    }
    let f = function.lock().expect("state");
    assert!(f.updates.is_empty() && f.calls.is_empty());
}

// --- moto. --------------------------------------------------------------------------------

/// moto's endpoint, or `None` (skip, or fail under `TEST_REQUIRE_ALL=1`: `testkit::skip`) when
/// `AWS_ENDPOINT_URL` is not set.
fn moto() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            testkit::skip("needs moto: AWS_ENDPOINT_URL is not set (scripts/test starts it)");
            None
        }
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A function in moto: an IAM role for it (moto checks that it exists), a dummy zip.
async fn moto_function(endpoint: &str, name: &str) -> aws_sdk_lambda::Client {
    aws_setup::install_tls_provider();
    let http = reqwest::Client::new();
    // Without Docker moto cannot run a function; this makes its Invoke answer with a stub instead
    // of failing. No other test here uses moto's Lambda.
    let config = http
        .post(format!("{endpoint}/moto-api/config"))
        .body(r#"{"lambda": {"use_docker": false}}"#)
        .send()
        .await
        .expect("moto's config API");
    assert!(config.status().is_success(), "{config:?}");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = http
        .post(format!("{endpoint}/"))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            [
                ("Action", "CreateRole"),
                ("Version", "2010-05-08"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", policy),
            ]
            .iter()
            .map(|(key, value)| format!("{key}={}", form_encode(value)))
            .collect::<Vec<_>>()
            .join("&"),
        )
        .send()
        .await
        .expect("IAM CreateRole");
    assert!(role.status().is_success(), "{:?}", role.text().await);

    let sdk = aws_setup::load_at(aws_setup::TrustRoots::Platform, Some(endpoint)).await;
    let client = aws_sdk_lambda::Client::new(&sdk);
    // The smallest valid zip: an end-of-central-directory record and nothing else.
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    client
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(format!("arn:aws:iam::123456789012:role/{name}"))
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .memory_size(128)
        .architectures(aws_sdk_lambda::types::Architecture::Arm64)
        .send()
        .await
        .expect("CreateFunction in moto");
    client
}

#[tokio::test]
async fn on_moto_the_sweep_configures_waits_and_restores_and_a_missing_report_stops_it() {
    let Some(endpoint) = moto() else {
        return;
    };
    let name = format!(
        "sweep-{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_micros())
    );
    let client = moto_function(&endpoint, &name).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().to_str().expect("UTF-8").to_owned();
    let args = ["sweep", "--function", name.as_str(), "--memory", "256,512", "-n", "2", "-o", out.as_str()];
    let output = latency(&[("AWS_ENDPOINT_URL", &endpoint)], &args);
    assert!(!output.status.success(), "moto sends no log tail: the sweep cannot have figures");
    let message = stderr(&output);
    // It got as far as the first size's cold call: configured and waited, then no REPORT.
    assert!(message.contains("latency: 256 MB: configuring"), "{message}");
    assert!(message.contains("the Invoke response has no LogResult"), "{message}");
    assert!(message.contains(&format!("restored the MemorySize of {name} to 128 MB")), "{message}");
    let config =
        client.get_function_configuration().function_name(&name).send().await.expect("configuration");
    assert_eq!(config.memory_size(), Some(128), "the original memory size is back");
    assert!(!dir.path().join("memory.json").exists(), "a stopped sweep writes no figures");
}

// --- This machine. ------------------------------------------------------------------------

fn hits_bootstrap() -> &'static Path {
    static BOOTSTRAP: OnceLock<PathBuf> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| testkit::emulator::workspace_bin("hits"))
}

#[test]
fn a_local_sweep_runs_the_hits_bootstrap_at_two_sizes_under_a_cpu_quota_or_says_why_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = hits_bootstrap().to_str().expect("UTF-8");
    let out = dir.path().to_str().expect("UTF-8");
    let output =
        latency(&[], &["sweep", "--bootstrap", bootstrap, "--memory", "1769,128", "-n", "3", "-o", out]);
    if !output.status.success() {
        let message = stderr(&output);
        assert!(message.contains("CPU quota unavailable on this machine: "), "{message}");
        assert!(message.contains("Pass --no-quota"), "{message}");
        return;
    }
    let json = memory_json(dir.path());
    for memory_mb in [128, 1769] {
        let row = size(&json, memory_mb);
        assert_eq!(row["invocations"], 3, "{row}");
        assert!(row["init_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{row}");
        let p50 = row["duration_ms"]["p50"].as_f64().expect("p50");
        assert!(p50 > 0.0 && p50 < 5_000.0, "{row}");
        assert!(row["billed_ms_mean"].as_f64().is_some_and(|ms| ms >= 1.0), "{row}");
        assert!(row["usd_per_million"].as_f64().is_some_and(|usd| usd > 0.2), "{row}");
    }
    assert!(
        json["target"].as_str().is_some_and(|t| t.contains("a cgroup quota of memory / 1769 MB")),
        "{json}"
    );
    assert!(json["restored"].is_null(), "nothing to restore on this machine");
    assert!(stdout(&output).contains("| 128 | 0.07 |"), "{}", stdout(&output));
}

#[test]
fn without_a_quota_a_local_sweep_says_its_figures_cannot_show_the_memory_effect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = hits_bootstrap().to_str().expect("UTF-8");
    let out = dir.path().to_str().expect("UTF-8");
    let output = latency(
        &[("HITS_STORE", "memory")],
        &["sweep", "--bootstrap", bootstrap, "--no-quota", "--memory", "256", "-n", "2", "-o", out],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(
        table.contains("not limited (--no-quota)") && table.contains("cannot show what memory buys"),
        "{table}"
    );
    assert!(table.contains("store memory"), "{table}");
    assert_eq!(size(&memory_json(dir.path()), 256)["invocations"], 2);
}
