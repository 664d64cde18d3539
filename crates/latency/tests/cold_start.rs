//! `latency cold-start` end to end: the real `hits` bootstrap (memory store) under the harness's
//! Runtime API, and fake bootstraps (shell + curl) that fail in each way a run must not hide.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// This workspace's `hits` bootstrap (a binary of another package has no `CARGO_BIN_EXE_*`).
fn hits_bootstrap() -> &'static Path {
    static BOOTSTRAP: OnceLock<PathBuf> = OnceLock::new();
    BOOTSTRAP.get_or_init(|| testkit::emulator::workspace_bin("hits"))
}

fn latency(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latency"))
        .arg("cold-start")
        .args(args)
        .env_remove("HITS_STORE")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run latency cold-start")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A shell-script bootstrap in `dir`: `body` runs with `$api` = the Runtime API base URL and
/// `$id` = the request id of the first invocation, already fetched.
fn fake_bootstrap(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("bootstrap");
    let script = format!(
        "#!/bin/sh\nset -eu\napi=\"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime\"\n\
         id=$(curl -sS -D - -o /dev/null \"$api/invocation/next\" | tr -d '\\r' \
         | grep -i '^lambda-runtime-aws-request-id:' | cut -d' ' -f2)\n{body}\nexec sleep 30\n"
    );
    std::fs::write(&path, script).expect("write the fake bootstrap");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the fake bootstrap");
    path
}

fn stat(summary: &Value, phase: &str, field: &str) -> f64 {
    summary[phase][field].as_f64().unwrap_or_else(|| panic!("no {phase}.{field} in {summary}"))
}

#[test]
fn the_hits_bootstrap_cold_starts_with_plausible_init_first_and_warm_call_times() {
    let bootstrap = hits_bootstrap().to_str().expect("a UTF-8 path");
    let output = latency(&["--bootstrap", bootstrap, "--runs", "3", "--env", "HITS_STORE=memory", "--json"]);
    assert!(output.status.success(), "cold-start failed: {}", stderr(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(summary["runs"], 3);
    assert_eq!(summary["store"], "memory");
    for phase in ["init", "first_call", "warm_call"] {
        let (median, min, max) = (
            stat(&summary, phase, "median_ms"),
            stat(&summary, phase, "min_ms"),
            stat(&summary, phase, "max_ms"),
        );
        assert!(0.0 < min && min <= median && median <= max, "{phase}: {summary}");
        assert!(max < 5_000.0, "{phase} took over 5 s: {summary}");
    }
    let samples = summary["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 3);
    for sample in samples {
        // A fresh process each time: the memory store starts from zero.
        assert_eq!(
            (sample["first_count"].as_u64(), sample["warm_count"].as_u64()),
            (Some(1), Some(2)),
            "{sample}"
        );
    }
    assert_eq!(summary["targets"][0]["what"], "init");
    assert_eq!(summary["targets"][1]["what"], "first call");
}

#[test]
fn the_table_shows_each_phase_and_the_targets() {
    let bootstrap = hits_bootstrap().to_str().expect("a UTF-8 path");
    let output = latency(&["--bootstrap", bootstrap, "--runs", "1"]);
    assert!(output.status.success(), "cold-start failed: {}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "init (exec → first /next)",
        "first call",
        "warm call",
        "target init ≤ 20 ms",
        "target first call ≤ 100 ms",
    ] {
        assert!(table.contains(expected), "no {expected:?} in:\n{table}");
    }
    assert!(stderr(&output).contains("run   1: init"), "{}", stderr(&output));
}

#[test]
fn a_bootstrap_that_reports_an_invocation_error_fails_the_run_with_its_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = fake_bootstrap(
        dir.path(),
        r#"curl -sS -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: Boom' \
  -d '{"errorType":"Boom","errorMessage":"the fake always fails"}' "$api/invocation/$id/error""#,
    );
    let output =
        latency(&["--bootstrap", bootstrap.to_str().expect("UTF-8"), "--runs", "1", "--timeout-secs", "20"]);
    assert!(!output.status.success(), "an invocation error was timed as a success");
    let message = stderr(&output);
    assert!(message.contains("first call") && message.contains("failed (Boom)"), "{message}");
    assert!(message.contains("the fake always fails"), "{message}");
}

#[test]
fn a_bootstrap_that_answers_500_fails_the_run_instead_of_being_timed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = fake_bootstrap(
        dir.path(),
        r#"curl -sS -o /dev/null -X POST -d '{"statusCode":500,"body":"store unavailable"}' "$api/invocation/$id/response""#,
    );
    let output =
        latency(&["--bootstrap", bootstrap.to_str().expect("UTF-8"), "--runs", "1", "--timeout-secs", "20"]);
    assert!(!output.status.success(), "a 500 was timed as a success");
    let message = stderr(&output);
    assert!(message.contains("expected statusCode 200 with a numeric plain-text body"), "{message}");
    assert!(message.contains("store unavailable"), "{message}");
}

#[test]
fn a_bootstrap_that_answers_200_without_a_count_fails_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = fake_bootstrap(
        dir.path(),
        r#"curl -sS -o /dev/null -X POST -d '{"statusCode":200,"body":"hello"}' "$api/invocation/$id/response""#,
    );
    let output =
        latency(&["--bootstrap", bootstrap.to_str().expect("UTF-8"), "--runs", "1", "--timeout-secs", "20"]);
    assert!(!output.status.success(), "a body without a count was timed as a success");
    assert!(stderr(&output).contains("expected a count in the body"), "{}", stderr(&output));
}

#[test]
fn a_bootstrap_that_exits_during_init_fails_the_run_with_its_status_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bootstrap");
    std::fs::write(&path, "#!/bin/sh\necho 'cannot open the store' >&2\nexit 3\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let output = latency(&["--bootstrap", path.to_str().expect("UTF-8"), "--runs", "1"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("init: the bootstrap exited (exit status: 3)"), "{message}");
    assert!(message.contains("cannot open the store"), "{message}");
}

#[test]
fn a_missing_bootstrap_or_a_bad_quota_is_refused_before_anything_runs() {
    let missing = latency(&["--bootstrap", "/nonexistent/bootstrap"]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("/nonexistent/bootstrap"), "{}", stderr(&missing));
    let bad = latency(&["--bootstrap", "/bin/true", "--cpu-quota", "fast"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("nor `lambda`"), "{}", stderr(&bad));
}

#[test]
fn a_cpu_quota_is_enforced_through_a_cgroup_or_refused_with_the_reason() {
    let bootstrap = hits_bootstrap().to_str().expect("a UTF-8 path");
    let output = latency(&["--bootstrap", bootstrap, "--runs", "1", "--cpu-quota", "50", "--json"]);
    if output.status.success() {
        let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
        let quota = &summary["cpu_quota"];
        assert_eq!(quota["percent"], 50.0, "{summary}");
        assert_eq!(quota["applied_from"], "exec", "{summary}");
        assert_eq!((quota["quota_us"].as_u64(), quota["period_us"].as_u64()), (Some(50_000), Some(100_000)));
        assert!(quota["mechanism"].as_str().is_some_and(|m| m.starts_with("cgroup v")), "{summary}");
    } else {
        let message = stderr(&output);
        assert!(message.contains("CPU quota unavailable on this machine: "), "{message}");
    }
}

#[test]
fn with_the_quota_after_init_the_bootstrap_enters_the_cgroup_before_its_first_event() {
    let bootstrap = hits_bootstrap().to_str().expect("a UTF-8 path");
    let output = latency(&[
        "--bootstrap",
        bootstrap,
        "--runs",
        "2",
        "--cpu-quota",
        "50",
        "--quota-after-init",
        "--json",
    ]);
    if output.status.success() {
        let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
        assert_eq!(summary["cpu_quota"]["applied_from"], "first invocation", "{summary}");
        assert_eq!(summary["samples"][1]["warm_count"], 2, "{summary}");
    } else {
        let message = stderr(&output);
        assert!(message.contains("CPU quota unavailable on this machine: "), "{message}");
    }
}

#[test]
fn hits_preconnect_0_skips_the_store_pre_connect_at_init() {
    let bootstrap = hits_bootstrap().to_str().expect("a UTF-8 path");
    let summary = |extra: &[&str]| -> Value {
        let args =
            [&["--bootstrap", bootstrap, "--runs", "1", "--env", "HITS_STORE=memory", "--json"], extra]
                .concat();
        let output = latency(&args);
        assert!(output.status.success(), "cold-start failed: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    };
    let with = summary(&[]);
    assert!(with["preconnect"]["median_ms"].is_number(), "the pre-connect is logged by default: {with}");
    let without = summary(&["--env", "HITS_PRECONNECT=0"]);
    assert!(without["preconnect"].is_null(), "no pre-connect with HITS_PRECONNECT=0: {without}");
}
