//! Cold-start harness: plays the Lambda Runtime API for one bootstrap process.

use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> Result<(), Error> {
    Err(Error::Invalid("cold-start: not built yet".into()))
}
