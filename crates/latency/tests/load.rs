//! `latency load` as a user runs it: the summary, `--out`, `--ids`, Ctrl-C, and bad flags.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;

mod common;
use common::{hits_server, stderr, stdout};

fn latency(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latency")).args(args).output().expect("runs latency")
}

#[test]
fn load_prints_k6s_summary_and_writes_the_report_the_timeline_and_the_ids() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let ids = dir.path().join("ids.txt");
    let url = format!("http://{addr}/hits");
    let output = latency(&[
        "load",
        &url,
        "--vus",
        "3",
        "--iterations",
        "60",
        "-H",
        "X-Id: {{id}}",
        "--ids",
        ids.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for line in ["checks", "http_req_duration", "http_req_failed", "http_reqs", "data_received"] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    let reqs = text.lines().find(|l| l.trim_start().starts_with("http_reqs")).unwrap_or_default();
    assert!(reqs.contains(": 60 "), "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 60);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("load.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], 60);
    assert!(std::fs::read_to_string(out.join("timeline.svg")).unwrap().starts_with("<svg"));
    assert!(std::fs::read_to_string(out.join("summary.txt")).unwrap().contains("http_reqs"));
    let ids = std::fs::read_to_string(ids).unwrap();
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(ids.lines().count(), 60);
    assert!(ids.lines().all(|id| id.starts_with(run_id)), "{ids}");
}

#[test]
fn bad_flags_name_the_flag_and_send_nothing() {
    let (addr, hits) = hits_server();
    let url = format!("http://{addr}/hits");
    for (args, expected) in [
        (vec!["--vus", "2", "--rate", "5"], "--rate: give vus"),
        (vec!["--max-vus", "5"], "--max-vus: bounds an open loop"),
        (vec!["--duration", "ten"], "--duration: must be a duration like 60s"),
        (vec!["--body", "{{nope}}"], "--body: unknown placeholder {{nope}}"),
        (vec!["--stage", "10s"], "--stages: \"10s\" is not DURATION:TARGET"),
        (
            vec!["--preset", "hit"],
            "--preset: unknown preset \"hit\"; accepted: hits, events, calc, items, seed-003",
        ),
        (vec!["--ids", "/tmp/x"], "--ids: the requests carry no {{id}}"),
    ] {
        let output = latency(&[&["load", url.as_str()], args.as_slice()].concat());
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let output = latency(&["load", "http://127.0.0.1:1/hits"]);
    assert!(stderr(&output).contains("cannot reach http://127.0.0.1:1/hits: connect"), "{}", stderr(&output));
}

#[tokio::test]
async fn ctrl_c_prints_the_summary_so_far() {
    let (addr, hits) = hits_server();
    let url = format!("http://{addr}/hits");
    let child = Command::new(env!("CARGO_BIN_EXE_latency"))
        .args(["load", &url, "--vus", "2", "--duration", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run is under way.
    let under_way = testkit::eventually(std::time::Duration::from_secs(20), || async {
        hits.load(Ordering::SeqCst) > 100
    })
    .await;
    assert!(under_way, "no requests arrived");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("stopped by hand after"), "{text}");
}
