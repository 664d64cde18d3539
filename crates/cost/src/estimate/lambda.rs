//! Lambda: one request and the GB-seconds of the duration rounded up to whole ms per call, and a
//! cold call's INIT when it is billed.

use super::bill::Bill;
use super::{Basis, billed_ms};
use crate::CostError;
use crate::arch::Arch;
use crate::numbers::trim_number;
use crate::profile::LambdaDefaults;

/// The Lambda settings an estimate used, after defaults and rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaUsage {
    /// The function's name, for profiles with several (`upstream`, `midstream` …).
    pub name: Option<String>,
    /// Calls one invocation serves (an event source's batch); 1 for a function per call.
    pub calls_per_invocation: f64,
    /// Architecture priced.
    pub arch: Arch,
    /// Memory, MB.
    pub memory_mb: u32,
    /// Warm handler duration before rounding.
    pub duration_ms: f64,
    /// `duration_ms` rounded up to whole ms (at least 1).
    pub billed_ms: u64,
    /// INIT duration of a cold start before rounding.
    pub init_ms: f64,
    /// Extra billed ms of a cold call: `ceil(init + duration) − ceil(duration)`, 0 when INIT is
    /// not billed.
    pub init_billed_ms: u64,
    /// Whether INIT is billed ([`Params::init_billed`](crate::Params::init_billed)).
    pub init_billed: bool,
    /// Fraction of calls that are cold.
    pub cold_start_ratio: f64,
}

/// The Lambda lines — the request, the billed GB-seconds, INIT on a cold call — and the note
/// saying how the duration was billed. A function serving a batch of `calls_per_invocation`
/// calls bills that share of one invocation per call. `primary` is the profile's `lambda`, whose
/// duration [`crate::Params::duration_ms`] overrides; [`crate::Params::function_ms`] overrides a
/// named one's; the architecture and memory overrides apply to every function.
pub(super) fn price(
    bill: &mut Bill<'_>,
    defaults: &LambdaDefaults,
    primary: bool,
) -> Result<LambdaUsage, CostError> {
    let params = bill.params;
    let named_ms = defaults
        .name
        .as_deref()
        .and_then(|name| params.function_ms.iter().find(|(n, _)| n == name).map(|(_, ms)| *ms));
    let duration_ms = match (primary, params.duration_ms) {
        (true, Some(ms)) => ms,
        _ => named_ms.unwrap_or(defaults.duration_ms),
    };
    let usage = LambdaUsage {
        name: defaults.name.clone(),
        calls_per_invocation: defaults.calls_per_invocation,
        arch: params.arch.unwrap_or(defaults.arch),
        memory_mb: params.memory_mb.unwrap_or(defaults.memory_mb),
        duration_ms,
        billed_ms: 0,
        init_ms: params.init_ms.unwrap_or(defaults.init_ms),
        init_billed_ms: 0,
        init_billed: params.init_billed,
        cold_start_ratio: params.cold_start_ratio,
    };
    let billed = billed_ms(usage.duration_ms);
    let init_billed_ms = if usage.init_billed && usage.init_ms > 0.0 {
        billed_ms(usage.init_ms + usage.duration_ms) - billed
    } else {
        0
    };
    let usage = LambdaUsage { billed_ms: billed, init_billed_ms, ..usage };
    let gb = f64::from(usage.memory_mb) / 1024.0;
    let batch = usage.calls_per_invocation;
    let lambda = match &usage.name {
        Some(name) => format!("Lambda {name}"),
        None => "Lambda".to_owned(),
    };
    let (per_batch, billed_per) = if batch == 1.0 {
        (String::new(), String::new())
    } else {
        let calls = trim_number(batch);
        (format!(" (1 per {calls} calls)"), format!(" per {calls} calls"))
    };
    bill.push(format!("{lambda} request{per_batch}"), "lambda.request", Basis::PerCall, 1.0 / batch, 0.0)?;
    bill.push(
        format!(
            "{lambda} duration ({}, {} MB, {} ms billed{billed_per})",
            usage.arch, usage.memory_mb, billed
        ),
        usage.arch.price_key(),
        Basis::PerCall,
        gb * billed as f64 / 1000.0 / batch,
        0.0,
    )?;
    if usage.cold_start_ratio > 0.0 && init_billed_ms > 0 {
        bill.push(
            format!(
                "{lambda} INIT ({init_billed_ms} ms billed × {}% cold)",
                trim_number(usage.cold_start_ratio * 100.0)
            ),
            usage.arch.price_key(),
            Basis::PerCall,
            usage.cold_start_ratio * gb * init_billed_ms as f64 / 1000.0 / batch,
            0.0,
        )?;
    }
    let (invocation, cold) = if batch == 1.0 {
        ("handler".to_owned(), "calls")
    } else {
        (format!("invocation (a batch of {} calls)", trim_number(batch)), "invocations")
    };
    bill.notes.push(format!(
        "{lambda} {}, {} MB: {} ms {invocation} → {} ms billed (rounded up to whole ms); \
         {}% of {cold} cold; INIT {} ({} ms){}.",
        usage.arch,
        usage.memory_mb,
        trim_number(usage.duration_ms),
        billed,
        trim_number(usage.cold_start_ratio * 100.0),
        if usage.init_billed { "billed" } else { "not billed" },
        trim_number(usage.init_ms),
        if usage.init_billed { format!(", {init_billed_ms} ms more on a cold call") } else { String::new() },
    ));
    Ok(usage)
}
