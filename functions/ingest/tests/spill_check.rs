//! The real `ingest-server` checks its `--spill` path at start: a path it could not write at
//! SIGTERM (when the events would have nowhere to go) stops it at once with exit 2, and the check
//! leaves nothing behind.

mod common;

use std::time::Duration;

use common::Server;
use testkit::process::Process;

/// Starts `ingest-server --spill <spill>` and returns its exit status and log, or `None` if it is
/// still running after 10 s.
fn start_with_spill(spill: &str) -> (Option<std::process::ExitStatus>, String) {
    let mut server = Process::start(&mut Server::command(&["--sink", "null", "--spill", spill], &[]));
    let status = server.wait_exit(Duration::from_secs(10));
    (status, server.log())
}

#[test]
fn a_spill_path_in_a_missing_directory_stops_the_server_at_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("no-such-dir").join("spill.ndjson");
    let (status, log) = start_with_spill(spill.to_str().unwrap());
    let status = status.unwrap_or_else(|| panic!("still running with an unwritable spill path:\n{log}"));
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("cannot write the spill file") && log.contains(spill.to_str().unwrap()), "{log}");
    assert!(log.contains("--spill off"), "the way out is named:\n{log}");
    assert!(!log.contains("listening on"), "{log}");
}

#[test]
fn a_spill_path_that_is_a_directory_stops_the_server_at_start_with_exit_2() {
    // Root may write anywhere, so permissions cannot make a path unwritable in every test run;
    // a directory cannot be opened as a file by anyone.
    let dir = tempfile::tempdir().unwrap();
    let (status, log) = start_with_spill(dir.path().to_str().unwrap());
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{log}");
    assert!(log.contains("cannot write the spill file"), "{log}");
}

#[test]
fn a_writable_spill_path_is_checked_without_leaving_a_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill.ndjson");
    let mut server = Server::spawn(&["--sink", "null", "--spill", spill.to_str().unwrap()], &[]);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the check left a file:\n{}",
        server.log()
    );
    assert!(server.terminate(Duration::from_secs(10)).success(), "{}", server.log());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing to spill, nothing written");
}
