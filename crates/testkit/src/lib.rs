//! Test support, for tests only (every crate takes it as a dev-dependency; nothing deployed
//! links it):
//!
//! * [`process`]: a binary of this workspace as a child process — started, its `listening on`
//!   line awaited, signalled, waited for, its stderr kept for the failure message;
//! * [`emulator`]: a Lambda bootstrap under `cargo lambda watch`'s Runtime API, and workspace
//!   binaries built on demand;
//! * [`moto`]: resources on the emulators `scripts/test` starts (moto, a private RabbitMQ);
//! * [`stalled`]: an AWS endpoint that accepts connections and never answers;
//! * [`browser`]: headless Chromium through chromedriver (W3C WebDriver over reqwest);
//! * the require-or-skip policy: a test that needs a tool this machine lacks (moto, RabbitMQ,
//!   cargo-lambda, Chromium) calls [`skip`], which prints `SKIPPED <test>: <why>` past the test
//!   harness's output capture, so a plain `cargo test` shows what it did not run. Under
//!   [`required`] (`TEST_REQUIRE_ALL=1`, which `scripts/test` and CI set) the same call fails the
//!   test instead: CI never passes by skipping.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

pub mod browser;
pub mod emulator;
pub mod moto;
pub mod process;
pub mod stalled;

/// Whether a missing tool fails the test instead of skipping it: `TEST_REQUIRE_ALL=1` (the old
/// name `HITS_TEST_REQUIRE_ALL` is still read).
pub fn required() -> bool {
    ["TEST_REQUIRE_ALL", "HITS_TEST_REQUIRE_ALL"].iter().any(|var| std::env::var(var).as_deref() == Ok("1"))
}

/// Says that the running test skips, and why — or fails it, under [`required`]. The line goes
/// straight to the process's stderr: the harness captures `eprintln!`, not this.
pub fn skip(why: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    assert!(!required(), "{test}: {why}; TEST_REQUIRE_ALL=1 does not allow skipping");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// Runs this test binary again in a child process with `var=value` in its environment, and
/// asserts that every test passed there, `test` among them: for a setting read from the process
/// environment, so that no test sets a variable another test could see. `test` decides by the
/// variable which branch it takes.
pub fn rerun_with(var: &str, value: &str, test: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = std::process::Command::new(exe).env(var, value).output().expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "with {var}={value}:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("test {test} ... ok")),
        "{test} did not run with {var}={value}:\n{stdout}"
    );
}

/// The workspace root (where `cargo lambda watch` runs and [`emulator::workspace_bin`] builds):
/// the nearest directory above the running test's package (cargo runs tests there) whose
/// `Cargo.toml` has a `[workspace]`. Found at run time, not baked in with `env!`: a shared
/// `CARGO_TARGET_DIR` may hand this crate's build from another checkout of the workspace to this
/// one.
pub fn workspace() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

/// Locks `mutex`, also after another test panicked while holding it: what the tests keep
/// behind one (logs, built paths) stays valid whatever a panic interrupted.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Polls `check` every 100 ms until it holds or `limit` passes; whether it held.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`eventually`] for a test without a runtime: polls `check` every 10 ms until it holds or
/// `limit` passes; whether it held.
pub fn eventually_blocking(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if check() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("no free port on 127.0.0.1: {e}"), |a| a.port())
}
