//! Request templates: text with `{{name}}` placeholders, filled in for each request.
//!
//! | placeholder | value |
//! |---|---|
//! | `{{id}}` | unique per request of the run: `<run id>-<sequence number>` (the run id is random, so two runs never share an id) |
//! | `{{vu}}` | the virtual user sending it (0-based; in an open-loop run, the slot it went out on) |
//! | `{{iter}}` | that virtual user's iteration (0-based) |
//! | `{{seq}}` | the request's sequence number in the run (0-based) |
//! | `{{now_s}}`, `{{now_ms}}` | the send time, whole seconds / milliseconds since the Unix epoch |
//! | `{{uuid}}` | a random UUID (version 4) |
//! | `{{int A B}}` | a random whole number from A to B (inclusive) |
//! | `{{float A B}}` | a random number from A to B, three decimals |
//!
//! Parsed once when the spec is validated; a bad placeholder is an error then, before any
//! request is sent. There is no escape: `{{` always opens a placeholder.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The names the template accepts, for error messages.
const NAMES: &str = "id, vu, iter, seq, now_s, now_ms, uuid, int A B, float A B";

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Id,
    Vu,
    Iter,
    Seq,
    NowS,
    NowMs,
    Uuid,
    Int(i64, i64),
    Float(f64, f64),
}

/// What one request's placeholders are filled from.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub run_id: &'a str,
    pub seq: u64,
    pub vu: u64,
    pub iter: u64,
}

/// A template that does not parse: what is wrong, and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError(format!(
                    "\"{{{{\" at byte {} is never closed with \"}}}}\"",
                    text.len() - rest.len() + open
                )));
            };
            parts.push(placeholder(after[..close].trim())?);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Whether every request gets the same text (no placeholders).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Whether the text holds `{{id}}`.
    pub fn uses_id(&self) -> bool {
        self.parts.contains(&Part::Id)
    }

    /// Appends this request's text to `out`.
    pub fn render_into(&self, vars: &Vars<'_>, out: &mut String) {
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Text(text) => {
                    out.push_str(text);
                    Ok(())
                }
                Part::Id => write!(out, "{}-{}", vars.run_id, vars.seq),
                Part::Vu => write!(out, "{}", vars.vu),
                Part::Iter => write!(out, "{}", vars.iter),
                Part::Seq => write!(out, "{}", vars.seq),
                Part::NowS => write!(out, "{}", since_epoch().as_secs()),
                Part::NowMs => write!(out, "{}", since_epoch().as_millis()),
                Part::Uuid => write_uuid(out, fastrand::u128(..)),
                Part::Int(low, high) => write!(out, "{}", fastrand::i64(*low..=*high)),
                Part::Float(low, high) => write!(out, "{:.3}", low + fastrand::f64() * (high - low)),
            };
        }
    }

    /// This request's text.
    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        self.render_into(vars, &mut out);
        out
    }
}

fn placeholder(inner: &str) -> Result<Part, TemplateError> {
    let mut words = inner.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let no_args = |part: Part| {
        if args.is_empty() {
            Ok(part)
        } else {
            Err(TemplateError(format!("{{{{{name}}}}} takes no arguments, got {{{{{inner}}}}}")))
        }
    };
    match name {
        "id" => no_args(Part::Id),
        "vu" => no_args(Part::Vu),
        "iter" => no_args(Part::Iter),
        "seq" => no_args(Part::Seq),
        "now_s" => no_args(Part::NowS),
        "now_ms" => no_args(Part::NowMs),
        "uuid" => no_args(Part::Uuid),
        "int" => {
            let [low, high] = two(name, inner, &args, |s| s.parse::<i64>().ok())?;
            Ok(Part::Int(low, high))
        }
        "float" => {
            let [low, high] = two(name, inner, &args, |s| s.parse::<f64>().ok().filter(|x| x.is_finite()))?;
            Ok(Part::Float(low, high))
        }
        _ => Err(TemplateError(format!("unknown placeholder {{{{{inner}}}}}; accepted: {NAMES}"))),
    }
}

/// The two bounds of `int`/`float`, low ≤ high.
fn two<T: PartialOrd + Copy>(
    name: &str,
    inner: &str,
    args: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<[T; 2], TemplateError> {
    let bounds = match args {
        [low, high] => parse(low).zip(parse(high)),
        _ => None,
    };
    match bounds {
        Some((low, high)) if low <= high => Ok([low, high]),
        _ => Err(TemplateError(format!(
            "{{{{{inner}}}}}: {name} takes two numbers, low then high, e.g. {{{{{name} 1 100}}}}"
        ))),
    }
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// A version-4 UUID from 128 random bits, in its canonical text form.
fn write_uuid(out: &mut String, random: u128) -> std::fmt::Result {
    let bits = (random & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    write!(out, "{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(seq: u64) -> Vars<'static> {
        Vars { run_id: "r1", seq, vu: 3, iter: 7 }
    }

    #[test]
    fn placeholders_are_filled_per_request() {
        let t = Template::parse(r#"{"id":"{{id}}","vu":{{ vu }},"iter":{{iter}},"seq":{{seq}}}"#).unwrap();
        assert_eq!(t.render(&vars(41)), r#"{"id":"r1-41","vu":3,"iter":7,"seq":41}"#);
        assert!(t.uses_id() && !t.is_static());
        assert!(Template::parse("plain").unwrap().is_static());
    }

    #[test]
    fn clocks_and_random_values_stay_in_their_ranges() {
        let t = Template::parse("{{now_s}} {{now_ms}} {{int -2 2}} {{float 0 2}} {{uuid}}").unwrap();
        let before = since_epoch();
        for _ in 0..200 {
            let text = t.render(&vars(0));
            let words: Vec<&str> = text.split(' ').collect();
            let s: u64 = words[0].parse().unwrap();
            let ms: u128 = words[1].parse().unwrap();
            assert!(s >= before.as_secs() && ms >= before.as_millis());
            assert!((-2..=2).contains(&words[2].parse::<i64>().unwrap()));
            assert!((0.0..=2.0).contains(&words[3].parse::<f64>().unwrap()));
            let uuid = words[4];
            assert_eq!(uuid.len(), 36);
            assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
            assert!("89ab".contains(&uuid[19..20]), "RFC 4122 variant: {uuid}");
        }
    }

    #[test]
    fn bad_placeholders_say_what_is_accepted() {
        for (text, expected) in [
            ("{{nope}}", "accepted: id, vu"),
            ("{{id 3}}", "takes no arguments"),
            ("{{int 5 1}}", "low then high"),
            ("{{float a b}}", "two numbers"),
            ("{{int 1}}", "two numbers"),
            ("abc {{id", "never closed"),
        ] {
            let err = Template::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
