//! The sweep on this machine: a bootstrap under `latency cold-start`'s Runtime API player, a
//! fresh process per memory size, in a cgroup with Lambda's CPU share for the size.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cost::Arch;

use super::{Backend, Cold, Restored, Sample};
use crate::coldstart::{self, CpuLimit, Harness, MB_PER_VCPU, Plan, Quota};
use crate::error::Error;

/// Options of a sweep on this machine.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LocalArgs {
    /// Run every size at full CPU when no cgroup CPU quota can be made (without this the sweep
    /// fails, saying why). The figures then cannot show what memory buys: the output says so.
    #[arg(long, conflicts_with = "function")]
    pub no_quota: bool,
    /// Let init run at full CPU and apply the quota from the first invocation on (see
    /// `latency cold-start --quota-after-init`); by default the quota applies from exec.
    #[arg(long, conflicts_with_all = ["function", "no_quota"])]
    pub quota_after_init: bool,
    /// The scheduler period the CPU quota is granted over, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000), conflicts_with = "function")]
    pub cpu_period_ms: u32,
    /// More environment for the bootstrap, KEY=VALUE (repeatable). HITS_*, AWS_ENDPOINT_URL*,
    /// AWS credentials, AWS_REGION and RUST_LOG are passed through from this process anyway.
    #[arg(long = "env", value_name = "KEY=VALUE", conflicts_with = "function")]
    pub env: Vec<String>,
    /// Give up on a phase (init, a call) of the bootstrap after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=900), conflicts_with = "function")]
    pub timeout_secs: u64,
}

/// A bootstrap on this machine. Fields drop in order: the process before its cgroup.
pub(crate) struct LocalBootstrap {
    harness: Option<Harness>,
    cpu: Option<CpuLimit>,
    plan: Option<Plan>,
    args: coldstart::Args,
    quota: bool,
    mechanism: Option<String>,
    arch: Arch,
    /// The size being measured, 1-based, for error messages.
    size: u32,
}

impl LocalBootstrap {
    /// Checks the bootstrap and the event, and that a CPU quota can be had (unless `--no-quota`):
    /// before anything runs, not at the first size.
    pub(crate) fn new(
        bootstrap: &Path,
        event: Option<&Path>,
        options: &LocalArgs,
        arch: Arch,
        first_mb: u32,
    ) -> Result<LocalBootstrap, Error> {
        let args = coldstart::Args {
            bootstrap: bootstrap.to_path_buf(),
            runs: 1,
            event: event.map(Path::to_path_buf),
            cpu_quota: (!options.no_quota).then_some(Quota::Lambda),
            cpu_period_ms: options.cpu_period_ms,
            quota_after_init: options.quota_after_init,
            memory_mb: first_mb,
            env: options.env.clone(),
            timeout_secs: options.timeout_secs,
            json: true,
        };
        let plan = Plan::new(&args)?;
        let mechanism = match plan.cpu_percent {
            Some(percent) => Some(limit(percent, &args)?.mechanism.clone()),
            None => None,
        };
        Ok(LocalBootstrap {
            harness: None,
            cpu: None,
            plan: Some(plan),
            quota: !options.no_quota,
            mechanism,
            args,
            arch,
            size: 0,
        })
    }

    fn plan(&self) -> Result<&Plan, Error> {
        self.plan.as_ref().ok_or_else(|| Error::Process("no bootstrap plan".into()))
    }

    fn running(&mut self) -> Result<(&Plan, &mut Harness), Error> {
        match (&self.plan, &mut self.harness) {
            (Some(plan), Some(harness)) => Ok((plan, harness)),
            _ => Err(Error::Process("no bootstrap is running: configure a size first".into())),
        }
    }
}

fn limit(percent: f64, args: &coldstart::Args) -> Result<CpuLimit, Error> {
    CpuLimit::create_or(
        percent,
        u64::from(args.cpu_period_ms) * 1000,
        "Pass --no-quota to sweep at full CPU (the figures then cannot show what memory buys)",
    )
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Backend for LocalBootstrap {
    fn describe(&self) -> String {
        let Some(plan) = &self.plan else {
            return "a bootstrap on this machine".into();
        };
        let endpoint = plan.endpoint().map(|e| format!(" via {e}")).unwrap_or_default();
        let cpu = match &self.mechanism {
            Some(mechanism) => format!(
                "CPU: a cgroup quota of memory / {MB_PER_VCPU} MB of one CPU per size, applied {} ({})",
                if self.args.quota_after_init {
                    "from the first invocation (init at full CPU)"
                } else {
                    "from exec"
                },
                mechanism.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            ),
            None => "CPU: **not limited (--no-quota)**: every size ran with all of this machine's CPUs, so \
                     these figures cannot show what memory buys"
                .to_owned(),
        };
        format!(
            "The bootstrap {} on this machine ({}, {} CPUs; priced as {}), a fresh process per size under \
             `latency cold-start`'s Runtime API player, store {}{endpoint}. {cpu}. Duration is the event \
             handed out → the response, billed = rounded up to whole ms",
            plan.bootstrap.display(),
            std::env::consts::ARCH,
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            self.arch,
            plan.store(),
        )
    }

    fn arch(&self) -> Arch {
        self.arch
    }

    async fn configure(&mut self, memory_mb: u32) -> Result<Cold, Error> {
        // The previous size's process first, then its cgroup.
        self.harness = None;
        self.cpu = None;
        self.size += 1;
        self.args.memory_mb = memory_mb;
        self.args.cpu_quota = self.quota.then_some(Quota::Lambda);
        let plan = Plan::new(&self.args)?;
        let cpu = match plan.cpu_percent {
            Some(percent) => Some(limit(percent, &self.args)?),
            None => None,
        };
        self.plan = Some(plan);
        self.cpu = cpu;
        let plan = self.plan()?;
        let mut harness = Harness::start(plan, self.cpu.as_ref(), self.size).await?;
        let call = harness.invoke(plan, &format!("{memory_mb} MB, the cold call")).await?;
        let init_ms = ms(harness.init);
        self.harness = Some(harness);
        super::aws::check_answer("the bootstrap", &call.body)?;
        Ok(Cold { init_ms: Some(init_ms), duration_ms: ms(call.duration()) })
    }

    async fn invoke(&mut self) -> Result<Sample, Error> {
        let (plan, harness) = self.running()?;
        let call = harness.invoke(plan, &format!("{} MB, a warm call", plan.memory_mb)).await?;
        super::aws::check_answer("the bootstrap", &call.body)?;
        let duration_ms = ms(call.duration());
        Ok(Sample {
            duration_ms,
            billed_ms: cost::billed_ms(duration_ms),
            round_trip_ms: ms(call.round_trip()),
            max_memory_used_mb: None,
        })
    }

    async fn restore(&mut self) -> Option<Restored> {
        // Nothing was changed but a process and a cgroup of our own: stop and remove them.
        self.harness = None;
        self.cpu = None;
        None
    }
}

/// This checkout's `hits` bootstrap, built now (release, or debug with `debug`): cargo's own
/// `compiler-artifact` message names the executable, whatever `CARGO_TARGET_DIR` is.
pub(crate) fn build_hits(debug: bool) -> Result<PathBuf, Error> {
    let root = crate::local_state::workspace_root()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command.args([
        "build",
        "--locked",
        "-p",
        "hits",
        "--bin",
        "hits",
        "--message-format=json-render-diagnostics",
    ]);
    if !debug {
        command.arg("--release");
    }
    eprintln!("latency: building the hits bootstrap ({})", if debug { "debug" } else { "release" });
    let output = command
        .current_dir(&root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(Error::io(format!("running {} build", Path::new(&cargo).display())))?;
    if !output.status.success() {
        return Err(Error::Process(format!(
            "cargo build -p hits failed ({}); its errors are above",
            output.status
        )));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "hits")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Error::Process("cargo build -p hits named no executable".into()))
}
