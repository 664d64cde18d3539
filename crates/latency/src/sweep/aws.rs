//! The sweep on AWS: `UpdateFunctionConfiguration(MemorySize)` on `$LATEST`, wait for the update,
//! `Invoke` with `LogType=Tail`, and Lambda's own figures from the `REPORT` record of the log tail.

use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{LastUpdateStatus, LogType};
use cost::Arch;

use super::{Backend, Cold, Restored, Sample};
use crate::error::Error;
use crate::invoke;

/// Between two looks at `LastUpdateStatus`.
const POLL: Duration = Duration::from_millis(500);

/// What the AWS sweep needs.
pub(crate) struct Settings {
    pub(crate) function: String,
    pub(crate) qualifier: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) arch: Option<Arch>,
    pub(crate) event: Vec<u8>,
    pub(crate) update_timeout: Duration,
}

/// A deployed function, its `$LATEST` configuration changed size by size.
pub(crate) struct AwsLambda {
    client: Client,
    settings: Settings,
    region: String,
    arch: Arch,
    function_arch: Arch,
    /// `$LATEST`'s MemorySize before the sweep.
    original_mb: u32,
    /// The size set last (None: nothing changed yet).
    current_mb: Option<u32>,
}

impl AwsLambda {
    /// Reads the function's configuration: its memory size to restore, its architecture to price.
    pub(crate) async fn connect(settings: Settings) -> Result<AwsLambda, Error> {
        let client = invoke::client_in(settings.region.as_deref()).await;
        Self::with_client(client, settings).await
    }

    pub(crate) async fn with_client(client: Client, settings: Settings) -> Result<AwsLambda, Error> {
        let region =
            client.config().region().map_or_else(|| "(no region)".into(), std::string::ToString::to_string);
        let config = client
            .get_function_configuration()
            .function_name(&settings.function)
            .send()
            .await
            .map_err(|e| aws_error(&format!("GetFunctionConfiguration of {}", settings.function), e))?;
        let original_mb = config.memory_size().and_then(|mb| u32::try_from(mb).ok()).ok_or_else(|| {
            Error::Aws(format!("{}: the configuration has no MemorySize", settings.function))
        })?;
        // Lambda's default, when the list is empty, is x86_64.
        let function_arch = match config.architectures().first() {
            Some(arch) => arch.as_str().parse()?,
            None => Arch::X86_64,
        };
        Ok(AwsLambda {
            client,
            region,
            arch: settings.arch.unwrap_or(function_arch),
            function_arch,
            settings,
            original_mb,
            current_mb: None,
        })
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    fn name(&self) -> &str {
        &self.settings.function
    }

    /// `LastUpdateStatus` and its reason, from a fresh GetFunctionConfiguration of `$LATEST`,
    /// with the memory size it has.
    async fn status(&self) -> Result<(Option<LastUpdateStatus>, String, Option<i32>), Error> {
        let config = self
            .client
            .get_function_configuration()
            .function_name(self.name())
            .send()
            .await
            .map_err(|e| aws_error(&format!("GetFunctionConfiguration of {}", self.name()), e))?;
        let reason = match (config.last_update_status_reason_code(), config.last_update_status_reason()) {
            (Some(code), Some(reason)) => format!("{}: {reason}", code.as_str()),
            (None, Some(reason)) => reason.to_owned(),
            (Some(code), None) => code.as_str().to_owned(),
            (None, None) => "no reason given".to_owned(),
        };
        Ok((config.last_update_status().cloned(), reason, config.memory_size()))
    }

    /// Waits while an update is in progress; `Failed` is an error when `fail_on_failed`.
    async fn wait(&self, what: &str, fail_on_failed: bool) -> Result<Option<i32>, Error> {
        let deadline = Instant::now() + self.settings.update_timeout;
        loop {
            let (status, reason, memory) = self.status().await?;
            match status {
                Some(LastUpdateStatus::InProgress) => {}
                Some(LastUpdateStatus::Failed) if fail_on_failed => {
                    return Err(Error::Aws(format!("{}: {what} failed ({reason})", self.name())));
                }
                // Successful, an old failure, or no status (an emulator that does not keep one).
                _ => return Ok(memory),
            }
            if Instant::now() >= deadline {
                return Err(Error::Aws(format!(
                    "{}: {what} still InProgress after {} s (--update-timeout-secs)",
                    self.name(),
                    self.settings.update_timeout.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sets `$LATEST`'s MemorySize and waits until the update is Successful.
    async fn set_memory(&mut self, memory_mb: u32) -> Result<(), Error> {
        // An update still running (ours or someone's) refuses another with ResourceConflict.
        self.wait("the previous configuration update", false).await?;
        let size = i32::try_from(memory_mb).map_err(|_| Error::Invalid(format!("{memory_mb} MB")))?;
        self.current_mb = Some(memory_mb);
        self.client
            .update_function_configuration()
            .function_name(self.name())
            .memory_size(size)
            .send()
            .await
            .map_err(|e| {
                aws_error(&format!("UpdateFunctionConfiguration of {} to {memory_mb} MB", self.name()), e)
            })?;
        let what = format!("updating MemorySize to {memory_mb} MB");
        match self.wait(&what, true).await? {
            Some(got) if got != size => Err(Error::Aws(format!(
                "{}: {what} finished with MemorySize {got} MB (did something else change it?)",
                self.name()
            ))),
            _ => Ok(()),
        }
    }

    /// One Invoke with the log tail; the REPORT record's figures.
    async fn call(&self) -> Result<(Report, f64), Error> {
        let function = self.name();
        let started = Instant::now();
        let output = self
            .client
            .invoke()
            .function_name(function)
            .set_qualifier(self.settings.qualifier.clone())
            .log_type(LogType::Tail)
            .payload(Blob::new(self.settings.event.clone()))
            .send()
            .await
            .map_err(|e| invoke::invoke_error(function, e))?;
        let round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
        let body = output.payload().map(std::convert::AsRef::as_ref).unwrap_or_default();
        if let Some(kind) = output.function_error() {
            let detail =
                invoke::function_error(body).unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
            return Err(Error::Lambda { function: function.to_owned(), kind: kind.to_owned(), detail });
        }
        check_answer(function, body)?;
        let log = match output.log_result() {
            Some(encoded) => {
                decode_base64(encoded).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).ok_or_else(
                    || Error::Aws(format!("{function}: the Invoke response's LogResult is not base64")),
                )?
            }
            None => {
                return Err(Error::Aws(format!(
                    "{function}: the Invoke response has no LogResult (the log tail asked for with \
                     LogType=Tail), so no REPORT line: Lambda's Duration and Billed Duration are \
                     unknown. An emulator may not send one."
                )));
            }
        };
        let report = parse_report(&log).ok_or_else(|| {
            Error::Aws(format!(
                "{function}: no REPORT line in the invocation's log tail, so Lambda's Duration is \
                 unknown; the tail was:\n{}",
                log.trim_end()
            ))
        })?;
        if let Some(expected) = self.current_mb
            && report.memory_mb != expected
        {
            let invoked = self.settings.qualifier.as_deref().unwrap_or("$LATEST");
            let version = output.executed_version().unwrap_or("?");
            return Err(Error::Invalid(format!(
                "{function}: the call to {invoked} (version {version}) ran with {} MB, not the {expected} MB \
                 just set on $LATEST. A published version keeps the memory it was published with, so an \
                 alias or version does not follow $LATEST's configuration: sweep without --qualifier \
                 (it invokes $LATEST), or with an alias that points at $LATEST.",
                report.memory_mb
            )));
        }
        Ok((report, round_trip_ms))
    }
}

impl Backend for AwsLambda {
    fn describe(&self) -> String {
        let invoked = match &self.settings.qualifier {
            Some(q) => format!("invoked as `{q}`"),
            None => "invoked as $LATEST".to_owned(),
        };
        let priced = if self.arch == self.function_arch {
            format!("{}", self.arch)
        } else {
            format!("{} (priced as {})", self.function_arch, self.arch)
        };
        format!(
            "Lambda function `{}` in {}, {priced}, {invoked}; its MemorySize was {} MB before the sweep",
            self.name(),
            self.region,
            self.original_mb
        )
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    async fn configure(&mut self, memory_mb: u32) -> Result<Cold, Error> {
        self.set_memory(memory_mb).await?;
        // A configuration change retires the execution environments: this call is a cold start.
        let (report, _) = self.call().await?;
        Ok(Cold { init_ms: report.init_ms, duration_ms: report.duration_ms })
    }

    async fn invoke(&mut self) -> Result<Sample, Error> {
        let (report, round_trip_ms) = self.call().await?;
        Ok(Sample {
            duration_ms: report.duration_ms,
            billed_ms: report.billed_ms,
            round_trip_ms,
            max_memory_used_mb: report.max_memory_used_mb,
        })
    }

    async fn restore(&mut self) -> Option<Restored> {
        self.current_mb?;
        let original = self.original_mb;
        let result = async {
            // Even if an update of ours is still running (Ctrl-C mid-update), wait for it first.
            self.wait("the last configuration update", false).await?;
            let (_, _, memory) = self.status().await?;
            if memory.and_then(|m| u32::try_from(m).ok()) == Some(original) {
                return Ok(());
            }
            self.set_memory(original).await
        }
        .await;
        Some(match result {
            Ok(()) => Restored {
                ok: true,
                note: format!("restored the MemorySize of {} to {original} MB", self.name()),
            },
            Err(err) => Restored {
                ok: false,
                note: format!(
                    "could NOT restore the MemorySize of {name} to {original} MB ({err}); restore it with \
                     `aws lambda update-function-configuration --function-name {name} --memory-size {original}`",
                    name = self.name()
                ),
            },
        })
    }
}

/// The SDK's error with its cause chain, for `what`.
fn aws_error<E, R>(what: &str, error: aws_sdk_lambda::error::SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    Error::Aws(format!("{what}: {}", aws_sdk_lambda::error::DisplayErrorContext(error)))
}

/// An answer in the API Gateway / Function URL shape with an error status fails the call: an error
/// is not timed as a success. Anything else (another event's answer) is taken as it is.
pub(crate) fn check_answer(function: &str, body: &[u8]) -> Result<(), Error> {
    let Ok(reply) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    match reply.get("statusCode").and_then(serde_json::Value::as_u64) {
        Some(status) if status >= 400 => Err(Error::Lambda {
            function: function.to_owned(),
            kind: format!("HTTP {status}"),
            detail: reply
                .get("body")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| reply.to_string(), str::to_owned),
        }),
        _ => Ok(()),
    }
}

// --- The REPORT record. -------------------------------------------------------------------

/// Lambda's figures for one invocation, from its `REPORT` line (text log format) or its
/// `platform.report` record (JSON log format).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) request_id: String,
    pub(crate) duration_ms: f64,
    pub(crate) billed_ms: u64,
    pub(crate) memory_mb: u32,
    pub(crate) max_memory_used_mb: Option<u32>,
    /// Only on a cold start.
    pub(crate) init_ms: Option<f64>,
    /// `Status: timeout` / `error`, when Lambda gives one.
    pub(crate) status: Option<String>,
}

/// The last REPORT record in a log tail:
///
/// - text: `REPORT RequestId: … \tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
///   Max Memory Used: 20 MB\tInit Duration: 30.10 ms\t` (tab-separated; Init Duration only on a
///   cold start; with tracing an `XRAY TraceId: …` part follows, on the line or the next);
/// - JSON (`LoggingConfig.LogFormat: JSON`): `{"type":"platform.report","record":{"requestId":
///   …,"metrics":{"durationMs":…,"billedDurationMs":…,"memorySizeMB":…,"maxMemoryUsedMB":…,
///   "initDurationMs":…}}}`.
pub(crate) fn parse_report(log: &str) -> Option<Report> {
    log.lines().rev().find_map(|line| parse_text_report(line).or_else(|| parse_json_report(line)))
}

fn parse_text_report(line: &str) -> Option<Report> {
    let start = line.find("REPORT RequestId:")?;
    let mut report = Report {
        request_id: String::new(),
        duration_ms: f64::NAN,
        billed_ms: 0,
        memory_mb: 0,
        max_memory_used_mb: None,
        init_ms: None,
        status: None,
    };
    let (mut duration, mut billed, mut memory) = (false, false, false);
    for field in line[start + "REPORT ".len()..].split('\t') {
        let Some((key, value)) = field.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let number = |unit: &str| value.strip_suffix(unit).map_or(value, str::trim).to_owned();
        match key.trim() {
            "RequestId" => report.request_id = value.to_owned(),
            "Duration" => {
                report.duration_ms = number("ms").parse().ok()?;
                duration = true;
            }
            "Billed Duration" => {
                report.billed_ms = number("ms").parse().ok()?;
                billed = true;
            }
            "Memory Size" => {
                report.memory_mb = number("MB").parse().ok()?;
                memory = true;
            }
            "Max Memory Used" => report.max_memory_used_mb = number("MB").parse().ok(),
            "Init Duration" => report.init_ms = number("ms").parse().ok(),
            "Status" => report.status = Some(value.to_owned()),
            // XRAY TraceId, SegmentId, Sampled, Restore Duration, Error Type, …
            _ => {}
        }
    }
    (duration && billed && memory).then_some(report)
}

fn parse_json_report(line: &str) -> Option<Report> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("type")?.as_str()? != "platform.report" {
        return None;
    }
    let record = value.get("record")?;
    let metrics = record.get("metrics")?;
    let number = |key: &str| metrics.get(key).and_then(serde_json::Value::as_f64);
    Some(Report {
        request_id: record
            .get("requestId")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        duration_ms: number("durationMs")?,
        billed_ms: metrics.get("billedDurationMs")?.as_u64()?,
        memory_mb: u32::try_from(metrics.get("memorySizeMB")?.as_u64()?).ok()?,
        max_memory_used_mb: metrics.get("maxMemoryUsedMB").and_then(|v| u32::try_from(v.as_u64()?).ok()),
        init_ms: number("initDurationMs"),
        status: record.get("status").and_then(serde_json::Value::as_str).map(str::to_owned),
    })
}

/// Standard base64 (with or without padding), as `LogResult` carries the log tail.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in text.trim().trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLD: &str = "START RequestId: 6d3e2f0c-1b7a-4a51-9d0e-2f1c3b4a5d6e Version: $LATEST\n\
        END RequestId: 6d3e2f0c-1b7a-4a51-9d0e-2f1c3b4a5d6e\n\
        REPORT RequestId: 6d3e2f0c-1b7a-4a51-9d0e-2f1c3b4a5d6e\tDuration: 1.23 ms\tBilled Duration: 32 ms\t\
        Memory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 30.10 ms\t\n";

    #[test]
    fn a_cold_report_line_gives_the_durations_memory_and_init() {
        let report = parse_report(COLD).expect("a REPORT line");
        assert_eq!(
            report,
            Report {
                request_id: "6d3e2f0c-1b7a-4a51-9d0e-2f1c3b4a5d6e".into(),
                duration_ms: 1.23,
                billed_ms: 32,
                memory_mb: 128,
                max_memory_used_mb: Some(20),
                init_ms: Some(30.1),
                status: None,
            }
        );
    }

    #[test]
    fn a_warm_report_line_has_no_init_duration() {
        let line = "REPORT RequestId: 0b6e\tDuration: 0.98 ms\tBilled Duration: 1 ms\tMemory Size: 1769 MB\t\
                    Max Memory Used: 21 MB\t";
        let report = parse_report(line).expect("a REPORT line");
        assert_eq!((report.duration_ms, report.billed_ms, report.memory_mb), (0.98, 1, 1769));
        assert_eq!(report.init_ms, None);
    }

    #[test]
    fn an_xray_trace_id_after_the_report_is_ignored_on_the_same_line_or_the_next() {
        let same = "REPORT RequestId: 1a2b\tDuration: 2.50 ms\tBilled Duration: 3 ms\tMemory Size: 256 MB\t\
                    Max Memory Used: 22 MB\tInit Duration: 25.00 ms\tXRAY TraceId: 1-65a1b2c3-4d5e6f708192a3b4c5d6e7f8\t\
                    SegmentId: 0a1b2c3d4e5f6a7b\tSampled: true\t";
        let next = "REPORT RequestId: 1a2b\tDuration: 2.50 ms\tBilled Duration: 3 ms\tMemory Size: 256 MB\t\
                    Max Memory Used: 22 MB\t\nXRAY TraceId: 1-65a1b2c3-4d5e6f708192a3b4c5d6e7f8\t\
                    SegmentId: 0a1b2c3d4e5f6a7b\tSampled: true\t\n";
        let same = parse_report(same).expect("REPORT with XRAY on the line");
        assert_eq!((same.duration_ms, same.billed_ms, same.init_ms), (2.5, 3, Some(25.0)));
        let next = parse_report(next).expect("REPORT with XRAY on the next line");
        assert_eq!((next.duration_ms, next.memory_mb, next.init_ms), (2.5, 256, None));
    }

    #[test]
    fn a_report_with_a_status_keeps_it() {
        let line = "REPORT RequestId: 9f\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\tMemory Size: 128 MB\t\
                    Max Memory Used: 128 MB\tStatus: timeout";
        assert_eq!(parse_report(line).and_then(|r| r.status).as_deref(), Some("timeout"));
    }

    #[test]
    fn the_json_log_format_s_platform_report_is_read_too() {
        let log = r#"{"time":"2025-01-01T00:00:00.000Z","type":"platform.start","record":{"requestId":"ab12","version":"$LATEST"}}
{"timestamp":"2025-01-01T00:00:00.001Z","level":"INFO","message":"hit","target":"hits"}
{"time":"2025-01-01T00:00:00.004Z","type":"platform.report","record":{"requestId":"ab12","metrics":{"durationMs":1.61,"billedDurationMs":38,"memorySizeMB":512,"maxMemoryUsedMB":19,"initDurationMs":36.2},"status":"success"}}
"#;
        let report = parse_report(log).expect("a platform.report record");
        assert_eq!(report.request_id, "ab12");
        assert_eq!((report.duration_ms, report.billed_ms, report.memory_mb), (1.61, 38, 512));
        assert_eq!((report.max_memory_used_mb, report.init_ms), (Some(19), Some(36.2)));
        assert_eq!(report.status.as_deref(), Some("success"));
    }

    #[test]
    fn a_log_without_a_complete_report_gives_none() {
        assert_eq!(parse_report(""), None);
        assert_eq!(parse_report("START RequestId: x Version: $LATEST\nEND RequestId: x\n"), None);
        assert_eq!(parse_report("REPORT RequestId: x\tDuration: 1.0 ms\t"), None, "no billed duration");
        assert_eq!(
            parse_report("REPORT RequestId: x\tDuration: fast\tBilled Duration: 1 ms\tMemory Size: 128 MB"),
            None
        );
        assert_eq!(parse_report(r#"{"type":"platform.report","record":{"metrics":{}}}"#), None);
    }

    #[test]
    fn the_last_report_in_the_tail_wins() {
        let log = format!(
            "{COLD}REPORT RequestId: z\tDuration: 9.00 ms\tBilled Duration: 9 ms\tMemory Size: 128 MB\t\n"
        );
        assert_eq!(parse_report(&log).map(|r| r.request_id), Some("z".to_owned()));
    }

    #[test]
    fn base64_log_results_decode() {
        assert_eq!(decode_base64("UkVQT1JUIFJlcXVlc3RJZDo=").as_deref(), Some(&b"REPORT RequestId:"[..]));
        assert_eq!(decode_base64("YQ==").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64("YWI").as_deref(), Some(&b"ab"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn an_error_status_in_the_answer_fails_the_call_and_other_answers_pass() {
        let err = check_answer("hits", br#"{"statusCode":503,"body":"store unavailable"}"#).expect_err("503");
        assert_eq!(err.to_string(), "hits failed (HTTP 503): store unavailable");
        assert!(check_answer("hits", br#"{"statusCode":200,"body":"7"}"#).is_ok());
        assert!(check_answer("hits", b"\"Simple Lambda happy path OK\"").is_ok());
        assert!(check_answer("hits", b"not json").is_ok());
    }
}
