//! The `ingest` Lambda function (`bootstrap`): sinks and SDK clients are built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edge::init_lambda_tracing();
    let built = match ingest_fn::config::LambdaConfig::from_vars(|name| std::env::var(name).ok()) {
        Ok(config) => {
            let aws = ingest::AwsConfig::new(aws_setup::TrustRoots::from_env()).with_timeouts(config.aws);
            let built = ingest_fn::lambda::build(&config, &aws).await.map_err(|e| e.to_string());
            built.map(|(ingest, sink)| (ingest, sink, config.allowed_origins))
        }
        Err(e) => Err(e.to_string()),
    };
    let (ingest, sink, origins) = built.unwrap_or_else(|e| {
        // An init failure: Lambda logs it and reports the exit; nothing to retry.
        tracing::error!("cannot start: {e}");
        std::process::exit(2);
    });
    ingest_fn::lambda::run(ingest, sink, origins).await
}
