//! The CPU quota: a cgroup of this process's own (v2 `cpu.max`, or v1 `cpu.cfs_quota_us`) that
//! confines the bootstrap to a share of one CPU — from exec, or from its first `/next` — and
//! reports how often it was throttled; `--cpu-quota` and Lambda's share for a memory size.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

/// Lambda's CPU allocation: one full vCPU at this memory size, proportionally below it.
pub(crate) const MB_PER_VCPU: f64 = 1769.0;

/// `--cpu-quota`: a percentage of one CPU, or Lambda's share for the memory size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quota {
    Percent(f64),
    Lambda,
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("lambda") {
            return Ok(Quota::Lambda);
        }
        match s.trim_end_matches('%').parse::<f64>() {
            Ok(p) if p.is_finite() && p > 0.0 && p <= 100.0 => Ok(Quota::Percent(p)),
            _ => Err(format!("{s:?} is not a percentage of one CPU in (0, 100], nor `lambda`")),
        }
    }
}

/// A cgroup of this process's own with a CPU quota; removed on drop.
pub(crate) struct CpuLimit {
    dir: PathBuf,
    procs: File,
    pub(crate) mechanism: String,
    pub(crate) percent: f64,
    pub(super) quota_us: u64,
    pub(super) period_us: u64,
}

impl CpuLimit {
    /// Makes the cgroup, or says exactly why this machine cannot.
    pub(super) fn create(percent: f64, period_us: u64) -> Result<CpuLimit, Error> {
        Self::create_or(percent, period_us, "Run without --cpu-quota")
    }

    /// [`CpuLimit::create`], and when no cgroup can be made the error says why and then
    /// `instead` (what to do about it: run without the option that asked for the quota).
    pub(crate) fn create_or(percent: f64, period_us: u64, instead: &str) -> Result<CpuLimit, Error> {
        let quota_us = ((percent / 100.0) * period_us as f64).round() as u64;
        if quota_us < 1000 {
            return Err(Error::Invalid(format!(
                "CPU quota of {percent:.2}% over a {} ms period is {quota_us} µs; the kernel's minimum is 1000 µs: \
                 raise --cpu-period-ms",
                period_us / 1000
            )));
        }
        let name = format!("latency-cold-start-{}", std::process::id());
        let unified = Path::new("/sys/fs/cgroup");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let controllers = std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        let attempt = if controllers.split_whitespace().any(|c| c == "cpu") {
            Self::create_v2(unified, &name, quota_us, period_us)
        } else if v1.join("cpu.cfs_quota_us").exists() {
            Self::create_v1(v1, &name, quota_us, period_us)
        } else {
            Err(format!(
                "no cgroup CPU controller here: {} lists no `cpu` (cgroup v2) and {} has no cpu.cfs_quota_us (cgroup v1)",
                unified.join("cgroup.controllers").display(),
                v1.display()
            ))
        };
        match attempt {
            Ok((dir, mechanism)) => {
                let procs =
                    std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs")).map_err(|e| {
                        unavailable(format!("cannot open {}/cgroup.procs: {e}", dir.display()), instead)
                    })?;
                tracing::info!(dir = %dir.display(), %mechanism, "CPU quota cgroup ready");
                Ok(CpuLimit { dir, procs, mechanism, percent, quota_us, period_us })
            }
            Err(why) => Err(unavailable(why, instead)),
        }
    }

    fn create_v2(
        root: &Path,
        name: &str,
        quota_us: u64,
        period_us: u64,
    ) -> Result<(PathBuf, String), String> {
        let subtree = root.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&subtree).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == "cpu") {
            std::fs::write(&subtree, "+cpu")
                .map_err(|e| format!("cannot enable the cpu controller in {}: {e}", subtree.display()))?;
        }
        let dir = root.join(name);
        make_dir(&dir)?;
        let max = dir.join("cpu.max");
        std::fs::write(&max, format!("{quota_us} {period_us}"))
            .map_err(|e| format!("cannot write {}: {e}", max.display()))?;
        Ok((dir.clone(), format!("cgroup v2 {}: {quota_us} {period_us}", max.display())))
    }

    fn create_v1(
        mount: &Path,
        name: &str,
        quota_us: u64,
        period_us: u64,
    ) -> Result<(PathBuf, String), String> {
        // Under this process's own cpu cgroup: the place a delegated (container) setup lets it write.
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controllers.split(',').any(|c| c == "cpu").then(|| path.trim_start_matches('/').to_owned())
            })
            .unwrap_or_default();
        let dir = mount.join(own).join(name);
        make_dir(&dir)?;
        for (file, value) in [("cpu.cfs_period_us", period_us), ("cpu.cfs_quota_us", quota_us)] {
            std::fs::write(dir.join(file), value.to_string())
                .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))?;
        }
        Ok((
            dir.clone(),
            format!("cgroup v1 {}: cpu.cfs_quota_us={quota_us} cpu.cfs_period_us={period_us}", dir.display()),
        ))
    }

    /// The bootstrap enters the cgroup between fork and exec: throttled from its first instruction.
    pub(super) fn confine(&self, command: &mut Command) -> Result<(), Error> {
        let procs = self.procs.try_clone().map_err(Error::io("cannot share the cgroup.procs handle"))?;
        // SAFETY: the closure runs in the forked child before exec. It only calls write(2) on a
        // descriptor opened beforehand (no allocation, no locks), which is async-signal-safe.
        // Writing "0" to cgroup.procs moves the writing process itself.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || (&procs).write_all(b"0"));
        }
        Ok(())
    }

    /// Moves a running process (all its threads) into the cgroup.
    pub(super) fn enter(&self, pid: u32) -> Result<(), String> {
        (&self.procs)
            .write_all(pid.to_string().as_bytes())
            .map_err(|e| format!("cannot move pid {pid} into {}: {e}", self.dir.display()))
    }

    /// Whether `/proc/PID/cgroup` puts the process in this cgroup; the reason if not.
    pub(super) fn check(&self, pid: u32) -> Result<(), String> {
        let name = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let suffix = format!("/{name}");
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if !name.is_empty() && text.lines().any(|line| line.trim_end().ends_with(&suffix)) {
            Ok(())
        } else {
            Err(format!("the bootstrap (pid {pid}) is not in {}", self.dir.display()))
        }
    }

    /// (periods, throttled periods, time throttled) from the cgroup's `cpu.stat`. The kernel
    /// counts a period when its timer fires, so a bootstrap that lived less than one period
    /// may show none.
    pub(crate) fn throttling(&self) -> Option<Throttling> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| stat.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok());
        Some(Throttling {
            periods: field("nr_periods ")?,
            throttled_periods: field("nr_throttled ")?,
            // v1: throttled_time in ns; v2: throttled_usec.
            throttled_ms: field("throttled_time ")
                .map(|ns| ns as f64 / 1e6)
                .or_else(|| field("throttled_usec ").map(|us| us as f64 / 1e3))?,
        })
    }

    pub(super) fn describe(&self, quota: Option<Quota>, memory_mb: u32) -> String {
        let why = match quota {
            Some(Quota::Lambda) => {
                format!(" (Lambda's share at {memory_mb} MB: {memory_mb} / {MB_PER_VCPU} MB per vCPU)")
            }
            _ => String::new(),
        };
        format!(
            "CPU quota {:.1}% of one CPU{why}: {} µs every {} µs, {}",
            self.percent, self.quota_us, self.period_us, self.mechanism
        )
    }
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

fn unavailable(why: String, instead: &str) -> Error {
    Error::Process(format!(
        "CPU quota unavailable on this machine: {why}. {instead}, or as root on a host \
         with a writable cgroup cpu controller."
    ))
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // Every bootstrap was killed and reaped, so the cgroup is empty and can go.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the cgroup");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Throttling {
    pub(super) periods: u64,
    pub(super) throttled_periods: u64,
    pub(super) throttled_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_a_percentage_of_one_cpu_or_lambda() {
        assert_eq!("7".parse::<Quota>(), Ok(Quota::Percent(7.0)));
        assert_eq!("7.2%".parse::<Quota>(), Ok(Quota::Percent(7.2)));
        assert_eq!("Lambda".parse::<Quota>(), Ok(Quota::Lambda));
        assert!("0".parse::<Quota>().is_err());
        assert!("150".parse::<Quota>().is_err());
        assert!("fast".parse::<Quota>().is_err());
    }
}
