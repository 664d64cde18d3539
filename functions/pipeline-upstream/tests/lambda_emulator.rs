//! The built `pipeline-upstream` bootstrap under `cargo lambda watch` (its Runtime API and
//! Function URL emulator), putting on a Kinesis stream in moto: the seed's item through the
//! Function URL is on the stream after the 200; a bad content type is a 415 and puts nothing.

use serde_json::{Value, json};
use testkit::moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_puts_the_seeds_item_on_the_stream_and_refuses_a_bad_content_type() {
    if !testkit::emulator::available() {
        return;
    }
    let Some(config) = moto::config().await else { return };
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let stream = moto::kinesis_stream(&kinesis, "pipeline-upstream-lambda", 1).await;
    let env = [("PIPELINE_STREAM", stream.as_str()), ("RUST_LOG", "info")];
    let emulator = testkit::emulator::Emulator::start(env!("CARGO_BIN_EXE_pipeline-upstream"), "_", &env)
        .expect("cargo-lambda is available");
    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build().unwrap();
    let item = r#"{"id":"seed-1","message":"Hello World","timestamp":1796525120}"#;

    let response = client
        .post(emulator.function_url("_", "/items"))
        .header("content-type", "application/json")
        .body(item)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body, json!({"message": "success"}));

    let response = client
        .post(emulator.function_url("_", "/items"))
        .header("content-type", "text/plain")
        .body(r#"{"id":"seed-2","message":"Hello World","timestamp":1796525120}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);

    let records = moto::kinesis_records(&kinesis, &stream).await;
    assert_eq!(records.len(), 1, "only the valid item");
    assert_eq!(records[0].0, "seed-1");
    assert_eq!(pipeline::record::decode(&records[0].1).unwrap().item.json, item);
}
