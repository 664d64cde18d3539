//! `probe::load` against local axum targets: the closed and the open loop, templates and checks,
//! coordinated omission, drops, Ctrl-C, and a target that is down.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use probe::load::{Ending, LoadInput, LoadReport};
use tokio::time::Instant;

#[derive(Default)]
struct Seen {
    requests: AtomicU64,
    bodies: Mutex<Vec<String>>,
    request_ids: Mutex<Vec<String>>,
}

struct Target {
    url: String,
    seen: Arc<Seen>,
}

/// Sent once, by whichever request gets there first.
type Signal = Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>;

#[derive(Clone)]
struct Shared {
    seen: Arc<Seen>,
    started: Instant,
    /// Answers nothing from `stall.0` to `stall.1` after the start: requests in between wait.
    stall: Option<(Duration, Duration)>,
    /// Every n-th request answers 500.
    fail_every: Option<u64>,
    /// Each answer takes this long.
    pace: Duration,
    /// Fires once this many requests have arrived.
    after: Option<(u64, Signal)>,
}

async fn answer(State(s): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, String) {
    let n = s.seen.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if !body.is_empty() {
        s.seen.bodies.lock().push(body);
    }
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        s.seen.request_ids.lock().push(id.to_owned());
    }
    if let Some((at, sender)) = &s.after
        && n >= *at
        && let Some(sender) = sender.lock().take()
    {
        let _ = sender.send(());
    }
    if let Some((from, to)) = s.stall {
        let since = s.started.elapsed();
        if since >= from && since < to {
            tokio::time::sleep_until(s.started + to).await;
        }
    }
    if !s.pace.is_zero() {
        tokio::time::sleep(s.pace).await;
    }
    if s.fail_every.is_some_and(|every| n % every == 0) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "failed".into());
    }
    (StatusCode::OK, n.to_string())
}

async fn target(shared: impl FnOnce(Shared) -> Shared) -> Target {
    let seen = Arc::new(Seen::default());
    let state = shared(Shared {
        seen: seen.clone(),
        started: Instant::now(),
        stall: None,
        fail_every: None,
        pace: Duration::ZERO,
        after: None,
    });
    let app = axum::Router::new().route("/items", axum::routing::any(answer)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/items", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Target { url, seen }
}

fn input(url: &str) -> LoadInput {
    LoadInput { url: Some(url.to_owned()), ..LoadInput::default() }
}

async fn run(input: LoadInput) -> LoadReport {
    let spec = input.validate().expect("a valid spec");
    probe::load::run(&spec, std::future::pending(), |_| {}).await.expect("reachable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_sends_exactly_its_iterations_over_one_connection_per_user() {
    let t = target(|s| s).await;
    let report = run(LoadInput { vus: Some(4), iterations: Some(500), ..input(&t.url) }).await;
    assert_eq!(report.requests, 500, "{report}");
    assert_eq!(report.passed, 500);
    assert_eq!(t.seen.requests.load(Ordering::SeqCst), 500);
    assert_eq!(report.connections, 4, "keep-alive: one connection per virtual user");
    assert_eq!(report.max_in_flight, 4);
    assert_eq!(report.ending, Ending::Finished);
    let duration = report.duration_ms.expect("answers");
    assert!(duration.min <= duration.med && duration.med <= duration.p99 && duration.p99 <= duration.max);
    assert!(report.data_sent > 500 * 30 && report.data_received > 500 * 30, "{report:?}");
    assert_eq!(report.timeline.iter().map(|s| s.requests).sum::<u64>(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_its_own_id_and_the_ids_of_passed_requests_are_reported() {
    let t = target(|s| Shared { fail_every: Some(10), ..s }).await;
    let report = run(LoadInput {
        preset: Some("seed-003".into()),
        vus: Some(3),
        iterations: Some(100),
        headers: vec!["X-Request-Id: {{id}}".into()],
        ids: true,
        ..input(&t.url)
    })
    .await;
    assert_eq!((report.requests, report.passed, report.failed), (100, 90, 10), "{report}");
    assert_eq!(report.errors.get("status_500"), Some(&10));
    assert_eq!(report.statuses.get("500"), Some(&10));
    let bodies = t.seen.bodies.lock().clone();
    let ids: Vec<String> = bodies
        .iter()
        .map(|b| {
            let item: serde_json::Value = serde_json::from_str(b).expect("JSON body");
            assert_eq!(item["message"], "Hello World");
            item["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 100, "unique ids");
    assert_eq!(t.seen.request_ids.lock().iter().collect::<HashSet<_>>().len(), 100, "{{id}} in a header too");
    let reported = report.ids.expect("asked for ids");
    assert_eq!(reported.len(), 90, "only the requests that passed");
    assert!(reported.iter().all(|id| id.starts_with(&report.run_id) && ids.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_starts_requests_on_schedule() {
    let t = target(|s| s).await;
    let report = run(LoadInput { rate: Some(200.0), duration: Some("1s".into()), ..input(&t.url) }).await;
    assert_eq!(report.requests, 200, "{report}");
    assert_eq!((report.dropped, report.failed), (0, 0));
    assert!((0.95..1.3).contains(&report.elapsed_s), "{report}");
    let latency = report.latency_ms.expect("an open loop measures from the schedule");
    let duration = report.duration_ms.expect("answers");
    assert!(latency.med >= duration.med, "the schedule comes first: {latency:?} {duration:?}");
}

/// Coordinated omission: the target stalls for a second in the middle of the run. The open loop
/// charges the stall to every request due during it; one virtual user in a closed loop sees it
/// once, and its p99 hides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_open_loops_p99_and_hides_in_a_closed_loops() {
    let stall = Some((Duration::from_secs(1), Duration::from_secs(2)));
    let open_target = target(|s| Shared { stall, ..s }).await;
    let open = run(LoadInput {
        rate: Some(200.0),
        duration: Some("3s".into()),
        max_vus: Some(4),
        ..input(&open_target.url)
    })
    .await;
    let latency = open.latency_ms.expect("latency");
    assert!(latency.p99 >= 700.0, "the stall is in the p99: {open}");
    let from_send = open.duration_ms.expect("answers");
    assert!(from_send.p99 < 100.0, "timed from the send instead, it would hide: {open}");
    assert!(open.late >= 100, "requests due during the stall started late: {open}");
    assert_eq!(open.requests + open.dropped, 600, "{open}");

    let closed_target = target(|s| Shared { stall, ..s }).await;
    let closed =
        run(LoadInput { vus: Some(1), duration: Some("3s".into()), ..input(&closed_target.url) }).await;
    let duration = closed.duration_ms.expect("answers");
    assert!(duration.max >= 700.0, "one request waited out the stall: {closed}");
    assert!(duration.p99 < 100.0, "and the closed loop's p99 hides it: {closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_that_find_no_free_slot_before_the_end_are_dropped_and_counted() {
    let t = target(|s| Shared { pace: Duration::from_millis(100), ..s }).await;
    let report =
        run(LoadInput { rate: Some(100.0), duration: Some("1s".into()), max_vus: Some(2), ..input(&t.url) })
            .await;
    assert_eq!(report.max_in_flight, 2, "{report}");
    assert!(report.dropped >= 70, "{report}");
    assert_eq!(report.requests + report.dropped, 100, "{report}");
    assert!(report.late > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_run_reports_what_was_done_so_far() {
    let (sender, stopped) = tokio::sync::oneshot::channel();
    let t = target(|s| Shared { after: Some((50, Arc::new(Mutex::new(Some(sender))))), ..s }).await;
    let spec = LoadInput { vus: Some(2), duration: Some("60s".into()), ..input(&t.url) }.validate().unwrap();
    let started = Instant::now();
    let report = probe::load::run(&spec, async { stopped.await.unwrap_or(()) }, |_| {}).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "stopped long before the 60 s");
    assert_eq!(report.ending, Ending::Interrupted);
    assert!(report.requests >= 48, "{report}");
    assert!(report.to_string().contains("stopped by hand"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_connections_is_an_error_before_any_request() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let spec = input(&format!("http://127.0.0.1:{port}/hits")).validate().unwrap();
    let started = Instant::now();
    let err = probe::load::run(&spec, std::future::pending(), |_| {}).await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("cannot reach http://127.0.0.1:{port}/hits: connect")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_ticks_once_a_second_with_the_last_seconds_figures() {
    let t = target(|s| s).await;
    let spec =
        LoadInput { vus: Some(2), duration: Some("2500ms".into()), ..input(&t.url) }.validate().unwrap();
    let mut ticks = Vec::new();
    let report = probe::load::run(&spec, std::future::pending(), |p| ticks.push(*p)).await.unwrap();
    assert_eq!(ticks.len(), 2, "{ticks:?}");
    assert!(ticks[1].requests > ticks[0].requests);
    let last = ticks[1].last_second.expect("second 1 is whole at the tick");
    assert_eq!(last.t, 1);
    assert!(last.requests > 0 && last.p99_ms.is_some());
    assert!(report.requests >= ticks[1].requests);
}
