//! Architectures as data: what one call uses and what a month costs regardless of calls.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::CostError;
use crate::arch::Arch;

const BUILTIN_NAME: &str = "profiles.toml";
const BUILTIN_TEXT: &str = include_str!("../profiles.toml");

/// One architecture: its stable id, a label, and what it uses. See `profiles.toml` for the
/// meaning of each field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Stable id used by the CLI and the report, e.g. `lambda-dynamodb`.
    pub id: String,
    /// Human label.
    pub label: String,
    /// Assumptions and omissions, printed under the estimate.
    #[serde(default)]
    pub note: Option<String>,
    /// What one call is, when it is not an HTTP request (`calculation`): the estimate then also
    /// prints the cost per 1,000 of them.
    #[serde(default)]
    pub call: Option<String>,
    /// Lambda defaults, when a Lambda function serves the call.
    #[serde(default)]
    pub lambda: Option<LambdaDefaults>,
    /// More Lambda functions on the call's path (a pipeline's consumers), each with a `name`;
    /// [`crate::Params::function_ms`] overrides a duration by name.
    #[serde(default)]
    pub functions: Vec<LambdaDefaults>,
    /// The volume the profile is priced at when the caller names none (a pipeline at seed 001's
    /// 12M events an hour); `latency cost --calls-per-month` overrides it.
    #[serde(default)]
    pub calls_per_month: Option<u64>,
    /// A Kinesis data stream the call's record goes through (one record a call, of the
    /// profile's `event_bytes`), billed per `mode`.
    #[serde(default)]
    pub stream: Option<Stream>,
    /// An EC2 instance running all month.
    #[serde(default)]
    pub instance: Option<Instance>,
    /// A Fargate task running all month.
    #[serde(default)]
    pub fargate: Option<Fargate>,
    /// Default size of one event (a line of compact JSON and its newline) for items with a
    /// [`RecordSizing`]; [`crate::Params::event_bytes`] overrides it.
    #[serde(default)]
    pub event_bytes: Option<u64>,
    /// A server that pools the events of many calls into records. Without it, each call's events
    /// are packed into records on their own (one event per call: one record per event).
    #[serde(default)]
    pub buffer: Option<Buffer>,
    /// The Fargate task count, sized by throughput. Without it, one task.
    #[serde(default)]
    pub fleet: Option<Fleet>,
    /// What one call uses besides Lambda.
    #[serde(default)]
    pub per_call: Vec<Item>,
    /// What a month costs whatever the calls, besides instances and tasks.
    #[serde(default)]
    pub monthly: Vec<Item>,
}

/// Lambda defaults of a profile; [`crate::Params`] overrides each.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaDefaults {
    /// The function's name in the lines (`upstream`); required in `functions`.
    #[serde(default)]
    pub name: Option<String>,
    /// Calls one invocation serves: an event source's batch (10 SQS messages, 100 stream
    /// records). The request and the duration are shared by the batch; default 1.
    #[serde(default = "one")]
    pub calls_per_invocation: f64,
    /// Architecture.
    pub arch: Arch,
    /// Memory, 128..=10240 MB.
    pub memory_mb: u32,
    /// Handler duration of a warm invocation (of the whole batch), before rounding up to whole ms.
    pub duration_ms: f64,
    /// INIT duration of a cold start (billed when [`crate::Params::init_billed`]).
    #[serde(default)]
    pub init_ms: f64,
}

/// EC2 instance-hours per month; the price key is `ec2.<instance_type>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// Instance type, e.g. `t4g.micro` (written `type` in the file).
    #[serde(rename = "type")]
    pub instance_type: String,
    /// Instance-hours per month (730 for all month).
    pub hours: f64,
}

/// One Fargate task for `hours` a month; `spot` applies `fargate.spot_discount`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fargate {
    /// vCPUs of the task (0.25 is the smallest).
    pub vcpu: f64,
    /// Memory of the task, GB.
    pub memory_gb: f64,
    /// Task-hours per month.
    pub hours: f64,
    /// Fargate Spot instead of on-demand.
    pub spot: bool,
}

/// How a Kinesis data stream is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// Shard-hours for the shards the rate needs (1 MB/s or 1,000 records/s each) and 25 KB PUT
    /// payload units.
    Provisioned,
    /// GB in (each record rounded up to 1 KB), GB out (per consumer) and stream-hours.
    OnDemand,
}

/// A Kinesis data stream on the call's path: one record a call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Provisioned or on demand.
    pub mode: StreamMode,
    /// Shards whatever the rate (provisioned; default 1).
    #[serde(default = "one_u32")]
    pub min_shards: u32,
    /// Consumers reading every record (on demand bills each read; default 1).
    #[serde(default = "one_u32")]
    pub consumers: u32,
}

fn one_u32() -> u32 {
    1
}

/// A server's buffer: events from many calls go into one record until it reaches the sink's
/// record cap or `linger_ms` has passed since the last flush.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffer {
    /// Longest time an event waits in the buffer.
    pub linger_ms: f64,
}

/// How many Fargate tasks the volume needs: `max(min_tasks, ceil(events/s ÷ (vcpu ×
/// events_per_vcpu_s × utilisation)))`. [`crate::Params`] overrides the last two.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Tasks whatever the volume (2: one can be interrupted or replaced).
    pub min_tasks: u32,
    /// Events a second one vCPU of the task handles at full load.
    pub events_per_vcpu_s: f64,
    /// The share of that capacity the fleet is sized to use, 0 < u ≤ 1 (headroom for peaks).
    pub utilisation: f64,
}

/// `quantity` units of `price` (per `per_calls` calls, or per month).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Label of the line.
    pub item: String,
    /// Price key, e.g. `dynamodb.write_request_unit`.
    pub price: String,
    /// Units of the price (default 1).
    #[serde(default = "one")]
    pub quantity: f64,
    /// Per-call items only: the quantity is for this many calls (90,000 calls share an LCU-hour).
    #[serde(default = "one")]
    pub per_calls: f64,
    /// Per-call items only: multiply the quantity by the billed units of the records one call's
    /// events make.
    #[serde(default)]
    pub record: Option<RecordSizing>,
}

fn one() -> f64 {
    1.0
}

/// How a record's size turns into billed units, and how large a record may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSizing {
    /// GB ingested, each record rounded up to 5 KB ([`crate::firehose_billed_bytes`]).
    Firehose,
    /// 25 KB PUT payload units ([`crate::kinesis_put_units`]).
    Kinesis,
    /// One request per 64 KB chunk ([`crate::sqs_requests`]).
    Sqs,
}

impl Profile {
    /// Every price key this profile can use (both Lambda architectures, since
    /// [`crate::Params::arch`] may switch).
    pub fn price_keys(&self) -> Vec<String> {
        let mut keys = BTreeSet::new();
        if self.lambda.is_some() || !self.functions.is_empty() {
            keys.insert("lambda.request".to_owned());
            for arch in [Arch::X86_64, Arch::Arm64] {
                keys.insert(arch.price_key().to_owned());
            }
        }
        if let Some(stream) = &self.stream {
            let stream_keys: &[&str] = match stream.mode {
                StreamMode::Provisioned => &["kinesis.shard_hour", "kinesis.put_payload_unit"],
                StreamMode::OnDemand => {
                    &["kinesis.on_demand_gb_in", "kinesis.on_demand_gb_out", "kinesis.on_demand_stream_hour"]
                }
            };
            keys.extend(stream_keys.iter().map(|key| (*key).to_owned()));
        }
        if let Some(instance) = &self.instance {
            keys.insert(format!("ec2.{}", instance.instance_type));
        }
        if let Some(fargate) = &self.fargate {
            keys.insert("fargate.vcpu_hour".to_owned());
            keys.insert("fargate.gb_hour".to_owned());
            if fargate.spot {
                keys.insert("fargate.spot_discount".to_owned());
            }
        }
        for item in self.per_call.iter().chain(&self.monthly) {
            keys.insert(item.price.clone());
        }
        keys.into_iter().collect()
    }

    fn validate(&self, file: &str) -> Result<(), CostError> {
        let fail = |reason: String| CostError::InvalidProfile {
            file: file.to_owned(),
            profile: self.id.clone(),
            reason,
        };
        let positive = |what: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(fail(format!("{what} = {v} must be positive and finite")))
            }
        };
        if self.id.is_empty()
            || !self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(fail("the id must be lowercase letters, digits and '-'".into()));
        }
        if self.label.trim().is_empty() {
            return Err(fail("the label must not be empty".into()));
        }
        let mut names = BTreeSet::new();
        for (i, lambda) in self.lambda.iter().chain(&self.functions).enumerate() {
            let what = match (&lambda.name, i) {
                (Some(name), _) => format!("lambda `{name}`"),
                (None, 0) if self.lambda.is_some() => "lambda".to_owned(),
                (None, _) => return Err(fail("every one of `functions` needs a name".into())),
            };
            if let Some(name) = &lambda.name
                && !names.insert(name.as_str())
            {
                return Err(fail(format!("two functions are named `{name}`")));
            }
            if !(128..=10_240).contains(&lambda.memory_mb) {
                return Err(fail(format!(
                    "{what}: memory_mb = {} is outside Lambda's 128..=10240",
                    lambda.memory_mb
                )));
            }
            for (field, v) in [("duration_ms", lambda.duration_ms), ("init_ms", lambda.init_ms)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(fail(format!("{what}: {field} = {v} must be finite and not negative")));
                }
            }
            if !(lambda.calls_per_invocation.is_finite() && lambda.calls_per_invocation >= 1.0) {
                return Err(fail(format!(
                    "{what}: calls_per_invocation = {} must be at least 1",
                    lambda.calls_per_invocation
                )));
            }
        }
        if self.calls_per_month == Some(0) {
            return Err(fail("calls_per_month must be at least 1".into()));
        }
        if let Some(stream) = &self.stream {
            if stream.min_shards == 0 || stream.consumers == 0 {
                return Err(fail("stream.min_shards and stream.consumers must be at least 1".into()));
            }
            if self.event_bytes.is_none() {
                return Err(fail("a stream needs the profile's event_bytes (the record's size)".into()));
            }
        }
        if let Some(instance) = &self.instance {
            positive("instance.hours", instance.hours)?;
        }
        if let Some(fargate) = &self.fargate {
            positive("fargate.vcpu", fargate.vcpu)?;
            positive("fargate.memory_gb", fargate.memory_gb)?;
            positive("fargate.hours", fargate.hours)?;
        }
        for item in &self.per_call {
            positive(&format!("{}: quantity", item.item), item.quantity)?;
            positive(&format!("{}: per_calls", item.item), item.per_calls)?;
            if item.record.is_some() && self.event_bytes.is_none() {
                return Err(fail(format!("{}: a `record` item needs the profile's event_bytes", item.item)));
            }
        }
        if self.per_call.iter().filter(|item| item.record.is_some()).count() > 1 {
            return Err(fail("at most one `record` item: events go to one sink".into()));
        }
        if let Some(buffer) = &self.buffer {
            positive("buffer.linger_ms", buffer.linger_ms)?;
            if self.instance.is_none() && self.fargate.is_none() {
                return Err(fail("a buffer needs a server (instance or fargate)".into()));
            }
            if !self.per_call.iter().any(|item| item.record.is_some()) {
                return Err(fail("a buffer needs a `record` item to pack".into()));
            }
        }
        if let Some(fleet) = &self.fleet {
            if self.fargate.is_none() {
                return Err(fail("a fleet sizes the fargate task count: it needs `fargate`".into()));
            }
            if fleet.min_tasks == 0 {
                return Err(fail("fleet.min_tasks must be at least 1".into()));
            }
            positive("fleet.events_per_vcpu_s", fleet.events_per_vcpu_s)?;
            if !(fleet.utilisation > 0.0 && fleet.utilisation <= 1.0) {
                return Err(fail(format!(
                    "fleet.utilisation = {} must be within 0 < u ≤ 1",
                    fleet.utilisation
                )));
            }
        }
        for item in &self.monthly {
            positive(&format!("{}: quantity", item.item), item.quantity)?;
            if item.per_calls != 1.0 || item.record.is_some() {
                return Err(fail(format!(
                    "{}: per_calls and record apply to per_call items only",
                    item.item
                )));
            }
        }
        if self.lambda.is_none()
            && self.functions.is_empty()
            && self.stream.is_none()
            && self.instance.is_none()
            && self.fargate.is_none()
            && self.per_call.is_empty()
            && self.monthly.is_empty()
        {
            return Err(fail("it uses nothing".into()));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profile: Vec<Profile>,
    #[serde(default)]
    group: Vec<Group>,
}

/// A name for several profiles priced together (`queue`, `pipeline`), usable wherever an id is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The name, distinct from every profile id.
    pub id: String,
    /// The profiles' ids, in the order printed.
    pub profiles: Vec<String>,
}

/// Parses and validates a profiles file (same format as the built-in `profiles.toml`); `name`
/// appears in every error. Price keys are checked against a book by
/// [`crate::PriceBook::check_profile`] (and by [`crate::estimate`]).
pub fn parse_profiles(text: &str, name: &str) -> Result<Vec<Profile>, CostError> {
    parse_file(text, name).map(|file| file.profile)
}

fn parse_file(text: &str, name: &str) -> Result<ProfilesFile, CostError> {
    let file: ProfilesFile = toml::from_str(text).map_err(|err| CostError::Parse {
        file: name.to_owned(),
        message: err.to_string().trim_end().to_owned(),
    })?;
    let mut seen = BTreeSet::new();
    for profile in &file.profile {
        profile.validate(name)?;
        if !seen.insert(profile.id.as_str()) {
            return Err(CostError::InvalidProfile {
                file: name.to_owned(),
                profile: profile.id.clone(),
                reason: "the id is used twice".into(),
            });
        }
    }
    for group in &file.group {
        let fail = |reason: String| CostError::InvalidProfile {
            file: name.to_owned(),
            profile: group.id.clone(),
            reason,
        };
        if !seen.insert(group.id.as_str()) {
            return Err(fail("a group's id must differ from every profile's and group's".into()));
        }
        if group.profiles.is_empty() {
            return Err(fail("a group names at least one profile".into()));
        }
        if let Some(missing) = group.profiles.iter().find(|id| !file.profile.iter().any(|p| &p.id == *id)) {
            return Err(fail(format!("the group names `{missing}`, which is not a profile")));
        }
    }
    Ok(file)
}

static PROFILES: OnceLock<Result<ProfilesFile, CostError>> = OnceLock::new();

fn builtin() -> Result<&'static ProfilesFile, CostError> {
    PROFILES.get_or_init(|| parse_file(BUILTIN_TEXT, BUILTIN_NAME)).as_ref().map_err(Clone::clone)
}

/// The built-in architectures (`crates/cost/profiles.toml`), in file order.
pub fn profiles() -> Result<&'static [Profile], CostError> {
    builtin().map(|file| file.profile.as_slice())
}

/// The built-in groups (`queue`, `pipeline`): names for profiles priced together.
pub fn groups() -> Result<&'static [Group], CostError> {
    builtin().map(|file| file.group.as_slice())
}

/// One built-in architecture by id; an unknown id is an error listing the known ones.
pub fn profile(id: &str) -> Result<&'static Profile, CostError> {
    let all = profiles()?;
    all.iter().find(|p| p.id == id).ok_or_else(|| unknown(id))
}

/// The built-in architectures an id names: the profile itself, or every profile of a group.
pub fn select(id: &str) -> Result<Vec<&'static Profile>, CostError> {
    match groups()?.iter().find(|group| group.id == id) {
        Some(group) => group.profiles.iter().map(|id| profile(id)).collect(),
        None => profile(id).map(|p| vec![p]),
    }
}

fn unknown(id: &str) -> CostError {
    let mut known: Vec<&str> = profiles().unwrap_or_default().iter().map(|p| p.id.as_str()).collect();
    known.extend(groups().unwrap_or_default().iter().map(|g| g.id.as_str()));
    CostError::UnknownProfile { id: id.to_owned(), known: known.join(", ") }
}
