//! The Firehose data-transformation contract: is a delivered record what our producers send?
//!
//! Firehose hands a Lambda each buffered batch of records before writing it to S3; the Lambda
//! answers per record `Ok` (write it under the stream's prefix), `Dropped`, or `ProcessingFailed`
//! (write the original bytes under the error output prefix instead, `errors/processing-failed/`
//! in template.yaml). This module is the decision, without any Lambda type:
//! functions/ingest-transform wraps it.
//!
//! A record is good when it is UTF-8, newline-delimited JSON, and every non-empty line is exactly
//! one JSON value that passes [`event::validate`] — what [`crate::pack`] builds from the valid
//! events of a request. The verdict is for the whole record: our producers route invalid events
//! to a separate stream (`INGEST_INVALID_SINK`, no transform) and never pack them with valid
//! ones, so a bad line means the record did not come from them. A foreign producer's record that
//! mixes good and bad lines therefore lands whole under the processing-failed prefix: its good
//! events are not in the events table, but nothing is lost, and the error object says which line
//! was the first bad one.

use serde_json::value::RawValue;

use crate::event::{self, EventError};

/// What to tell Firehose about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver the record as it is.
    Ok,
    /// Deliver the original record under the error output prefix; the reason is for the logs.
    ProcessingFailed(String),
}

impl Verdict {
    /// The `result` string of a transformation response record.
    pub fn result(&self) -> &'static str {
        match self {
            Verdict::Ok => "Ok",
            Verdict::ProcessingFailed(_) => "ProcessingFailed",
        }
    }
}

/// Checks one record (its decoded bytes). Lines are `\n`-separated and numbered from 0, as they
/// appear in the record; whitespace around a line (a `\r` of CRLF, indentation) is allowed, and
/// blank lines are skipped. Never panics, whatever the bytes.
pub fn check_record(data: &[u8]) -> Verdict {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(e) => return Verdict::ProcessingFailed(format!("the record is not UTF-8: {e}")),
    };
    let mut events = 0usize;
    for (index, line) in text.split('\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Err(error) = check_line(line) {
            return Verdict::ProcessingFailed(format!("line {index}: {error}"));
        }
        events += 1;
    }
    if events == 0 {
        return Verdict::ProcessingFailed(if data.is_empty() {
            "the record is empty".to_owned()
        } else {
            "the record holds no events (only blank lines)".to_owned()
        });
    }
    Verdict::Ok
}

/// One line: exactly one JSON value (so not two events on a line, nor half of a pretty-printed
/// one), and a valid event.
fn check_line(line: &str) -> Result<(), EventError> {
    let value: &RawValue =
        serde_json::from_str(line).map_err(|e| EventError::Malformed(format!("not one JSON value: {e}")))?;
    event::validate(value.get())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn failed(data: &[u8]) -> String {
        match check_record(data) {
            Verdict::ProcessingFailed(reason) => reason,
            Verdict::Ok => panic!("{:?} passed", String::from_utf8_lossy(data)),
        }
    }

    #[test]
    fn a_record_of_valid_event_lines_is_ok() {
        assert_eq!(
            check_record(b"{\"type\":\"click\",\"timestamp\":1700000000000,\"x\":[1,2]}\n"),
            Verdict::Ok
        );
        assert_eq!(
            check_record(b"{\"type\":\"a\",\"timestamp\":1}\n{\"type\":\"b\",\"timestamp\":2.5}\n"),
            Verdict::Ok
        );
        assert_eq!(check_record(b"{\"type\":\"no newline at the end\",\"timestamp\":0}"), Verdict::Ok);
        assert_eq!(Verdict::Ok.result(), "Ok");
    }

    #[test]
    fn every_record_the_packer_builds_from_a_parsed_body_is_ok() {
        let body = r#"[{"type":"a","timestamp":1,"s":"x \n y"},{"type":"b","timestamp":2},{"type":"c","timestamp":3}]"#;
        let parsed = event::parse(body.as_bytes()).unwrap();
        for cap in [0, 40, 5000] {
            for record in crate::pack::pack(&parsed.valid, cap) {
                assert_eq!(check_record(&record), Verdict::Ok, "{record:?}");
            }
        }
    }

    #[test]
    fn crlf_line_ends_and_blank_lines_are_allowed() {
        assert_eq!(
            check_record(b"{\"type\":\"a\",\"timestamp\":1}\r\n\r\n\n  {\"type\":\"b\",\"timestamp\":2}\r\n"),
            Verdict::Ok
        );
    }

    #[test]
    fn an_empty_record_or_one_of_blank_lines_fails() {
        assert_eq!(failed(b""), "the record is empty");
        assert_eq!(failed(b"\n\r\n  \n"), "the record holds no events (only blank lines)");
        assert_eq!(Verdict::ProcessingFailed(String::new()).result(), "ProcessingFailed");
    }

    #[test]
    fn the_reason_names_the_first_bad_line_and_what_is_wrong_with_it() {
        let record = b"{\"type\":\"a\",\"timestamp\":1}\n\n{\"timestamp\":1}\n{\"type\":7,\"timestamp\":1}\n";
        assert_eq!(failed(record), "line 2: `type` is missing");
        assert_eq!(failed(b"[1,2]\n"), "line 0: an event must be a JSON object, not an array");
        assert_eq!(
            failed(b"{\"type\":\"a\",\"timestamp\":-5}"),
            "line 0: `timestamp` must be epoch milliseconds \u{2265} 0, got -5"
        );
    }

    #[test]
    fn a_line_must_be_exactly_one_json_value() {
        let two = failed(b"{\"type\":\"a\",\"timestamp\":1} {\"type\":\"b\",\"timestamp\":2}\n");
        assert!(two.starts_with("line 0: not one JSON value: trailing characters"), "{two}");
        let pretty = failed(b"{\n  \"type\": \"a\",\n  \"timestamp\": 1\n}\n");
        assert!(pretty.starts_with("line 0: not one JSON value: EOF while parsing"), "{pretty}");
    }

    #[test]
    fn bytes_that_are_not_our_events_fail_with_a_reason() {
        assert!(failed(b"Hello World").starts_with("line 0: not one JSON value: expected value"));
        assert!(failed(b"\xff\xfe{}").starts_with("the record is not UTF-8"));
        assert!(failed(b"{\"type\":\"a\",\"type\":\"b\",\"timestamp\":1}").contains("duplicate field"));
    }

    proptest! {
        #[test]
        fn any_bytes_get_a_verdict_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = check_record(&data);
        }

        #[test]
        fn any_json_ish_text_gets_a_verdict_without_panicking(text in "[{}\\[\\]\":,0-9a-z \\n\\r\\\\-]{0,200}") {
            let _ = check_record(text.as_bytes());
        }
    }
}
