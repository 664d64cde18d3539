//! `latency probe --via-lambda` as a user runs it: the real AWS SDK Invoke call, with
//! `AWS_ENDPOINT_URL_LAMBDA` pointing at `cargo lambda watch` (its Lambda API emulator) running
//! this workspace's `probe` bootstrap, or at a stand-in for the AWS answer the emulator does not
//! give. The target is a counting HTTP server started here.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

use testkit::emulator::Emulator;

mod common;
use common::{hits_server, stderr, stdout};

/// Longer than any run here should take; a hung SDK call fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(120);

/// `latency args...` with the Lambda API at `endpoint` (see [`common::latency_with_fake_aws`]).
fn latency(endpoint: &str, args: &[&str]) -> Output {
    common::latency_with_fake_aws(&[("AWS_ENDPOINT_URL_LAMBDA", endpoint)], args, DEADLINE, |_| {})
}

/// This workspace's probe bootstrap (package `probe-fn`, binary `probe`), built now.
fn probe_bootstrap() -> PathBuf {
    testkit::emulator::workspace_bin("probe")
}

#[test]
fn probe_via_lambda_runs_the_probe_bootstrap_through_the_invoke_api_and_prints_its_report() {
    if !testkit::emulator::available() {
        return;
    }
    let emulator = Emulator::start(probe_bootstrap(), "_", &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")])
        .expect("cargo-lambda was there a moment ago");
    let (addr, hits) = hits_server();
    let url = format!("http://{addr}/hits");

    let output = latency(&emulator.endpoint(), &["probe", "--via-lambda", "_", &url, "-n", "20", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON report");
    assert_eq!((report["count"].as_u64(), report["ok"].as_u64()), (Some(20), Some(20)), "{report}");
    assert!(report["stats"]["p50"].as_f64().is_some_and(|p50| p50 > 0.0), "{report}");
    // The function sent them: the first request, the warm-up (1, the concurrency), the measured.
    assert_eq!(hits.load(Ordering::SeqCst), 1 + 1 + 20);

    // The same function again, as the plain-text report.
    let output = latency(&emulator.endpoint(), &["probe", "--via-lambda", "_", &url, "-n", "5"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("p50"), "{}", stdout(&output));
    assert_eq!(hits.load(Ordering::SeqCst), 22 + 1 + 1 + 5);
}

#[test]
fn probe_via_lambda_refuses_an_invalid_spec_before_invoking_anything() {
    // Not an emulator: a port that would only show whether anything connected.
    let lambda = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    lambda.set_nonblocking(true).expect("nonblocking");
    let endpoint = format!("http://{}", lambda.local_addr().expect("address"));
    let (addr, hits) = hits_server();

    let output =
        latency(&endpoint, &["probe", "--via-lambda", "_", &format!("http://{addr}/hits"), "-n", "0"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(stderr(&output).contains("count: must be from 1 to 100000, got 0"), "{}", stderr(&output));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let connection = lambda.accept().map(|(_, peer)| peer);
    assert!(
        connection.as_ref().is_err_and(|e| e.kind() == ErrorKind::WouldBlock),
        "the Lambda API was called: {connection:?}"
    );
}

/// A bootstrap (shell + curl) whose every invocation fails as a handler error does, each one
/// appended to `invocations`.
fn failing_bootstrap(dir: &Path, invocations: &Path) -> PathBuf {
    let path = dir.join("bootstrap");
    let script = format!(
        r#"#!/bin/sh
api="$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while :; do
  id=$(curl -sS -D - -o /dev/null "$api/next" | tr -d '\r' | grep -i '^lambda-runtime-aws-request-id:' | cut -d' ' -f2)
  [ -n "$id" ] || exit 1
  echo "$id" >> '{invocations}'
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d '{{"errorType":"ProbeFailed","errorMessage":"the target vanished"}}' "$api/$id/error"
done
"#,
        invocations = invocations.display()
    );
    std::fs::write(&path, script).expect("writes the bootstrap");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("makes it executable");
    path
}

#[test]
fn a_failed_invocation_under_the_emulator_is_reported_with_the_function_s_error() {
    if !testkit::emulator::available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let invocations = dir.path().join("invocations");
    let bootstrap = failing_bootstrap(dir.path(), &invocations);
    let emulator = Emulator::start(&bootstrap, "_", &[]).expect("cargo-lambda was there a moment ago");
    let (addr, hits) = hits_server();

    // cargo lambda watch answers a failed invocation with HTTP 500 and the error object.
    let output =
        latency(&emulator.endpoint(), &["probe", "--via-lambda", "_", &format!("http://{addr}/hits")]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert_eq!(
        stderr(&output).trim_end(),
        "latency: _ failed (Unhandled): ProbeFailed: the target vanished",
        "the function's error, not the SDK's"
    );
    let invoked = std::fs::read_to_string(&invocations).expect("the bootstrap was invoked");
    assert_eq!(invoked.lines().count(), 1, "a function error is not retried: {invoked}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

/// A stand-in for the Lambda API answering every Invoke as AWS does when the function failed:
/// 200, `X-Amz-Function-Error: Unhandled`, the error object as the payload.
fn aws_answering_a_function_error() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    listener.set_nonblocking(true).expect("nonblocking");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/2015-03-31/functions/{function}/invocations",
                axum::routing::post(|| async {
                    (
                        [("X-Amz-Function-Error", "Unhandled"), ("Content-Type", "application/json")],
                        r#"{"errorType":"ProbeFailed","errorMessage":"the target vanished"}"#,
                    )
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serves");
        });
    });
    endpoint
}

#[test]
fn a_function_error_as_aws_reports_it_is_printed_with_the_function_s_error() {
    let endpoint = aws_answering_a_function_error();
    let output = latency(&endpoint, &["probe", "--via-lambda", "probe-fn", "http://127.0.0.1:9/hits"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert_eq!(
        stderr(&output).trim_end(),
        "latency: probe-fn failed (Unhandled): ProbeFailed: the target vanished"
    );
}
