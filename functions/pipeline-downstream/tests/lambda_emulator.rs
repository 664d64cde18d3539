//! The built `pipeline-downstream` bootstrap under `cargo lambda watch`, invoked with the real
//! DynamoDB stream event (the fixture) as the event source mapping would, writing into a
//! results table in moto; the same event again writes nothing more.

use serde_json::{Value, json};
use testkit::moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_writes_one_result_per_item_also_when_the_batch_comes_twice() {
    if !testkit::emulator::available() {
        return;
    }
    let Some(config) = moto::config().await else { return };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::pipeline_table(&dynamodb, "pipeline-results-lambda").await;
    let env = [("PIPELINE_RESULTS_TABLE", table.as_str()), ("RUST_LOG", "info")];
    let emulator = testkit::emulator::Emulator::start(env!("CARGO_BIN_EXE_pipeline-downstream"), "_", &env)
        .expect("cargo-lambda is available");
    let path = format!("{}/tests/fixtures/dynamodb-stream-event.json", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(path).unwrap();

    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    for _ in 0..2 {
        let response = client.post(emulator.invoke_url("_")).body(event.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let scanned = dynamodb.scan().table_name(&table).send().await.unwrap();
    let mut ids: Vec<&str> = scanned.items().iter().map(|i| i["id"].as_s().unwrap().as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["k6-1-0001", "k6-2-0001"]);
    let row = scanned.items().iter().find(|i| i["id"].as_s().unwrap() == "k6-1-0001").unwrap();
    assert_eq!(row["stream_ms"].as_n().unwrap(), "1796525120000");
}
