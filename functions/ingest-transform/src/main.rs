//! The `ingest-transform` Lambda (`bootstrap`): Firehose's data-transformation step for the
//! events stream. The work is in the library ([`ingest_transform::handle`]), so tests call it
//! directly.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when Lambda's LoggingConfig asks for them, text otherwise.
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(lambda_runtime::service_fn(ingest_transform::handle)).await
}
