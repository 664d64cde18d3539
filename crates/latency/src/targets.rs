//! The targets file of `latency report`: named URLs, how to measure them, what they cost.
//!
//! ```toml
//! [defaults]                 # optional; every key can be set per target too
//! count = 1000
//! concurrency = 1
//! via_lambda = "latency-hits-ProbeFunction-abc"   # probe from inside the region
//!
//! [[target]]
//! name = "Lambda + DynamoDB (HTTP API)"
//! url = "https://abc.execute-api.eu-west-2.amazonaws.com/hits"
//! architecture = "lambda-dynamodb"   # a `latency cost` architecture id
//! memory_mb = 128                    # optional; Lambda cost parameters
//! arch = "arm64"
//! duration_ms = 8                    # optional billed duration; default: the measured p50
//!
//! [[target]]                         # a load run instead of the sequential probe
//! name = "pipeline, seed 003's k6 run"
//! url = "https://abc.execute-api.eu-west-2.amazonaws.com/items"
//! architecture = "lambda-dynamodb"
//! load = "seed-003"                  # a `latency load` preset, or a table:
//! # [target.load]
//! # preset = "items"
//! # rate = 200                       # vus, rate, max_vus, duration, iterations, stages,
//! # duration = "30s"                 # method, headers, body, bodies, expect, timeout
//! ```
//!
//! A `[[pipeline]]` entry is measured as `latency pipeline` measures it (its load, the wait for
//! every accepted item, the figures) and gets a section of its own in report.md:
//!
//! ```toml
//! [[pipeline]]
//! name = "pipeline, deployed"
//! url = "https://abc.execute-api.eu-west-2.amazonaws.com/items"   # PipelineUrl
//! results_table = "latency-pipeline-PipelineResultsTable-abc"
//! items_table = "latency-pipeline-PipelineItemsTable-abc"
//! failure_queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/…"   # optional
//! # endpoint, region: optional, as in .local/pipeline.toml
//! drain_timeout = "60s"             # optional; poll = "250ms" too
//! [pipeline.load]                   # optional [default: seed-003, 10 VUs for 60 s]
//! vus = 10                          # the fields of a target's load table
//! duration = "60s"
//!
//! [[pipeline]]
//! name = "pipeline, local"
//! local = true                      # .local/pipeline.toml, as `latency pipeline --local`
//! load = { vus = 5, duration = "5s" }
//! ```
//!
//! A target with a load profile is measured as `latency load` measures (its `count`,
//! `concurrency`, `warmup` and `timeout_ms` would mean nothing, so setting them is an error); a
//! `load` in `[defaults]` makes every target a load run unless it says `load = ""`.

use std::fmt;

use probe::load::{LoadInput, LoadSpec};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::Error;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub count: Option<u32>,
    pub concurrency: Option<u32>,
    pub warmup: Option<u32>,
    pub timeout_ms: Option<u64>,
    /// Probe through this deployed probe function instead of from this machine.
    pub via_lambda: Option<String>,
    pub memory_mb: Option<u32>,
    pub arch: Option<String>,
    /// Billed Lambda duration per call; default: the measured p50 (an upper bound: it includes
    /// the network and API Gateway).
    pub duration_ms: Option<f64>,
    /// Measure with a load run instead of the sequential probe.
    pub load: Option<LoadProfile>,
}

/// The sequential probe's settings, which a load run has no use for.
const PROBE_KEYS: [&str; 4] = ["count", "concurrency", "warmup", "timeout_ms"];

impl Settings {
    fn probe_keys(&self) -> Vec<&'static str> {
        let set = [
            self.count.is_some(),
            self.concurrency.is_some(),
            self.warmup.is_some(),
            self.timeout_ms.is_some(),
        ];
        PROBE_KEYS.iter().zip(set).filter(|(_, set)| *set).map(|(key, _)| *key).collect()
    }
}

/// A load profile: `load = "PRESET"`, or a `load` table of the `latency load` flags' fields
/// (the target's `url` is the URL). `load = ""` is no profile: the sequential probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadProfile {
    /// Written as `load = "PRESET"`.
    shorthand: bool,
    table: LoadTable,
}

/// The fields of a `load` table: [`LoadInput`]'s, but the URL (the target's) and `ids`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadTable {
    preset: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: Vec<String>,
    body: Option<String>,
    bodies: Option<Vec<String>>,
    expect: Option<String>,
    vus: Option<i64>,
    rate: Option<f64>,
    max_vus: Option<i64>,
    duration: Option<String>,
    iterations: Option<i64>,
    /// `"30s:10,1m:10"` or `["30s:10", "1m:10"]`.
    #[serde(default, deserialize_with = "one_or_many")]
    stages: Vec<String>,
    timeout: Option<String>,
}

impl LoadProfile {
    /// `load = ""`: the target is probed sequentially, whatever `[defaults]` says.
    fn is_off(&self) -> bool {
        self.shorthand && self.table.preset.as_deref().is_some_and(|p| p.trim().is_empty())
    }

    /// The load input for `url`.
    pub fn input(&self, url: &str) -> LoadInput {
        let t = self.table.clone();
        LoadInput {
            url: Some(url.to_owned()),
            preset: t.preset,
            method: t.method,
            headers: t.headers,
            body: t.body,
            bodies: t.bodies,
            expect: t.expect,
            vus: t.vus,
            rate: t.rate,
            max_vus: t.max_vus,
            duration: t.duration,
            iterations: t.iterations,
            stages: (!t.stages.is_empty()).then(|| t.stages.join(",")),
            timeout: t.timeout,
            ids: false,
        }
    }

    /// The TOML key a load spec error is about: `load.max_vus`, or `load` for the preset of
    /// the shorthand.
    fn key(&self, field: &str) -> String {
        match field {
            "url" => "url".to_owned(),
            "preset" if self.shorthand => "load".to_owned(),
            "header" => "load.headers".to_owned(),
            field => format!("load.{field}"),
        }
    }
}

impl<'de> Deserialize<'de> for LoadProfile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Profile;
        impl<'de> Visitor<'de> for Profile {
            type Value = LoadProfile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a `latency load` preset name like \"seed-003\", or a table of load settings")
            }

            fn visit_str<E: de::Error>(self, preset: &str) -> Result<LoadProfile, E> {
                Ok(LoadProfile {
                    shorthand: true,
                    table: LoadTable { preset: Some(preset.to_owned()), ..LoadTable::default() },
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LoadProfile, A::Error> {
                let table = LoadTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LoadProfile { shorthand: false, table })
            }
        }
        deserializer.deserialize_any(Profile)
    }
}

/// A string, or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Strings;
    impl<'de> Visitor<'de> for Strings {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"DURATION:TARGET,…\" or a list of \"DURATION:TARGET\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(vec![text.to_owned()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut all = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                all.push(item);
            }
            Ok(all)
        }
    }
    deserializer.deserialize_any(Strings)
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub architecture: String,
    pub settings: Settings,
    /// Measure with this load run instead of the sequential probe.
    pub load: Option<Load>,
}

/// A target's load run, validated when the file is read.
#[derive(Debug, Clone)]
pub struct Load {
    /// What the probe function is sent with `via_lambda`.
    pub input: LoadInput,
    pub spec: LoadSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    url: String,
    architecture: String,
    #[serde(flatten)]
    settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Settings,
    #[serde(default, rename = "target")]
    targets: Vec<Entry>,
    #[serde(default, rename = "pipeline")]
    pipelines: Vec<PipelineEntry>,
}

/// A `[[pipeline]]` entry as written: where the pipeline is (its names, or `local = true`), and
/// its load. `[defaults]` does not apply to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineEntry {
    name: String,
    #[serde(default)]
    local: bool,
    url: Option<String>,
    results_table: Option<String>,
    items_table: Option<String>,
    failure_queue_url: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    load: Option<LoadProfile>,
    drain_timeout: Option<String>,
    poll: Option<String>,
}

/// A pipeline to measure, validated when the file is read.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// Where it is; `None`: `local = true`, read from `.local/pipeline.toml` when measured.
    pub setup: Option<crate::pipeline::Setup>,
    /// The load (`latency pipeline`'s default item and preset filled in); its URL is the
    /// setup's, or with `local = true` a stand-in until pipeline.toml gives the real one.
    pub load: LoadInput,
    pub options: crate::pipeline::Options,
}

/// The URL a `local = true` pipeline's load is checked with before pipeline.toml is read.
const LOCAL_STAND_IN: &str = "http://127.0.0.1/items";

/// What a targets file asks for.
#[derive(Debug)]
pub struct Targets {
    pub targets: Vec<Target>,
    pub pipelines: Vec<Pipeline>,
}

/// Parses a targets file; `origin` names it in errors. Each target's settings are completed
/// from `[defaults]`. Names must be unique, URLs http(s), every load profile valid for its
/// target's URL, and every pipeline's names and load valid — all checked before anything is
/// measured.
pub fn parse(text: &str, origin: &str) -> Result<Targets, Error> {
    let file: File = toml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    if file.targets.is_empty() && file.pipelines.is_empty() {
        return Err(Error::Invalid(format!("{origin}: no [[target]] or [[pipeline]] entries")));
    }
    let pipelines = pipelines(file.pipelines, origin)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut targets = Vec::with_capacity(file.targets.len());
    for entry in file.targets {
        let name = entry.name.trim();
        if name.is_empty() {
            return Err(Error::Invalid(format!("{origin}: a target has an empty name")));
        }
        if !seen.insert(name.to_owned()) {
            return Err(Error::Invalid(format!("{origin}: target {name:?} appears twice")));
        }
        if !(entry.url.starts_with("http://") || entry.url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "{origin}: target {name:?}: url {:?} is not http(s)",
                entry.url
            )));
        }
        let invalid = |what: String| Error::Invalid(format!("{origin}: target {name:?}: {what}"));
        let inherited = entry.settings.load.is_none() && file.defaults.load.is_some();
        let probe_keys = entry.settings.probe_keys();
        let mut settings = merge(entry.settings, &file.defaults);
        let load = match settings.load.take() {
            None => None,
            Some(profile) => {
                if !probe_keys.is_empty() {
                    let from = if inherited {
                        " (from [defaults]; `load = \"\"` makes this target a sequential probe)"
                    } else {
                        ""
                    };
                    return Err(invalid(format!(
                        "{} set the sequential probe, but the target has a load profile{from}: \
                         give the run's shape in load instead (vus or rate, duration or iterations, \
                         stages, timeout)",
                        probe_keys.join(", ")
                    )));
                }
                let input = profile.input(&entry.url);
                let spec = input.clone().validate().map_err(|err| match err {
                    probe::ProbeError::Invalid { field, reason } => {
                        let from = if inherited { " (from [defaults])" } else { "" };
                        invalid(format!("{}{from}: {reason}", profile.key(&field)))
                    }
                    other => Error::Probe(other),
                })?;
                Some(Load { input, spec })
            }
        };
        targets.push(Target {
            name: entry.name,
            url: entry.url,
            architecture: entry.architecture,
            settings,
            load,
        });
    }
    Ok(Targets { targets, pipelines })
}

/// The keys that say where a pipeline is, which `local = true` takes from pipeline.toml.
const PLACE_KEYS: [&str; 6] =
    ["url", "results_table", "items_table", "failure_queue_url", "endpoint", "region"];

fn pipelines(entries: Vec<PipelineEntry>, origin: &str) -> Result<Vec<Pipeline>, Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut pipelines = Vec::with_capacity(entries.len());
    for entry in entries {
        let name = entry.name.trim().to_owned();
        if name.is_empty() {
            return Err(Error::Invalid(format!("{origin}: a pipeline has an empty name")));
        }
        if !seen.insert(name.clone()) {
            return Err(Error::Invalid(format!("{origin}: pipeline {name:?} appears twice")));
        }
        let invalid = |what: String| Error::Invalid(format!("{origin}: pipeline {name:?}: {what}"));
        let place = [
            &entry.url,
            &entry.results_table,
            &entry.items_table,
            &entry.failure_queue_url,
            &entry.endpoint,
            &entry.region,
        ];
        let given: Vec<&str> =
            PLACE_KEYS.iter().zip(place).filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
        let nonempty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let setup = if entry.local {
            if !given.is_empty() {
                return Err(invalid(format!(
                    "local = true reads .local/pipeline.toml (written by scripts/local up); leave out {}",
                    given.join(", ")
                )));
            }
            None
        } else {
            let missing: Vec<&str> = [
                ("url", &entry.url),
                ("results_table", &entry.results_table),
                ("items_table", &entry.items_table),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
            .collect();
            if !missing.is_empty() {
                return Err(invalid(format!(
                    "{} missing: name the deployed pipeline (its stack's outputs), or say local = true",
                    missing.join(", ")
                )));
            }
            let setup = crate::pipeline::Setup {
                url: entry.url,
                results_table: entry.results_table.unwrap_or_default(),
                items_table: entry.items_table.unwrap_or_default(),
                failure_queue_url: nonempty(entry.failure_queue_url),
                endpoint: nonempty(entry.endpoint),
                region: nonempty(entry.region),
            };
            setup.check().map_err(|e| invalid(e.to_string()))?;
            Some(setup)
        };
        let profile = entry.load.unwrap_or_default();
        let url = setup.as_ref().and_then(|s| s.url.as_deref()).unwrap_or(LOCAL_STAND_IN);
        let load = crate::pipeline::item_load(profile.input(url));
        load.clone().validate().map_err(|err| match err {
            probe::ProbeError::Invalid { field, reason } if field == "ids" => {
                invalid(format!("load.body: {reason} (the report traces each item by its id)"))
            }
            probe::ProbeError::Invalid { field, reason } => {
                invalid(format!("{}: {reason}", profile.key(&field)))
            }
            other => Error::Probe(other),
        })?;
        let mut options = crate::pipeline::Options::default();
        for (key, text, into) in [
            ("drain_timeout", &entry.drain_timeout, &mut options.drain_timeout),
            ("poll", &entry.poll, &mut options.poll),
        ] {
            if let Some(text) = text {
                *into = probe::load::parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(|| {
                    invalid(format!("{key}: {text:?} is not a duration like 60s, 1m30s or 250ms"))
                })?;
            }
        }
        pipelines.push(Pipeline { name, setup, load, options });
    }
    Ok(pipelines)
}

fn merge(own: Settings, defaults: &Settings) -> Settings {
    let d = defaults.clone();
    Settings {
        count: own.count.or(d.count),
        concurrency: own.concurrency.or(d.concurrency),
        warmup: own.warmup.or(d.warmup),
        timeout_ms: own.timeout_ms.or(d.timeout_ms),
        via_lambda: own.via_lambda.or(d.via_lambda).filter(|f| !f.is_empty()),
        memory_mb: own.memory_mb.or(d.memory_mb),
        arch: own.arch.or(d.arch),
        duration_ms: own.duration_ms.or(d.duration_ms),
        load: own.load.or(d.load).filter(|l| !l.is_off()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_their_defaults_and_keep_their_own_settings() {
        let targets = parse(
            r#"
            [defaults]
            count = 500
            via_lambda = "probe"
            [[target]]
            name = "a"
            url = "https://a.example/hits"
            architecture = "lambda-dynamodb"
            [[target]]
            name = "b"
            url = "http://b.example:8000/hits"
            architecture = "ec2"
            count = 10
            via_lambda = ""
            "#,
            "t.toml",
        )
        .expect("valid")
        .targets;
        assert_eq!(targets[0].settings.count, Some(500));
        assert_eq!(targets[0].settings.via_lambda.as_deref(), Some("probe"));
        assert_eq!(targets[1].settings.count, Some(10));
        assert_eq!(targets[1].settings.via_lambda, None, "an empty via_lambda means: from here");
    }

    #[test]
    fn bad_targets_files_say_what_is_wrong() {
        let cases = [
            ("", "no [[target]] or [[pipeline]] entries"),
            ("[[target]]\nname='a'\nurl='ftp://x'\narchitecture='ec2'", "not http(s)"),
            (
                "[[target]]\nname='a'\nurl='http://x'\narchitecture='ec2'\n[[target]]\nname='a'\nurl='http://y'\narchitecture='ec2'",
                "appears twice",
            ),
            ("[[target]]\nname='a'\nurl='http://x'\narchitecture='ec2'\ncolour='red'", "unknown field"),
            ("[[target]]\nname='a'\nurl='http://x'", "architecture"),
        ];
        for (text, expected) in cases {
            let err = parse(text, "t.toml").expect_err(text).to_string();
            assert!(err.contains("t.toml") && err.contains(expected), "{text:?} → {err}");
        }
    }

    fn one(extra: &str) -> Result<Target, Error> {
        let text =
            format!("[[target]]\nname = 'pipeline'\nurl = 'http://x/items'\narchitecture = 'ec2'\n{extra}");
        parse(&text, "t.toml").map(|mut file| file.targets.remove(0))
    }

    #[test]
    fn a_preset_name_is_a_load_profile_and_a_load_table_holds_the_load_flags() {
        let seed = one("load = 'seed-003'").expect("valid");
        let load = seed.load.expect("a load run");
        assert_eq!(load.input.preset.as_deref(), Some("seed-003"));
        assert_eq!(load.input.url.as_deref(), Some("http://x/items"));
        assert_eq!(load.spec.duration(), std::time::Duration::from_secs(60));

        let table =
            one("[target.load]\npreset = 'items'\nrate = 200\nmax_vus = 20\nstages = ['10s:400', '5s:0']\n\
             headers = ['X-Run: {{uuid}}']\nexpect = '200-299'\ntimeout = '5s'")
            .expect("valid");
        let load = table.load.expect("a load run");
        assert_eq!(load.input.rate, Some(200.0), "an integer rate reads as a rate");
        assert_eq!(load.input.stages.as_deref(), Some("10s:400,5s:0"));
        assert_eq!(load.input.headers, ["X-Run: {{uuid}}"]);
        assert!(matches!(load.spec.mode(), probe::load::Mode::Open { max_vus: 20, .. }));
        assert_eq!(load.spec.duration(), std::time::Duration::from_secs(15));

        let inline = one("load = { vus = 3, iterations = 30, stages = '5s:3' }").expect("valid");
        assert_eq!(inline.load.expect("a load run").input.stages.as_deref(), Some("5s:3"));
        assert!(one("").expect("valid").load.is_none(), "no load: the sequential probe");
    }

    #[test]
    fn a_load_in_the_defaults_makes_every_target_a_load_run_unless_it_says_load_empty() {
        let targets = parse(
            r#"
            [defaults]
            count = 500
            timeout_ms = 2000
            load = { preset = "hits", vus = 4, duration = "5s" }
            [[target]]
            name = "loaded"
            url = "http://a/hits"
            architecture = "ec2"
            [[target]]
            name = "own load"
            url = "http://a/hits"
            architecture = "ec2"
            load = "hits"
            [[target]]
            name = "probed"
            url = "http://b/hits"
            architecture = "ec2"
            load = ""
            count = 20
            "#,
            "t.toml",
        )
        .expect("valid")
        .targets;
        assert_eq!(targets[0].load.as_ref().and_then(|l| l.input.vus), Some(4));
        let own = targets[1].load.as_ref().expect("a load run");
        assert_eq!((own.input.vus, own.input.duration.as_deref()), (None, None), "replaced, not merged");
        assert!(targets[2].load.is_none());
        assert_eq!((targets[2].settings.count, targets[2].settings.timeout_ms), (Some(20), Some(2000)));
    }

    #[test]
    fn a_load_run_refuses_the_sequential_probe_settings_by_target() {
        let err = one("count = 10\nwarmup = 2\nload = 'hits'").expect_err("conflict").to_string();
        assert!(
            err.starts_with("t.toml: target \"pipeline\": count, warmup set the sequential probe"),
            "{err}"
        );
        let err = parse(
            "[defaults]\nload = 'hits'\n[[target]]\nname = 'p'\nurl = 'http://x/'\narchitecture = 'ec2'\ntimeout_ms = 5",
            "t.toml",
        )
        .expect_err("conflict")
        .to_string();
        assert!(err.contains("target \"p\": timeout_ms") && err.contains("load = \"\""), "{err}");
    }

    #[test]
    fn a_bad_load_profile_names_the_target_and_the_key() {
        let cases = [
            ("load = 'seed-004'", "target \"pipeline\": load: unknown preset \"seed-004\"; accepted: hits"),
            ("[target.load]\npreset = 'nope'", "target \"pipeline\": load.preset: unknown preset"),
            ("[target.load]\nvus = 0", "target \"pipeline\": load.vus: must be from 1 to"),
            ("[target.load]\nrate = 5\nvus = 2", "load.rate: give vus"),
            ("[target.load]\nmax_vus = 5", "load.max_vus: bounds an open loop"),
            ("[target.load]\nstages = ['10s']", "load.stages: "),
            ("[target.load]\nheaders = ['NoColon']", "load.headers: \"NoColon\" is not \"Name: value\""),
            ("[target.load]\nbody = '{{nope}}'", "load.body: "),
            ("[target.load]\nduration = 'forever'", "load.duration: must be a duration"),
            ("[target.load]\nvu = 3", "unknown field `vu`"),
            ("[target.load]\nurl = 'http://y/'", "unknown field `url`"),
            ("load = 3", "a `latency load` preset name"),
        ];
        for (extra, expected) in cases {
            let err = one(extra).expect_err(extra).to_string();
            assert!(err.starts_with("t.toml") && err.contains(expected), "{extra:?} → {err}");
        }
        let err = parse(
            "[defaults]\nload = { vus = -1 }\n[[target]]\nname = 'p'\nurl = 'http://x/'\narchitecture = 'ec2'",
            "t.toml",
        )
        .expect_err("bad default")
        .to_string();
        assert!(err.contains("target \"p\": load.vus (from [defaults]): must be"), "{err}");
    }
}

#[cfg(test)]
mod pipelines {
    use std::time::Duration;

    use super::*;

    fn pipelines(text: &str) -> Result<Vec<Pipeline>, Error> {
        parse(text, "t.toml").map(|file| file.pipelines)
    }

    #[test]
    fn a_pipeline_is_named_by_its_url_and_tables_or_local_and_loads_the_seeds_run_by_default() {
        let file = parse(
            r#"
            [[target]]
            name = "a"
            url = "http://a/hits"
            architecture = "ec2"
            [[pipeline]]
            name = "deployed"
            url = "https://abc.execute-api.eu-west-2.amazonaws.com/items"
            results_table = "results"
            items_table = "items"
            failure_queue_url = "https://sqs.eu-west-2.amazonaws.com/123456789012/failures"
            region = "eu-west-1"
            endpoint = ""
            drain_timeout = "2m"
            poll = "100ms"
            [[pipeline]]
            name = "local"
            local = true
            [pipeline.load]
            vus = 5
            duration = "5s"
            "#,
            "t.toml",
        )
        .expect("valid");
        assert_eq!(file.targets.len(), 1);
        let [deployed, local] = &file.pipelines[..] else { panic!("two pipelines") };
        let setup = deployed.setup.as_ref().expect("named");
        assert_eq!(setup.url.as_deref(), Some("https://abc.execute-api.eu-west-2.amazonaws.com/items"));
        assert_eq!((setup.results_table.as_str(), setup.items_table.as_str()), ("results", "items"));
        assert_eq!((setup.region.as_deref(), setup.endpoint.as_deref()), (Some("eu-west-1"), None));
        assert_eq!(
            (deployed.options.drain_timeout, deployed.options.poll),
            (Duration::from_secs(120), Duration::from_millis(100))
        );
        // The default load: the seed's 10 VUs × 60 s, its item stamped in ms, the ids kept.
        let spec = deployed.load.clone().validate().expect("valid");
        assert_eq!(probe::load::scenario(&spec), "closed loop, 10 VUs for 1m");
        assert!(deployed.load.ids && deployed.load.body.as_deref().is_some_and(|b| b.contains("{{now_ms}}")));
        assert!(local.setup.is_none(), "local = true: pipeline.toml, read when measured");
        assert_eq!((local.load.vus, local.load.duration.as_deref()), (Some(5), Some("5s")));
        assert_eq!(local.options.drain_timeout, Duration::from_secs(60));
        // Pipelines alone are a targets file too; an open loop is a rate.
        let open =
            pipelines("[[pipeline]]\nname = 'p'\nlocal = true\nload = { rate = 50, duration = '10s' }")
                .expect("valid");
        assert_eq!(open[0].load.rate, Some(50.0));
    }

    #[test]
    fn a_bad_pipeline_table_names_the_pipeline_and_what_is_wrong() {
        let named = "url = 'http://x/items'\nresults_table = 'r'\nitems_table = 'i'";
        let ftp = format!("name = 'p'\n{}", named.replace("http://x", "ftp://x"));
        let queue = format!("name = 'p'\n{named}\nfailure_queue_url = 'failures'");
        let blank = format!("name = 'p'\n{}", named.replace("'r'", "' '"));
        let cases = [
            ("name = 'p'", "pipeline \"p\": url, results_table, items_table missing: name the deployed pipeline (its stack's outputs), or say local = true".to_owned()),
            ("name = 'p'\nurl = 'http://x/items'\nitems_table = 'i'", "pipeline \"p\": results_table missing".to_owned()),
            ("name = 'p'\nlocal = true\nurl = 'http://x/items'\nregion = 'eu-west-1'", "pipeline \"p\": local = true reads .local/pipeline.toml (written by scripts/local up); leave out url, region".to_owned()),
            (ftp.as_str(), "pipeline \"p\": url \"ftp://x/items\" is not an http(s) URL".to_owned()),
            (queue.as_str(), "pipeline \"p\": failure queue \"failures\" is not an SQS queue URL".to_owned()),
            (blank.as_str(), "pipeline \"p\": the results table has no name".to_owned()),
            ("name = ' '\nlocal = true", "a pipeline has an empty name".to_owned()),
            ("name = 'p'\nlocal = true\ndrain_timeout = 'soon'", "pipeline \"p\": drain_timeout: \"soon\" is not a duration".to_owned()),
            ("name = 'p'\nlocal = true\npoll = '0s'", "pipeline \"p\": poll: \"0s\" is not a duration".to_owned()),
            ("name = 'p'\nlocal = true\nload = { vus = 0 }", "pipeline \"p\": load.vus: must be from 1 to".to_owned()),
            ("name = 'p'\nlocal = true\nload = { rate = 5, vus = 2 }", "pipeline \"p\": load.rate: give vus".to_owned()),
            ("name = 'p'\nlocal = true\nload = 'seed-004'", "pipeline \"p\": load: unknown preset \"seed-004\"".to_owned()),
            ("name = 'p'\nlocal = true\nload = { body = '{}' }", "pipeline \"p\": load.body: the requests carry no {{id}}".to_owned()),
            ("name = 'p'\nlocal = true\nvus = 5", "unknown field `vus`".to_owned()),
            ("name = 'p'\nlocal = 'yes'", "invalid type".to_owned()),
            ("local = true", "missing field `name`".to_owned()),
        ];
        for (entry, expected) in cases {
            let text = format!("[[pipeline]]\n{entry}");
            let err = pipelines(&text).expect_err(entry).to_string();
            assert!(err.starts_with("t.toml: ") && err.contains(&expected), "{entry:?} → {err}");
        }
        let twice = "[[pipeline]]\nname = 'p'\nlocal = true\n[[pipeline]]\nname = 'p'\nlocal = true";
        assert!(pipelines(twice).expect_err("twice").to_string().contains("pipeline \"p\" appears twice"));
    }
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_targets_file_parses_and_prices() {
        let targets = super::parse(include_str!("../targets.example.toml"), "targets.example.toml")
            .expect("the example parses")
            .targets;
        assert!(targets.len() >= 4);
        for target in targets {
            cost::profile(&target.architecture).expect("a known architecture");
        }
    }

    #[test]
    fn the_example_pipeline_parses_once_uncommented() {
        let example = include_str!("../targets.example.toml");
        let start = example.find("# [[pipeline]]\n").expect("the pipeline example");
        let block: Vec<&str> = example[start..]
            .lines()
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect();
        let file = super::parse(&block.join("\n"), "example").unwrap_or_else(|e| panic!("{block:?}\n{e}"));
        let setup = file.pipelines[0].setup.as_ref().expect("named by its outputs");
        assert!(setup.failure_queue_url.is_some() && file.targets.is_empty());
    }

    #[test]
    fn the_example_load_target_parses_in_either_form_once_uncommented() {
        let example = include_str!("../targets.example.toml");
        let start = example.find("# [[target]]\n# name = \"pipeline").expect("the load example");
        let (probed, block) = example.split_at(start);
        let lines: Vec<&str> = block.lines().map(|l| l.strip_prefix("# ").unwrap_or(l)).collect();
        let shorthand: Vec<&str> =
            lines.iter().copied().take_while(|l| !l.starts_with("[target.load]")).collect();
        let table: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("load = ")).collect();
        for (form, preset) in [(shorthand, "seed-003"), (table, "items")] {
            let text = format!("{probed}{}", form.join("\n"));
            let targets = super::parse(&text, "example").unwrap_or_else(|e| panic!("{text}\n{e}")).targets;
            let load = targets.last().and_then(|t| t.load.as_ref()).expect("a load target");
            assert_eq!(load.input.preset.as_deref(), Some(preset));
        }
    }
}
