//! The `calc-worker` Lambda function (`bootstrap`): the DynamoDB ledger is built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edge::init_lambda_tracing();
    let config = calc_worker::config::LambdaConfig::from_env().unwrap_or_else(|e| {
        // An init failure: Lambda logs it and reports the exit; nothing to retry.
        tracing::error!("cannot start: {e}");
        std::process::exit(2);
    });
    let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(config.aws);
    let worker = calc_worker::lambda::build(&config, &aws).await.unwrap_or_else(|e| {
        tracing::error!("cannot start: {e}");
        std::process::exit(2);
    });
    calc_worker::lambda::run(worker).await
}
