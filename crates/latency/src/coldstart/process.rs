//! The bootstrap as a child process: spawned with its output piped and its last lines kept (for
//! error messages, and for the hits bootstrap's pre-connect time in its init log line), killed
//! and reaped on drop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Lines of the bootstrap's output kept for error messages.
const OUTPUT_TAIL: usize = 30;

/// The bootstrap process: killed and reaped on drop; its output's last lines kept.
pub(super) struct Bootstrap {
    pub(super) child: Child,
    output: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Bootstrap {
    pub(super) fn spawn(mut command: Command) -> std::io::Result<Bootstrap> {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(collect(stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(collect(stderr, output.clone()));
        }
        Ok(Bootstrap { child, output, readers })
    }

    /// The last lines it printed, for an error message. A process that just exited may still
    /// have lines in the pipes: wait a little for the readers to reach the end.
    pub(super) fn tail(&self) -> String {
        let waited = Instant::now();
        while !self.readers.iter().all(std::thread::JoinHandle::is_finished)
            && waited.elapsed() < Duration::from_millis(300)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = self.lines();
        if lines.is_empty() {
            "(the bootstrap printed nothing)".to_owned()
        } else {
            format!("last lines the bootstrap printed:\n  {}", lines.join("\n  "))
        }
    }

    pub(super) fn lines(&self) -> Vec<String> {
        self.output.lock().iter().cloned().collect()
    }

    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Err(e) = self.child.kill()
        {
            tracing::warn!(error = %e, "cannot kill the bootstrap");
        }
        let _ = self.child.wait();
    }
}

/// Reads a pipe line by line on a thread of its own: keeps the last lines, logs them at debug.
fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            tracing::debug!(target: "bootstrap", "{line}");
            let mut lines = into.lock();
            if lines.len() == OUTPUT_TAIL {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    })
}

/// `warm_ms=12` (text logs) or `"warm_ms":12` (JSON logs) in a line of the hits bootstrap.
pub(super) fn preconnect_ms(line: &str) -> Option<f64> {
    let line = strip_ansi(line);
    let rest = line.split_once("warm_ms=").or_else(|| line.split_once("\"warm_ms\":"))?.1;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    digits.parse().ok()
}

/// The line without terminal colour codes (`ESC [ … letter`), which the bootstrap's text logs
/// carry even into a pipe.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preconnect_time_is_read_from_text_and_json_logs() {
        assert_eq!(
            preconnect_ms(r#" INFO hits::lambda: store connection open store="dynamodb" warm_ms=12"#),
            Some(12.0)
        );
        assert_eq!(preconnect_ms(r#"{"fields":{"warm_ms":7,"store":"s3"}}"#), Some(7.0));
        assert_eq!(preconnect_ms("nothing here"), None);
        let coloured =
            "\u{1b}[32m INFO\u{1b}[0m store connection open \u{1b}[3mwarm_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m3";
        assert_eq!(preconnect_ms(coloured), Some(3.0));
    }
}
