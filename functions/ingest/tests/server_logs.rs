//! The real `ingest-server` shedding load: a flood of 503s is logged as a few lines that carry
//! their count (`edge::log_summary`), not a line or two per request, while `/metrics` still
//! counts every one.

mod common;

use std::time::{Duration, Instant};

use common::{Server, client, event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_503s_is_logged_as_a_few_counted_lines_not_one_per_request() {
    // A sink that fails every call (ENOSPC) and a 4 KiB buffer: it is full after a few requests.
    let mut server = Server::spawn(
        &["--sink", "file:/dev/full", "--buffer-bytes", "4096", "--spill", "off", "--linger-ms", "1"],
        &[],
    );
    let client = client();
    let started = Instant::now();
    let mut refused = 0u64;
    for id in 0..600 {
        let response = client
            .post(format!("{}/events", server.url))
            .header("content-type", "application/json")
            .body(event(id).to_string())
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(refused >= 500, "only {refused} of 600 were refused:\n{}", server.log());
    let metrics = common::metrics(&server, &client).await;
    assert_eq!(metrics["ingest_rejected_requests_total"], refused as f64, "the metrics count each one");

    // The last window's line comes when it closes, about a second after the last 503.
    let cause = "cause=\"the buffer is full\"";
    let summed =
        testkit::eventually(Duration::from_secs(10), || async { server.log_tally(cause).1 == refused }).await;
    let (lines, total) = server.log_tally(cause);
    assert!(summed, "{total} of {refused} refusals are in the log:\n{}", server.log());
    let bound = 2 + 2 * elapsed.as_secs() as usize;
    assert!(lines <= bound, "{lines} lines for {refused} refusals in {elapsed:?}:\n{}", server.log());
    assert!(
        !server.log().contains("response failed"),
        "no line per 5xx from the request-tracing layer:\n{}",
        server.log()
    );
    server.kill();
}
