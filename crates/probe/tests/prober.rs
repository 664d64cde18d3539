//! The prober against real local HTTP servers (axum on 127.0.0.1).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use probe::{Connection, Method, Prober, Report};
use serde_json::json;

mod common;
use common::{Target, spec};

fn histogram_total(report: &Report) -> u64 {
    report.histogram.iter().map(|b| b.count).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_and_concurrency_are_honoured() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/hits"), "count": 50, "concurrency": 4}))).await;
    // The first request, the warmup (default: concurrency) and the measured ones.
    assert_eq!(target.requests(), 1 + 4 + 50);
    assert_eq!((report.count, report.concurrency, report.warmup), (50, 4, 4));
    assert_eq!((report.completed, report.ok), (50, 50), "{report:#?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(histogram_total(&report), 50);
    let stats = report.stats.expect("stats over 50 successes");
    assert!(
        stats.min <= stats.p50 && stats.p50 <= stats.p90 && stats.p90 <= stats.p99 && stats.p99 <= stats.max
    );
    assert_eq!(report.first.status, Some(200));
    assert!(report.setup.dns_ms.is_some() && report.setup.connect_ms.is_some(), "{:?}", report.setup);
    assert!(report.requests_per_s > 0.0 && report.elapsed_s > 0.0);
    assert_eq!(report.samples_ms, None, "samples only when asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_warmup_is_sent_and_not_measured() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober
        .run(&spec(json!({"url": target.url("/hits"), "count": 10, "concurrency": 2, "warmup": 7})))
        .await;
    assert_eq!(target.requests(), 1 + 7 + 10);
    assert_eq!((report.warmup, report.ok), (7, 10));
    let report = prober.run(&spec(json!({"url": target.url("/hits"), "count": 3, "warmup": 0}))).await;
    assert_eq!(target.requests(), 18 + 1 + 3);
    assert_eq!(report.ok, 3);
}

/// Keep-alive: 400 requests (over two runs) on a handful of connections. Not exactly
/// `concurrency` of them: when a worker sends its next request before its previous connection
/// is back in hyper's pool, hyper starts a connect anyway and keeps the connection as a spare if
/// the pooled one wins the race (hyperium/hyper#4134). A spare is only opened while no idle
/// connection exists, so there are at most `concurrency` of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_reuses_connections_within_and_across_runs() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let run = spec(json!({"url": target.url("/paced"), "count": 200, "concurrency": 4}));
    let report = prober.run(&run).await;
    assert_eq!(report.ok, 200, "{:?}", report.errors);
    assert_eq!(report.first.connection, Connection::New);
    assert!((4..=8).contains(&report.connections), "the client opened {} connections", report.connections);
    // The server only sees the connections that carried a request (a spare may still be idle).
    assert!(
        (4..=report.connections).contains(&(target.connections() as u64)),
        "server: {}",
        target.connections()
    );

    // The same prober again (the Lambda's second invocation): the pool is still open.
    let again = prober.run(&run).await;
    assert_eq!(again.ok, 200, "{:?}", again.errors);
    assert_eq!(again.first.connection, Connection::Reused);
    assert!(target.connections() <= 8, "{} connections for 2 x 205 requests", target.connections());
    assert!(again.connections <= 8 - report.connections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_prober_opens_its_own_connection() {
    let target = Target::start().await;
    let run = spec(json!({"url": target.url("/hits"), "count": 1, "warmup": 0}));
    let first = Prober::new().unwrap().run(&run).await;
    let second = Prober::new().unwrap().run(&run).await;
    assert_eq!((first.first.connection, second.first.connection), (Connection::New, Connection::New));
    assert!(target.connections() >= 2, "one connection each at least");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_2xx_answers_are_errors_by_status() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/unavailable"), "count": 5}))).await;
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors, [("status_503".to_owned(), 5)].into());
    assert_eq!(report.stats, None, "no stats without a success");
    assert!(report.histogram.is_empty());
    assert_eq!(report.first.status, Some(503));
    assert_eq!(report.first.error.as_deref(), Some("status_503"));
    let missing = prober.run(&spec(json!({"url": target.url("/nowhere"), "count": 2}))).await;
    assert_eq!(missing.errors, [("status_404".to_owned(), 2)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_slower_than_the_timeout_are_timeouts() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let started = Instant::now();
    let report = prober
        .run(&spec(
            json!({"url": target.url("/slow"), "count": 3, "concurrency": 3, "warmup": 0, "timeout_ms": 200}),
        ))
        .await;
    assert_eq!(report.errors, [("timeout".to_owned(), 3)].into());
    assert_eq!(report.first.error.as_deref(), Some("timeout"));
    assert!(report.first.ms >= 200.0 && report.first.ms < 2000.0, "first took {} ms", report.first.ms);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_off_the_host_are_not_followed() {
    let elsewhere = Target::start().await;
    // `localhost` and `127.0.0.1` reach the same machine but are different hosts.
    let away = format!("http://localhost:{}/hits", elsewhere.port);
    let target = Target::start_redirecting(Some(away.clone())).await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/away"), "count": 4, "concurrency": 2}))).await;
    assert_eq!(report.errors, [("redirect_off_host".to_owned(), 4)].into());
    assert_eq!(report.first.error.as_deref(), Some("redirect_off_host"));
    assert_eq!(target.requests(), 1 + 2 + 4, "the redirecting server was asked");
    assert_eq!(elsewhere.requests(), 0, "the other host received nothing");

    // Control: the other host is reachable under that name, so the test above means something.
    let direct = prober.run(&spec(json!({"url": away, "count": 1, "warmup": 0}))).await;
    assert_eq!(direct.ok, 1, "{direct:#?}");
    assert_eq!(elsewhere.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_host_redirects_are_followed() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/same"), "count": 3, "warmup": 0}))).await;
    assert_eq!(report.ok, 3, "{:?}", report.errors);
    assert_eq!(report.first.status, Some(200));
    assert_eq!(target.requests(), 2 * (1 + 3), "each request is the redirect plus /hits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_same_host_redirects_give_up() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/loop"), "count": 1, "warmup": 0}))).await;
    assert_eq!(report.errors, [("too_many_redirects".to_owned(), 1)].into());
    assert_eq!(target.requests(), 2 * 11, "first and measured: the request and 10 redirects each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_a_connect_error_and_setup_says_why() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": format!("http://127.0.0.1:{port}/hits"), "count": 2}))).await;
    assert_eq!(report.errors, [("connect".to_owned(), 2)].into());
    assert_eq!(report.first.status, None);
    assert_eq!(report.setup.connect_ms, None);
    let why = report.setup.error.as_deref().unwrap_or_default();
    assert!(why.contains("TCP connect failed"), "{why}");
    assert_eq!(report.stats, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_after_each_measured_request() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let done = AtomicU64::new(0);
    let report = prober
        .run_with_progress(&spec(json!({"url": target.url("/hits"), "count": 25, "concurrency": 5})), || {
            done.fetch_add(1, Ordering::Relaxed);
        })
        .await;
    assert_eq!(done.load(Ordering::Relaxed), 25, "not for the first or warmup requests");
    assert_eq!(report.ok, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_listed_in_order_only_when_asked() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/hits"), "count": 30, "samples": true}))).await;
    let samples = report.samples_ms.as_ref().expect("samples were asked for");
    assert_eq!(samples.len(), 30);
    let stats = report.stats.unwrap();
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((min - stats.min).abs() < 0.01, "{min} vs {}", stats.min);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["samples_ms"].as_array().map(Vec::len), Some(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_requests_are_sent_as_head() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/hits"), "count": 3, "method": "head"}))).await;
    assert_eq!((report.method, report.ok), (Method::Head, 3));
    let methods = target.seen.methods.lock().unwrap().clone();
    assert_eq!(methods.len(), 1 + 1 + 3);
    assert!(methods.iter().all(|m| m == axum::http::Method::HEAD), "{methods:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_stops_the_run_before_measuring() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let run = spec(json!({"url": target.url("/hits"), "count": 100})).with_deadline(Instant::now());
    let report = prober.run(&run).await;
    assert_eq!((report.count, report.completed, report.ok), (100, 0, 0));
    assert_eq!(report.first.status, Some(200), "the first request always goes");
    assert!(report.to_string().contains("stopped at the deadline after 0 of 100"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_round_trips_through_json_and_reads_as_text() {
    let target = Target::start().await;
    let prober = Prober::new().unwrap();
    let report = prober.run(&spec(json!({"url": target.url("/hits"), "hits": 20, "concurrency": 2}))).await;
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "url",
        "method",
        "count",
        "concurrency",
        "warmup",
        "completed",
        "ok",
        "errors",
        "connections",
        "setup",
        "first",
        "stats",
        "histogram",
        "elapsed_s",
        "requests_per_s",
    ] {
        assert!(json.get(field).is_some(), "{field} missing in {json}");
    }
    assert_eq!(json["method"], "GET");
    assert_eq!(json["first"]["connection"], "new");
    for stat in ["mean", "min", "p50", "p90", "p99", "max"] {
        let x = json["stats"][stat].as_f64().unwrap();
        assert_eq!((x * 100.0).round() / 100.0, x, "{stat} has at most 2 decimals");
    }
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);

    let text = report.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[0].starts_with(&format!("GET {}: 20 requests, concurrency 2", target.url("/hits"))),
        "{text}"
    );
    assert!(lines[2].contains("200, new connection"), "{text}");
    assert!(lines[3].contains("20 ok, 0 errors"), "{text}");
    assert!(lines[4].contains("p99"), "{text}");
}
