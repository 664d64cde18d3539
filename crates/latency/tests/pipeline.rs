//! `latency pipeline` as a user runs it, against a stand-in for the chain: an HTTP target that
//! writes each item into moto's items and results tables as midstream and downstream would (or
//! leaves chosen items stuck on the way), so the whole command — load, wait, report — runs; and
//! with `--ids-from`, the test posts the items itself, as another tool (k6) would, and the
//! command only traces them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::State;
use axum::routing::post;

mod common;
use common::{latency_with_fake_aws, stderr, stdout};

/// How far an item gets in the stand-in chain, by its sequence number.
#[derive(Clone, Copy)]
enum Fate {
    /// Every item comes through.
    AllThrough,
    /// Items whose sequence number ends in 3 stop in the items table, those ending in 7 before it.
    SomeStuck,
}

struct Chain {
    dynamodb: aws_sdk_dynamodb::Client,
    results: String,
    items: String,
    fate: Fate,
    posts: AtomicU64,
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0).floor()
}

async fn put(chain: &Chain, table: &str, id: &str, stamps: &[(&str, f64)]) {
    let mut put = chain.dynamodb.put_item().table_name(table).item("id", AttributeValue::S(id.to_owned()));
    for (name, value) in stamps {
        put = put.item(*name, AttributeValue::N(value.to_string()));
    }
    put.send().await.expect("put");
}

/// `POST /items`: the upstream's contract (200 `{"message":"success"}`), then the item written as
/// midstream and downstream write it, before answering (so the test needs no waiting of its own).
async fn item(State(chain): State<Arc<Chain>>, body: String) -> (axum::http::StatusCode, &'static str) {
    chain.posts.fetch_add(1, Ordering::SeqCst);
    let upstream = now_ms();
    let Ok(item) = serde_json::from_str::<serde_json::Value>(&body) else {
        return (axum::http::StatusCode::BAD_REQUEST, r#"{"message":"not JSON"}"#);
    };
    let (Some(id), Some(timestamp)) = (item["id"].as_str(), item["timestamp"].as_f64()) else {
        return (axum::http::StatusCode::BAD_REQUEST, r#"{"message":"id, timestamp"}"#);
    };
    let client = if timestamp < 1e11 { timestamp * 1000.0 } else { timestamp };
    let seq: u64 =
        id.rsplit('-').next().and_then(|s| s.parse().ok()).expect("{{id}} ends in its sequence number");
    let stuck = matches!(chain.fate, Fate::SomeStuck);
    if !(stuck && seq % 10 == 7) {
        let midstream = [
            ("client_ms", client),
            ("upstream_ms", upstream),
            ("kinesis_ms", upstream + 1.0),
            ("midstream_ms", now_ms()),
        ];
        put(&chain, &chain.items, id, &midstream).await;
        if !(stuck && seq % 10 == 3) {
            let mut downstream = midstream.to_vec();
            downstream
                .extend([("stream_ms", (now_ms() / 1000.0).floor() * 1000.0), ("downstream_ms", now_ms())]);
            put(&chain, &chain.results, id, &downstream).await;
        }
    }
    (axum::http::StatusCode::OK, r#"{"message":"success"}"#)
}

struct Fixture {
    addr: SocketAddr,
    chain: Arc<Chain>,
    queue: String,
    region: String,
    endpoint: String,
}

async fn fixture(fate: Fate) -> Option<Fixture> {
    let config = testkit::moto::config().await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let (results, items) = testkit::moto::pipeline_tables(&dynamodb, "pipeline-cli").await;
    let queue = sqs
        .create_queue()
        .queue_name(testkit::moto::unique("pipeline-cli-failures"))
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let chain = Arc::new(Chain { dynamodb, results, items, fate, posts: AtomicU64::new(0) });
    let app = Router::new().route("/items", post(item)).with_state(chain.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let region = config.region().map(ToString::to_string).expect("moto's region");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("moto");
    Some(Fixture { addr, chain, queue, region, endpoint })
}

impl Fixture {
    /// `latency pipeline` with these flags, moto as AWS (unless `aws` is false: then only what
    /// pipeline.toml says), from a blocking thread while the target serves.
    async fn run(&self, args: &[&str], local_state: Option<&Path>, aws: bool) -> Output {
        self.latency("pipeline", args, local_state, aws).await
    }

    /// `latency COMMAND` with these flags, as [`run`](Self::run) runs `latency pipeline`.
    async fn latency(&self, command: &str, args: &[&str], local_state: Option<&Path>, aws: bool) -> Output {
        let mut env: Vec<(String, String)> = Vec::new();
        if aws {
            env.push(("AWS_ENDPOINT_URL".into(), self.endpoint.clone()));
            env.push(("AWS_REGION".into(), self.region.clone()));
        }
        if let Some(dir) = local_state {
            env.push(("LOCAL_STACK_STATE".into(), dir.display().to_string()));
        }
        let mut all = vec![command.to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            latency_with_fake_aws(&env, &args, Duration::from_secs(120), |_| {})
        })
        .await
        .expect("runs")
    }

    fn url(&self) -> String {
        format!("http://{}/items", self.addr)
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("pipeline.json")).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_waits_for_every_accepted_item_and_writes_the_report_beside_the_seeds_figures() {
    let Some(fx) = fixture(Fate::AllThrough).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // --local: everything from pipeline.toml, the endpoint and region too (none in the environment).
    let toml = format!(
        "url = {:?}\nresults_table = {:?}\nitems_table = {:?}\nfailure_queue_url = {:?}\nendpoint = {:?}\nregion = {:?}\n",
        fx.url(),
        fx.chain.results,
        fx.chain.items,
        fx.queue,
        fx.endpoint,
        fx.region
    );
    std::fs::write(dir.path().join("pipeline.toml"), toml).expect("writes");
    let out = dir.path().join("out");
    let output = fx
        .run(
            &[
                "--local",
                "--vus",
                "2",
                "--iterations",
                "40",
                "--poll",
                "20ms",
                "-q",
                "--out",
                out.to_str().unwrap(),
            ],
            Some(dir.path()),
            false,
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.chain.posts.load(Ordering::SeqCst), 40);
    let text = stdout(&output);
    for expected in
        ["the original, on its emulator", "| requests in per second |", "| EndToEnd |", "| Server |"]
    {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let report = read_json(&out.join("pipeline.json"));
    assert_eq!((report["requests"].as_u64(), report["accepted"].as_u64()), (Some(40), Some(40)));
    assert_eq!(
        (report["complete"].as_bool(), report["flow"]["items_through"].as_u64()),
        (Some(true), Some(40))
    );
    assert!(report.get("stuck").is_none());
    assert_eq!(report["seed"]["requests_in_per_s"], 28.0);
    assert_eq!(report["seed"]["end_to_end_p99_s"], 58.5);
    let latencies = report["latencies"].as_array().expect("latencies");
    let names: Vec<&str> = latencies.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(
        &names[..5],
        ["EndToEnd", "Server", "UpstreamToKinesis", "KinesisToMidstream", "MidstreamToDownstream"]
    );
    let e2e = &latencies[0];
    assert_eq!(e2e["count"], 40);
    let ordered = ["p50", "p90", "p95", "p99", "max"].map(|k| e2e[k].as_f64().expect(k));
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]) && ordered[0] >= 0.0, "{e2e}");
    assert!(e2e.get("note").is_none(), "the default item is stamped in ms: {e2e}");
    assert!(report["load"].get("ids").is_none(), "the ids are not repeated in the report");
    assert!(
        std::fs::read_to_string(out.join("pipeline.md")).expect("md").contains("![Latency CDF](cdf.svg)")
    );
    for chart in ["timeline.svg", "cdf.svg"] {
        assert!(std::fs::read_to_string(out.join(chart)).expect(chart).starts_with("<svg"), "{chart}");
    }
    assert_eq!(std::fs::read_to_string(out.join("items.csv")).expect("csv").lines().count(), 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_that_never_come_through_are_named_with_where_they_are_stuck_and_the_run_fails() {
    let Some(fx) = fixture(Fate::SomeStuck).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let url = fx.url();
    let args = [
        "--url",
        &url,
        "--results-table",
        &fx.chain.results,
        "--items-table",
        &fx.chain.items,
        "--failure-queue-url",
        &fx.queue,
        "--vus",
        "1",
        "--iterations",
        "20",
        "--drain-timeout",
        "1s",
        "--poll",
        "100ms",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = fx.run(&args, None, true).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    for expected in [
        "4 accepted items did not come through",
        "2 in the items table but not in the results table: stuck between midstream and downstream",
        "2 not in the items table: stuck between upstream and midstream",
        "the on-failure queue holds 0 messages (0 in flight); 0 more than before the run",
        "The report of those that came through is in",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    let report = read_json(&out.join("pipeline.json"));
    assert_eq!(
        (report["complete"].as_bool(), report["flow"]["items_through"].as_u64()),
        (Some(false), Some(16))
    );
    let run_id = report["run_id"].as_str().expect("run id");
    let stuck = &report["stuck"];
    assert_eq!(
        stuck["between_midstream_and_downstream"],
        serde_json::json!([format!("{run_id}-3"), format!("{run_id}-13")])
    );
    assert_eq!(
        stuck["between_upstream_and_midstream"],
        serde_json::json!([format!("{run_id}-7"), format!("{run_id}-17")])
    );
    assert!(std::fs::read_to_string(out.join("pipeline.md")).expect("md").contains("## Not through"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_table_or_an_untraceable_body_fails_before_any_request_is_sent() {
    let Some(fx) = fixture(Fate::AllThrough).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let url = fx.url();
    let base = [
        "--url",
        &url,
        "--items-table",
        &fx.chain.items,
        "--iterations",
        "5",
        "--out",
        out.to_str().unwrap(),
    ];
    let wrong_table = [&base[..], &["--results-table", "no-such-table"]].concat();
    let output = fx.run(&wrong_table, None, true).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("BatchGetItem on no-such-table"), "{}", stderr(&output));
    let no_id = [&base[..], &["--results-table", &fx.chain.results, "--body", r#"{"id":"1"}"#]].concat();
    let output = fx.run(&no_id, None, true).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--body: the requests carry no {{id}}"), "{}", stderr(&output));
    let output = fx.run(&["--items-table", "i", "--results-table", "r"], None, true).await;
    assert_eq!(output.status.code(), Some(2), "clap: --url is required without --local");
    assert!(stderr(&output).contains("--url"), "{}", stderr(&output));
    assert_eq!(fx.chain.posts.load(Ordering::SeqCst), 0, "nothing was sent");
    assert!(!out.exists(), "no report without a run");
}

impl Fixture {
    /// Posts the seed's item with each of `ids` to the stand-in, as another tool (k6) would —
    /// the timestamp in whole seconds, as the seed's script sends it — each answered 200.
    async fn send_as_another_tool(&self, ids: &[String]) {
        aws_setup::install_tls_provider();
        let client = reqwest::Client::new();
        for id in ids {
            let body = serde_json::json!({"id": id, "message": "Hello World", "timestamp": (now_ms() / 1000.0).floor()});
            let answer = client.post(self.url()).json(&body).send().await.expect("posts");
            assert_eq!(answer.status(), 200, "{id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_from_a_file_traces_items_another_tool_sent_without_sending_any() {
    let Some(fx) = fixture(Fate::AllThrough).await else { return };
    let ids: Vec<String> = (0..20).map(|i| format!("k6-{i}")).collect();
    fx.send_as_another_tool(&ids).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // k6's raw log: one id a line; blank lines and stray spaces are tolerated.
    let file = dir.path().join("k6-ids.log");
    std::fs::write(&file, format!("\n{}\n\n  {}  \n", ids[..19].join("\n"), ids[19])).expect("writes");
    let out = dir.path().join("out");
    let args = [
        "--results-table",
        &fx.chain.results,
        "--items-table",
        &fx.chain.items,
        "--ids-from",
        file.to_str().unwrap(),
        "--poll",
        "20ms",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = fx.run(&args, None, true).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.chain.posts.load(Ordering::SeqCst), 20, "no request of its own");
    let text = stdout(&output);
    for expected in [
        format!("The load was external: sent by another tool; 20 ids from {}", file.display()),
        "20 ids accepted by the sender (status 200)".into(),
        "all 20 accepted items came through".into(),
        "| requests in per second |".into(),
        "| EndToEnd (1) |".into(),
        "the items' timestamps were whole seconds".into(),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in:\n{text}");
    }
    let report = read_json(&out.join("pipeline.json"));
    assert_eq!(
        (report["accepted"].as_u64(), report["complete"].as_bool(), report["flow"]["items_through"].as_u64()),
        (Some(20), Some(true), Some(20))
    );
    assert_eq!(report["ids_from"].as_str(), Some(file.to_str().unwrap()));
    for absent in ["load", "requests", "failed", "run_id", "url"] {
        assert!(report.get(absent).is_none(), "{absent} in the report of an external load");
    }
    // Requests in: the 20 over the upstream stamps' span; the drain from the last of them.
    let sent_s = report["sent_s"].as_f64().expect("sent_s");
    let rate = report["flow"]["requests_in_per_s"].as_f64().expect("rate");
    assert!(
        sent_s > 0.0 && (rate - probe::stats::round2(20.0 / sent_s)).abs() < 0.011,
        "{sent_s} s, {rate}/s"
    );
    assert!(report["flow"]["drain_s"].as_f64().is_some_and(|d| d >= 0.0));
    assert_eq!(std::fs::read_to_string(out.join("items.csv")).expect("csv").lines().count(), 21);
    for chart in ["timeline.svg", "cdf.svg"] {
        assert!(std::fs::read_to_string(out.join(chart)).expect(chart).starts_with("<svg"), "{chart}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_from_a_file_names_each_missing_item_with_where_it_is_stuck_and_fails() {
    let Some(fx) = fixture(Fate::SomeStuck).await else { return };
    // Sent: 1…10 (3 stops in the items table, 7 before it); "k6-never-0" was never sent at all.
    let sent: Vec<String> = (1..=10).map(|i| format!("k6-{i}")).collect();
    fx.send_as_another_tool(&sent).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("k6-ids.log");
    std::fs::write(&file, format!("{}\nk6-never-0\n", sent.join("\n"))).expect("writes");
    let out = dir.path().join("out");
    let args = [
        "--results-table",
        &fx.chain.results,
        "--items-table",
        &fx.chain.items,
        "--failure-queue-url",
        &fx.queue,
        "--ids-from",
        file.to_str().unwrap(),
        "--drain-timeout",
        "1s",
        "--poll",
        "100ms",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = fx.run(&args, None, true).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    for expected in [
        "3 accepted items did not come through",
        "1 in the items table but not in the results table: stuck between midstream and downstream (the table's stream, its event source mapping, the downstream function): k6-3\n",
        "2 not in the items table: stuck between upstream and midstream (the Kinesis stream, its event source mapping, the midstream function): k6-7, k6-never-0\n",
        "the on-failure queue holds 0 messages (0 in flight); 0 more than before the run",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    let report = read_json(&out.join("pipeline.json"));
    assert_eq!(
        (report["accepted"].as_u64(), report["complete"].as_bool(), report["flow"]["items_through"].as_u64()),
        (Some(11), Some(false), Some(8))
    );
    assert_eq!(report["stuck"]["between_upstream_and_midstream"], serde_json::json!(["k6-7", "k6-never-0"]));
    let md = std::fs::read_to_string(out.join("pipeline.md")).expect("md");
    assert!(md.contains("8 of 11 accepted items came through") && md.contains("## Not through"), "{md}");
    // A duplicate id is refused before anything is looked up, naming it.
    std::fs::write(&file, "k6-1\nk6-2\nk6-1\n").expect("writes");
    let output = fx.run(&args, None, true).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(r#"the id "k6-1" is on line 1 and again on line 3"#),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_measures_a_pipeline_its_targets_name_and_writes_its_section_and_files() {
    let Some(fx) = fixture(Fate::AllThrough).await else { return };
    let (hits, _) = common::hits_server();
    let dir = tempfile::tempdir().expect("tempdir");
    // local = true: the pipeline from pipeline.toml, as `latency pipeline --local` reads it.
    let toml = format!(
        "url = {:?}\nresults_table = {:?}\nitems_table = {:?}\nfailure_queue_url = {:?}\nendpoint = {:?}\nregion = {:?}\n",
        fx.url(),
        fx.chain.results,
        fx.chain.items,
        fx.queue,
        fx.endpoint,
        fx.region
    );
    std::fs::write(dir.path().join("pipeline.toml"), toml).expect("writes");
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\nname = 'hits'\nurl = 'http://{hits}/hits'\narchitecture = 'ec2'\ncount = 5\n\n\
             [[pipeline]]\nname = 'Local chain'\nlocal = true\npoll = '20ms'\nload = {{ vus = 2, iterations = 30 }}\n"
        ),
    )
    .expect("writes");
    let out = dir.path().join("report");
    let args = ["--targets", targets.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let output = fx.latency("report", &args, Some(dir.path()), false).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.chain.posts.load(Ordering::SeqCst), 30);
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(md.contains("| hits | this machine | probe | 5 |"), "{md}");
    for expected in [
        "## Pipeline\n".to_owned(),
        format!("### Local chain: {}\n", fx.url()),
        "30 requests sent, 30 accepted (status 200), 0 failed; all 30 accepted items came through".into(),
        "| requests in per second |".into(),
        "| end-to-end p99 |".into(),
        "| drain after the last request |".into(),
        "| EndToEnd |".into(),
        "| KinesisToMidstream |".into(),
        "![Latency CDF](pipeline/local-chain/cdf.svg)".into(),
    ] {
        assert!(md.contains(&expected), "{expected:?} not in:\n{md}");
    }
    let files = out.join("pipeline/local-chain");
    let report = read_json(&files.join("pipeline.json"));
    assert_eq!(
        (report["accepted"].as_u64(), report["complete"].as_bool(), report["flow"]["items_through"].as_u64()),
        (Some(30), Some(true), Some(30))
    );
    for chart in ["timeline.svg", "cdf.svg"] {
        assert!(std::fs::read_to_string(files.join(chart)).expect(chart).starts_with("<svg"), "{chart}");
    }
    assert!(std::fs::read_to_string(files.join("pipeline.md")).expect("md").starts_with("# Pipeline: "));
    assert_eq!(std::fs::read_to_string(files.join("items.csv")).expect("csv").lines().count(), 31);
    assert!(stdout(&output).contains("pipeline/local-chain/pipeline.md"), "{}", stdout(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_names_a_pipelines_stuck_items_in_its_section_and_fails() {
    let Some(fx) = fixture(Fate::SomeStuck).await else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let targets = dir.path().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[pipeline]]\nname = 'stuck'\nurl = {:?}\nresults_table = {:?}\nitems_table = {:?}\n\
             failure_queue_url = {:?}\ndrain_timeout = '1s'\npoll = '100ms'\n[pipeline.load]\nvus = 1\niterations = 20\n",
            fx.url(),
            fx.chain.results,
            fx.chain.items,
            fx.queue
        ),
    )
    .expect("writes");
    let out = dir.path().join("report");
    let args = ["--targets", targets.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let output = fx.latency("report", &args, None, true).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    for expected in [
        "pipeline stuck: 4 accepted items did not come through",
        "2 not in the items table: stuck between upstream and midstream",
        "Its report is in",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md, written all the same");
    for expected in [
        "### stuck: ",
        "16 of 20 accepted items came through",
        "#### Not through",
        "2 in the items table but not in the results table: stuck between midstream and downstream",
    ] {
        assert!(md.contains(expected), "{expected:?} not in:\n{md}");
    }
    let report = read_json(&out.join("pipeline/stuck/pipeline.json"));
    assert_eq!(report["complete"].as_bool(), Some(false));
}
