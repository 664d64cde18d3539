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
fn cost_queue_prices_each_path_per_1000_calculations_and_at_ten_a_second() {
    let output = latency(&["cost", "-a", "queue"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "queue-sqs-lambda ",
        "queue-sqs-lambda-burst",
        "queue-rabbitmq-eks",
        "queue-rabbitmq-kops",
        "per month at 26,280,000 calculations",
        "per 1,000 calculations: $",
        "SQS ReceiveMessage",
        "DynamoDB TransactWriteItems (Put + ADD, 2 WRU each)",
        "EKS control plane (730 h)",
        "kOps control-plane node",
        "NLB in front of RabbitMQ",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Each path once, even when named twice (a group and one of its ids).
    let output = latency(&["cost", "-a", "queue,queue-rabbitmq-eks", "--summary"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).matches("queue-rabbitmq-eks").count(), 1, "{}", stdout(&output));
    // A volume asked for replaces the profile's own.
    let output = latency(&["cost", "-a", "queue-rabbitmq-kops", "--calls-per-month", "1000", "--summary"]);
    assert!(stdout(&output).contains("@ 1,000"), "{}", stdout(&output));
}

#[test]
fn cost_pipeline_itemises_both_stream_modes_at_12_million_items_an_hour() {
    let output = latency(&["cost", "-a", "pipeline"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for needle in [
        "pipeline-provisioned",
        "pipeline-on-demand",
        "per month at 8,760,000,000 items",
        // 8.76 billion HTTP API requests at London's $1.16 per million.
        "$10,161.60",
        "Lambda upstream request",
        "Lambda midstream request (1 per 100 calls)",
        "Lambda downstream duration",
        "Kinesis shard-hours (4 shards all month)",
        "Kinesis PUT payload units (200 B record)",
        "Kinesis on-demand data in (200 B record billed as 1,024 B)",
        "DynamoDB items table conditional PutItem",
        "DynamoDB results table conditional PutItem",
        "CloudWatch custom metrics (8, via EMF)",
        "CloudWatch Logs: EMF lines",
        "Lambda-based consumers are free",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn cost_function_ms_replaces_a_named_functions_assumed_duration_and_refuses_bad_pairs() {
    let output =
        latency(&["cost", "-a", "pipeline-provisioned", "--function-ms", "midstream=42.2,downstream=7"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Lambda midstream duration (arm64, 128 MB, 43 ms billed per 100 calls)"), "{text}");
    assert!(text.contains("Lambda downstream duration (arm64, 128 MB, 7 ms billed per 100 calls)"), "{text}");
    for bad in ["midstream", "midstream=fast", "=5", "midstream=-3"] {
        let output = latency(&["cost", "-a", "pipeline", "--function-ms", bad]);
        assert!(!output.status.success(), "{bad} ran:\n{}", stdout(&output));
        assert!(!stderr(&output).is_empty(), "{bad}");
    }
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
    assert!(md.contains("| server on EC2 | this machine | probe | 40 |"), "{md}");
    assert!(md.contains("| as if Lambda | this machine | probe | 20 |"), "{md}");
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

fn write_targets(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("targets.toml");
    std::fs::write(&path, text).expect("writes targets");
    path.to_str().expect("utf-8").to_owned()
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

#[test]
fn report_measures_a_load_target_with_its_load_run_next_to_a_probed_one() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = write_targets(
        dir.path(),
        &format!(
            r#"
            [defaults]
            count = 30
            [[target]]
            name = "server on EC2"
            url = "http://{addr}/hits"
            architecture = "ec2"
            [[target]]
            name = "Lambda + DynamoDB (loaded)"
            url = "http://{addr}/hits"
            architecture = "lambda-dynamodb"
            [target.load]
            preset = "hits"
            vus = 2
            iterations = 40
            "#
        ),
    );
    let out = dir.path().join("out");
    let output = latency(&["report", "-t", &targets, "-o", out.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", stderr(&output));

    let json = read_json(&out.join("report.json"));
    let (probed, loaded) = (&json[0], &json[1]);
    assert_eq!(probed["report"]["count"], 30, "{probed}");
    assert!(probed.get("load").is_none() && probed.get("timeline_chart").is_none(), "{probed}");
    assert!(loaded.get("report").is_none(), "{loaded}");
    let load = &loaded["load"];
    assert_eq!((load["requests"].as_u64(), load["failed"].as_u64()), (Some(40), Some(0)), "{load}");
    assert_eq!(load["input"]["preset"], "hits");
    let scenario = load["scenario"].as_str().expect("a scenario");
    assert!(scenario.starts_with("closed loop, 2 VUs"), "{scenario}");
    let med = load["duration_ms"]["med"].as_f64().expect("a median");
    assert_eq!(loaded["timeline_chart"], "load-lambda-dynamodb-loaded.svg");

    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("| server on EC2 | this machine | probe | 30 |"), "{md}");
    assert!(
        md.contains(&format!("| Lambda + DynamoDB (loaded) | this machine | load: {scenario} | 40 |")),
        "{md}"
    );
    assert!(md.contains("## Load runs\n\n### Lambda + DynamoDB (loaded)\n"), "{md}");
    assert!(md.contains("](load-lambda-dynamodb-loaded.svg)") && md.contains("http_reqs"), "{md}");
    assert!(md.contains(&format!("billed duration = the load run's median {med:.2} ms")), "{md}");
    assert!(md.contains("from their histogram's percentiles"), "says how the load row is charted: {md}");
    let timeline = std::fs::read_to_string(out.join("load-lambda-dynamodb-loaded.svg")).expect("timeline");
    assert!(timeline.starts_with("<svg") && timeline.contains("p99"));
    let cdf = std::fs::read_to_string(out.join("latency.svg")).expect("latency.svg");
    assert!(cdf.contains("server on EC2") && cdf.contains("Lambda + DynamoDB (loaded) (load)"));
    // The probe: the first request, the warm-up (1) and 30 measured; the load run: its 40.
    assert_eq!(hits.load(Ordering::SeqCst), (1 + 1 + 30) + 40);
}

#[test]
fn report_refuses_a_bad_load_profile_before_measuring_anything() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = write_targets(
        dir.path(),
        &format!(
            "[[target]]\nname = \"probed\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\n\
             [[target]]\nname = \"loaded\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\n\
             load = {{ rate = 100, max_vus = 0 }}\n"
        ),
    );
    let output = latency(&["report", "-t", &targets, "-o", "unused"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("target \"loaded\": load.max_vus: must be from 1 to"),
        "{}",
        stderr(&output)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[test]
fn report_keeps_the_measured_rows_when_a_load_target_cannot_be_reached() {
    let (addr, _) = hits_server();
    let closed = testkit::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = write_targets(
        dir.path(),
        &format!(
            "[[target]]\nname = \"down\"\nurl = \"http://127.0.0.1:{closed}/hits\"\narchitecture = \"ec2\"\n\
             load = \"hits\"\n\
             [[target]]\nname = \"up\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\ncount = 5\n"
        ),
    );
    let out = dir.path().join("out");
    let output = latency(&["report", "-t", &targets, "-o", out.to_str().expect("utf-8")]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("1 of 2 targets not measured (down)"), "{}", stderr(&output));
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("| up | this machine | probe | 5 |"), "{md}");
    assert!(md.contains("**Not measured:**\n\n- down: "), "{md}");
    assert_eq!(read_json(&out.join("report.json")).as_array().map(Vec::len), Some(1));
}

#[test]
fn ctrl_c_during_a_load_target_writes_the_report_so_far_and_measures_no_more() {
    let (addr, hits) = hits_server();
    let dir = tempfile::tempdir().expect("temp dir");
    let targets = write_targets(
        dir.path(),
        &format!(
            "[[target]]\nname = \"loaded\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\n\
             load = {{ preset = \"hits\", duration = \"10m\" }}\n\
             [[target]]\nname = \"next\"\nurl = \"http://{addr}/hits\"\narchitecture = \"ec2\"\n"
        ),
    );
    let out = dir.path().join("out");
    let args = ["report", "-t", &targets, "-o", out.to_str().expect("utf-8")];
    let output = common::latency_with_fake_aws(&[], &args, std::time::Duration::from_secs(60), |pid| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let loading = runtime.block_on(testkit::eventually(std::time::Duration::from_secs(30), || async {
            hits.load(Ordering::SeqCst) > 0
        }));
        assert!(loading, "the load run never reached the target");
        let sent = Command::new("kill").args(["-INT", &pid.to_string()]).status().expect("kill");
        assert!(sent.success());
    });
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("1 of 2 targets not measured (next)"), "{message}");
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        md.contains("stopped by hand") && md.contains("- next: not reached: interrupted (Ctrl-C)"),
        "{md}"
    );
    let json = read_json(&out.join("report.json"));
    assert_eq!(json[0]["load"]["ending"], "interrupted", "{json}");
    let answered = json[0]["load"]["requests"].as_u64().expect("requests");
    assert!(answered > 0 && hits.load(Ordering::SeqCst) >= answered);
}
