//! The harness: a fresh bootstrap process under its own Runtime API, past its init — a Lambda
//! execution environment of one's own — which hands out invocations one at a time and times
//! each from queued to handed out to answered.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::cgroup::CpuLimit;
use super::plan::Plan;
use super::process::{Bootstrap, preconnect_ms};
use super::runtime_api::{AbortOnDrop, Api, Invocation, Signal, invocation, router};
use crate::error::Error;

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
