//! The two loops. Everything runs in the caller's task — virtual users are futures polled
//! together, not spawned — so a run uses one thread, and a request's time includes no hand-off
//! between threads.
//!
//! - **Closed loop**: each virtual user sends its next request when its last one answered
//!   (k6's default). With stages, user `i` runs while the ramp is above `i`.
//! - **Open loop**: request `n` is due at the `n`-th arrival of the rate ramp, whatever the
//!   target does (k6's arrival-rate executors, wrk2's `-R`). When all `max_vus` slots are busy
//!   it waits for one and starts late; its latency still counts from when it was due, so a
//!   stall is charged to every request that should have started during it. What is still
//!   waiting at the end of the run is dropped (counted).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use http_body_util::Full;
use hyper::Request;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use parking_lot::Mutex;

use super::conn::{Conn, Failure, Target};
use super::ramp::{Arrivals, Ramp};
use super::recorder::{Recorder, Sample};
use super::report::{Ending, Second};
use super::spec::LoadSpec;
use super::template::{Template, Vars};

const USER_AGENT: &str = concat!("latency-load/", env!("CARGO_PKG_VERSION"));

/// What a run looks like once a second, for a live progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub elapsed_s: f64,
    pub requests: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// The last whole second.
    pub last_second: Option<Second>,
}

/// How the loop ended, and what it left undone.
pub(crate) struct Outcome {
    pub(crate) ending: Ending,
    pub(crate) interrupted: u64,
    pub(crate) dropped: u64,
}

pub(crate) struct Run<'a> {
    spec: &'a LoadSpec,
    target: &'a Target,
    pub(crate) run_id: String,
    pub(crate) started: Instant,
    /// When starts stop: the duration's end, or earlier for a deadline.
    end: Instant,
    seq: AtomicU64,
    in_flight: AtomicU64,
    pub(crate) recorder: Mutex<Recorder>,
    fixed_headers: HeaderMap,
    varying_headers: Vec<(HeaderName, &'a Template)>,
    /// Bodies without placeholders, rendered once.
    fixed_bodies: Vec<Option<Bytes>>,
}

impl<'a> Run<'a> {
    pub(crate) fn new(spec: &'a LoadSpec, target: &'a Target, open: bool) -> Run<'a> {
        let started = Instant::now();
        let run_id = format!("{:08x}", fastrand::u32(..));
        let vars = Vars { run_id: &run_id, seq: 0, vu: 0, iter: 0 };
        let mut fixed_headers = HeaderMap::new();
        fixed_headers.insert(hyper::header::HOST, target.authority.clone());
        fixed_headers.insert(hyper::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        let mut varying_headers = Vec::new();
        for (name, template) in &spec.headers {
            if template.is_static() {
                if let Ok(value) = HeaderValue::from_str(&template.render(&vars)) {
                    fixed_headers.append(name.clone(), value);
                }
            } else {
                varying_headers.push((name.clone(), template));
            }
        }
        let fixed_bodies =
            spec.bodies.iter().map(|t| t.is_static().then(|| Bytes::from(t.render(&vars)))).collect();
        let mut end = started + spec.duration;
        if let Some(stop) = spec.stop_at {
            end = end.min(stop);
        }
        Run {
            spec,
            target,
            started,
            end,
            seq: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            recorder: Mutex::new(Recorder::new(started, open, spec.ids)),
            fixed_headers,
            varying_headers,
            fixed_bodies,
            run_id,
        }
    }

    /// The next request's sequence number, unless the iterations are used up.
    fn next_seq(&self) -> Option<u64> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.spec.iterations.is_none_or(|n| seq < n).then_some(seq)
    }

    fn request(&self, seq: u64, vu: u64, iter: u64) -> Request<Full<Bytes>> {
        let vars = Vars { run_id: &self.run_id, seq, vu, iter };
        let body = match self.spec.bodies.len() {
            0 => Bytes::new(),
            n => {
                let i = (seq % n as u64) as usize;
                match &self.fixed_bodies[i] {
                    Some(fixed) => fixed.clone(),
                    None => Bytes::from(self.spec.bodies[i].render(&vars)),
                }
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = self.spec.method.clone();
        *request.uri_mut() = self.target.uri.clone();
        let headers = request.headers_mut();
        headers.clone_from(&self.fixed_headers);
        for (name, template) in &self.varying_headers {
            // Placeholders only render header-safe text, checked when the spec was validated.
            if let Ok(value) = HeaderValue::from_str(&template.render(&vars)) {
                headers.append(name.clone(), value);
            }
        }
        request
    }

    /// One request on `conn` (opened or reopened as needed), recorded. `intended` is when it
    /// was due: its timeout and its latency count from there.
    async fn exchange(&self, conn: &mut Option<Conn>, seq: u64, vu: u64, iter: u64, intended: Instant) {
        let request = self.request(seq, vu, iter);
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = Instant::now();
        let deadline = tokio::time::Instant::from_std(intended + self.spec.timeout);
        let outcome = match tokio::time::timeout_at(deadline, self.send(conn, request)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                *conn = None;
                Err(Failure::Timeout)
            }
        };
        let done = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let passed = matches!(outcome, Ok(status) if self.spec.expects(status));
        let mut recorder = self.recorder.lock();
        recorder.max_in_flight = recorder.max_in_flight.max(in_flight);
        recorder.record(&Sample { seq, intended, sent, done, outcome, passed });
    }

    async fn send(&self, conn: &mut Option<Conn>, request: Request<Full<Bytes>>) -> Result<u16, Failure> {
        let open = match conn.take() {
            Some(open) if open.is_open() => open,
            _ => self.target.connect().await?,
        };
        let result = conn.insert(open).send(request).await;
        if result.is_err() {
            *conn = None;
        }
        result
    }

    pub(crate) fn progress(&self) -> Progress {
        let elapsed = self.started.elapsed();
        let recorder = self.recorder.lock();
        let whole = elapsed.as_secs();
        Progress {
            elapsed_s: elapsed.as_secs_f64(),
            requests: recorder.requests,
            failed: recorder.failed(),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_second: whole.checked_sub(1).and_then(|s| recorder.second(s as usize)),
        }
    }

    fn ending(&self) -> Ending {
        if self.spec.stop_at.is_some_and(|stop| stop < self.started + self.spec.duration)
            && Instant::now() >= self.end
        {
            Ending::Deadline
        } else {
            Ending::Finished
        }
    }

    /// Closed loop: the virtual users until the end, the iterations or `stop`.
    pub(crate) async fn closed(
        &self,
        vus: &Ramp,
        stop: impl Future<Output = ()>,
        mut on_tick: impl FnMut(&Progress),
    ) -> Outcome {
        let users = (0..vus.max().ceil() as u64).map(|index| self.user(index, vus));
        let mut all = pin!(futures_util::future::join_all(users));
        let mut stop = pin!(stop);
        let mut tick = ticker(self.started);
        loop {
            tokio::select! {
                _ = &mut all => return Outcome { ending: self.ending(), interrupted: 0, dropped: 0 },
                () = &mut stop => {
                    return Outcome {
                        ending: Ending::Interrupted,
                        interrupted: self.in_flight.load(Ordering::Relaxed),
                        dropped: 0,
                    };
                }
                _ = tick.tick() => on_tick(&self.progress()),
            }
        }
    }

    /// Virtual user `index`: requests back to back while the ramp is above `index`.
    async fn user(&self, index: u64, vus: &Ramp) {
        let mut conn = None;
        let mut iter = 0;
        loop {
            let now = Instant::now();
            if now >= self.end {
                break;
            }
            let t = now.duration_since(self.started).as_secs_f64();
            if vus.value_at(t) <= index as f64 {
                match vus.next_above(index as f64, t) {
                    Some(at) => {
                        let at = self.started + Duration::from_secs_f64(at);
                        tokio::time::sleep_until(tokio::time::Instant::from_std(at.min(self.end))).await;
                        continue;
                    }
                    None => break,
                }
            }
            let Some(seq) = self.next_seq() else { break };
            self.exchange(&mut conn, seq, index, iter, Instant::now()).await;
            iter += 1;
        }
    }

    /// Open loop: requests started on the rate ramp's schedule, at most `max_vus` at once.
    pub(crate) async fn open(
        &self,
        rate: &Ramp,
        max_vus: u64,
        stop: impl Future<Output = ()>,
        mut on_tick: impl FnMut(&Progress),
    ) -> Outcome {
        let mut arrivals = Arrivals::new(rate);
        let due_at = |arrivals: &mut Arrivals, n: u64| {
            arrivals.time_of(n).map(|t| self.started + Duration::from_secs_f64(t)).filter(|at| *at < self.end)
        };
        let mut next = 0_u64;
        let mut due = due_at(&mut arrivals, next);
        let mut idle: Vec<Slot> = Vec::new();
        let mut slots = 0_u64;
        let mut in_flight = FuturesUnordered::new();
        let mut stop = pin!(stop);
        let mut tick = ticker(self.started);
        let mut dropped = 0;
        loop {
            let now = Instant::now();
            // Start everything that is due while a slot is free.
            while let Some(at) = due.filter(|at| *at <= now) {
                if now >= self.end {
                    // Due before the end, never sent: dropped, with every later one.
                    while due_at(&mut arrivals, next).is_some() {
                        dropped += 1;
                        next += 1;
                    }
                    due = None;
                    break;
                }
                let slot = match idle.pop() {
                    Some(slot) => slot,
                    None if slots < max_vus => {
                        slots += 1;
                        Slot { index: slots - 1, conn: None, iter: 0 }
                    }
                    None => break,
                };
                let Some(seq) = self.next_seq() else {
                    due = None;
                    idle.push(slot);
                    break;
                };
                in_flight.push(async move {
                    let mut slot = slot;
                    self.exchange(&mut slot.conn, seq, slot.index, slot.iter, at).await;
                    slot.iter += 1;
                    slot
                });
                next += 1;
                due = due_at(&mut arrivals, next);
            }
            if due.is_none() && in_flight.is_empty() {
                return Outcome { ending: self.ending(), interrupted: 0, dropped };
            }
            let free = !idle.is_empty() || slots < max_vus;
            let wake = tokio::time::Instant::from_std(match due {
                Some(at) if free => at,
                // Nothing to start before a slot frees: wake at the end to drop what is waiting.
                Some(_) => self.end,
                None => self.end + Duration::from_secs(3600),
            });
            tokio::select! {
                biased;
                () = &mut stop => {
                    return Outcome {
                        ending: Ending::Interrupted,
                        interrupted: self.in_flight.load(Ordering::Relaxed),
                        dropped,
                    };
                }
                Some(slot) = in_flight.next(), if !in_flight.is_empty() => idle.push(slot),
                () = tokio::time::sleep_until(wake) => {}
                _ = tick.tick() => on_tick(&self.progress()),
            }
        }
    }
}

/// An open-loop slot: a virtual user that takes whichever request is due next.
struct Slot {
    index: u64,
    conn: Option<Conn>,
    iter: u64,
}

/// Ticks once a second from a second after `started`.
fn ticker(started: Instant) -> tokio::time::Interval {
    let first = tokio::time::Instant::from_std(started + Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(first, Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}
