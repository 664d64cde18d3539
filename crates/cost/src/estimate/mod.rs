//! The model: a profile's quantities × a book's prices = an itemised estimate.
//!
//! [`estimate`] draws up a [`bill::Bill`] family by family, in the order the lines print:
//! [`lambda`], the [`per_call`] items and their records, [`ec2`], [`fargate`] (its fleet is sized
//! first: the records of a buffered server depend on the events each task receives), then the
//! profile's monthly items.

mod bill;
mod ec2;
mod fargate;
mod lambda;
mod per_call;
mod stream;

use bill::Bill;
pub use fargate::FleetUsage;
pub use lambda::LambdaUsage;
pub use per_call::RecordUsage;
pub use stream::{KINESIS_SHARD_BYTES_PER_S, KINESIS_SHARD_RECORDS_PER_S, StreamUsage};

use crate::CostError;
use crate::arch::Arch;
use crate::book::PriceBook;
use crate::profile::Profile;

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
    /// Warm handler duration of the profile's `lambda`, before rounding up to whole ms.
    pub duration_ms: Option<f64>,
    /// Warm durations of named functions (`upstream`, `midstream`, `downstream` …): a
    /// measured duration replaces the profile's assumption. Names a profile lacks are ignored.
    pub function_ms: Vec<(String, f64)>,
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
            function_ms: Vec::new(),
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

/// An itemised estimate for one profile, book and set of params.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Profile id, e.g. `lambda-dynamodb`.
    pub profile: String,
    /// Profile label.
    pub label: String,
    /// What one call is when it is not an HTTP request (`calculation`), from the profile.
    pub call: Option<String>,
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
    /// The settings of the profile's further `functions`, in order.
    pub functions: Vec<LambdaUsage>,
    /// How the profile's Kinesis stream was sized and billed.
    pub stream: Option<StreamUsage>,
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
    let mut bill = Bill::new(profile, book, params);
    let lambda = match &profile.lambda {
        None => None,
        Some(defaults) => Some(lambda::price(&mut bill, defaults, true)?),
    };
    let functions = profile
        .functions
        .iter()
        .map(|defaults| lambda::price(&mut bill, defaults, false))
        .collect::<Result<Vec<_>, _>>()?;
    let events_per_s = params.calls_per_month as f64 * f64::from(params.events_per_call) / SECONDS_PER_MONTH;
    let fleet = fargate::size_fleet(&mut bill, events_per_s);
    let tasks = fleet.as_ref().map_or(1, |f| f.tasks);
    let records = per_call::price_items(&mut bill, events_per_s / f64::from(tasks))?;
    let stream = match &profile.stream {
        None => None,
        Some(spec) => {
            Some(stream::price(&mut bill, spec, params.calls_per_month as f64 / SECONDS_PER_MONTH)?)
        }
    };
    if let Some(instance) = &profile.instance {
        ec2::price_instance(&mut bill, instance)?;
    }
    if let Some(fargate) = &profile.fargate {
        fargate::price_tasks(&mut bill, fargate, tasks)?;
    }
    for item in &profile.monthly {
        bill.push(item.item.clone(), &item.price, Basis::PerMonth, item.quantity, 0.0)?;
    }
    if let Some(note) = &profile.note {
        bill.notes.push(note.clone());
    }
    let Bill { lines, notes, .. } = bill;
    // Folds from +0.0: `Iterator::sum` of no f64 is -0.0, which would print as "$-0.00".
    let per_million_calls = lines.iter().fold(0.0, |sum, l| sum + l.per_million_calls);
    let fixed_per_month =
        lines.iter().filter(|l| l.basis == Basis::PerMonth).fold(0.0, |sum, l| sum + l.per_month);
    Ok(Estimate {
        profile: profile.id.clone(),
        label: profile.label.clone(),
        call: profile.call.clone(),
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
        functions,
        stream,
        records,
        fleet,
        notes,
    })
}

fn check_params(params: &Params) -> Result<(), CostError> {
    let invalid = |name: &'static str, reason: String| Err(CostError::InvalidParam { name, reason });
    if let Some(mb) = params.memory_mb
        && !(128..=10_240).contains(&mb)
    {
        return invalid("memory_mb", format!("{mb} is outside Lambda's 128..=10240 MB"));
    }
    let named = params.function_ms.iter().map(|(_, ms)| ("function_ms", Some(*ms)));
    for (name, value) in
        [("duration_ms", params.duration_ms), ("init_ms", params.init_ms)].into_iter().chain(named)
    {
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
