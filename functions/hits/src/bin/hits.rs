//! The `hits` Lambda function (`bootstrap`): settings read and the store and SDK clients built
//! once, at init.

use hits::lambda::Settings;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when Lambda asks for them, the request id on every line, X-Ray subsegments.
    edge::init_lambda_tracing();
    let opened = match Settings::from_vars(|name| std::env::var(name).ok()) {
        Ok(settings) => {
            let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(settings.aws);
            counter::open(&settings.store, &aws).await.map(|c| (c, settings)).map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match opened {
        Ok((counter, settings)) => hits::lambda::run(counter, &settings).await,
        Err(e) => {
            // An init failure: Lambda logs it and reports the exit; nothing to retry.
            tracing::error!("cannot start: {e}");
            std::process::exit(2);
        }
    }
}
