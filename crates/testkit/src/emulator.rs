//! A Lambda bootstrap under `cargo lambda watch --only-lambda-apis` (cargo-lambda's Lambda
//! Runtime API emulator, from PyPI `cargo-lambda`; scripts/env.sh puts it on PATH), wired as
//! Lambda would run it, and binaries of other workspace packages built on demand.
//!
//! ```no_run
//! let bootstrap = testkit::emulator::workspace_bin("probe");
//! let Some(emulator) = testkit::emulator::Emulator::start(&bootstrap, "_", &[]) else { return };
//! // The AWS SDK's Invoke goes here with AWS_ENDPOINT_URL_LAMBDA=emulator.endpoint().
//! println!("{}", emulator.invoke_url("_"));
//! ```
//!
//! A test skips ([`crate::skip`]) when cargo-lambda is missing, and fails instead under
//! [`crate::required`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::workspace;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long `cargo lambda watch` may take to listen on its port.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `cargo-lambda` runs. `false` means skip ([`crate::skip`] says so).
pub fn available() -> bool {
    let have = Command::new("cargo-lambda")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        crate::skip(
            "needs cargo-lambda on PATH (scripts/bootstrap installs it into .venv; scripts/test runs it)",
        );
    }
    have
}

/// The executable of the workspace's binary `bin`, built now (a binary of another package has
/// no `CARGO_BIN_EXE_*`). Runs `$CARGO build --workspace --bin bin` (cargo sets `CARGO` for
/// tests; `--workspace` resolves features as `cargo test --workspace` does, so this reuses that
/// build instead of relinking) and takes the path from cargo's own `compiler-artifact` message,
/// so it holds for any `CARGO_TARGET_DIR`. Built once per process; panics if the build fails.
pub fn workspace_bin(bin: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = crate::lock(BUILT.get_or_init(Mutex::default));
    let key = bin.to_owned();
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--locked", "--workspace", "--bin", bin, "--message-format=json-render-diagnostics"])
        .current_dir(workspace())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {} build --bin {bin}: {e}", Path::new(&cargo).display()));
    assert!(output.status.success(), "cargo build --workspace --bin {bin} failed (its errors are above)");
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"] == bin
                && m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build --workspace --bin {bin} named no executable"));
    built.insert(key, path.clone());
    path
}

/// What to run as the bootstrap: a program, optionally through a runner (an emulator such as
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu` for an arm64 release bootstrap).
#[derive(Clone, Debug)]
pub struct Bootstrap {
    program: PathBuf,
    runner: Vec<String>,
}

impl Bootstrap {
    pub fn new(program: impl Into<PathBuf>) -> Bootstrap {
        Bootstrap { program: program.into(), runner: Vec::new() }
    }

    /// Runs the program as `runner... program`: `runner` is a command line split on whitespace;
    /// an empty one runs the program directly.
    pub fn runner(mut self, runner: &str) -> Bootstrap {
        self.runner = runner.split_whitespace().map(str::to_owned).collect();
        self
    }

    fn command(&self) -> Command {
        match self.runner.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        }
    }
}

impl From<&Path> for Bootstrap {
    fn from(program: &Path) -> Bootstrap {
        Bootstrap::new(program)
    }
}

impl From<&PathBuf> for Bootstrap {
    fn from(program: &PathBuf) -> Bootstrap {
        Bootstrap::new(program)
    }
}

impl From<PathBuf> for Bootstrap {
    fn from(program: PathBuf) -> Bootstrap {
        Bootstrap::new(program)
    }
}

impl From<&str> for Bootstrap {
    fn from(program: &str) -> Bootstrap {
        Bootstrap::new(program)
    }
}

impl From<String> for Bootstrap {
    fn from(program: String) -> Bootstrap {
        Bootstrap::new(program)
    }
}

/// A child that is the leader of its own process group; dropping it kills the whole group
/// (cargo-lambda starts helpers of its own; a runner such as qemu may too) and reaps it.
struct Group(Child);

impl Group {
    fn spawn(command: &mut Command, what: &str) -> Group {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} ({:?}): {e}", command.get_program()));
        Group(child)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.wait();
    }
}

/// `cargo lambda watch --only-lambda-apis` on a free port of 127.0.0.1, and the bootstrap
/// polling its Runtime API. Dropping it kills both process groups, the bootstrap first.
pub struct Emulator {
    port: u16,
    // Fields drop in order: the bootstrap stops before the emulator it polls.
    _bootstrap: Group,
    _watch: Group,
}

impl Emulator {
    /// Starts the emulator, waits until it listens, then starts `bootstrap` as function
    /// `function_name` (`"_"` is cargo-lambda's default function; another name must be a binary
    /// of this workspace, cargo-lambda's rule), with the Lambda environment
    /// (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`, `..._VERSION` 1,
    /// `..._MEMORY_SIZE` 128) and then `env`, which may override any of it. The bootstrap
    /// inherits this process's environment and stderr.
    ///
    /// `None` (skip) when cargo-lambda is missing; see [`available`].
    pub fn start(
        bootstrap: impl Into<Bootstrap>,
        function_name: &str,
        env: &[(&str, &str)],
    ) -> Option<Emulator> {
        if !available() {
            return None;
        }
        let port = free_port();
        let mut watch = Group::spawn(
            Command::new("cargo-lambda")
                .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
                // As a Function URL without a Cors block (the template's): the function's own
                // CORS answers pass; watch's default CORS layer would answer preflights itself.
                .arg("--disable-cors")
                .current_dir(workspace())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
            "cargo lambda watch",
        );
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = watch.0.try_wait() {
                panic!("cargo lambda watch exited ({status}) before listening on {port}");
            }
            assert!(started.elapsed() < LISTEN_TIMEOUT, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let runtime_api = match function_name {
            "_" => format!("http://127.0.0.1:{port}/.rt"),
            name => format!("http://127.0.0.1:{port}/.rt/{name}"),
        };
        let bootstrap = Group::spawn(
            bootstrap
                .into()
                .command()
                .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
                .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                .envs(env.iter().map(|&(k, v)| (OsStr::new(k), OsStr::new(v))))
                .stdin(Stdio::null()),
            "the bootstrap",
        );
        Some(Emulator { port, _bootstrap: bootstrap, _watch: watch })
    }

    /// The port the emulator listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the Lambda API endpoint, what `AWS_ENDPOINT_URL_LAMBDA` should
    /// be for the AWS SDK (or `cargo lambda invoke --endpoint-url`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The Invoke API URL of `function`: POST the event, get the result (or, unlike AWS, an
    /// HTTP 500 with the error object when the invocation failed).
    pub fn invoke_url(&self, function: &str) -> String {
        format!("{}/2015-03-31/functions/{function}/invocations", self.endpoint())
    }

    /// `path` (starting with `/`) under `function`'s Function URL: requests become API Gateway
    /// v2 (HTTP API) events, as through a Lambda Function URL.
    pub fn function_url(&self, function: &str, path: &str) -> String {
        format!("{}/lambda-url/{function}{path}", self.endpoint())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(|e| panic!("no free port on 127.0.0.1: {e}"), |a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_is_split_on_whitespace_and_runs_the_program_as_its_last_argument() {
        let command =
            Bootstrap::new("/b/bootstrap").runner("  qemu-aarch64 -L  /usr/aarch64-linux-gnu ").command();
        assert_eq!(command.get_program(), "qemu-aarch64");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["-L", "/usr/aarch64-linux-gnu", "/b/bootstrap"]);
    }

    #[test]
    fn without_a_runner_the_program_runs_directly() {
        let command = Bootstrap::from("/b/bootstrap").runner("").command();
        assert_eq!(command.get_program(), "/b/bootstrap");
        assert_eq!(command.get_args().count(), 0);
    }
}
