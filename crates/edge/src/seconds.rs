//! Durations from flags and variables, for the server kit's settings.

use std::time::Duration;

/// A number of seconds from a flag or variable (`2.5`, `0`): finite and not negative.
pub fn seconds(value: &str) -> Result<Duration, SecondsError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| SecondsError(value.to_owned()))
}

/// A value that is not a number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a number of seconds")]
pub struct SecondsError(String);
