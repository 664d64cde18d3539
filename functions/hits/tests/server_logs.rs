//! The real `hits-server` with its store down: every `GET /hits` is a 503, and the log holds a
//! few lines that carry their count (`edge::log_summary`), not ~1 KB per request.

mod common;

use std::time::{Duration, Instant};

use common::{Server, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_logged_as_a_few_counted_lines_not_one_per_request() {
    // DynamoDB on loopback port 9, where nothing listens: every call is refused at once.
    let mut server = Server::spawn(&[
        ("HITS_STORE", "dynamodb:hits"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "eu-west-2"),
    ]);
    let client = client();
    let started = Instant::now();
    let mut failed = 0u64;
    for _ in 0..300 {
        let response = client.get(format!("{}/hits", server.url)).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE, "{}", server.log());
        assert_eq!(response.text().await.unwrap(), "dynamodb store unavailable");
        failed += 1;
    }
    let elapsed = started.elapsed();
    // The last window's line comes when it closes, about a second after the last 503.
    let cause = "cause=\"dynamodb store unavailable\"";
    let summed =
        testkit::eventually(Duration::from_secs(10), || async { server.log_tally(cause).1 == failed }).await;
    let (lines, total) = server.log_tally(cause);
    assert!(summed, "{total} of {failed} failures are in the log:\n{}", server.log());
    let bound = 2 + 2 * elapsed.as_secs() as usize;
    assert!(lines <= bound, "{lines} lines for {failed} failures in {elapsed:?}:\n{}", server.log());
    // The first line has the whole error, sources and all, to tell an outage from a throttle.
    let first = server.log().lines().find(|l| l.contains(cause)).unwrap().to_owned();
    assert!(first.contains("GET /hits failed: dynamodb unavailable"), "{first}");
    server.kill();
}
