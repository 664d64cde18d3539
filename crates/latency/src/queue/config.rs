//! `--local`: the deployment to run against — target, tables, dead-letter queue — read from
//! `.local/queue.toml` (its format is in the `latency queue` docs) instead of the target flags.

use std::path::Path;

use serde::Deserialize;

use super::target::Kind;
use crate::error::Error;

/// What `run` needs to know about the deployment: from the flags or from queue.toml.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Setup {
    /// The AWS endpoint override (the emulator), if any.
    pub(super) endpoint: Option<String>,
    pub(super) target: String,
    pub(super) amqp_queue: Option<String>,
    pub(super) dlq: Option<String>,
    /// The SQS work queue of an http target, to wait until it is empty.
    pub(super) queue_url: Option<String>,
    pub(super) done_table: String,
    pub(super) messages_table: String,
}

#[derive(Debug, Deserialize)]
struct LocalFile {
    endpoint: Option<String>,
    #[serde(default, rename = "path")]
    paths: Vec<LocalPath>,
}

#[derive(Debug, Deserialize)]
struct LocalPath {
    name: String,
    target: String,
    amqp_queue: Option<String>,
    dlq: Option<String>,
    queue: Option<String>,
    done_table: String,
    messages_table: String,
}

/// Reads queue.toml at `path` and picks the path named `name` (default: the first).
pub(super) fn load_local(path: &Path, name: Option<&str>) -> Result<Setup, Error> {
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
    parse_local(&text, &path.display().to_string(), name)
}

fn parse_local(text: &str, origin: &str, name: Option<&str>) -> Result<Setup, Error> {
    let file: LocalFile = toml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    let chosen = match name {
        None => file.paths.first(),
        Some(name) => file.paths.iter().find(|p| p.name == name),
    };
    let Some(chosen) = chosen else {
        let names: Vec<&str> = file.paths.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::Invalid(match name {
            None => format!("{origin}: no [[path]] entries"),
            Some(name) => format!("{origin}: no path named {name:?} (there are: {})", names.join(", ")),
        }));
    };
    Kind::of(&chosen.target).map_err(|e| Error::Invalid(format!("{origin}: path {:?}: {e}", chosen.name)))?;
    Ok(Setup {
        endpoint: file.endpoint.filter(|e| !e.is_empty()),
        target: chosen.target.clone(),
        amqp_queue: chosen.amqp_queue.clone(),
        dlq: chosen.dlq.clone().filter(|d| !d.is_empty()),
        queue_url: chosen.queue.clone().filter(|q| !q.is_empty()),
        done_table: chosen.done_table.clone(),
        messages_table: chosen.messages_table.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE_TOML: &str = r#"
        # Written by scripts/local up.
        endpoint = "http://127.0.0.1:5000"
        [[path]]
        name = "lambda"
        target = "http://127.0.0.1:9020/v1/calc"
        dlq = "http://127.0.0.1:5000/123456789012/local-calcdeadletterqueue"
        done_table = "local-calctable"
        messages_table = "local-calcmessagestable"
        [[path]]
        name = "worker"
        target = "amqp://guest:guest@127.0.0.1:5673/%2f"
        amqp_queue = "calc"
        dlq = "calc.dlq"
        done_table = "local-calctable-worker"
        messages_table = "local-calcmessagestable"
        comment = "other keys are ignored"
    "#;

    #[test]
    fn queue_toml_gives_the_first_path_by_default_and_any_path_by_name() {
        let lambda = parse_local(QUEUE_TOML, "queue.toml", None).expect("valid");
        assert_eq!(
            lambda,
            Setup {
                endpoint: Some("http://127.0.0.1:5000".into()),
                target: "http://127.0.0.1:9020/v1/calc".into(),
                amqp_queue: None,
                dlq: Some("http://127.0.0.1:5000/123456789012/local-calcdeadletterqueue".into()),
                queue_url: None,
                done_table: "local-calctable".into(),
                messages_table: "local-calcmessagestable".into(),
            }
        );
        assert_eq!(parse_local(QUEUE_TOML, "queue.toml", Some("lambda")).expect("valid"), lambda);
        let worker = parse_local(QUEUE_TOML, "queue.toml", Some("worker")).expect("valid");
        assert_eq!(worker.target, "amqp://guest:guest@127.0.0.1:5673/%2f");
        assert_eq!(worker.amqp_queue.as_deref(), Some("calc"));
        assert_eq!(worker.dlq.as_deref(), Some("calc.dlq"));
        assert_eq!(worker.done_table, "local-calctable-worker");
        assert_eq!(Kind::of(&worker.target).expect("amqp"), Kind::Amqp);
    }

    #[test]
    fn bad_or_missing_queue_toml_says_what_to_do() {
        let missing = tempfile::tempdir().expect("tempdir");
        let err = load_local(&missing.path().join("queue.toml"), None).expect_err("missing").to_string();
        assert!(err.contains("queue.toml not found") && err.contains("scripts/local up"), "{err}");

        let err = parse_local(QUEUE_TOML, "q.toml", Some("fargate")).expect_err("no such path").to_string();
        assert!(err.contains("no path named \"fargate\"") && err.contains("lambda, worker"), "{err}");
        let err = parse_local("endpoint = 'http://x'", "q.toml", None).expect_err("no paths").to_string();
        assert!(err.contains("no [[path]]"), "{err}");
        let err = parse_local("[[path]]\nname = 'a'\ntarget = 'http://x'", "q.toml", None)
            .expect_err("no tables")
            .to_string();
        assert!(err.contains("q.toml") && err.contains("done_table"), "{err}");
        let text = "[[path]]\nname='a'\ntarget='ftp://x'\ndone_table='d'\nmessages_table='m'";
        let err = parse_local(text, "q.toml", None).expect_err("bad scheme").to_string();
        assert!(err.contains("neither http(s)"), "{err}");
    }
}
