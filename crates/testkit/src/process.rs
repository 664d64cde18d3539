//! A binary of this workspace as a child process, as an orchestrator runs it: stdin closed,
//! stdout discarded (it may be data), stderr read line by line — kept for [`Process::log`] and
//! failure messages, and searched for the `listening on http://ADDR (…)` line every server
//! prints once it accepts connections. Dropping it kills the process and reaps it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

/// How long a server may take to say where it listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A running child process.
pub struct Process {
    /// `http://ADDR` from its `listening on` line; empty for [`Process::start`].
    pub url: String,
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
    listening: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Starts `command` without waiting for anything.
    pub fn start(command: &mut Command) -> Process {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, listening) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                lock(&keep).push(line);
            }
        });
        Process { url: String::new(), child, log, listening }
    }

    /// Starts `command` and waits for its `listening on` line (panics with the log if it exits
    /// or says nothing within 30 s).
    pub fn serve(command: &mut Command) -> Process {
        let mut process = Process::start(command);
        process.url = process.wait_listening(LISTEN_TIMEOUT);
        process
    }

    fn wait_listening(&mut self, limit: Duration) -> String {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(url) = self.listening.recv_timeout(Duration::from_millis(50)) {
                return url;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}) before it listened:\n{}", self.log());
            }
        }
        let _ = self.child.kill();
        panic!("the server did not say where it listens within {limit:?}:\n{}", self.log())
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        lock(&self.log).join("\n")
    }

    /// Waits until a line of its stderr contains `needle`, at most `limit`; whether one did.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if lock(&self.log).iter().any(|line| line.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The lines of its stderr that contain `needle` (a log summary's `cause="…"` field), and how
    /// many failures they stand for: a summary line's `count=N`, or 1 for a line without one
    /// ([`edge::log_summary`](../../edge/log_summary/index.html)'s format).
    pub fn log_tally(&self, needle: &str) -> (usize, u64) {
        let log = lock(&self.log);
        let lines: Vec<&String> = log.iter().filter(|line| line.contains(needle)).collect();
        let count = |line: &str| {
            line.split_whitespace().find_map(|f| f.strip_prefix("count=")).and_then(|n| n.parse().ok())
        };
        (lines.len(), lines.iter().map(|line| count(line).unwrap_or(1)).sum())
    }

    /// Sends `signal` (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {} failed", self.child.id());
    }

    /// Waits for the exit, at most `limit`; `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM, then the exit status (panics with the log if it takes longer than `limit`).
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit)
            .unwrap_or_else(|| panic!("no exit within {limit:?} of SIGTERM:\n{}", self.log()))
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident set size in bytes, from /proc (0 once it is gone).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
