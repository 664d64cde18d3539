//! The real `ingest-server` binary against moto's Firehose → S3 and Kinesis, over HTTP: what
//! was accepted is what lands, under concurrency, overload and SIGTERM.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::moto;

mod common;
use common::{Server, client, event, eventually, ids, s3_lines};

struct Aws {
    s3: aws_sdk_s3::Client,
    firehose: aws_sdk_firehose::Client,
    kinesis: aws_sdk_kinesis::Client,
}

async fn aws() -> Option<Aws> {
    let config = moto::config().await?;
    Some(Aws {
        s3: aws_setup::s3_client(&config),
        firehose: aws_sdk_firehose::Client::new(&config),
        kinesis: aws_sdk_kinesis::Client::new(&config),
    })
}

/// A bucket with an events stream (`events/`) and an invalid-events stream (`invalid/`).
async fn streams(aws: &Aws) -> (String, String, String) {
    let bucket = moto::bucket(&aws.s3, "ingest").await;
    let events = moto::delivery_stream(&aws.firehose, &bucket, "events/").await;
    let invalid = moto::delivery_stream(&aws.firehose, &bucket, "invalid/").await;
    (bucket, events, invalid)
}

fn spill_arg(dir: &tempfile::TempDir) -> String {
    dir.path().join("spill.ndjson").display().to_string()
}

/// A client's requests: singles and arrays of 2..=200, with one invalid event in every tenth
/// request. Returns (valid ids sent, invalid count) for the requests that got a 202.
async fn produce(
    client: reqwest::Client,
    url: String,
    next_id: Arc<AtomicU64>,
    requests: usize,
    seed: u64,
) -> (Vec<u64>, usize) {
    let (mut accepted, mut invalid) = (Vec::new(), 0);
    for r in 0..requests {
        let n = if (r as u64 + seed).is_multiple_of(3) {
            1
        } else {
            2 + ((r as u64 * 7919 + seed) % 199) as usize
        };
        let first = next_id.fetch_add(n as u64, Ordering::SeqCst);
        let mut events: Vec<Value> = (first..first + n as u64).map(event).collect();
        let bad = r % 10 == 9;
        if bad {
            events.push(json!({"type": "", "timestamp": 1, "id": u64::MAX}));
        }
        let body = if n == 1 && !bad { events[0].to_string() } else { Value::Array(events).to_string() };
        let response = client
            .post(format!("{url}/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        // Refused connections: the server is shutting down (or gone).
        let Ok(response) = response else { break };
        if response.status() == 202 {
            let reply: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            assert_eq!(reply["accepted"], n);
            accepted.extend(first..first + n as u64);
            invalid += usize::from(bad);
        }
    }
    (accepted, invalid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_concurrent_clients_land_in_s3_exactly_once_and_invalid_ones_apart() {
    let Some(aws) = aws().await else { return };
    let (bucket, events, invalid) = streams(&aws).await;
    let spill = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(
        &["--linger-ms", "20", "--spill", &spill_arg(&spill)],
        &[
            ("INGEST_SINK", &format!("firehose:{events}")),
            ("INGEST_INVALID_SINK", &format!("firehose:{invalid}")),
        ],
    );
    let client = client();
    let next_id = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..16)
        .map(|seed| tokio::spawn(produce(client.clone(), server.url.clone(), next_id.clone(), 25, seed)))
        .collect();
    let (mut sent, mut bad) = (Vec::new(), 0);
    for p in producers {
        let (ids, invalid) = p.await.unwrap();
        sent.extend(ids);
        bad += invalid;
    }
    sent.sort_unstable();
    assert!(sent.len() > 10_000, "{} events", sent.len());
    let metrics = common::metrics(&server, &client).await;
    assert_eq!(metrics["ingest_accepted_events_total"], sent.len() as f64);
    assert_eq!(metrics["ingest_invalid_events_total"], bad as f64);
    let delivered = eventually(Duration::from_secs(20), || async {
        ids(&s3_lines(&aws.s3, &bucket, "events/").await).len() >= sent.len()
    })
    .await;
    assert!(delivered, "not everything reached S3 in 20 s:\n{}", server.log());
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert_eq!(ids(&s3_lines(&aws.s3, &bucket, "events/").await), sent, "exactly the accepted valid events");
    let routed = s3_lines(&aws.s3, &bucket, "invalid/").await;
    assert_eq!(routed.len(), bad);
    assert!(routed.iter().all(|l| l["error"] == "`type` is empty" && l["event"]["id"] == u64::MAX));
    assert!(!spill.path().join("spill.ndjson").exists(), "nothing to spill when the sink works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_sink_unreachable_spills_and_the_next_start_delivers_the_spill() {
    let Some(aws) = aws().await else { return };
    let (bucket, events, _) = streams(&aws).await;
    let spill = tempfile::tempdir().unwrap();
    let sink = format!("firehose:{events}");
    // Port 9 (discard) on loopback: nothing listens, every call fails fast.
    let mut down = Server::spawn(
        &["--spill", &spill_arg(&spill), "--shutdown-timeout", "3"],
        &[("INGEST_SINK", &sink), ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_MAX_ATTEMPTS", "1")],
    );
    let client = client();
    let (sent, _) = produce(client.clone(), down.url.clone(), Arc::new(AtomicU64::new(0)), 40, 1).await;
    assert!(!sent.is_empty());
    let started = std::time::Instant::now();
    let status = down.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}:\n{}", down.log());
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?} for a 3 s deadline", started.elapsed());
    let spilled = std::fs::read_to_string(spill.path().join("spill.ndjson")).unwrap();
    let spilled: Vec<Value> = spilled.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ids(&spilled), sent, "every accepted event is in the spill file");
    assert!(s3_lines(&aws.s3, &bucket, "events/").await.is_empty());

    let mut up = Server::spawn(&["--spill", &spill_arg(&spill)], &[("INGEST_SINK", &sink)]);
    let replayed = eventually(Duration::from_secs(20), || async {
        ids(&s3_lines(&aws.s3, &bucket, "events/").await) == sent
    })
    .await;
    assert!(replayed, "the spill was not delivered after restart:\n{}", up.log());
    let released = eventually(Duration::from_secs(5), || async {
        std::fs::read_dir(spill.path()).unwrap().next().is_none()
    })
    .await;
    assert!(released, "the spill file stays until its records are acknowledged, then goes");
    assert!(up.terminate(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_delivers_every_accepted_event() {
    let Some(aws) = aws().await else { return };
    let (bucket, events, _) = streams(&aws).await;
    let spill = tempfile::tempdir().unwrap();
    let mut server = Server::spawn(
        &["--spill", &spill_arg(&spill), "--linger-ms", "200", "--shutdown-timeout", "20"],
        &[("INGEST_SINK", &format!("firehose:{events}"))],
    );
    let client = client();
    let next_id = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..8)
        .map(|seed| tokio::spawn(produce(client.clone(), server.url.clone(), next_id.clone(), 10_000, seed)))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.signal("TERM");
    let mut sent = Vec::new();
    for p in producers {
        sent.extend(p.await.unwrap().0);
    }
    sent.sort_unstable();
    let status = server.wait_exit(Duration::from_secs(30)).expect("exit after SIGTERM");
    assert!(status.success(), "{status}:\n{}", server.log());
    assert!(!sent.is_empty());
    let mut landed = s3_lines(&aws.s3, &bucket, "events/").await;
    if let Ok(spilled) = std::fs::read_to_string(spill.path().join("spill.ndjson")) {
        landed.extend(spilled.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    }
    assert_eq!(ids(&landed), sent, "every 202 is in S3 (or the spill), once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_faster_than_the_sink_get_503_while_memory_stays_bounded() {
    let Some(aws) = aws().await else { return };
    let (bucket, events, _) = streams(&aws).await;
    let spill = tempfile::tempdir().unwrap();
    let buffer = 2 * 1024 * 1024;
    let mut server = Server::spawn(
        &[
            "--spill",
            &spill_arg(&spill),
            "--buffer-bytes",
            &buffer.to_string(),
            "--max-in-flight",
            "1",
            "--pack-bytes",
            "0",
        ],
        &[("INGEST_SINK", &format!("firehose:{events}"))],
    );
    let client = client();
    let baseline = server.rss_bytes();
    let next_id = Arc::new(AtomicU64::new(0));
    let overloaded = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..24u64)
        .map(|_| {
            let (client, url, next_id) = (client.clone(), server.url.clone(), next_id.clone());
            let (overloaded, accepted) = (overloaded.clone(), accepted.clone());
            tokio::spawn(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(4);
                while std::time::Instant::now() < deadline {
                    let first = next_id.fetch_add(500, Ordering::SeqCst);
                    let body = Value::Array((first..first + 500).map(event).collect()).to_string();
                    let r = client
                        .post(format!("{url}/events"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        202 => accepted.lock().unwrap().extend(first..first + 500),
                        503 => {
                            assert!(r.headers().contains_key("retry-after"));
                            overloaded.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    let mut peak = 0;
    while producers.iter().any(|p| !p.is_finished()) {
        peak = peak.max(server.rss_bytes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in producers {
        p.await.unwrap();
    }
    let metrics = common::metrics(&server, &client).await;
    assert!(overloaded.load(Ordering::SeqCst) > 0, "the sink kept up; no backpressure was exercised");
    assert_eq!(metrics["ingest_rejected_requests_total"], overloaded.load(Ordering::SeqCst) as f64);
    // The buffer is 2 MiB; request bodies in flight (24 × ~45 KB) and the runtime come on top.
    let bound = baseline + 24 * 1024 * 1024;
    assert!(peak <= bound, "peak RSS {} MB over the bound {} MB", peak >> 20, bound >> 20);
    assert!(server.terminate(Duration::from_secs(60)).success(), "{}", server.log());
    let mut sent = accepted.lock().unwrap().clone();
    sent.sort_unstable();
    assert_eq!(ids(&s3_lines(&aws.s3, &bucket, "events/").await), sent, "every 202 was delivered");
    println!(
        "overload: {} requests refused, peak RSS {} MB (baseline {} MB)",
        overloaded.load(Ordering::SeqCst),
        peak >> 20,
        baseline >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_kinesis_stream_through_the_same_server() {
    let Some(aws) = aws().await else { return };
    let stream = moto::kinesis_stream(&aws.kinesis, "ingest", 2).await;
    let mut server = Server::spawn(
        &["--spill", "off", "--linger-ms", "10"],
        &[("INGEST_SINK", &format!("kinesis:{stream}"))],
    );
    let client = client();
    let (sent, _) = produce(client.clone(), server.url.clone(), Arc::new(AtomicU64::new(0)), 20, 3).await;
    assert!(server.terminate(Duration::from_secs(30)).success());
    let mut got = Vec::new();
    let shards = aws.kinesis.list_shards().stream_name(&stream).send().await.unwrap();
    for shard in shards.shards() {
        let mut iterator = aws
            .kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        loop {
            let out = aws.kinesis.get_records().shard_iterator(&iterator).send().await.unwrap();
            if out.records().is_empty() {
                break;
            }
            for record in out.records() {
                for line in record.data().as_ref().split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    got.push(serde_json::from_slice::<Value>(line).unwrap());
                }
            }
            match out.next_shard_iterator {
                Some(next) => iterator = next,
                None => break,
            }
        }
    }
    assert_eq!(ids(&got), sent);
    let unique: BTreeSet<u64> = ids(&got).into_iter().collect();
    assert_eq!(unique.len(), sent.len());
}
