//! Where the pipeline is: its URL, its two tables, its on-failure queue and the AWS endpoint and
//! region to read them at — from the flags, or (`--local`) from `.local/pipeline.toml`, which
//! `scripts/local up` writes (its format is in the module docs of `latency pipeline`).

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// What the driver needs to know about the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Setup {
    /// Where to POST the items (the stack's PipelineUrl, or the local Function URL); `None` only
    /// with `--ids-from` (no load of ours).
    pub url: Option<String>,
    /// The results table the downstream function writes (PipelineResultsTableName).
    pub results_table: String,
    /// The items table the midstream function writes (PipelineItemsTableName).
    pub items_table: String,
    /// The on-failure destination of both event source mappings (PipelineFailureQueueUrl).
    pub failure_queue_url: Option<String>,
    /// The AWS endpoint override (the emulator), if any.
    pub endpoint: Option<String>,
    /// The region, if it is not the environment's.
    pub region: Option<String>,
}

/// `.local/pipeline.toml`. Other keys are ignored, so the writer can add some without breaking
/// older readers.
#[derive(Debug, Deserialize)]
struct LocalFile {
    url: String,
    results_table: String,
    items_table: String,
    failure_queue_url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
}

/// Reads pipeline.toml at `path`.
pub(super) fn load_local(path: &Path) -> Result<Setup, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "{} not found: start the local stack first (scripts/local up), which writes it",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(format!("reading {}", path.display()))(e)),
    };
    parse_local(&text, &path.display().to_string())
}

fn parse_local(text: &str, origin: &str) -> Result<Setup, Error> {
    let file: LocalFile = toml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    let setup = Setup {
        url: Some(file.url),
        results_table: file.results_table,
        items_table: file.items_table,
        failure_queue_url: nonempty(file.failure_queue_url),
        endpoint: nonempty(file.endpoint),
        region: nonempty(file.region),
    };
    setup.check().map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    Ok(setup)
}

impl Setup {
    /// The URLs are URLs and the table names are not empty.
    pub fn check(&self) -> Result<(), Error> {
        let http = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if let Some(url) = &self.url
            && !http(url)
        {
            return Err(Error::Invalid(format!("url {url:?} is not an http(s) URL")));
        }
        if let Some(queue) = &self.failure_queue_url
            && !http(queue)
        {
            return Err(Error::Invalid(format!(
                "failure queue {queue:?} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )));
        }
        for (what, name) in [("results table", &self.results_table), ("items table", &self.items_table)] {
            if name.trim().is_empty() {
                return Err(Error::Invalid(format!("the {what} has no name")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE_TOML: &str = r#"
        # Written by scripts/local up.
        url = "http://127.0.0.1:9000/lambda-url/pipeline-upstream/items"
        results_table = "local-pipeline-results"
        items_table = "local-pipeline-items"
        failure_queue_url = "http://127.0.0.1:5000/123456789012/local-pipeline-failures"
        endpoint = "http://127.0.0.1:5000"
        region = "eu-west-1"
        stream = "local-pipeline-stream"   # other keys are ignored
    "#;

    #[test]
    fn pipeline_toml_names_the_url_the_tables_the_queue_and_where_aws_is() {
        let setup = parse_local(PIPELINE_TOML, "pipeline.toml").expect("valid");
        assert_eq!(
            setup,
            Setup {
                url: Some("http://127.0.0.1:9000/lambda-url/pipeline-upstream/items".into()),
                results_table: "local-pipeline-results".into(),
                items_table: "local-pipeline-items".into(),
                failure_queue_url: Some("http://127.0.0.1:5000/123456789012/local-pipeline-failures".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
                region: Some("eu-west-1".into()),
            }
        );
        let minimal = "url = 'http://x/items'\nresults_table = 'r'\nitems_table = 'i'\nendpoint = ''";
        let setup = parse_local(minimal, "p.toml").expect("the queue, endpoint and region are optional");
        assert_eq!((setup.failure_queue_url, setup.endpoint, setup.region), (None, None, None));
    }

    #[test]
    fn a_missing_or_bad_pipeline_toml_says_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_local(&dir.path().join("pipeline.toml")).expect_err("missing").to_string();
        assert!(err.contains("pipeline.toml not found") && err.contains("scripts/local up"), "{err}");
        let err =
            parse_local("url = 'http://x/items'\nitems_table = 'i'", "p.toml").expect_err("no results table");
        assert!(err.to_string().contains("p.toml") && err.to_string().contains("results_table"), "{err}");
        let err = parse_local("url = 'ftp://x'\nresults_table = 'r'\nitems_table = 'i'", "p.toml")
            .expect_err("not http")
            .to_string();
        assert!(err.contains("p.toml: url \"ftp://x\" is not an http(s) URL"), "{err}");
        let err = parse_local("url = 'http://x'\nresults_table = ' '\nitems_table = 'i'", "p.toml")
            .expect_err("empty table")
            .to_string();
        assert!(err.contains("the results table has no name"), "{err}");
    }
}
