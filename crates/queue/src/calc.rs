//! The message contract and the calculation.
//!
//! A message body is either a JSON object with a number `x` — other members are ignored, as API
//! Gateway's request validator (the same JSON schema) lets them pass — or x itself as plain text
//! (`1.5`, `1e-05`: what the seed's RabbitMQ driver sends, Python's `str(x)`); either way
//! 0 ≤ x ≤ max (the template's `MaxX`). `calc(x)` takes x seconds and returns x; its result goes
//! back as plain text ([`result_text`]) to a caller that asked for a reply ([`crate::rpc`]).

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
    /// Parses and validates a message body: `{"x": …}`, or a plain number. Every failure is
    /// [`Error::Poison`] with a reason that says what is wrong (it ends up in the logs next to
    /// the message id, and in the error reply of a request–reply call).
    pub fn parse(body: &str, max_x: f64) -> Result<Calculation, Error> {
        let x = if body.trim_start().starts_with('{') { json_x(body)? } else { plain_x(body)? };
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

/// x from a JSON object body (`{"x": …}`).
fn json_x(body: &str) -> Result<f64, Error> {
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(|e| Error::Poison(format!("malformed JSON: {e}")))?;
    match parsed.get("x") {
        None => Err(Error::Poison("missing \"x\"".into())),
        Some(serde_json::Value::Number(n)) => Ok(n.as_f64().unwrap_or(f64::NAN)),
        Some(other) => Err(Error::Poison(format!("\"x\" must be a number, got {other}"))),
    }
}

/// Characters of a bad plain-text body quoted in its reason.
const QUOTED: usize = 40;

/// x from a plain-text body: a decimal number, surrounding whitespace allowed (`1.5`, `2`,
/// `1e-05`, as Python's `str()` writes them). `inf` and `nan` parse, and are refused as not
/// finite by the caller.
fn plain_x(body: &str) -> Result<f64, Error> {
    body.trim().parse::<f64>().map_err(|_| {
        let mut quoted: String = body.chars().take(QUOTED).collect();
        if body.chars().nth(QUOTED).is_some() {
            quoted.push('…');
        }
        Error::Poison(format!("{quoted:?} is neither a number nor a JSON object {{\"x\": <number>}}"))
    })
}

/// A request body for `x`, as the driver sends it.
pub fn body(x: f64) -> String {
    serde_json::json!({ "x": x }).to_string()
}

/// `x` as plain text: the body of a plain-text request (the seed's `str(x)`) and of a result
/// reply. Rust's shortest representation that reads back as the same `f64` (`1.5`, `2`,
/// `0.00001`), which Python's `float()` reads too.
pub fn result_text(x: f64) -> String {
    x.to_string()
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
    fn a_plain_number_is_a_calculation_as_the_seeds_rabbitmq_driver_sends_it() {
        for (body, x) in
            [("1.5", 1.5), ("0", 0.0), ("2", 2.0), ("1e-05", 1e-5), (" 0.25\n", 0.25), ("2.0", 2.0)]
        {
            assert_eq!(Calculation::parse(body, 2.0).unwrap().x, x, "{body:?}");
        }
    }

    #[test]
    fn bad_plain_text_is_poison_with_a_reason() {
        assert!(poison("2.5").contains("out of range"));
        assert!(poison("-1").contains("out of range"));
        assert!(poison("inf").contains("finite"));
        assert!(poison("NaN").contains("finite"));
        assert!(poison("").contains("neither a number nor a JSON object"));
        assert!(poison("\"1.5\"").contains("neither a number"));
        let long = poison(&"9".repeat(30).replace('9', "a9"));
        assert!(long.contains('…') && long.len() < 120, "{long}");
    }

    #[test]
    fn the_result_text_reads_back_as_the_same_number() {
        for x in [0.0, 1.5, 2.0, 1e-5, 0.1 + 0.2, 1.999_999_999_999] {
            assert_eq!(result_text(x).parse::<f64>().unwrap(), x);
            assert_eq!(Calculation::parse(&result_text(x), 2.0).unwrap().x, x);
        }
        assert_eq!(result_text(1.5), "1.5");
    }

    #[test]
    fn bad_bodies_are_poison_with_a_reason() {
        assert!(poison("not json").contains("neither a number nor a JSON object"));
        assert!(poison(r#"{"x": 1"#).contains("malformed JSON"));
        assert!(poison("{}").contains("missing"));
        assert!(poison(r#"{"x": "1"}"#).contains("must be a number"));
        assert!(poison(r#"{"x": null}"#).contains("must be a number"));
        assert!(poison(r#"{"x": -0.1}"#).contains("out of range"));
        assert!(poison(r#"{"x": 2.01}"#).contains("out of range"));
        assert!(
            poison(r#"{"x": 1e400}"#).contains("finite") || poison(r#"{"x": 1e400}"#).contains("malformed")
        );
        assert!(poison("[1]").contains("neither a number nor a JSON object"));
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
