//! The built `ingest-transform` bootstrap under `cargo lambda watch` (its Lambda Runtime API
//! emulator; crates/testkit (its emulator module)), invoked with the fixtures as Firehose would: the answer
//! must be Firehose's per-record contract, `{"records": [{"recordId", "result", "data"}, …]}`,
//! one per input record, same ids, data unchanged.

use std::time::Duration;

use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_answers_each_record_with_its_id_its_result_and_its_data_unchanged() {
    // This package's own binary, built by `cargo test` with the test's features.
    let bootstrap = env!("CARGO_BIN_EXE_ingest-transform");
    let Some(emulator) = testkit::emulator::Emulator::start(bootstrap, "_", &[("NO_COLOR", "1")]) else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();

    for (name, results) in [
        ("events-firehose-event.json", vec!["Ok", "Ok", "Ok", "ProcessingFailed"]),
        ("example-firehose-event.json", vec!["ProcessingFailed", "ProcessingFailed"]),
    ] {
        let event = fixture(name);
        let response = client.post(emulator.invoke_url("_")).body(event.to_string()).send().await.unwrap();
        assert!(response.status().is_success(), "{name}: HTTP {}", response.status());
        let body = response.bytes().await.unwrap();
        let answer: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body:?}"));
        let records = answer["records"].as_array().unwrap_or_else(|| panic!("{name}: {answer}"));
        let sent = event["records"].as_array().unwrap();
        assert_eq!(records.len(), sent.len(), "{name}: one answer per record");
        for ((got, sent), result) in records.iter().zip(sent).zip(results) {
            assert_eq!(got["recordId"], sent["recordId"], "{name}");
            assert_eq!(got["result"], result, "{name}: {got}");
            assert_eq!(got["data"], sent["data"], "{name}: data is passed through unchanged");
        }
    }
}
