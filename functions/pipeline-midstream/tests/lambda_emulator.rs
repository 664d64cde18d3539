//! The built `pipeline-midstream` bootstrap under `cargo lambda watch`, invoked with the real
//! Kinesis event (the fixture plus a poison record) as the event source mapping would, writing
//! into an items table in moto.

use serde_json::{Value, json};
use testkit::moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_writes_the_batch_and_answers_with_the_poison_record_alone() {
    if !testkit::emulator::available() {
        return;
    }
    let Some(config) = moto::config().await else { return };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::pipeline_table(&dynamodb, "pipeline-items-lambda").await;
    let env = [("PIPELINE_ITEMS_TABLE", table.as_str()), ("RUST_LOG", "info")];
    let emulator = testkit::emulator::Emulator::start(env!("CARGO_BIN_EXE_pipeline-midstream"), "_", &env)
        .expect("cargo-lambda is available");

    let path = format!("{}/tests/fixtures/kinesis-event.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut poison = event["Records"][1].clone();
    poison["kinesis"]["sequenceNumber"] = "49658236154327495730171391437947272840778468034308279999".into();
    poison["kinesis"]["data"] = "SGVsbG8gV29ybGQ=".into(); // "Hello World"
    event["Records"].as_array_mut().unwrap().push(poison);

    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let response = client.post(emulator.invoke_url("_")).body(event.to_string()).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "49658236154327495730171391437947272840778468034308279999"}]})
    );
    let count = dynamodb.scan().table_name(&table).send().await.unwrap().count();
    assert_eq!(count, 2, "the fixture's two items");
}
