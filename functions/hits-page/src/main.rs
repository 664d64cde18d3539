//! The `hits-page` Lambda (`bootstrap`): the S3 and HTTP clients are built once, at init.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_setup::load().await;
    let writer = hits_page::PageWriter::new(hits_page::s3_client(&config), hits_page::http_client()?);
    let writer = &writer;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| writer.handle(event))).await
}
