//! What each architecture of `hits` costs: itemised, per million calls and per month.
//!
//! # The model
//!
//! An architecture is a [`Profile`] (data, in `profiles.toml`): what **one call** uses — an
//! API Gateway request, a Lambda request, the billed duration, a DynamoDB write unit, two S3
//! requests, a Firehose record … — and what it costs **per month whatever the calls** — instance
//! hours, EBS and EFS storage, load-balancer hours. [`estimate`] multiplies those quantities by a
//! [`PriceBook`] and returns an [`Estimate`]: one [`Line`] per item, the variable part
//! ([`Estimate::per_million_calls`]), the fixed part ([`Estimate::fixed_per_month`]) and the total
//! at a volume ([`Estimate::per_month`] at [`Params::calls_per_month`]).
//!
//! - **Lambda** is billed per request and per GB-second: memory_mb / 1024 × the duration rounded
//!   **up** to whole milliseconds (at least 1 ms). The INIT phase of a cold start is billed too —
//!   always for custom runtimes such as `provided.al2023` (ours), and since 1 August 2025 for
//!   on-demand functions on managed runtimes — so a cold call bills `ceil(init + duration)`;
//!   [`Params::cold_start_ratio`] says what fraction of calls are cold (default 0) and
//!   [`Params::init_billed`] turns INIT billing off for the pre-2025 managed-runtime case.
//! - **Firehose** bills each record rounded up to the next 5 KB (5,120 bytes), per GB ingested;
//!   a GB here is 2^30 bytes, as AWS's own billing meters it. **Kinesis Data Streams** bills
//!   shard-hours plus 25 KB PUT payload units; **SQS** one request per 64 KB chunk. See
//!   [`firehose_billed_bytes`], [`kinesis_put_units`], [`sqs_requests`] and the
//!   `PriceBook::*_usd` helpers.
//! - **Events and records.** A call (an HTTP request) carries [`Params::events_per_call`] events
//!   of [`Params::event_bytes`] each. A profile's record item packs one call's events into
//!   records up to the sink's cap (Firehose 1,000 KiB): one event per call is one record per
//!   event. A profile with a `buffer` (a server) packs many calls' events instead, into records
//!   that close at the cap or at the linger: events a second per task × `linger_ms`
//!   ([`RecordUsage`]).
//! - **Batches and pipelines.** A Lambda behind an event source serves
//!   [`LambdaDefaults::calls_per_invocation`] calls an invocation (10 SQS messages, 100 stream
//!   records): a call bills that share of its request and duration. A profile may have further
//!   named [`Profile::functions`] (a pipeline's consumers), whose durations
//!   [`Params::function_ms`] replaces by name. A [`Stream`] is a Kinesis data stream with one
//!   record a call: provisioned (PUT payload units, and shard-hours for the shards the month's
//!   average rate needs at 1,000 records/s or 1 MB/s a shard) or on demand (GB in with each
//!   record rounded up to 1 KB, GB out per consumer, stream-hours).
//! - **Fargate Spot** is the on-demand vCPU-hour and GB-hour rates less `fargate.spot_discount`.
//!   A profile with a `fleet` runs `max(min_tasks, ceil(events/s ÷ (vCPU × events per vCPU a
//!   second × utilisation)))` tasks, the events a second being the month's average
//!   ([`FleetUsage`]; [`Params::events_per_vcpu_s`] is an assumption until measured).
//! - A month is 730 hours. No free tier, no volume tiers beyond the first, no data transfer.
//!
//! [`compare_ingest`] prices the ingest architectures ([`INGEST_PROFILES`]) at an [`IngestLoad`]
//! (events an hour, their size, events per request), with what packing saves on Firehose and
//! seed 001's own figure for its Elixir servers ([`SEED_001_ELIXIR`]).
//!
//! # Where prices come from
//!
//! One TOML file per region and date in `crates/cost/prices/` (format in its `README.md`),
//! embedded with `include_str!`: [`builtin_books`], [`book`] (a region's latest date by default).
//! Every price names its AWS pricing page; nothing could reach the internet when they were
//! written, so each says whether it is the issue's figure or recalled from the price list, and
//! that it was not re-checked offline. `eu-west-2-2021` — the prices the original comparison used
//! — inherits today's London book and overrides what moved (DynamoDB on-demand, halved in November
//! 2024). A caller can read its own file and hand the text to [`PriceBook::parse`]; this crate
//! does no I/O.
//!
//! ```
//! let book = cost::book("eu-west-2", None)?;
//! let profile = cost::profile("lambda-dynamodb")?;
//! let estimate = cost::estimate(profile, book, &cost::Params::default())?;
//! println!("{}", estimate.render(cost::Format::Text));
//! assert!(estimate.per_million_calls > 2.0 && estimate.fixed_per_month == 0.0);
//! # Ok::<(), cost::CostError>(())
//! ```

#![warn(missing_docs)]

mod arch;
mod book;
mod comparison;
mod estimate;
mod ingest;
mod numbers;
mod profile;
mod render;

pub use arch::Arch;
pub use book::{Price, PriceBook, REQUIRED_PRICES, book, builtin_books};
pub use comparison::{
    FirehosePacking, INGEST_PROFILES, IngestComparison, IngestLoad, SEED_001_ELIXIR, SeedReference,
    compare_ingest,
};
pub use estimate::{
    Basis, Estimate, FleetUsage, HOURS_PER_MONTH, KINESIS_SHARD_BYTES_PER_S, KINESIS_SHARD_RECORDS_PER_S,
    LambdaUsage, Line, Params, RecordUsage, StreamUsage, billed_ms, estimate,
};
pub use ingest::{
    FIREHOSE_MAX_RECORD_BYTES, FIREHOSE_RECORD_INCREMENT_BYTES, GB_BYTES, KINESIS_MAX_RECORD_BYTES,
    KINESIS_PUT_UNIT_BYTES, SQS_MAX_MESSAGE_BYTES, SQS_REQUEST_CHUNK_BYTES, firehose_billed_bytes,
    kinesis_put_units, sqs_requests,
};
pub use numbers::{amount, money, thousands};
pub use profile::{
    Buffer, Fargate, Fleet, Group, Instance, Item, LambdaDefaults, Profile, RecordSizing, Stream, StreamMode,
    groups, parse_profiles, profile, profiles, select,
};
pub use render::{Format, render_summary};

/// Everything that can go wrong in this crate: a malformed price or profile file (naming the file
/// and the key), an unknown region, date or architecture, or a parameter out of range.
// Variants are documented; their fields are what the messages name.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// The file is not valid TOML, or a field is missing, mistyped or unknown.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A price every book must have is absent.
    #[error("{file}: missing price `{key}` (every price file needs it, or an `inherits` that has it)")]
    MissingPrice { file: String, key: String },
    /// A price (or a book-level field) has a value the model cannot use.
    #[error("{file}: `{key}`: {reason}")]
    InvalidPrice { file: String, key: String, reason: String },
    /// `inherits` names a book that is not built in.
    #[error("{file}: inherits `{parent}`, which is not a built-in price file; known: {known}")]
    UnknownParent { file: String, parent: String, known: String },
    /// No built-in price file for this region.
    #[error("no prices for region `{region}`; known regions: {known}")]
    UnknownRegion { region: String, known: String },
    /// The region is known, but not at this date.
    #[error("no prices for {region} as of `{as_of}`; known dates: {known}")]
    UnknownDate { region: String, as_of: String, known: String },
    /// No architecture with this id.
    #[error("unknown architecture `{id}`; known: {known}")]
    UnknownProfile { id: String, known: String },
    /// A profile is malformed (beyond what TOML parsing catches).
    #[error("{file}: profile `{profile}`: {reason}")]
    InvalidProfile { file: String, profile: String, reason: String },
    /// A profile uses a price the book does not have.
    #[error("profile `{profile}` uses price `{key}`, which price file {book} does not have")]
    UnknownPriceKey { profile: String, key: String, book: String },
    /// A parameter is out of range or not understood.
    #[error("invalid {name}: {reason}")]
    InvalidParam { name: &'static str, reason: String },
}
