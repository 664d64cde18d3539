//! `hits-server` (and the `hits` Lambda binary) when AWS is not there as it should be: a stalled
//! DynamoDB (an endpoint that accepts and never answers) is a 503 naming the timeout within
//! the SDK's operation timeout, not a request held for minutes; no region at all stops the
//! process at startup with what to set, instead of a server that answers 503 to every call.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, client};
use testkit::process::Process;
use testkit::stalled::Endpoint;

/// Fake credentials and a region, so that the only thing wrong is the endpoint.
const FAKE_AWS: [(&str, &str); 3] =
    [("AWS_REGION", "eu-west-2"), ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")];

#[tokio::test]
async fn a_stalled_dynamodb_answers_503_with_its_reason_within_the_operation_timeout() {
    let endpoint = Endpoint::start();
    let mut env = FAKE_AWS.to_vec();
    env.push(("AWS_ENDPOINT_URL", endpoint.url.as_str()));
    let server = Server::spawn_with_args(
        &[
            "--addr=127.0.0.1:0",
            "--store=dynamodb:hits",
            "--aws-connect-timeout=0.25",
            "--aws-attempt-timeout=0.5",
            "--aws-operation-timeout=1",
        ],
        &env,
    );
    let started = Instant::now();
    let response = client().get(format!("{}/hits", server.url)).send().await.expect("an answer");
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let body = response.text().await.unwrap();
    assert_eq!(body, "dynamodb store timed out after 1.0 s");
    // The operation timeout, plus room for a slow machine: far below "hangs".
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "answered after {took:?}");
    assert!(endpoint.accepted() >= 1, "the call reached the stalled endpoint");
    eprintln!("stalled DynamoDB: 503 after {took:?}: {body}");
}

/// `command` with no region anywhere the SDK looks: not in the environment, not in a profile
/// (`empty` as the config and credentials files), and no instance metadata service to ask.
fn without_a_region<'a>(command: &'a mut Command, empty: &std::path::Path) -> &'a mut Command {
    command
        .env("HITS_STORE", "dynamodb:hits")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", empty)
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

#[test]
fn without_a_region_the_server_refuses_to_start_and_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hits-server"));
    let mut server = Process::start(without_a_region(command.arg("--addr=127.0.0.1:0"), &empty));
    let status = server.wait_exit(Duration::from_secs(10));
    let log = server.log();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{status:?}\n{log}");
    assert!(log.contains("cannot open dynamodb store: no AWS region: set AWS_REGION"), "{log}");
    assert!(!log.contains("listening on"), "started anyway:\n{log}");
}

#[test]
fn without_a_region_the_lambda_fails_its_init_and_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hits"));
    // It must fail on the store before it ever looks for the runtime API.
    let out = without_a_region(command.env_remove("AWS_LAMBDA_RUNTIME_API"), &empty)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("no AWS region: set AWS_REGION"), "{log}");
}
