//! Lambda operations (seed 004): the EMF metrics lines, the JSON logs with the request id, and
//! the X-Ray subsegments of the store calls.
//!
//! The metrics through the handler; the logs and X-Ray through the real `hits` bootstrap, with
//! this file playing the Lambda Runtime API (as `latency cold-start` does), so that the test
//! reads the bootstrap's stdout and hands it trace headers, and a UDP socket playing the X-Ray
//! daemon. `HITS_BOOTSTRAP` (through `HITS_BOOTSTRAP_RUNNER`) names another bootstrap, as in
//! lambda_emulator.rs.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use counter::memory::MemoryCounter;
use counter::{BoxFuture, Counter, SharedCounter, StoreError};
use hits::lambda::{Event, Metrics, Reply, handler_with};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower::ServiceExt;

mod common;
use common::{http_api_event, rest_api_event};

// --- The metrics, through the handler. ----------------------------------------------------

type Invoke = Box<dyn Fn(LambdaEvent<Event>) -> BoxFuture<'static, Result<Reply, lambda_runtime::Error>>>;

/// The handler over a counter, its EMF lines collected.
struct Function {
    invoke: Invoke,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Function {
    fn new(counter: SharedCounter) -> Function {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let service =
            handler_with(counter, Metrics::to(move |line| sink.lock().unwrap().push(line.to_owned())));
        Function { invoke: Box::new(move |event| Box::pin(service.clone().oneshot(event))), lines }
    }

    async fn invoke(&self, request_id: &str, event: Value) -> Value {
        let event: Event = serde_json::from_value(event).unwrap();
        let mut context = Context::default();
        context.request_id = request_id.to_owned();
        match (self.invoke)(LambdaEvent::new(event, context)).await.unwrap() {
            Reply::Http(v) => v,
            other => serde_json::to_value(other).unwrap(),
        }
    }

    /// The lines so far, parsed, each checked to be one complete EMF line.
    fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().map(|l| emf(l)).collect()
    }
}

/// The line as JSON, checked against the EMF specification: every metric it declares is a
/// top-level number, every dimension a top-level string, `Timestamp` is in milliseconds.
fn emf(line: &str) -> Value {
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "one complete line: {line:?}");
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let aws = &v["_aws"];
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let timestamp = aws["Timestamp"].as_u64().unwrap_or_else(|| panic!("Timestamp: {v}"));
    assert!(timestamp.abs_diff(now_ms) < 600_000, "Timestamp is now, in milliseconds: {timestamp}");
    for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
        assert_eq!(directive["Namespace"], "hits");
        for dimension in
            directive["Dimensions"].as_array().unwrap().iter().flat_map(|d| d.as_array().unwrap())
        {
            assert!(v[dimension.as_str().unwrap()].is_string(), "dimension {dimension}: {v}");
        }
        for metric in directive["Metrics"].as_array().unwrap() {
            assert!(v[metric["Name"].as_str().unwrap()].is_number(), "metric {metric}: {v}");
        }
    }
    v
}

fn metric_names(v: &Value) -> Vec<&str> {
    let metrics = v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
    metrics.iter().map(|m| m["Name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_hit_writes_one_emf_line() {
    let f = Function::new(Arc::new(MemoryCounter::default()));
    let file = "apigw_v2_proxy_request.json";
    assert_eq!(f.invoke("r-1", http_api_event(file, "/hits")).await["body"], "1");
    assert_eq!(f.invoke("r-2", rest_api_event("/hits")).await["body"], "2");
    // Neither the health check, the page, a 404 nor a HEAD touches the store: no line.
    f.invoke("r-3", http_api_event(file, "/healthz")).await;
    f.invoke("r-4", http_api_event(file, "/")).await;
    f.invoke("r-5", http_api_event(file, "/nope")).await;
    let mut head = http_api_event(file, "/hits");
    head["requestContext"]["http"]["method"] = json!("HEAD");
    f.invoke("r-6", head).await;
    assert_eq!(f.invoke("r-7", http_api_event(file, "/hits")).await["body"], "3");

    let lines = f.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, (id, count, cold)) in lines.iter().zip([("r-1", 1, 1), ("r-2", 2, 0), ("r-7", 3, 0)]) {
        assert_eq!(metric_names(line), ["Hits", "StoreErrors", "StoreLatency", "ColdStart"]);
        assert_eq!(line["Store"], "memory");
        assert_eq!((line["Hits"].as_u64(), line["StoreErrors"].as_u64()), (Some(1), Some(0)), "{line}");
        assert!(line["StoreLatency"].as_f64().unwrap() >= 0.0);
        assert_eq!(line["ColdStart"], cold, "ColdStart 1 on the first invocation only: {line}");
        assert_eq!(line["requestId"], id);
        assert_eq!(line["count"], count);
    }
}

#[tokio::test]
async fn the_warmer_keeps_the_count_and_emits_no_hits_metric() {
    let f = Function::new(Arc::new(MemoryCounter::default()));
    for id in ["w-1", "w-2"] {
        let reply = f.invoke(id, json!({"instruction": "warmer"})).await;
        assert_eq!(reply, json!({"warmed": true, "store": "memory"}));
    }
    assert_eq!(f.invoke("h-3", rest_api_event("/hits")).await["body"], "1", "the warmer did not count");

    let lines = f.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for (line, cold) in lines[..2].iter().zip([1, 0]) {
        assert_eq!(metric_names(line), ["Warmer", "WarmerErrors", "ColdStart"]);
        assert!(line.get("Hits").is_none() && line.get("count").is_none(), "{line}");
        assert_eq!((line["Warmer"].as_u64(), line["WarmerErrors"].as_u64()), (Some(1), Some(0)));
        assert_eq!(line["ColdStart"], cold, "{line}");
    }
    assert_eq!((lines[2]["Hits"].as_u64(), lines[2]["ColdStart"].as_u64()), (Some(1), Some(0)));
}

/// A store that is down: every call fails.
struct Down;

impl Counter for Down {
    fn increment(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async { Err(StoreError::Contended { store: "s3", attempts: 5 }) })
    }
    fn warm(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Closed { store: "s3" }) })
    }
    fn kind(&self) -> &'static str {
        "s3"
    }
}

#[tokio::test]
async fn a_store_failure_writes_a_store_error_and_no_hit() {
    let f = Function::new(Arc::new(Down));
    let reply = f.invoke("f-1", rest_api_event("/hits")).await;
    assert_eq!(reply["statusCode"], 503, "{reply}");
    assert_eq!(f.invoke("f-2", json!({"instruction": "warmer"})).await["warmed"], true);
    let lines = f.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let hit = &lines[0];
    assert_eq!((hit["Hits"].as_u64(), hit["StoreErrors"].as_u64()), (Some(0), Some(1)), "{hit}");
    assert!(hit["StoreLatency"].is_number() && hit.get("count").is_none(), "{hit}");
    assert_eq!((hit["Store"].as_str(), hit["requestId"].as_str()), (Some("s3"), Some("f-1")));
    assert_eq!(lines[1]["WarmerErrors"], 1, "{}", lines[1]);
}

// --- The Runtime API and the bootstrap. ---------------------------------------------------

/// One invocation for the bootstrap's next `/next`.
struct Invocation {
    id: String,
    trace_header: Option<String>,
    event: Value,
}

/// What the bootstrap answered: (request id, the response or the error).
type Answer = (String, Result<Value, String>);

struct ApiState {
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    answers: mpsc::UnboundedSender<Answer>,
}

/// The Lambda Runtime API, played on 127.0.0.1 (what the bootstrap needs of it).
struct RuntimeApi {
    addr: SocketAddr,
    pending: mpsc::UnboundedSender<Invocation>,
    answers: mpsc::UnboundedReceiver<Answer>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    async fn start() -> RuntimeApi {
        let (pending, handed_out) = mpsc::unbounded_channel();
        let (answered, answers) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState { pending: tokio::sync::Mutex::new(handed_out), answers: answered });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        RuntimeApi { addr, pending, answers, server }
    }

    /// Hands `event` to the bootstrap as invocation `id` (with the trace header, if any) and
    /// waits for its answer.
    async fn invoke(&mut self, id: &str, trace_header: Option<&str>, event: Value) -> Value {
        let invocation =
            Invocation { id: id.to_owned(), trace_header: trace_header.map(str::to_owned), event };
        self.pending.send(invocation).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), self.answers.recv()).await;
        let (answered, result) = answer.expect("the bootstrap answered within 30 s").unwrap();
        assert_eq!(answered, id, "answers come in order");
        result.unwrap_or_else(|e| panic!("invocation {id} failed: {e}"))
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let Some(invocation) = state.pending.lock().await.recv().await else {
        return (StatusCode::GONE, "no more invocations").into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
    let mut headers = vec![
        ("lambda-runtime-aws-request-id", invocation.id),
        ("lambda-runtime-deadline-ms", deadline.as_millis().to_string()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:eu-west-2:123456789012:function:hits".into()),
        ("content-type", "application/json".into()),
    ];
    if let Some(trace) = invocation.trace_header {
        headers.push(("lambda-runtime-trace-id", trace));
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, value.parse().unwrap());
    }
    (map, invocation.event.to_string()).into_response()
}

async fn response(State(state): State<Arc<ApiState>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).map_err(|e| format!("not JSON ({e})"));
    let _ = state.answers.send((id, body));
    StatusCode::ACCEPTED
}

async fn error(State(state): State<Arc<ApiState>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let _ = state.answers.send((id, Err(String::from_utf8_lossy(&body).into_owned())));
    StatusCode::ACCEPTED
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    let _ = state.answers.send(("init".into(), Err(String::from_utf8_lossy(&body).into_owned())));
    StatusCode::ACCEPTED
}

/// The bootstrap, started as Lambda starts it (a clean environment: the Lambda variables and
/// `env`), its stdout collected line by line. Killed when dropped.
struct Bootstrap {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Bootstrap {
    fn start(api: &RuntimeApi, env: &[(&str, &str)]) -> Bootstrap {
        let program =
            std::env::var("HITS_BOOTSTRAP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hits").to_owned());
        let runner = std::env::var("HITS_BOOTSTRAP_RUNNER").unwrap_or_default();
        let mut command = match runner.split_whitespace().collect::<Vec<_>>().split_first() {
            Some((runner, args)) => {
                let mut c = Command::new(runner);
                c.args(args).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "hits")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", "eu-west-2")
            .env("HITS_STORE", "memory")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (pipe, lines) = (child.stdout.take().unwrap(), stdout.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Bootstrap { child, stdout }
    }

    /// The stdout lines once `done` holds of them (at most 10 s: the lines of an invocation may
    /// reach the pipe reader a moment after its answer).
    fn lines_once(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            let lines = self.stdout.lock().unwrap().clone();
            if done(&lines) || started.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn emf_lines(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.contains("\"_aws\"")).count()
}

/// `Root=1-…;Parent=…;Sampled=…` as Lambda hands it to the runtime.
fn trace_header(root: &str, sampled: bool) -> String {
    format!("Root={root};Parent=53995c3f42cd8ad8;Sampled={}", u8::from(sampled))
}

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let mut api = RuntimeApi::start().await;
    let env = [
        ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
        ("RUST_LOG", "tower_http=debug"),
    ];
    let bootstrap = Bootstrap::start(&api, &env);
    let event = http_api_event("apigw_v2_proxy_request.json", "/hits");
    let first = api.invoke("req-hit-1", Some(&trace_header(ROOT, false)), event.clone()).await;
    assert_eq!(first["body"], "1", "{first}");
    let warmed = api.invoke("req-warm-2", None, json!({"instruction": "warmer"})).await;
    assert_eq!(warmed, json!({"warmed": true, "store": "memory"}));
    let second = api.invoke("req-hit-3", None, event).await;
    assert_eq!(second["body"], "2", "{second}");
    let lines = bootstrap.lines_once(|lines| emf_lines(lines) == 3);

    // Every stdout line is JSON: the logs and the metrics.
    let json: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let (metrics, logs): (Vec<&Value>, Vec<&Value>) = json.iter().partition(|v| v.get("_aws").is_some());

    // One EMF line per invocation, the cold start on the first.
    let metrics: Vec<_> = metrics.iter().map(|v| emf(&format!("{v}\n"))).collect();
    let summary: Vec<_> = metrics
        .iter()
        .map(|m| {
            (m["requestId"].as_str().unwrap(), m.get("Hits").is_some(), m["ColdStart"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [("req-hit-1", true, 1), ("req-warm-2", false, 0), ("req-hit-3", true, 0)],
        "{lines:#?}"
    );
    assert_eq!((metrics[0]["count"].as_u64(), metrics[2]["count"].as_u64()), (Some(1), Some(2)));

    // Log lines within an invocation carry its request id at the top (and in their span list);
    // the ones from init carry none.
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for log in &logs {
        assert!(log["level"].is_string(), "a log line has a level: {log}");
        let in_span = log["spans"].as_array().into_iter().flatten().find_map(|s| s["requestId"].as_str());
        assert_eq!(log["requestId"].as_str(), in_span, "{log}");
        if let Some(id) = in_span {
            *per_request.entry(id).or_default() += 1;
        }
    }
    for id in ["req-hit-1", "req-warm-2", "req-hit-3"] {
        assert!(per_request.get(id).is_some_and(|n| *n > 0), "no log line of {id}: {lines:#?}");
    }
    assert!(
        logs.iter()
            .any(|l| l.get("requestId").is_none() && l["fields"]["message"] == "store connection open"),
        "the init line, with no request id: {lines:#?}"
    );
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "no ANSI colours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_metrics_0_turns_the_emf_lines_off() {
    let mut api = RuntimeApi::start().await;
    let bootstrap = Bootstrap::start(&api, &[("HITS_METRICS", "0")]);
    let event = http_api_event("apigw_v2_proxy_request.json", "/hits");
    assert_eq!(api.invoke("req-1", None, event).await["body"], "1");
    api.invoke("req-2", None, json!({"instruction": "warmer"})).await;
    std::thread::sleep(Duration::from_millis(200));
    let lines = bootstrap.lines_once(|_| true);
    assert_eq!(emf_lines(&lines), 0, "{lines:#?}");
}

/// A UDP socket on 127.0.0.1 playing the X-Ray daemon.
struct Daemon(tokio::net::UdpSocket);

impl Daemon {
    async fn start() -> Daemon {
        Daemon(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    fn address(&self) -> String {
        self.0.local_addr().unwrap().to_string()
    }

    /// The subsegments received within `wait` of the last one: (header line, document).
    async fn received(&self, wait: Duration) -> Vec<(String, Value)> {
        let mut got = Vec::new();
        let mut buffer = vec![0u8; 65536];
        while let Ok(Ok(n)) = tokio::time::timeout(wait, self.0.recv(&mut buffer)).await {
            let text = std::str::from_utf8(&buffer[..n]).unwrap().to_owned();
            let (header, document) =
                text.split_once('\n').unwrap_or_else(|| panic!("no header line: {text}"));
            got.push((header.to_owned(), serde_json::from_str(document).unwrap()));
        }
        got
    }
}

/// Checks a subsegment of trace `root` (under the header's parent) and returns it.
fn subsegment(datagram: &(String, Value), root: &str, name: &str) -> Value {
    let (header, doc) = datagram;
    assert_eq!(header, r#"{"format": "json", "version": 1}"#);
    assert_eq!(doc["type"], "subsegment", "{doc}");
    assert_eq!(doc["name"], name, "{doc}");
    assert_eq!(doc["trace_id"], root, "{doc}");
    assert_eq!(doc["parent_id"], "53995c3f42cd8ad8", "{doc}");
    let id = doc["id"].as_str().unwrap();
    assert!(id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()), "{doc}");
    let (start, end) = (doc["start_time"].as_f64().unwrap(), doc["end_time"].as_f64().unwrap());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start <= end && end <= now + 1.0 && now - start < 60.0, "{doc}");
    doc.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampled_invocation_sends_a_store_subsegment_to_the_xray_daemon() {
    let daemon = Daemon::start().await;
    let mut api = RuntimeApi::start().await;
    let _bootstrap = Bootstrap::start(&api, &[("AWS_XRAY_DAEMON_ADDRESS", &daemon.address())]);
    let event = http_api_event("apigw_v2_proxy_request.json", "/hits");
    let quiet = Duration::from_millis(300);

    // Sampled: one subsegment for the increment (the memory store: a local one, no namespace).
    assert_eq!(api.invoke("x-1", Some(&trace_header(ROOT, true)), event.clone()).await["body"], "1");
    let got = daemon.received(quiet).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let doc = subsegment(&got[0], ROOT, "memory");
    assert!(doc.get("namespace").is_none() && doc.get("fault").is_none(), "{doc}");

    // Not sampled, no header, the page: nothing.
    api.invoke("x-2", Some(&trace_header(ROOT, false)), event.clone()).await;
    api.invoke("x-3", None, event.clone()).await;
    api.invoke("x-4", Some(&trace_header(ROOT, true)), http_api_event("apigw_v2_proxy_request.json", "/"))
        .await;
    assert_eq!(daemon.received(quiet).await, vec![]);

    // The warmer's store call is one too.
    let other = "1-5759e988-000000000000000000000001";
    api.invoke("x-5", Some(&trace_header(other, true)), json!({"instruction": "warmer"})).await;
    let got = daemon.received(quiet).await;
    assert_eq!(got.len(), 1, "{got:?}");
    subsegment(&got[0], other, "memory");
}

/// Each request's `X-Amz-Target` and `X-Amzn-Trace-Id`, as the fake DynamoDB saw them.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Plays DynamoDB for the counter: `UpdateItem` adds one, `GetItem` finds nothing; keeps what
/// it saw. Returns its endpoint URL.
async fn fake_dynamodb(seen: Seen) -> (String, tokio::task::JoinHandle<()>) {
    async fn call(State((seen, count)): State<(Seen, Arc<Mutex<u64>>)>, headers: HeaderMap) -> Response {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let target = header("x-amz-target").unwrap_or_default();
        seen.lock().unwrap().push((target.clone(), header("x-amzn-trace-id")));
        let body = if target.ends_with(".UpdateItem") {
            let mut count = count.lock().unwrap();
            *count += 1;
            json!({"Attributes": {"hits": {"N": count.to_string()}}})
        } else {
            json!({})
        };
        ([("content-type", "application/x-amz-json-1.0")], body.to_string()).into_response()
    }
    let router = Router::new().route("/", post(call)).with_state((seen, Arc::new(Mutex::new(0u64))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_increment_is_a_dynamodb_subsegment_and_its_request_carries_the_trace_header() {
    let daemon = Daemon::start().await;
    let seen = Seen::default();
    let (endpoint, dynamodb) = fake_dynamodb(seen.clone()).await;
    let mut api = RuntimeApi::start().await;
    let env = [
        ("AWS_XRAY_DAEMON_ADDRESS", daemon.address()),
        ("HITS_STORE", "dynamodb:hits-counter".into()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let _bootstrap = Bootstrap::start(&api, &env);
    let header = trace_header(ROOT, true);
    let event = http_api_event("apigw_v2_proxy_request.json", "/hits");
    assert_eq!(api.invoke("d-1", Some(&header), event).await["body"], "1");

    let got = daemon.received(Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let doc = subsegment(&got[0], ROOT, "DynamoDB");
    assert_eq!(doc["namespace"], "aws", "{doc}");
    assert_eq!(doc["aws"]["operation"], "UpdateItem", "{doc}");

    // The SDK's own request joins the trace: lambda_runtime sets _X_AMZN_TRACE_ID for the
    // invocation and the SDK's recursion-detection interceptor sends it as X-Amzn-Trace-Id.
    let seen = seen.lock().unwrap().clone();
    let update = seen.iter().find(|(target, _)| target.ends_with(".UpdateItem")).expect("an UpdateItem");
    assert_eq!(update.1.as_deref(), Some(header.as_str()), "{seen:?}");
    let warm = seen.first().unwrap();
    assert!(
        warm.0.ends_with(".GetItem") && warm.1.is_none(),
        "the pre-connect at init has no trace: {seen:?}"
    );
    dynamodb.abort();
}
