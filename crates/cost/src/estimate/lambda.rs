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
/// saying how the duration was billed.
pub(super) fn price(bill: &mut Bill<'_>, defaults: &LambdaDefaults) -> Result<LambdaUsage, CostError> {
    let params = bill.params;
    let usage = LambdaUsage {
        arch: params.arch.unwrap_or(defaults.arch),
        memory_mb: params.memory_mb.unwrap_or(defaults.memory_mb),
        duration_ms: params.duration_ms.unwrap_or(defaults.duration_ms),
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
    bill.push("Lambda request".into(), "lambda.request", Basis::PerCall, 1.0, 0.0)?;
    bill.push(
        format!("Lambda duration ({}, {} MB, {} ms billed)", usage.arch, usage.memory_mb, billed),
        usage.arch.price_key(),
        Basis::PerCall,
        gb * billed as f64 / 1000.0,
        0.0,
    )?;
    if usage.cold_start_ratio > 0.0 && init_billed_ms > 0 {
        bill.push(
            format!(
                "Lambda INIT ({init_billed_ms} ms billed × {}% cold)",
                trim_number(usage.cold_start_ratio * 100.0)
            ),
            usage.arch.price_key(),
            Basis::PerCall,
            usage.cold_start_ratio * gb * init_billed_ms as f64 / 1000.0,
            0.0,
        )?;
    }
    bill.notes.push(format!(
        "Lambda {}, {} MB: {} ms handler → {} ms billed (rounded up to whole ms); \
         {}% of calls cold; INIT {} ({} ms){}.",
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
