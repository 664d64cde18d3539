//! The model: a profile's quantities × a book's prices = an itemised estimate.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::book::PriceBook;
use crate::profile::{Item, Profile, RecordSizing};
use crate::{CostError, GB_BYTES, firehose_billed_bytes, kinesis_put_units, sqs_requests};

/// Hours in the billing month the model uses (AWS's own convention: 8,760 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

const MILLION: f64 = 1_000_000.0;
/// Lambda's longest timeout; longer durations are a mistake in the input.
const MAX_LAMBDA_MS: f64 = 900_000.0;

/// Lambda instruction set architecture; arm64 (Graviton) is about 20% cheaper per GB-second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Arch {
    /// Intel/AMD.
    #[serde(rename = "x86_64")]
    X86_64,
    /// Graviton.
    #[serde(rename = "arm64")]
    Arm64,
}

impl Arch {
    /// The price key of a GB-second on this architecture.
    pub fn price_key(self) -> &'static str {
        match self {
            Arch::X86_64 => "lambda.gb_second_x86_64",
            Arch::Arm64 => "lambda.gb_second_arm64",
        }
    }

    /// `x86_64` or `arm64`, as Lambda spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = CostError;

    /// Accepts `x86_64` / `amd64` / `x86-64` and `arm64` / `aarch64`.
    fn from_str(s: &str) -> Result<Arch, CostError> {
        match s.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => {
                Err(CostError::InvalidParam { name: "arch", reason: format!("`{s}` is not x86_64 or arm64") })
            }
        }
    }
}

/// What to estimate for. `None` fields take the profile's defaults; fields that do not apply to
/// a profile (Lambda settings for EC2, say) are ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Lambda architecture.
    pub arch: Option<Arch>,
    /// Lambda memory, 128..=10240 MB; the CPU share scales with it.
    pub memory_mb: Option<u32>,
    /// Warm handler duration, before rounding up to whole ms.
    pub duration_ms: Option<f64>,
    /// INIT duration of a cold start.
    pub init_ms: Option<f64>,
    /// Whether INIT is billed (default `true`: custom runtimes like `provided.al2023` always, and
    /// on-demand managed runtimes since 1 Aug 2025; `false` models managed runtimes before that).
    pub init_billed: bool,
    /// Fraction of calls that are cold starts, 0..=1 (default 0).
    pub cold_start_ratio: f64,
    /// Volume for [`Estimate::per_month`] (default 1,000,000).
    pub calls_per_month: u64,
    /// Record size for Firehose / Kinesis / SQS items.
    pub record_bytes: Option<u64>,
    /// EC2 instance type instead of the profile's (the book must price `ec2.<type>`).
    pub instance_type: Option<String>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            arch: None,
            memory_mb: None,
            duration_ms: None,
            init_ms: None,
            init_billed: true,
            cold_start_ratio: 0.0,
            calls_per_month: 1_000_000,
            record_bytes: None,
            instance_type: None,
        }
    }
}

/// Whether a line's quantity is per call or per month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The quantity is per call; the line scales with the volume.
    PerCall,
    /// The quantity is per month, whatever the calls.
    PerMonth,
}

/// One itemised line of an estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What is charged, e.g. "HTTP API request".
    pub item: String,
    /// The price key it uses.
    pub price_key: String,
    /// Per call or per month.
    pub basis: Basis,
    /// Units per call ([`Basis::PerCall`]) or per month ([`Basis::PerMonth`]).
    pub quantity: f64,
    /// What a unit is (`request`, `GB-second`, …).
    pub unit: String,
    /// Dollars per `price_per` units (after any Spot discount).
    pub price_usd: f64,
    /// How many units `price_usd` buys (1, 1,000, 1,000,000).
    pub price_per: f64,
    /// Dollars per million calls (0 for monthly lines).
    pub per_million_calls: f64,
    /// Dollars per month at [`Estimate::calls_per_month`].
    pub per_month: f64,
}

impl Line {
    /// Dollars for one unit.
    pub fn unit_price(&self) -> f64 {
        self.price_usd / self.price_per
    }
}

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
    /// Whether INIT is billed ([`Params::init_billed`]).
    pub init_billed: bool,
    /// Fraction of calls that are cold.
    pub cold_start_ratio: f64,
}

/// An itemised estimate for one profile, book and set of params.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Profile id, e.g. `lambda-dynamodb`.
    pub profile: String,
    /// Profile label.
    pub label: String,
    /// Book id, e.g. `eu-west-2-2026-11`.
    pub book: String,
    /// The book's region.
    pub region: String,
    /// The book's date.
    pub as_of: String,
    /// The volume [`Estimate::per_month`] is for.
    pub calls_per_month: u64,
    /// One line per charged item: Lambda first, then per-call items, then monthly ones.
    pub lines: Vec<Line>,
    /// The variable part: dollars per million calls.
    pub per_million_calls: f64,
    /// The fixed part: dollars per month whatever the calls.
    pub fixed_per_month: f64,
    /// `fixed_per_month + per_million_calls × calls_per_month / 1e6`.
    pub per_month: f64,
    /// The Lambda settings used, for Lambda profiles.
    pub lambda: Option<LambdaUsage>,
    /// Assumptions worth printing under the table.
    pub notes: Vec<String>,
}

/// Lambda's billed duration of `duration_ms`: rounded up to whole milliseconds, at least 1 ms.
/// Negative or non-finite input bills 1 ms (validate first; [`estimate`] does).
pub fn billed_ms(duration_ms: f64) -> u64 {
    if duration_ms.is_finite() && duration_ms > 1.0 {
        // Saturating cast; inputs are checked against Lambda's 900 s limit.
        duration_ms.ceil() as u64
    } else {
        1
    }
}

/// Prices one `profile` with `book` under `params`.
///
/// Errors: a parameter out of range, or a price the book lacks (e.g. an `instance_type` it does
/// not price).
pub fn estimate(profile: &Profile, book: &PriceBook, params: &Params) -> Result<Estimate, CostError> {
    check_params(params)?;
    let mut lines = Vec::new();
    let mut notes = Vec::new();
    let line = |item: String, key: &str, basis: Basis, quantity: f64, discount: f64| {
        let price = book.price(key).map_err(|_| CostError::UnknownPriceKey {
            profile: profile.id.clone(),
            key: key.to_owned(),
            book: book.file().to_owned(),
        })?;
        let price_usd = price.usd * (1.0 - discount);
        let unit_usd = price_usd / price.per;
        let (per_million_calls, per_month) = match basis {
            Basis::PerCall => {
                let per_million = quantity * unit_usd * MILLION;
                (per_million, per_million * params.calls_per_month as f64 / MILLION)
            }
            Basis::PerMonth => (0.0, quantity * unit_usd),
        };
        Ok::<Line, CostError>(Line {
            item,
            price_key: key.to_owned(),
            basis,
            quantity,
            unit: price.unit.clone(),
            price_usd,
            price_per: price.per,
            per_million_calls,
            per_month,
        })
    };

    let lambda = match &profile.lambda {
        None => None,
        Some(defaults) => {
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
            lines.push(line("Lambda request".into(), "lambda.request", Basis::PerCall, 1.0, 0.0)?);
            lines.push(line(
                format!("Lambda duration ({}, {} MB, {} ms billed)", usage.arch, usage.memory_mb, billed),
                usage.arch.price_key(),
                Basis::PerCall,
                gb * billed as f64 / 1000.0,
                0.0,
            )?);
            if usage.cold_start_ratio > 0.0 && init_billed_ms > 0 {
                lines.push(line(
                    format!(
                        "Lambda INIT ({init_billed_ms} ms billed × {}% cold)",
                        trim_number(usage.cold_start_ratio * 100.0)
                    ),
                    usage.arch.price_key(),
                    Basis::PerCall,
                    usage.cold_start_ratio * gb * init_billed_ms as f64 / 1000.0,
                    0.0,
                )?);
            }
            notes.push(format!(
                "Lambda {}, {} MB: {} ms handler → {} ms billed (rounded up to whole ms); \
                 {}% of calls cold; INIT {} ({} ms){}.",
                usage.arch,
                usage.memory_mb,
                trim_number(usage.duration_ms),
                billed,
                trim_number(usage.cold_start_ratio * 100.0),
                if usage.init_billed { "billed" } else { "not billed" },
                trim_number(usage.init_ms),
                if usage.init_billed {
                    format!(", {init_billed_ms} ms more on a cold call")
                } else {
                    String::new()
                },
            ));
            Some(usage)
        }
    };

    let record_bytes = params.record_bytes.or(profile.record_bytes);
    for item in &profile.per_call {
        let quantity = item.quantity / item.per_calls * record_factor(item, record_bytes)?;
        lines.push(line(item_label(item, record_bytes), &item.price, Basis::PerCall, quantity, 0.0)?);
    }

    if let Some(instance) = &profile.instance {
        let instance_type = params.instance_type.as_deref().unwrap_or(&instance.instance_type);
        let key = format!("ec2.{instance_type}");
        if book.price(&key).is_err() {
            return Err(CostError::InvalidParam {
                name: "instance_type",
                reason: format!(
                    "{} has no price for `{instance_type}`; known: {}",
                    book.file(),
                    book.instance_types().join(", ")
                ),
            });
        }
        lines.push(line(
            format!("EC2 {instance_type} ({} h)", trim_number(instance.hours)),
            &key,
            Basis::PerMonth,
            instance.hours,
            0.0,
        )?);
    }

    if let Some(fargate) = &profile.fargate {
        let (discount, kind) = if fargate.spot {
            let discount = book.unit_usd("fargate.spot_discount")?;
            (discount, format!("Spot, {}% off", trim_number(discount * 100.0)))
        } else {
            (0.0, "on-demand".to_owned())
        };
        lines.push(line(
            format!("Fargate {} vCPU × {} h ({kind})", trim_number(fargate.vcpu), trim_number(fargate.hours)),
            "fargate.vcpu_hour",
            Basis::PerMonth,
            fargate.vcpu * fargate.hours,
            discount,
        )?);
        lines.push(line(
            format!(
                "Fargate {} GB × {} h ({kind})",
                trim_number(fargate.memory_gb),
                trim_number(fargate.hours)
            ),
            "fargate.gb_hour",
            Basis::PerMonth,
            fargate.memory_gb * fargate.hours,
            discount,
        )?);
    }

    for item in &profile.monthly {
        lines.push(line(item.item.clone(), &item.price, Basis::PerMonth, item.quantity, 0.0)?);
    }

    if let Some(note) = &profile.note {
        notes.push(note.clone());
    }
    // Folds from +0.0: `Iterator::sum` of no f64 is -0.0, which would print as "$-0.00".
    let per_million_calls = lines.iter().fold(0.0, |sum, l| sum + l.per_million_calls);
    let fixed_per_month =
        lines.iter().filter(|l| l.basis == Basis::PerMonth).fold(0.0, |sum, l| sum + l.per_month);
    Ok(Estimate {
        profile: profile.id.clone(),
        label: profile.label.clone(),
        book: book.id().to_owned(),
        region: book.region().to_owned(),
        as_of: book.as_of().to_owned(),
        calls_per_month: params.calls_per_month,
        per_month: fixed_per_month + per_million_calls * params.calls_per_month as f64 / MILLION,
        lines,
        per_million_calls,
        fixed_per_month,
        lambda,
        notes,
    })
}

fn record_factor(item: &Item, record_bytes: Option<u64>) -> Result<f64, CostError> {
    let Some(sizing) = item.record else {
        return Ok(1.0);
    };
    let bytes = record_bytes.ok_or(CostError::InvalidParam {
        name: "record_bytes",
        reason: format!("`{}` needs a record size", item.item),
    })?;
    Ok(match sizing {
        RecordSizing::Firehose => firehose_billed_bytes(bytes) as f64 / GB_BYTES,
        RecordSizing::Kinesis => kinesis_put_units(bytes) as f64,
        RecordSizing::Sqs => sqs_requests(1, bytes) as f64,
    })
}

fn item_label(item: &Item, record_bytes: Option<u64>) -> String {
    match (item.record, record_bytes) {
        (Some(_), Some(bytes)) => format!("{} of {bytes} B", item.item),
        _ => item.item.clone(),
    }
}

fn check_params(params: &Params) -> Result<(), CostError> {
    let invalid = |name: &'static str, reason: String| Err(CostError::InvalidParam { name, reason });
    if let Some(mb) = params.memory_mb
        && !(128..=10_240).contains(&mb)
    {
        return invalid("memory_mb", format!("{mb} is outside Lambda's 128..=10240 MB"));
    }
    for (name, value) in [("duration_ms", params.duration_ms), ("init_ms", params.init_ms)] {
        if let Some(ms) = value
            && !(ms.is_finite() && (0.0..=MAX_LAMBDA_MS).contains(&ms))
        {
            return invalid(name, format!("{ms} ms is not within 0..=900000"));
        }
    }
    if !(params.cold_start_ratio.is_finite() && (0.0..=1.0).contains(&params.cold_start_ratio)) {
        return invalid(
            "cold_start_ratio",
            format!("{} is not a fraction within 0..=1", params.cold_start_ratio),
        );
    }
    if let Some(instance_type) = &params.instance_type
        && instance_type.trim().is_empty()
    {
        return invalid("instance_type", "must not be empty".into());
    }
    Ok(())
}

/// A number without trailing zeros: 16, 0.25, 5.5.
pub(crate) fn trim_number(v: f64) -> String {
    crate::render::significant(v, 6, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_parses_the_usual_spellings() {
        assert_eq!("arm64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!("aarch64".parse::<Arch>(), Ok(Arch::Arm64));
        assert_eq!("x86_64".parse::<Arch>(), Ok(Arch::X86_64));
        assert_eq!("AMD64".parse::<Arch>(), Ok(Arch::X86_64));
        assert!("sparc".parse::<Arch>().is_err());
    }
}
