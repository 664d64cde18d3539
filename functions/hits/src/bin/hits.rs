//! The `hits` Lambda function (`bootstrap`): store and SDK clients are built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hits::lambda::init_tracing();
    let counter = match counter::open_from_env().await {
        Ok(counter) => counter,
        Err(e) => {
            // An init failure: Lambda logs it and reports the exit; nothing to retry.
            tracing::error!("cannot start: {e}");
            std::process::exit(2);
        }
    };
    hits::lambda::run(counter).await
}
