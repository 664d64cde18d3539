//! `--ids-from FILE`: the ids of items another tool sent (and got a 200 for), to trace through
//! the chain without a load of our own.
//!
//! One id per line, as k6 writes a script's `console.log(id)` with
//! `--log-output=file=FILE --log-format=raw`: each line trimmed, blank lines skipped. k6 writes
//! its own warnings into the same file (`Request Failed` when a request could not be sent), and
//! in the raw format they cannot be told from an id; with `--log-format=json` they can: a line
//! that is one of k6's JSON log records (`{"level":…,"msg":…,"source":"console",…}`) gives its
//! `msg` when it came from the script's console and is skipped otherwise.
//!
//! A file with no id, or with an id twice, is refused: the results table is keyed by id, so a
//! duplicate would be one item counted as two (or the sender's ids were not unique, and its
//! items overwrote each other's at upstream's first conditional put).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// k6's JSON log record (`--log-format=json`): the fields used here.
#[derive(Deserialize)]
struct K6Record {
    level: String,
    msg: String,
    source: Option<String>,
}

/// The ids in the file at `path`, in file order.
pub fn read(path: &Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io(format!("--ids-from {}", path.display())))?;
    parse(&text, &format!("--ids-from {}", path.display()))
}

/// The ids in `text`; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<String>, Error> {
    let mut ids: Vec<String> = Vec::new();
    // Each id's first line (1-based), to name both lines of a duplicate.
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut skipped = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id = match k6_record(line) {
            Some(record) if record.source.as_deref() == Some("console") => record.msg.trim().to_owned(),
            Some(record) => {
                tracing::debug!(level = %record.level, msg = %record.msg, "k6's own log line, not an id");
                skipped += 1;
                continue;
            }
            None => line.to_owned(),
        };
        if id.is_empty() {
            continue;
        }
        if let Some(first) = first_line.get(&id) {
            return Err(Error::Invalid(format!(
                "{origin}: the id {id:?} is on line {first} and again on line {}: each item must have its \
                 own id (the tables are keyed by it)",
                i + 1
            )));
        }
        first_line.insert(id.clone(), i + 1);
        ids.push(id);
    }
    if ids.is_empty() {
        let what = match skipped {
            0 => String::new(),
            n => format!(" ({n} of k6's own log lines skipped)"),
        };
        return Err(Error::Invalid(format!(
            "{origin}: no id in it{what}; it should hold one id per line, e.g. a k6 script's \
             console.log(id) of each accepted item with --log-output=file=FILE --log-format=raw"
        )));
    }
    Ok(ids)
}

/// The line as one of k6's JSON log records, if it is one.
fn k6_record(line: &str) -> Option<K6Record> {
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_one_a_line_trimmed_with_blank_lines_skipped() {
        let text = "  1-0-1796525120000 \n\n1-1-1796525120031\r\n\t\n2-0-1796525120002\n";
        assert_eq!(
            parse(text, "f").expect("ids"),
            ["1-0-1796525120000", "1-1-1796525120031", "2-0-1796525120002"]
        );
    }

    #[test]
    fn a_file_without_an_id_is_refused_with_what_it_should_hold() {
        for empty in ["", "\n  \n\t\n"] {
            let err = parse(empty, "--ids-from k6.log").expect_err("no id").to_string();
            assert!(
                err.starts_with("--ids-from k6.log: no id in it; it should hold one id per line"),
                "{err}"
            );
            assert!(err.contains("--log-format=raw"), "{err}");
        }
        let only_warnings = r#"{"level":"warning","msg":"Request Failed","time":"2026-12-06T03:00:00Z"}"#;
        let err = parse(only_warnings, "f").expect_err("no id").to_string();
        assert!(err.contains("no id in it (1 of k6's own log lines skipped)"), "{err}");
    }

    #[test]
    fn an_id_twice_is_refused_naming_it_and_both_lines() {
        let err = parse("a\nb\n\n a \n", "--ids-from k6.log").expect_err("duplicate").to_string();
        assert!(
            err.starts_with(r#"--ids-from k6.log: the id "a" is on line 1 and again on line 4: each item must have its own id"#),
            "{err}"
        );
    }

    #[test]
    fn in_k6s_json_log_format_only_the_scripts_console_lines_are_ids() {
        let text = [
            r#"{"level":"info","msg":"1-0-17","source":"console","time":"2026-12-06T03:00:00Z"}"#,
            r#"{"error":"dial tcp: connection refused","level":"warning","msg":"Request Failed","time":"2026-12-06T03:00:00Z"}"#,
            r#"{"level":"info","msg":"1-1-18","source":"console","time":"2026-12-06T03:00:01Z"}"#,
            r#"{"level":"warning","msg":"Request Failed","time":"2026-12-06T03:00:01Z"}"#,
        ]
        .join("\n");
        assert_eq!(parse(&text, "f").expect("ids"), ["1-0-17", "1-1-18"]);
        // A line that merely starts with a brace is an id like any other.
        assert_eq!(parse("{not json\n", "f").expect("ids"), ["{not json"]);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_flag_and_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read(&dir.path().join("k6-ids.log")).expect_err("missing").to_string();
        assert!(err.starts_with("--ids-from ") && err.contains("k6-ids.log"), "{err}");
    }
}
