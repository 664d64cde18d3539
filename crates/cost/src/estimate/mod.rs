//! The model: a profile's quantities × a book's prices = an itemised estimate.

use crate::arch::Arch;
use crate::book::PriceBook;
use crate::numbers::{amount, round_to, thousands, trim_number};
use crate::profile::{Profile, RecordSizing};
use crate::{CostError, firehose_billed_bytes};

/// Hours in the billing month the model uses (AWS's own convention: 8,760 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

const MILLION: f64 = 1_000_000.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;
/// Lambda's longest timeout; longer durations are a mistake in the input.
const MAX_LAMBDA_MS: f64 = 900_000.0;

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
    /// Events one call (one HTTP request) carries, at least 1 (default 1). A record item packs a
    /// call's events into records (or a server's buffer packs many calls'); a fleet is sized on
    /// `calls_per_month × events_per_call` spread evenly over the month.
    pub events_per_call: u32,
    /// Size of one event as put in a record (a line of compact JSON and its newline), for
    /// Firehose / Kinesis / SQS items; default: the profile's.
    pub event_bytes: Option<u64>,
    /// Events a second one vCPU handles, for profiles with a fleet; default: the profile's.
    pub events_per_vcpu_s: Option<f64>,
    /// Share of the fleet's capacity to size for, 0 < u ≤ 1; default: the profile's.
    pub utilisation: Option<f64>,
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
            events_per_call: 1,
            event_bytes: None,
            events_per_vcpu_s: None,
            utilisation: None,
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

/// How an estimate turned events into records, for profiles with a `record` item.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUsage {
    /// The sink and its billing.
    pub sizing: RecordSizing,
    /// Size of one event.
    pub event_bytes: u64,
    /// Events in one (full) record: at most what fits in the sink's record cap, and at most the
    /// events of one call (per-call packing) or of one linger (a server's buffer).
    pub events_per_record: u64,
    /// Records one call's events make, on average.
    pub records_per_call: f64,
    /// Billed units (GB, PUT payload units, requests) one call's records make.
    pub units_per_call: f64,
    /// The buffer's linger when a server pools many calls' events; `None`: packed per call.
    pub linger_ms: Option<f64>,
}

impl RecordUsage {
    /// Bytes of one (full) record: `events_per_record × event_bytes`.
    pub fn record_bytes(&self) -> u64 {
        self.events_per_record.saturating_mul(self.event_bytes)
    }
}

/// How an estimate sized a fleet of Fargate tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetUsage {
    /// Events a second: `calls_per_month × events_per_call` over a 730-hour month.
    pub events_per_s: f64,
    /// Events a second one vCPU handles (an assumption until measured).
    pub events_per_vcpu_s: f64,
    /// Share of capacity sized for.
    pub utilisation: f64,
    /// Events a second one task handles at full load: vCPU × `events_per_vcpu_s`.
    pub task_events_per_s: f64,
    /// Tasks whatever the volume.
    pub min_tasks: u32,
    /// `max(min_tasks, ceil(events_per_s ÷ (task_events_per_s × utilisation)))`.
    pub tasks: u32,
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
    /// Events one call carries ([`Params::events_per_call`]).
    pub events_per_call: u32,
    /// One line per charged item: Lambda first, then per-call items, then monthly ones.
    pub lines: Vec<Line>,
    /// The variable part: dollars per million calls.
    pub per_million_calls: f64,
    /// The fixed part: dollars per month whatever the calls. With a `fleet` (the task count) or
    /// a `buffer` (the records' size) both parts are for [`Estimate::calls_per_month`] only.
    pub fixed_per_month: f64,
    /// `fixed_per_month + per_million_calls × calls_per_month / 1e6`.
    pub per_month: f64,
    /// The Lambda settings used, for Lambda profiles.
    pub lambda: Option<LambdaUsage>,
    /// How events became records, for profiles with a `record` item.
    pub records: Option<RecordUsage>,
    /// How many tasks, for profiles with a fleet.
    pub fleet: Option<FleetUsage>,
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

    let events_per_s = params.calls_per_month as f64 * f64::from(params.events_per_call) / SECONDS_PER_MONTH;
    let fleet = match (&profile.fleet, &profile.fargate) {
        (Some(fleet), Some(fargate)) => {
            let events_per_vcpu_s = params.events_per_vcpu_s.unwrap_or(fleet.events_per_vcpu_s);
            let utilisation = params.utilisation.unwrap_or(fleet.utilisation);
            let task_events_per_s = fargate.vcpu * events_per_vcpu_s;
            let needed = (events_per_s / (task_events_per_s * utilisation)).ceil();
            // Saturating cast: a fleet of 4 billion tasks is already an answer.
            let tasks = (needed as u32).max(fleet.min_tasks);
            notes.push(format!(
                "Fleet: {} events/s ÷ ({} vCPU × {} events/s per vCPU × {}% target utilisation = {} \
                 events/s a task) = {} → {tasks} task{} (at least {} for availability). The events/s \
                 per vCPU is an assumption until measured; the rate is the month's average.",
                amount(events_per_s),
                trim_number(fargate.vcpu),
                amount(events_per_vcpu_s),
                trim_number(utilisation * 100.0),
                amount(task_events_per_s * utilisation),
                trim_number(round_to(events_per_s / (task_events_per_s * utilisation), 2)),
                if tasks == 1 { "" } else { "s" },
                fleet.min_tasks,
            ));
            Some(FleetUsage {
                events_per_s,
                events_per_vcpu_s,
                utilisation,
                task_events_per_s,
                min_tasks: fleet.min_tasks,
                tasks,
            })
        }
        _ => None,
    };
    let tasks = fleet.as_ref().map_or(1, |f| f.tasks);

    let mut records = None;
    for item in &profile.per_call {
        let mut quantity = item.quantity / item.per_calls;
        let mut label = item.item.clone();
        if let Some(sizing) = item.record {
            let usage = record_usage(profile, params, sizing, events_per_s / f64::from(tasks))?;
            quantity *= usage.units_per_call;
            label = record_label(&item.item, &usage);
            notes.push(record_note(&usage, params.events_per_call));
            records = Some(usage);
        }
        lines.push(line(label, &item.price, Basis::PerCall, quantity, 0.0)?);
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
        let times_tasks = if tasks == 1 { String::new() } else { format!(" × {tasks} tasks") };
        lines.push(line(
            format!(
                "Fargate {} vCPU × {} h{times_tasks} ({kind})",
                trim_number(fargate.vcpu),
                trim_number(fargate.hours)
            ),
            "fargate.vcpu_hour",
            Basis::PerMonth,
            fargate.vcpu * fargate.hours * f64::from(tasks),
            discount,
        )?);
        lines.push(line(
            format!(
                "Fargate {} GB × {} h{times_tasks} ({kind})",
                trim_number(fargate.memory_gb),
                trim_number(fargate.hours)
            ),
            "fargate.gb_hour",
            Basis::PerMonth,
            fargate.memory_gb * fargate.hours * f64::from(tasks),
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
        events_per_call: params.events_per_call,
        per_month: fixed_per_month + per_million_calls * params.calls_per_month as f64 / MILLION,
        lines,
        per_million_calls,
        fixed_per_month,
        lambda,
        records,
        fleet,
        notes,
    })
}

/// How one call's events become records of `sizing`'s sink. `events_per_s_per_task` is what one
/// server task receives, for a buffered profile.
fn record_usage(
    profile: &Profile,
    params: &Params,
    sizing: RecordSizing,
    events_per_s_per_task: f64,
) -> Result<RecordUsage, CostError> {
    let event_bytes = params.event_bytes.or(profile.event_bytes).ok_or(CostError::InvalidParam {
        name: "event_bytes",
        reason: format!("`{}` needs an event size", profile.id),
    })?;
    let cap = sizing.max_record_bytes();
    if event_bytes > cap {
        return Err(CostError::InvalidParam {
            name: "event_bytes",
            reason: format!("{event_bytes} B is more than a {} record holds ({cap} B)", sizing.sink()),
        });
    }
    let fit = (cap / event_bytes).max(1);
    let events = u64::from(params.events_per_call);
    let units = |events_in_record: u64| sizing.billed_units(events_in_record * event_bytes);
    Ok(match &profile.buffer {
        None => {
            // One call's events, packed in order: full records, then what is left.
            let (full, rest) = (events / fit, events % fit);
            let records = full + u64::from(rest > 0);
            let rest_units = if rest > 0 { units(rest) } else { 0.0 };
            RecordUsage {
                sizing,
                event_bytes,
                events_per_record: events.min(fit),
                records_per_call: records as f64,
                units_per_call: full as f64 * units(fit) + rest_units,
                linger_ms: None,
            }
        }
        Some(buffer) => {
            // Floor: a record closes at the linger with the events that arrived by then.
            let per_linger = (events_per_s_per_task * buffer.linger_ms / 1000.0).floor();
            let per_record = if per_linger >= fit as f64 { fit } else { (per_linger as u64).max(1) };
            RecordUsage {
                sizing,
                event_bytes,
                events_per_record: per_record,
                records_per_call: events as f64 / per_record as f64,
                units_per_call: events as f64 * units(per_record) / per_record as f64,
                linger_ms: Some(buffer.linger_ms),
            }
        }
    })
}

fn record_label(item: &str, usage: &RecordUsage) -> String {
    if usage.events_per_record == 1 {
        format!("{item} of {} B", thousands(usage.event_bytes))
    } else {
        format!(
            "{item} of {} events ({} B)",
            thousands(usage.events_per_record),
            thousands(usage.record_bytes())
        )
    }
}

fn record_note(usage: &RecordUsage, events_per_call: u32) -> String {
    let sink = usage.sizing.sink();
    let record = usage.record_bytes();
    let billed = match usage.sizing {
        RecordSizing::Firehose => {
            let billed = firehose_billed_bytes(record);
            format!(
                "billed {} B ({}% of it rounding up to 5 KB)",
                thousands(billed),
                trim_number(round_to((billed - record) as f64 / billed as f64 * 100.0, 1))
            )
        }
        RecordSizing::Kinesis => {
            format!("{} PUT payload units", trim_number(usage.sizing.billed_units(record)))
        }
        RecordSizing::Sqs => format!("{} requests", trim_number(usage.sizing.billed_units(record))),
    };
    let events = |n: u64| if n == 1 { "1 event".to_owned() } else { format!("{} events", thousands(n)) };
    match usage.linger_ms {
        None if usage.records_per_call == 1.0 => format!(
            "{sink} records: each call's {} of {} B go into one record of {} B, {billed}.",
            events(u64::from(events_per_call)),
            thousands(usage.event_bytes),
            thousands(record),
        ),
        None => format!(
            "{sink} records: each call's {} of {} B are packed into {} records of at most {} B, {} \
             ({} B) in a full one, {billed}.",
            events(u64::from(events_per_call)),
            thousands(usage.event_bytes),
            trim_number(usage.records_per_call),
            thousands(usage.sizing.max_record_bytes()),
            events(usage.events_per_record),
            thousands(record),
        ),
        Some(linger) => format!(
            "{sink} records: the buffer packs many calls' events into records that close at {} B or \
             after {} ms, whichever comes first: {} of {} B a record ({} B), {billed}.",
            thousands(usage.sizing.max_record_bytes()),
            trim_number(linger),
            events(usage.events_per_record),
            thousands(usage.event_bytes),
            thousands(record),
        ),
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
    if params.events_per_call == 0 {
        return invalid("events_per_call", "a call carries at least 1 event".into());
    }
    if params.event_bytes == Some(0) {
        return invalid("event_bytes", "an event is at least 1 byte".into());
    }
    if let Some(rate) = params.events_per_vcpu_s
        && !(rate.is_finite() && rate > 0.0)
    {
        return invalid("events_per_vcpu_s", format!("{rate} must be positive and finite"));
    }
    if let Some(u) = params.utilisation
        && !(u > 0.0 && u <= 1.0)
    {
        return invalid("utilisation", format!("{u} is not within 0 < u ≤ 1"));
    }
    Ok(())
}
