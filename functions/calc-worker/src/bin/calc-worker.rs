//! The `calc-worker` Lambda function (`bootstrap`): the DynamoDB ledger is built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edge::init_lambda_tracing();
    let built = match calc_worker::config::LambdaConfig::from_env() {
        Ok(config) => calc_worker::lambda::build(&config).await,
        Err(e) => Err(e),
    };
    let worker = built.unwrap_or_else(|e| {
        // An init failure: Lambda logs it and reports the exit; nothing to retry.
        tracing::error!("cannot start: {e}");
        std::process::exit(2);
    });
    calc_worker::lambda::run(worker).await
}
