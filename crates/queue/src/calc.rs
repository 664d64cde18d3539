//! The message contract and the calculation.
//!
//! A message body is a JSON object with a number `x`, 0 ≤ x ≤ max (the template's `MaxX`); other
//! members are ignored, as API Gateway's request validator (the same JSON schema) lets them pass.
//! `calc(x)` takes x seconds and returns x.

use std::time::Duration;

use crate::Error;

/// The template's `MaxX` default: the largest x a message may ask for, in seconds.
pub const DEFAULT_MAX_X: f64 = 10.0;

/// A valid calculation request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calculation {
    /// Seconds the calculation takes; finite, 0 ≤ x ≤ max.
    pub x: f64,
}

impl Calculation {
    /// Parses and validates a message body. Every failure is [`Error::Poison`] with a reason
    /// that says what is wrong (it ends up in the logs next to the message id).
    pub fn parse(body: &str, max_x: f64) -> Result<Calculation, Error> {
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body).map_err(|e| {
            let what =
                if body.trim_start().starts_with('{') { "malformed JSON" } else { "not a JSON object" };
            Error::Poison(format!("{what}: {e}"))
        })?;
        let x = match parsed.get("x") {
            None => return Err(Error::Poison("missing \"x\"".into())),
            Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(other) => return Err(Error::Poison(format!("\"x\" must be a number, got {other}"))),
        };
        if !x.is_finite() {
            return Err(Error::Poison("\"x\" is not a finite number".into()));
        }
        if !(0.0..=max_x).contains(&x) {
            return Err(Error::Poison(format!("\"x\" = {x} is out of range: 0 <= x <= {max_x}")));
        }
        Ok(Calculation { x })
    }

    /// How long the calculation takes.
    pub fn duration(self) -> Duration {
        Duration::from_secs_f64(self.x)
    }

    /// Runs the calculation: x seconds (asleep; the worker's concurrency is the point), returns x.
    pub async fn run(self) -> f64 {
        tokio::time::sleep(self.duration()).await;
        self.x
    }
}

/// A request body for `x`, as the driver sends it.
pub fn body(x: f64) -> String {
    serde_json::json!({ "x": x }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poison(body: &str) -> String {
        match Calculation::parse(body, 2.0) {
            Err(Error::Poison(reason)) => reason,
            other => panic!("{body:?} should be poison, got {other:?}"),
        }
    }

    #[test]
    fn a_number_within_range_is_a_calculation() {
        assert_eq!(Calculation::parse(r#"{"x": 1.5}"#, 2.0).unwrap().x, 1.5);
        assert_eq!(Calculation::parse(r#"{"x": 0}"#, 2.0).unwrap().x, 0.0);
        assert_eq!(Calculation::parse(r#"{"x": 2, "note": "extra members pass"}"#, 2.0).unwrap().x, 2.0);
    }

    #[test]
    fn bad_bodies_are_poison_with_a_reason() {
        assert!(poison("not json").contains("not a JSON object"));
        assert!(poison(r#"{"x": 1"#).contains("malformed JSON"));
        assert!(poison("{}").contains("missing"));
        assert!(poison(r#"{"x": "1"}"#).contains("must be a number"));
        assert!(poison(r#"{"x": null}"#).contains("must be a number"));
        assert!(poison(r#"{"x": -0.1}"#).contains("out of range"));
        assert!(poison(r#"{"x": 2.01}"#).contains("out of range"));
        assert!(
            poison(r#"{"x": 1e400}"#).contains("finite") || poison(r#"{"x": 1e400}"#).contains("malformed")
        );
        assert!(poison("[1]").contains("not a JSON object") || poison("[1]").contains("malformed"));
    }

    #[test]
    fn the_driver_body_parses_back() {
        assert_eq!(Calculation::parse(&body(0.25), 2.0).unwrap().x, 0.25);
    }

    #[tokio::test(start_paused = true)]
    async fn calc_takes_x_seconds_and_returns_x() {
        let started = tokio::time::Instant::now();
        assert_eq!(Calculation { x: 1.25 }.run().await, 1.25);
        assert_eq!(started.elapsed(), Duration::from_millis(1250));
    }
}
