//! The `hits` Lambda function (`bootstrap`): store and SDK clients are built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hits::lambda::init_tracing();
    let counter = counter::open_from_env().await?;
    hits::lambda::run(counter).await
}
