//! The `latency` binary as a user runs it: `cost`, `probe` and `report` against a counting HTTP
//! server started here.

use std::process::{Command, Output};
use std::sync::atomic::Ordering;

mod common;
use common::{hits_server, stderr, stdout};

fn latency(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latency")).args(args).output().expect("runs latency")
}

#[test]
fn cost_prints_every_architecture_and_its_items() {
    let output = latency(&["cost"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for id in ["lambda-dynamodb", "lambda-s3", "lambda-dynamodb-url", "ec2", "fargate-spot", "alb"] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("HTTP API request") && text.contains("DynamoDB UpdateItem"), "{text}");
}

#[test]
fn cost_takes_region_memory_and_duration_and_the_figures_follow() {
    let at = |args: &[&str]| {
        let output = latency(&[&["cost", "-a", "lambda-dynamodb", "--summary", "--markdown"], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let london = at(&[]);
    assert!(london.contains("$2.09"), "{london}");
    // 1024 MB for 100 ms on arm64: $0.20 + $1.16 + $0.707 + 0.1 GB-s × $0.0000133334 × 1M = $3.40.
    let big = at(&["--memory", "1024", "--duration-ms", "100"]);
    assert!(big.contains("$3.40"), "{big}");
    let virginia = at(&["--region", "us-east-1"]);
    assert!(!virginia.contains("$2.09"), "us-east-1 prices differ: {virginia}");
    assert!(at(&["--as-of", "2021"]).contains("$2.80"));
}

#[test]
fn cost_refuses_unknown_architectures_and_regions_with_the_known_ones() {
    let output = latency(&["cost", "-a", "lambda-mongodb"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("lambda-dynamodb"), "{}", stderr(&output));
    let output = latency(&["cost", "--region", "mars-1"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("eu-west-2"), "{}", stderr(&output));
}

#[test]
fn cost_ingest_itemises_the_lambda_path_and_the_batching_server_at_12_million_events_an_hour() {
    let output = latency(&["cost", "--ingest"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "ingest-firehose",
        "ingest-firehose-rest",
        "ingest-server",
        "ingest-server-alb",
        "seed-001-elixir",
        "8,760,000,000 events",
        // 8.76 billion REST requests at London's $3.50 per million.
        "$30,660.00",
        "× 6 tasks",
        "one event per record",
        "saving of packing",
        "Assumptions",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn cost_ingest_takes_the_load_and_the_figures_follow() {
    let at = |args: &[&str]| {
        let output = latency(&[&["cost", "--ingest", "--markdown"], args].concat());
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    // Seed 001's first figure at the model's 730 hours: 5 M × 730 × $3.50 / 1 M = $12,775.
    let five = at(&["--events-per-hour", "5000000"]);
    assert!(
        five.contains("| REST API request | 3,650,000,000 | request | $3.50 / 1M | $12,775.00 |"),
        "{five}"
    );
    // Ten events a request: a tenth of the requests, records of 2,000 bytes.
    let arrays = at(&["--events-per-request", "10", "--summary"]);
    assert!(arrays.contains("876,000,000 requests") && arrays.contains("10 events (2,000 B)"), "{arrays}");
    // The measured throughput replaces the assumed one: 760 events/s per vCPU needs 36 tasks.
    let slow = at(&["--events-per-vcpu-s", "760"]);
    assert!(slow.contains("× 36 tasks"), "{slow}");
    let big = at(&["--event-bytes", "1000", "--summary"]);
    assert!(big.contains("events of 1,000 B"), "{big}");
}

#[test]
fn cost_ingest_refuses_options_it_does_not_use_and_loads_out_of_range() {
    for args in [
        &["cost", "--events-per-hour", "1000"][..],
        &["cost", "--ingest", "-a", "lambda-s3"],
        &["cost", "--ingest", "--calls-per-month", "5"],
        &["cost", "--ingest", "--events-per-request", "501"],
        &["cost", "--ingest", "--utilisation", "0"],
        &["cost", "--ingest", "--event-bytes", "2000000"],
    ] {
        let output = latency(args);
        assert!(!output.status.success(), "{args:?} ran:\n{}", stdout(&output));
        assert!(!stderr(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn probe_measures_exactly_the_requests_it_reports() {
    let (addr, hits) = hits_server();
    let url = format!("http://{addr}/hits");
    let output = latency(&["probe", &url, "--count", "50", "--concurrency", "2", "--warmup", "3", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON report");
    assert_eq!(report["count"], 50);
    assert_eq!(report["ok"], 50);
    assert!(report["stats"]["p50"].as_f64().is_some_and(|p50| p50 > 0.0), "{report}");
    // The first request and the warm-up are sent but not measured.
    assert_eq!(hits.load(Ordering::SeqCst), 1 + 3 + 50);
}

#[test]
fn probe_reports_errors_by_status_and_bad_arguments_clearly() {
    let (addr, _) = hits_server();
    let output = latency(&["probe", &format!("http://{addr}/broken"), "-n", "5", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON report");
    assert_eq!(report["errors"]["status_503"], 5, "{report}");
    let output = latency(&["probe", "ftp://example.com/", "-n", "5"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("http"), "{}", stderr(&output));
    let output = latency(&["probe", &format!("http://{addr}/hits"), "-n", "0"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("count"), "{}", stderr(&output));
}

#[test]
fn report_writes_the_table_the_chart_and_the_json() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            r#"
            [defaults]
            count = 40
            [[target]]
            name = "server on EC2"
            url = "http://{addr}/hits"
            architecture = "ec2"
            [[target]]
            name = "as if Lambda"
            url = "http://{addr}/hits"
            architecture = "lambda-dynamodb"
            count = 20
            "#
        ),
    )
    .expect("writes targets");
    let out = dir.path().join("out");
    let output = latency(&[
        "report",
        "--targets",
        targets.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("| server on EC2 | this machine | 40 |"), "{md}");
    assert!(md.contains("| as if Lambda | this machine | 20 |"), "{md}");
    assert!(md.contains("$7.60"), "EC2 is priced per month: {md}");
    assert!(md.contains("Lambda Rust + DynamoDB | 26 | $3.09/1M | $3.09/1M"), "the original's table: {md}");
    let svg = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(svg.contains("server on EC2") && svg.contains("as if Lambda"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json"))
            .expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert!(json[0]["report"].get("samples_ms").is_none(), "samples stay out of report.json");
    // Each target: the first request, the warm-up (1, the concurrency), the measured ones.
    assert_eq!(hits.load(Ordering::SeqCst), (1 + 1 + 40) + (1 + 1 + 20));
}

#[test]
fn report_refuses_an_unpriceable_target_before_probing_anything() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!("[[target]]\nname = \"x\"\nurl = \"http://{addr}/hits\"\narchitecture = \"mainframe\"\n"),
    )
    .expect("writes targets");
    let output = latency(&["report", "-t", targets.to_str().expect("utf-8"), "-o", "unused"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("mainframe"), "{}", stderr(&output));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
