//! The `pipeline-midstream` Lambda function (`bootstrap`): settings read and the DynamoDB
//! client built once, at init.

use pipeline_midstream::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edge::init_lambda_tracing();
    let opened = match Settings::from_vars(|name| std::env::var(name).ok()) {
        Ok(settings) => {
            let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(settings.aws);
            pipeline::open_table(&settings.items_table, &aws).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match opened {
        Ok(table) => pipeline_midstream::run(table).await,
        Err(e) => {
            // An init failure: Lambda logs it and reports the exit; nothing to retry.
            tracing::error!("cannot start: {e}");
            std::process::exit(2);
        }
    }
}
