//! The targets file of `latency report`: named URLs, how to probe them, what they cost.
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
//! ```

use serde::Deserialize;

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub architecture: String,
    #[serde(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Settings,
    #[serde(default, rename = "target")]
    targets: Vec<Target>,
}

/// Parses a targets file; `origin` names it in errors. Each target's settings are completed
/// from `[defaults]`. Names must be unique and URLs http(s).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Target>, Error> {
    let file: File = toml::from_str(text).map_err(|e| Error::Invalid(format!("{origin}: {e}")))?;
    if file.targets.is_empty() {
        return Err(Error::Invalid(format!("{origin}: no [[target]] entries")));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut targets = Vec::with_capacity(file.targets.len());
    for mut target in file.targets {
        let name = target.name.trim();
        if name.is_empty() {
            return Err(Error::Invalid(format!("{origin}: a target has an empty name")));
        }
        if !seen.insert(name.to_owned()) {
            return Err(Error::Invalid(format!("{origin}: target {name:?} appears twice")));
        }
        if !(target.url.starts_with("http://") || target.url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "{origin}: target {name:?}: url {:?} is not http(s)",
                target.url
            )));
        }
        target.settings = merge(target.settings, &file.defaults);
        targets.push(target);
    }
    Ok(targets)
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
        .expect("valid");
        assert_eq!(targets[0].settings.count, Some(500));
        assert_eq!(targets[0].settings.via_lambda.as_deref(), Some("probe"));
        assert_eq!(targets[1].settings.count, Some(10));
        assert_eq!(targets[1].settings.via_lambda, None, "an empty via_lambda means: from here");
    }

    #[test]
    fn bad_targets_files_say_what_is_wrong() {
        let cases = [
            ("", "no [[target]]"),
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
}

#[cfg(test)]
mod example {
    #[test]
    fn the_shipped_example_targets_file_parses_and_prices() {
        let targets = super::parse(include_str!("../targets.example.toml"), "targets.example.toml")
            .expect("the example parses");
        assert!(targets.len() >= 4);
        for target in targets {
            cost::profile(&target.architecture).expect("a known architecture");
        }
    }
}
