//! The built `hits` bootstrap under `cargo lambda watch` (its Lambda Runtime API emulator),
//! on DynamoDB and on S3 in moto: real events in through `cargo lambda invoke` and through the
//! emulator's Function URL endpoint.
//!
//! By default the bootstrap is this build's `hits` binary. `HITS_BOOTSTRAP` names another one,
//! run through `HITS_BOOTSTRAP_RUNNER` if set: scripts/test runs the deployable arm64 release
//! `bootstrap` under `qemu-aarch64` that way.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use testkit::emulator::Bootstrap;
use testkit::moto;

use serde_json::{Value, json};

mod common;
use common::{http_api_event, rest_api_event};

fn workspace() -> PathBuf {
    testkit::workspace()
}

/// The bootstrap to run: `HITS_BOOTSTRAP` (through `HITS_BOOTSTRAP_RUNNER`), else this build's.
fn bootstrap() -> Bootstrap {
    let bootstrap = std::env::var("HITS_BOOTSTRAP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hits").to_owned());
    Bootstrap::new(bootstrap).runner(&std::env::var("HITS_BOOTSTRAP_RUNNER").unwrap_or_default())
}

/// `cargo lambda watch --only-lambda-apis` plus the bootstrap, wired as Lambda would.
struct Emulator {
    emulator: testkit::emulator::Emulator,
    dir: tempfile::TempDir,
}

impl Emulator {
    fn start(hits_store: &str) -> Emulator {
        let emulator = testkit::emulator::Emulator::start(bootstrap(), "_", &[("HITS_STORE", hits_store)])
            .expect("cargo-lambda was there a moment ago (preconditions)");
        Emulator { emulator, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// `cargo lambda invoke` with a payload file, as a user would.
    fn invoke(&self, event: &Value) -> Value {
        let file = self.dir.path().join("event.json");
        std::fs::write(&file, serde_json::to_vec(event).unwrap()).unwrap();
        let Output { status, stdout, stderr } = Command::new("cargo-lambda")
            .args(["lambda", "invoke", "_", "-A", "127.0.0.1", "-P", &self.emulator.port().to_string(), "-F"])
            .arg(&file)
            .current_dir(workspace())
            .output()
            .unwrap();
        assert!(status.success(), "invoke failed: {}", String::from_utf8_lossy(&stderr));
        serde_json::from_slice(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&stdout)))
    }

    fn url(&self, path: &str) -> String {
        self.emulator.function_url("_", path)
    }
}

async fn exercise(emulator: &Emulator) -> u64 {
    // The emulator holds the first invocation until the bootstrap polls for it.
    aws_setup::install_tls_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let first = emulator.invoke(&http_api_event("apigw_v2_proxy_request.json", "/hits"));
    assert_eq!(first["statusCode"], 200, "{first}");
    assert_eq!(first["body"], "1");
    let rest = emulator.invoke(&rest_api_event("/hits"));
    assert_eq!(rest["statusCode"], 200, "{rest}");
    assert_eq!(rest["body"], "2", "REST API event with its stage reaches /hits");

    // Through the emulator's Function URL endpoint, 50 at once (under the ~100 it can take).
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), emulator.url("/hits"));
            tokio::spawn(async move {
                let r = client.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.text().await.unwrap().parse::<u64>().unwrap()
            })
        })
        .collect();
    let mut seen = Vec::new();
    for c in calls {
        seen.push(c.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (3..=52).collect::<Vec<_>>());

    let warmed = emulator.invoke(&json!({"instruction": "warmer"}));
    assert_eq!(warmed["warmed"], true, "{warmed}");
    let health = client.get(emulator.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let page = client.get(emulator.url("/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(page, hits::PAGE);
    let after = client.get(emulator.url("/hits")).send().await.unwrap().text().await.unwrap();
    assert_eq!(after, "53", "warmer, health and page did not count");
    53
}

/// `None` = skip (tools or emulator absent and not required).
async fn preconditions() -> Option<aws_config::SdkConfig> {
    if !testkit::emulator::available() {
        return None;
    }
    moto::config().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_serves_hits_on_dynamodb_under_cargo_lambda_watch() {
    let Some(config) = preconditions().await else { return };
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = moto::counter_table(&dynamodb, "hits-emulator").await;
    let emulator = Emulator::start(&format!("dynamodb:{table}"));
    let expected = exercise(&emulator).await;
    let item = dynamodb
        .get_item()
        .table_name(&table)
        .key("id", aws_sdk_dynamodb::types::AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    let hits = item.item().and_then(|i| i.get("hits")).and_then(|v| v.as_n().ok()).cloned();
    assert_eq!(hits, Some(expected.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_serves_hits_on_s3_under_cargo_lambda_watch() {
    let Some(config) = preconditions().await else { return };
    let s3 = aws_setup::s3_client(&config);
    let bucket = moto::bucket(&s3, "hits-emulator").await;
    let emulator = Emulator::start(&format!("s3:{bucket}/hits/count"));
    let expected = exercise(&emulator).await;
    let object = s3.get_object().bucket(&bucket).key("hits/count").send().await.unwrap();
    let body = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(std::str::from_utf8(&body).unwrap(), expected.to_string());
}
