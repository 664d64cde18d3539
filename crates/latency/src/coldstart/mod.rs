//! `latency cold-start`: plays the Lambda Runtime API for a bootstrap and times its cold starts.
//!
//! Each run starts a fresh bootstrap process, as Lambda does for a cold start, with the
//! environment Lambda gives a `provided.al2023` function plus the store's settings
//! (`HITS_*`, `AWS_ENDPOINT_URL`, credentials). The timeline of one run:
//!
//! - **init** — exec → the bootstrap's first `GET …/invocation/next` (Lambda's init phase);
//! - **first call** — that `/next` answered with the event → its `POST …/response`;
//! - **warm call** — a second invocation on the same process, `/next` answered → response.
//!
//! A response must be an HTTP `200` whose body is a count (a number), and the warm call's count
//! must follow the first call's: an error or any other answer fails the run instead of being
//! timed as a success.
//!
//! `--cpu-quota` confines the bootstrap to a share of one CPU through a cgroup (v2 `cpu.max`, or
//! v1 `cpu.cfs_quota_us`), entered between fork and exec so that loading the binary is throttled
//! too. Lambda gives a function CPU in proportion to its memory, one vCPU at 1769 MB, so 128 MB
//! gets about 7.2% (`--cpu-quota lambda`). When no cgroup can be made the command says so and why.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::Error;

/// A real API Gateway HTTP API (v2) event (the `lambda_http` crate's test data, kept with the
/// function's tests); [`default_event`] turns it into `GET /hits`.
const HTTP_API_EVENT: &str =
    include_str!("../../../../functions/hits/tests/fixtures/apigw_v2_proxy_request.json");
/// How the built-in event is named in output.
pub(crate) const DEFAULT_EVENT_SOURCE: &str = "API Gateway HTTP API (v2) GET /hits";
/// Lambda's CPU allocation: one full vCPU at this memory size, proportionally below it.
pub(crate) const MB_PER_VCPU: f64 = 1769.0;
/// Targets the figures are shown against.
const INIT_TARGET_MS: f64 = 20.0;
const FIRST_CALL_TARGET_MS: f64 = 100.0;
/// Lines of the bootstrap's output kept for error messages.
const OUTPUT_TAIL: usize = 30;
const FUNCTION_NAME: &str = "hits-cold-start";
const ACCOUNT_ID: &str = "123456789012";
/// Environment passed through to the bootstrap: exact names, then prefixes.
const PASS_THROUGH: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_LOG_FORMAT",
    "AWS_LAMBDA_LOG_LEVEL",
    "RUST_LOG",
];
const PASS_THROUGH_PREFIXES: &[&str] = &["HITS_", "AWS_ENDPOINT_URL"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bootstrap executable to cold-start (e.g. `$CARGO_TARGET_DIR/release/hits`).
    #[arg(long, value_name = "PATH")]
    pub bootstrap: PathBuf,
    /// How many cold starts: each one a fresh process.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// The invocation event, a JSON file [default: a real API Gateway HTTP API `GET /hits` event].
    #[arg(long, value_name = "FILE")]
    pub event: Option<PathBuf>,
    /// Confine the bootstrap to this percentage of one CPU, or `lambda`: what --memory-mb gets
    /// on Lambda (memory / 1769 MB per vCPU; 7.2% at 128 MB).
    #[arg(long, value_name = "PCT|lambda")]
    pub cpu_quota: Option<Quota>,
    /// The scheduler period the CPU quota is granted over, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub cpu_period_ms: u32,
    /// Let init run at full CPU and apply the quota from the first invocation on: the bootstrap
    /// enters the cgroup when it first polls `/next`, before the event is handed over. Lambda
    /// has been measured to throttle on-demand init less than invocations; by default the
    /// quota applies from exec, the harsher assumption.
    #[arg(long, requires = "cpu_quota")]
    pub quota_after_init: bool,
    /// The function's memory size: set as AWS_LAMBDA_FUNCTION_MEMORY_SIZE and used by
    /// `--cpu-quota lambda`. Memory itself is not limited.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory_mb: u32,
    /// More environment for the bootstrap, KEY=VALUE (repeatable). HITS_*, AWS_ENDPOINT_URL*,
    /// AWS credentials, AWS_REGION and RUST_LOG are passed through from this process anyway.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Give up on a phase (init, a call) after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub timeout_secs: u64,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--cpu-quota`: a percentage of one CPU, or Lambda's share for the memory size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quota {
    Percent(f64),
    Lambda,
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("lambda") {
            return Ok(Quota::Lambda);
        }
        match s.trim_end_matches('%').parse::<f64>() {
            Ok(p) if p.is_finite() && p > 0.0 && p <= 100.0 => Ok(Quota::Percent(p)),
            _ => Err(format!("{s:?} is not a percentage of one CPU in (0, 100], nor `lambda`")),
        }
    }
}

pub async fn run(args: Args) -> Result<(), Error> {
    let plan = Plan::new(&args)?;
    let cpu = match plan.cpu_percent {
        Some(percent) => Some(CpuLimit::create(percent, u64::from(args.cpu_period_ms) * 1000)?),
        None => None,
    };
    if !args.json {
        println!("{}", plan.describe(cpu.as_ref()));
    }
    let mut runs = Vec::with_capacity(args.runs as usize);
    for n in 1..=args.runs {
        let times = cold_start(&plan, cpu.as_ref(), n).await?;
        tracing::info!(
            run = n,
            init_ms = ms(times.init),
            first_ms = ms(times.first),
            warm_ms = ms(times.warm),
            "cold start"
        );
        if !args.json {
            eprintln!(
                "run {n:>3}: init {:>8.2} ms  first call {:>8.2} ms  warm call {:>7.2} ms  (count {} → {})",
                ms(times.init),
                ms(times.first),
                ms(times.warm),
                times.first_count,
                times.warm_count
            );
        }
        runs.push(times);
    }
    let summary = Summary::new(&plan, cpu.as_ref(), &runs);
    if args.json {
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| Error::Invalid(format!("cannot write the JSON summary: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

// --- What to run. -------------------------------------------------------------------------

/// The validated arguments: what every run needs.
pub(crate) struct Plan {
    pub(crate) bootstrap: PathBuf,
    event: Bytes,
    event_source: String,
    env: Vec<(String, String)>,
    region: String,
    pub(crate) memory_mb: u32,
    pub(crate) cpu_percent: Option<f64>,
    cpu_quota: Option<Quota>,
    quota_after_init: bool,
    timeout: Duration,
}

impl Plan {
    pub(crate) fn new(args: &Args) -> Result<Plan, Error> {
        let bootstrap = &args.bootstrap;
        let meta =
            std::fs::metadata(bootstrap).map_err(Error::io(format!("bootstrap {}", bootstrap.display())))?;
        if !meta.is_file() {
            return Err(Error::Invalid(format!("bootstrap {} is not a file", bootstrap.display())));
        }
        let (event, event_source) = match &args.event {
            Some(path) => {
                let text = std::fs::read(path).map_err(Error::io(format!("event {}", path.display())))?;
                serde_json::from_slice::<Value>(&text)
                    .map_err(|e| Error::Invalid(format!("event {} is not JSON: {e}", path.display())))?;
                (Bytes::from(text), path.display().to_string())
            }
            None => (default_event()?, DEFAULT_EVENT_SOURCE.to_owned()),
        };
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                PASS_THROUGH.contains(&k.as_str()) || PASS_THROUGH_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .collect();
        for pair in &args.env {
            match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    env.retain(|(k, _)| k != key);
                    env.push((key.to_owned(), value.to_owned()));
                }
                _ => return Err(Error::Invalid(format!("--env {pair:?}: expected KEY=VALUE"))),
            }
        }
        let region = env
            .iter()
            .find(|(k, _)| k == "AWS_REGION")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "eu-west-2".to_owned());
        let cpu_percent = args.cpu_quota.map(|q| match q {
            Quota::Percent(p) => p,
            Quota::Lambda => f64::from(args.memory_mb) / MB_PER_VCPU * 100.0,
        });
        Ok(Plan {
            bootstrap: bootstrap.clone(),
            event,
            event_source,
            env,
            region,
            memory_mb: args.memory_mb,
            cpu_percent,
            cpu_quota: args.cpu_quota,
            quota_after_init: args.quota_after_init,
            timeout: Duration::from_secs(args.timeout_secs),
        })
    }

    /// `HITS_STORE` as the bootstrap will see it (unset: the hits default, memory).
    pub(crate) fn store(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "HITS_STORE")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "memory (HITS_STORE unset)".to_owned())
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL").map(|(_, v)| v.as_str())
    }

    /// One header line about what is measured, for the table's reader.
    fn describe(&self, cpu: Option<&CpuLimit>) -> String {
        let cpu = match cpu {
            Some(limit) => format!(
                "{}; applied {}",
                limit.describe(self.cpu_quota, self.memory_mb),
                if self.quota_after_init {
                    "from the first invocation (init at full CPU)"
                } else {
                    "from exec"
                }
            ),
            None => "CPU: not limited (all of this machine's CPUs)".to_owned(),
        };
        let endpoint = self.endpoint().map(|e| format!(" via {e}")).unwrap_or_default();
        format!(
            "cold start of {}\n  event: {}\n  store: {}{endpoint}\n  memory size {} MB (reported, not enforced); {cpu}",
            self.bootstrap.display(),
            self.event_source,
            self.store(),
            self.memory_mb
        )
    }

    /// The environment Lambda gives a `provided.al2023` function, then the pass-through.
    fn lambda_env(&self, api: &str, run: u32) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_LAMBDA_RUNTIME_API", api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", self.memory_mb.to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{FUNCTION_NAME}")),
            ("AWS_LAMBDA_LOG_STREAM_NAME", format!("cold-start/[$LATEST]run-{run}")),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            ("_HANDLER", "bootstrap".to_owned()),
            ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
            (
                "LD_LIBRARY_PATH",
                "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".to_owned(),
            ),
            ("LANG", "en_US.UTF-8".to_owned()),
            ("TZ", ":UTC".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (key, value) in &self.env {
            env.retain(|(k, _)| k != key);
            env.push((key.clone(), value.clone()));
        }
        env
    }
}

/// The HTTP API fixture as `GET /hits` on the `$default` stage (the fixture is a POST).
pub(crate) fn default_event() -> Result<Bytes, Error> {
    let mut event: Value = serde_json::from_str(HTTP_API_EVENT)
        .map_err(|e| Error::Invalid(format!("the built-in event fixture is not JSON: {e}")))?;
    let Some(object) = event.as_object_mut() else {
        return Err(Error::Invalid("the built-in event fixture is not a JSON object".into()));
    };
    object.remove("body");
    object.insert("rawPath".into(), "/hits".into());
    object.insert("rawQueryString".into(), "".into());
    object.remove("queryStringParameters");
    if let Some(http) = event.pointer_mut("/requestContext/http").and_then(Value::as_object_mut) {
        http.insert("method".into(), "GET".into());
        http.insert("path".into(), "/hits".into());
    }
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| Error::Invalid(format!("cannot write the built-in event: {e}")))
}

// --- The Runtime API. ---------------------------------------------------------------------

/// One invocation waiting for the bootstrap's `/next`.
struct Invocation {
    id: String,
    event: Bytes,
    deadline_ms: u128,
    arn: String,
    trace_id: String,
}

/// What the bootstrap did, stamped when the harness saw it.
#[derive(Debug)]
enum Signal {
    Polled { at: Instant },
    Delivered { id: String, at: Instant },
    Response { id: String, at: Instant, body: Bytes },
    InvocationError { id: String, error_type: String, body: Bytes },
    InitError { error_type: String, body: Bytes },
    Unexpected { method: Method, uri: Uri },
}

struct Api {
    invocations: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    signals: mpsc::UnboundedSender<Signal>,
}

impl Api {
    fn signal(&self, signal: Signal) {
        // The receiver is gone only once the run is over; nothing is waiting for this then.
        let _ = self.signals.send(signal);
    }
}

fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(unexpected)
        .with_state(api)
}

/// `GET /next`: long-polls until the harness queues an invocation, as Lambda's does.
async fn next(State(api): State<Arc<Api>>) -> Response {
    api.signal(Signal::Polled { at: Instant::now() });
    let invocation = api.invocations.lock().await.recv().await;
    let Some(invocation) = invocation else {
        // The run is over; Lambda would have frozen or stopped the process by now.
        return (StatusCode::GONE, "no more invocations").into_response();
    };
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", invocation.id.clone()),
        ("lambda-runtime-deadline-ms", invocation.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", invocation.arn),
        ("lambda-runtime-trace-id", invocation.trace_id),
    ];
    for (name, value) in pairs {
        match HeaderValue::from_str(&value) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(e) => tracing::error!(name, %value, error = %e, "cannot send a runtime header"),
        }
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    api.signal(Signal::Delivered { id: invocation.id, at: Instant::now() });
    (StatusCode::OK, headers, invocation.event).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"OK"}"#).into_response()
}

async fn response(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    api.signal(Signal::Response { id, at: Instant::now(), body });
    accepted()
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unspecified")
        .to_owned()
}

async fn invocation_error(
    State(api): State<Arc<Api>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.signal(Signal::InvocationError { id, error_type: error_type(&headers), body });
    accepted()
}

async fn init_error(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    api.signal(Signal::InitError { error_type: error_type(&headers), body });
    accepted()
}

async fn unexpected(State(api): State<Arc<Api>>, method: Method, uri: Uri) -> Response {
    api.signal(Signal::Unexpected { method, uri });
    (StatusCode::NOT_FOUND, "not part of the Lambda Runtime API this harness plays").into_response()
}

// --- One cold start. ----------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct RunTimes {
    #[serde(serialize_with = "as_ms")]
    init: Duration,
    #[serde(serialize_with = "as_ms")]
    first: Duration,
    #[serde(serialize_with = "as_ms")]
    warm: Duration,
    first_count: u64,
    warm_count: u64,
    /// `warm_ms=` as the hits bootstrap logs it at init: how long its store pre-connect took.
    preconnect_ms: Option<f64>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The bootstrap process: killed and reaped on drop; its output's last lines kept.
struct Bootstrap {
    child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Bootstrap {
    fn spawn(mut command: Command) -> std::io::Result<Bootstrap> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, output.clone()));
        }
        Ok(Bootstrap { child, output, readers })
    }

    /// The last lines it printed, for an error message. A process that just exited may still
    /// have lines in the pipes: wait a little for the readers to reach the end.
    fn tail(&self) -> String {
        let waited = Instant::now();
        while !self.readers.iter().all(|r| r.is_finished()) && waited.elapsed() < Duration::from_millis(300) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = self.lines();
        if lines.is_empty() {
            "(the bootstrap printed nothing)".to_owned()
        } else {
            format!("last lines the bootstrap printed:\n  {}", lines.join("\n  "))
        }
    }

    fn lines(&self) -> Vec<String> {
        match self.output.lock() {
            Ok(lines) => lines.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Err(e) = self.child.kill()
        {
            tracing::warn!(error = %e, "cannot kill the bootstrap");
        }
        let _ = self.child.wait();
    }
}

/// Reads a pipe line by line on a thread of its own: keeps the last lines, logs them at debug.
fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            tracing::debug!(target: "bootstrap", "{line}");
            let mut lines = match into.lock() {
                Ok(lines) => lines,
                Err(poisoned) => poisoned.into_inner(),
            };
            if lines.len() == OUTPUT_TAIL {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    })
}

/// Aborts the Runtime API server task when the run ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A run in progress: the bootstrap and what it tells the Runtime API.
struct Session {
    bootstrap: Bootstrap,
    signals: mpsc::UnboundedReceiver<Signal>,
    timeout: Duration,
    run: u32,
}

impl Session {
    /// The next thing the bootstrap did; an error if it failed, exited or went quiet.
    async fn next(&mut self, phase: &str) -> Result<Signal, Error> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        loop {
            tokio::select! {
                signal = self.signals.recv() => {
                    let Some(signal) = signal else {
                        return Err(self.failure(phase, "the runtime API stopped".into()));
                    };
                    tracing::trace!(run = self.run, ?signal, "runtime API");
                    return match signal {
                        Signal::InitError { error_type, body } => Err(self.failure(
                            phase,
                            format!("the bootstrap reported an init error ({error_type}): {}", preview(&body)),
                        )),
                        Signal::InvocationError { id, error_type, body } => Err(self.failure(
                            phase,
                            format!("invocation {id} failed ({error_type}): {}", preview(&body)),
                        )),
                        Signal::Unexpected { method, uri } => {
                            tracing::warn!(%method, %uri, "the bootstrap called something this harness does not play");
                            continue;
                        }
                        other => Ok(other),
                    };
                }
                _ = tick.tick() => {
                    if let Some(status) = self.bootstrap.exited() {
                        return Err(self.failure(phase, format!("the bootstrap exited ({status})")));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(self.failure(
                            phase,
                            format!("nothing from the bootstrap for {} s", self.timeout.as_secs()),
                        ));
                    }
                }
            }
        }
    }

    fn failure(&self, phase: &str, what: String) -> Error {
        Error::Process(format!("cold start {}, {phase}: {what}\n{}", self.run, self.bootstrap.tail()))
    }

    /// Waits for the invocation `id` to be delivered and answered: (delivered, answered, body).
    async fn call(&mut self, id: &str, phase: &str) -> Result<(Instant, Instant, Bytes), Error> {
        let mut delivered = None;
        loop {
            match self.next(phase).await? {
                Signal::Delivered { id: got, at } if got == id => delivered = Some(at),
                Signal::Response { id: got, at, body } if got == id => {
                    let Some(delivered) = delivered else {
                        return Err(
                            self.failure(phase, format!("a response for {id} before it was delivered"))
                        );
                    };
                    return Ok((delivered, at, body));
                }
                Signal::Response { id: got, .. } => {
                    return Err(self.failure(phase, format!("a response for unknown invocation {got:?}")));
                }
                _ => {}
            }
        }
    }

    /// The count in an API Gateway / Function URL response: a 200 with a numeric body.
    fn count(&self, body: &[u8], phase: &str) -> Result<u64, Error> {
        let reply: Value = serde_json::from_slice(body)
            .map_err(|e| self.failure(phase, format!("the response is not JSON ({e}): {}", preview(body))))?;
        let status = reply.get("statusCode").and_then(Value::as_u64);
        let text = reply.get("body").and_then(Value::as_str).map(str::trim);
        let base64 = reply.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
        match (status, text) {
            (Some(200), Some(text)) if !base64 => text.parse::<u64>().map_err(|_| {
                self.failure(phase, format!("expected a count in the body of the 200, got {}", preview(body)))
            }),
            _ => Err(self.failure(
                phase,
                format!("expected statusCode 200 with a numeric plain-text body, got {}", preview(body)),
            )),
        }
    }
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(400) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn invocation(plan: &Plan, run: u32, call: u32) -> Invocation {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = format!("{:08x}-{:04x}-4000-8000-{:012x}", now.as_secs() & 0xffff_ffff, call, run);
    Invocation {
        id,
        event: plan.event.clone(),
        deadline_ms: (now + plan.timeout).as_millis(),
        arn: format!("arn:aws:lambda:{}:{ACCOUNT_ID}:function:{FUNCTION_NAME}", plan.region),
        trace_id: format!(
            "Root=1-{:08x}-{:012x}{:012x};Parent={:016x};Sampled=0",
            now.as_secs() & 0xffff_ffff,
            run,
            call,
            now.subsec_nanos()
        ),
    }
}

/// One cold start: a fresh process, its init, its first call and one warm call.
async fn cold_start(plan: &Plan, cpu: Option<&CpuLimit>, run: u32) -> Result<RunTimes, Error> {
    let mut harness = Harness::start(plan, cpu, run).await?;
    let first = harness.invoke(plan, "first call").await?;
    let first_count = harness.count(&first.body, "first call")?;
    let warm = harness.invoke(plan, "warm call").await?;
    let warm_count = harness.count(&warm.body, "warm call")?;
    if warm_count != first_count + 1 {
        return Err(harness.failure(
            "warm call",
            format!("the count went from {first_count} to {warm_count}, not up by one"),
        ));
    }
    Ok(RunTimes {
        init: harness.init,
        first: first.duration(),
        warm: warm.duration(),
        first_count,
        warm_count,
        preconnect_ms: harness.preconnect_ms(),
    })
}

/// One invocation as the harness saw it: queued for `/next`, handed out with the event (Lambda's
/// Duration starts), answered with the response (it ends).
pub(crate) struct Call {
    pub(crate) queued: Instant,
    pub(crate) delivered: Instant,
    pub(crate) answered: Instant,
    pub(crate) body: Bytes,
}

impl Call {
    /// Handed out → answered: what Lambda reports as the invocation's Duration.
    pub(crate) fn duration(&self) -> Duration {
        self.answered - self.delivered
    }

    /// Queued → answered: the invoker's view, including the wait for the bootstrap's `/next`.
    pub(crate) fn round_trip(&self) -> Duration {
        self.answered - self.queued
    }
}

/// A fresh bootstrap process under this harness's Runtime API, past its init: a Lambda
/// execution environment of one's own. Dropping it kills the process and stops the API.
pub(crate) struct Harness {
    session: Session,
    invocations: mpsc::UnboundedSender<Invocation>,
    /// The first invocation, queued before the process started (as on Lambda), not yet answered.
    first: Option<(String, Instant)>,
    calls: u32,
    /// exec → the bootstrap's first `GET …/invocation/next`: Lambda's init phase.
    pub(crate) init: Duration,
    _server: AbortOnDrop,
}

impl Harness {
    /// Starts the bootstrap (in `cpu`'s cgroup from exec, or from its first `/next` with
    /// `plan.quota_after_init`) with the first invocation already waiting, and returns once the
    /// bootstrap has asked for it: its init is over.
    pub(crate) async fn start(plan: &Plan, cpu: Option<&CpuLimit>, run: u32) -> Result<Harness, Error> {
        let (invocations, handed_out) = mpsc::unbounded_channel();
        let (signal_tx, signals) = mpsc::unbounded_channel();
        let api = Arc::new(Api { invocations: tokio::sync::Mutex::new(handed_out), signals: signal_tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::io("cannot listen for the runtime API on 127.0.0.1"))?;
        let addr = listener.local_addr().map_err(Error::io("runtime API address"))?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router(api)).await {
                tracing::error!(error = %e, "runtime API server stopped");
            }
        });
        let server = AbortOnDrop(server);

        // The quota from exec, or only once init is over (`--quota-after-init`).
        let (from_exec, after_init) = match cpu {
            Some(limit) if plan.quota_after_init => (None, Some(limit)),
            other => (other, None),
        };
        // As on Lambda, the first invocation is already waiting when the process starts (with the
        // quota after init: as soon as the bootstrap is in its cgroup).
        let first = invocation(plan, run, 1);
        let first_id = first.id.clone();
        let mut pending = Some(first);
        let mut queued = Instant::now();
        if after_init.is_none() {
            queue(&invocations, &mut pending)?;
        }

        let mut command = Command::new(&plan.bootstrap);
        command.env_clear().envs(plan.lambda_env(&addr.to_string(), run));
        if let Some(limit) = from_exec {
            limit.confine(&mut command)?;
        }
        let started = Instant::now();
        let bootstrap = Bootstrap::spawn(command)
            .map_err(Error::io(format!("cannot start the bootstrap {}", plan.bootstrap.display())))?;
        let mut session = Session { bootstrap, signals, timeout: plan.timeout, run };
        let pid = session.bootstrap.child.id();
        if let Some(limit) = from_exec {
            // spawn() returns after exec, so the move into the cgroup has happened by now.
            limit.check(pid).map_err(|why| session.failure("init", why))?;
        }

        let polled = loop {
            if let Signal::Polled { at } = session.next("init").await? {
                break at;
            }
        };
        if let Some(limit) = after_init {
            limit.enter(pid).map_err(|why| session.failure("init", why))?;
            limit.check(pid).map_err(|why| session.failure("init", why))?;
            queued = Instant::now();
            queue(&invocations, &mut pending)?;
        }
        Ok(Harness {
            session,
            invocations,
            first: Some((first_id, queued)),
            calls: 1,
            init: polled - started,
            _server: server,
        })
    }

    /// The next invocation — the one waiting since the start, then a new one each time — and
    /// its response; an error if the bootstrap reports one, exits or goes quiet.
    pub(crate) async fn invoke(&mut self, plan: &Plan, phase: &str) -> Result<Call, Error> {
        let (id, queued) = match self.first.take() {
            Some(first) => first,
            None => {
                self.calls += 1;
                let next = invocation(plan, self.session.run, self.calls);
                let id = next.id.clone();
                let queued = Instant::now();
                self.invocations
                    .send(next)
                    .map_err(|_| Error::Process("the runtime API queue closed during the run".into()))?;
                (id, queued)
            }
        };
        let (delivered, answered, body) = self.session.call(&id, phase).await?;
        Ok(Call { queued, delivered, answered, body })
    }

    /// The count in an API Gateway / Function URL response: a 200 with a numeric body.
    pub(crate) fn count(&self, body: &[u8], phase: &str) -> Result<u64, Error> {
        self.session.count(body, phase)
    }

    /// An error about `phase` of this process, with the last lines it printed.
    pub(crate) fn failure(&self, phase: &str, what: String) -> Error {
        self.session.failure(phase, what)
    }

    /// The hits bootstrap's store pre-connect time, from its init log line.
    pub(crate) fn preconnect_ms(&self) -> Option<f64> {
        self.session.bootstrap.lines().iter().find_map(|line| preconnect_ms(line))
    }
}

fn queue(
    invocations: &mpsc::UnboundedSender<Invocation>,
    pending: &mut Option<Invocation>,
) -> Result<(), Error> {
    match pending.take() {
        Some(invocation) => invocations
            .send(invocation)
            .map_err(|_| Error::Process("the runtime API queue closed before the run".into())),
        None => Ok(()),
    }
}

/// `warm_ms=12` (text logs) or `"warm_ms":12` (JSON logs) in a line of the hits bootstrap.
fn preconnect_ms(line: &str) -> Option<f64> {
    let line = strip_ansi(line);
    let rest = line.split_once("warm_ms=").or_else(|| line.split_once("\"warm_ms\":"))?.1;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().ok()
}

/// The line without terminal colour codes (`ESC [ … letter`), which the bootstrap's text logs
/// carry even into a pipe.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// --- The CPU quota. -----------------------------------------------------------------------

/// A cgroup of this process's own with a CPU quota; removed on drop.
pub(crate) struct CpuLimit {
    dir: PathBuf,
    procs: File,
    pub(crate) mechanism: String,
    pub(crate) percent: f64,
    quota_us: u64,
    period_us: u64,
}

impl CpuLimit {
    /// Makes the cgroup, or says exactly why this machine cannot.
    fn create(percent: f64, period_us: u64) -> Result<CpuLimit, Error> {
        Self::create_or(percent, period_us, "Run without --cpu-quota")
    }

    /// [`CpuLimit::create`], and when no cgroup can be made the error says why and then
    /// `instead` (what to do about it: run without the option that asked for the quota).
    pub(crate) fn create_or(percent: f64, period_us: u64, instead: &str) -> Result<CpuLimit, Error> {
        let quota_us = ((percent / 100.0) * period_us as f64).round() as u64;
        if quota_us < 1000 {
            return Err(Error::Invalid(format!(
                "CPU quota of {percent:.2}% over a {} ms period is {quota_us} µs; the kernel's minimum is 1000 µs: \
                 raise --cpu-period-ms",
                period_us / 1000
            )));
        }
        let name = format!("latency-cold-start-{}", std::process::id());
        let unified = Path::new("/sys/fs/cgroup");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let controllers = std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        let attempt = if controllers.split_whitespace().any(|c| c == "cpu") {
            Self::create_v2(unified, &name, quota_us, period_us)
        } else if v1.join("cpu.cfs_quota_us").exists() {
            Self::create_v1(v1, &name, quota_us, period_us)
        } else {
            Err(format!(
                "no cgroup CPU controller here: {} lists no `cpu` (cgroup v2) and {} has no cpu.cfs_quota_us (cgroup v1)",
                unified.join("cgroup.controllers").display(),
                v1.display()
            ))
        };
        match attempt {
            Ok((dir, mechanism)) => {
                let procs =
                    std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")).map_err(|e| {
                        unavailable(format!("cannot open {}/cgroup.procs: {e}", dir.display()), instead)
                    })?;
                tracing::info!(dir = %dir.display(), %mechanism, "CPU quota cgroup ready");
                Ok(CpuLimit { dir, procs, mechanism, percent, quota_us, period_us })
            }
            Err(why) => Err(unavailable(why, instead)),
        }
    }

    fn create_v2(
        root: &Path,
        name: &str,
        quota_us: u64,
        period_us: u64,
    ) -> Result<(PathBuf, String), String> {
        let subtree = root.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == "cpu") {
            std::fs::write(&subtree, "+cpu")
                .map_err(|e| format!("cannot enable the cpu controller in {}: {e}", subtree.display()))?;
        }
        let dir = root.join(name);
        make_dir(&dir)?;
        let max = dir.join("cpu.max");
        std::fs::write(&max, format!("{quota_us} {period_us}"))
            .map_err(|e| format!("cannot write {}: {e}", max.display()))?;
        Ok((dir.clone(), format!("cgroup v2 {}: {quota_us} {period_us}", max.display())))
    }

    fn create_v1(
        mount: &Path,
        name: &str,
        quota_us: u64,
        period_us: u64,
    ) -> Result<(PathBuf, String), String> {
        // Under this process's own cpu cgroup: the place a delegated (container) setup lets it write.
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controllers.split(',').any(|c| c == "cpu").then(|| path.trim_start_matches('/').to_owned())
            })
            .unwrap_or_default();
        let dir = mount.join(own).join(name);
        make_dir(&dir)?;
        for (file, value) in [("cpu.cfs_period_us", period_us), ("cpu.cfs_quota_us", quota_us)] {
            std::fs::write(dir.join(file), value.to_string())
                .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))?;
        }
        Ok((
            dir.clone(),
            format!("cgroup v1 {}: cpu.cfs_quota_us={quota_us} cpu.cfs_period_us={period_us}", dir.display()),
        ))
    }

    /// The bootstrap enters the cgroup between fork and exec: throttled from its first instruction.
    fn confine(&self, command: &mut Command) -> Result<(), Error> {
        let procs = self.procs.try_clone().map_err(Error::io("cannot share the cgroup.procs handle"))?;
        // SAFETY: the closure runs in the forked child before exec. It only calls write(2) on a
        // descriptor opened beforehand (no allocation, no locks), which is async-signal-safe.
        // Writing "0" to cgroup.procs moves the writing process itself.
        unsafe {
            command.pre_exec(move || (&procs).write_all(b"0"));
        }
        Ok(())
    }

    /// Moves a running process (all its threads) into the cgroup.
    fn enter(&self, pid: u32) -> Result<(), String> {
        (&self.procs)
            .write_all(pid.to_string().as_bytes())
            .map_err(|e| format!("cannot move pid {pid} into {}: {e}", self.dir.display()))
    }

    /// Whether `/proc/PID/cgroup` puts the process in this cgroup; the reason if not.
    fn check(&self, pid: u32) -> Result<(), String> {
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let suffix = format!("/{name}");
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if !name.is_empty() && text.lines().any(|line| line.trim_end().ends_with(&suffix)) {
            Ok(())
        } else {
            Err(format!("the bootstrap (pid {pid}) is not in {}", self.dir.display()))
        }
    }

    /// (periods, throttled periods, time throttled) from the cgroup's `cpu.stat`. The kernel
    /// counts a period when its timer fires, so a bootstrap that lived less than one period
    /// may show none.
    pub(crate) fn throttling(&self) -> Option<Throttling> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| stat.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok());
        Some(Throttling {
            periods: field("nr_periods ")?,
            throttled_periods: field("nr_throttled ")?,
            // v1: throttled_time in ns; v2: throttled_usec.
            throttled_ms: field("throttled_time ")
                .map(|ns| ns as f64 / 1e6)
                .or_else(|| field("throttled_usec ").map(|us| us as f64 / 1e3))?,
        })
    }

    fn describe(&self, quota: Option<Quota>, memory_mb: u32) -> String {
        let why = match quota {
            Some(Quota::Lambda) => {
                format!(" (Lambda's share at {memory_mb} MB: {memory_mb} / {MB_PER_VCPU} MB per vCPU)")
            }
            _ => String::new(),
        };
        format!(
            "CPU quota {:.1}% of one CPU{why}: {} µs every {} µs, {}",
            self.percent, self.quota_us, self.period_us, self.mechanism
        )
    }
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

fn unavailable(why: String, instead: &str) -> Error {
    Error::Process(format!(
        "CPU quota unavailable on this machine: {why}. {instead}, or as root on a host \
         with a writable cgroup cpu controller."
    ))
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // Every bootstrap was killed and reaped, so the cgroup is empty and can go.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the cgroup");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throttling {
    periods: u64,
    throttled_periods: u64,
    throttled_ms: f64,
}

// --- Results. -----------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Stats {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
}

impl Stats {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Stats { median_ms: median, min_ms: v[0], max_ms: v[n - 1] })
    }
}

#[derive(Debug, Serialize)]
struct CpuSummary {
    percent: f64,
    quota_us: u64,
    period_us: u64,
    mechanism: String,
    /// `exec`, or `first invocation` with `--quota-after-init`.
    applied_from: &'static str,
    throttling: Option<Throttling>,
}

#[derive(Debug, Serialize)]
struct Target {
    what: String,
    limit_ms: f64,
    median_ms: f64,
    met: bool,
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    bootstrap: String,
    event: String,
    store: String,
    memory_mb: u32,
    runs: usize,
    cpu_quota: Option<CpuSummary>,
    init: Stats,
    first_call: Stats,
    warm_call: Stats,
    /// The hits bootstrap's own `warm_ms` log field: its store pre-connect inside init.
    preconnect: Option<Stats>,
    targets: Vec<Target>,
    samples: Vec<RunTimes>,
}

impl Summary {
    fn new(plan: &Plan, cpu: Option<&CpuLimit>, runs: &[RunTimes]) -> Summary {
        let stats = |f: fn(&RunTimes) -> f64| {
            Stats::of(runs.iter().map(f)).unwrap_or(Stats { median_ms: 0.0, min_ms: 0.0, max_ms: 0.0 })
        };
        let init = stats(|r| ms(r.init));
        let first_call = stats(|r| ms(r.first));
        let warm_call = stats(|r| ms(r.warm));
        let store = plan.store();
        let sdk = ["dynamodb:", "s3:"].iter().any(|p| store.starts_with(p));
        let lambda_128 = f64::from(128u32) / MB_PER_VCPU * 100.0;
        let first_note = match plan.cpu_percent {
            None => Some(
                "this run had no CPU quota; the target is for the 128 MB quota (--cpu-quota lambda)"
                    .to_owned(),
            ),
            Some(p) if (p - lambda_128).abs() > 0.05 => {
                Some(format!("this run's quota is {p:.1}%, the target is for 128 MB ({lambda_128:.1}%)"))
            }
            Some(_) => None,
        };
        let targets = vec![
            Target {
                what: "init".into(),
                limit_ms: INIT_TARGET_MS,
                median_ms: init.median_ms,
                met: init.median_ms <= INIT_TARGET_MS,
                note: (!sdk).then(|| {
                    format!("the target is for a store with an SDK client; this run's store is {store}")
                }),
            },
            Target {
                what: "first call".into(),
                limit_ms: FIRST_CALL_TARGET_MS,
                median_ms: first_call.median_ms,
                met: first_call.median_ms <= FIRST_CALL_TARGET_MS,
                note: first_note,
            },
        ];
        Summary {
            bootstrap: plan.bootstrap.display().to_string(),
            event: plan.event_source.clone(),
            store,
            memory_mb: plan.memory_mb,
            runs: runs.len(),
            cpu_quota: cpu.map(|c| CpuSummary {
                percent: c.percent,
                quota_us: c.quota_us,
                period_us: c.period_us,
                mechanism: c.mechanism.clone(),
                applied_from: if plan.quota_after_init { "first invocation" } else { "exec" },
                throttling: c.throttling(),
            }),
            init,
            first_call,
            warm_call,
            preconnect: Stats::of(runs.iter().filter_map(|r| r.preconnect_ms)),
            targets,
            samples: runs.to_vec(),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let quota = match &self.cpu_quota {
            Some(c) => format!("CPU quota {:.1}% from {}", c.percent, c.applied_from),
            None => "no CPU quota".to_owned(),
        };
        out.push_str(&format!("\n{} cold starts, {}, store {}\n", self.runs, quota, self.store));
        out.push_str(&format!("{:<32}{:>10}{:>10}{:>10}\n", "", "median", "min", "max"));
        let mut row = |name: &str, s: &Stats| {
            out.push_str(&format!(
                "{name:<32}{:>7.2} ms{:>7.2} ms{:>7.2} ms\n",
                s.median_ms, s.min_ms, s.max_ms
            ));
        };
        row("init (exec → first /next)", &self.init);
        row("first call (/next → response)", &self.first_call);
        row("warm call", &self.warm_call);
        if let Some(p) = &self.preconnect {
            row("  of init: store pre-connect", p);
        }
        if let Some(t) = self.cpu_quota.as_ref().and_then(|c| c.throttling.as_ref()) {
            out.push_str(&format!(
                "cgroup cpu.stat: throttled in {} of {} periods, {:.0} ms in all; every bootstrap was checked to be in the cgroup\n",
                t.throttled_periods, t.periods, t.throttled_ms
            ));
        }
        for t in &self.targets {
            out.push_str(&format!(
                "target {} ≤ {:.0} ms: {} (median {:.2} ms){}\n",
                t.what,
                t.limit_ms,
                if t.met { "met" } else { "NOT met" },
                t.median_ms,
                t.note.as_ref().map(|n| format!(" — {n}")).unwrap_or_default()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_a_percentage_of_one_cpu_or_lambda() {
        assert_eq!("7".parse::<Quota>(), Ok(Quota::Percent(7.0)));
        assert_eq!("7.2%".parse::<Quota>(), Ok(Quota::Percent(7.2)));
        assert_eq!("Lambda".parse::<Quota>(), Ok(Quota::Lambda));
        assert!("0".parse::<Quota>().is_err());
        assert!("150".parse::<Quota>().is_err());
        assert!("fast".parse::<Quota>().is_err());
    }

    #[test]
    fn the_default_event_is_an_http_api_get_of_hits() {
        let event: Value = serde_json::from_slice(&default_event().expect("built-in event")).expect("JSON");
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/hits");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert!(event.get("body").is_none());
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = Stats::of([4.0, 1.0, 3.0, 2.0]).expect("stats");
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (2.5, 1.0, 4.0));
        assert!(Stats::of([]).is_none());
    }

    #[test]
    fn the_preconnect_time_is_read_from_text_and_json_logs() {
        assert_eq!(
            preconnect_ms(r#" INFO hits::lambda: store connection open store="dynamodb" warm_ms=12"#),
            Some(12.0)
        );
        assert_eq!(preconnect_ms(r#"{"fields":{"warm_ms":7,"store":"s3"}}"#), Some(7.0));
        assert_eq!(preconnect_ms("nothing here"), None);
        let coloured =
            "\u{1b}[32m INFO\u{1b}[0m store connection open \u{1b}[3mwarm_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m3";
        assert_eq!(preconnect_ms(coloured), Some(3.0));
    }
}
