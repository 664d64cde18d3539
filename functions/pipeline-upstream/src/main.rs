//! The `pipeline-upstream` Lambda function (`bootstrap`): settings read and the Kinesis client
//! built once, at init.

use pipeline_upstream::lambda::{self, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // JSON logs when Lambda asks for them, the request id on every line, X-Ray subsegments.
    edge::init_lambda_tracing();
    let opened = match Settings::from_vars(|name| std::env::var(name).ok()) {
        Ok(settings) => {
            let aws = aws_setup::Aws::new(aws_setup::TrustRoots::from_env()).with_timeouts(settings.aws);
            pipeline::open_stream(&settings.stream, &aws).await.map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match opened {
        Ok(stream) => lambda::run(stream).await,
        Err(e) => {
            // An init failure: Lambda logs it and reports the exit; nothing to retry.
            tracing::error!("cannot start: {e}");
            std::process::exit(2);
        }
    }
}
