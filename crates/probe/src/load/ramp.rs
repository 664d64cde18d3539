//! Ramps: a value (virtual users, or arrivals per second) that moves linearly from stage to
//! stage, as k6's `stages` do, and the arrival times of an open-loop run that follows one.
//!
//! All times are seconds from the start of the run.

use std::time::Duration;

/// One stage: move linearly to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// A piecewise-linear value over time: `start` at 0, then each stage in turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Ramp {
    start: f64,
    stages: Vec<Stage>,
}

impl Ramp {
    pub fn new(start: f64, stages: Vec<Stage>) -> Ramp {
        Ramp { start, stages }
    }

    /// `value` for `duration`: what a run without stages is.
    pub fn constant(value: f64, duration: Duration) -> Ramp {
        Ramp { start: value, stages: vec![Stage { duration, target: value }] }
    }

    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    pub fn start(&self) -> f64 {
        self.start
    }

    /// How long the ramp lasts: the stages' durations added up.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest value the ramp reaches.
    pub fn max(&self) -> f64 {
        self.stages.iter().map(|s| s.target).fold(self.start, f64::max)
    }

    /// The segments: (start time, length, value at start, value at end), in order.
    fn segments(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let mut t = 0.0;
        let mut from = self.start;
        self.stages.iter().map(move |stage| {
            let segment = (t, stage.duration.as_secs_f64(), from, stage.target);
            t += stage.duration.as_secs_f64();
            from = stage.target;
            segment
        })
    }

    /// The value at `t`; the last stage's target after the end.
    pub fn value_at(&self, t: f64) -> f64 {
        let mut last = self.start;
        for (t0, length, from, to) in self.segments() {
            if t < t0 + length {
                return if length > 0.0 { from + (to - from) * ((t - t0).max(0.0) / length) } else { to };
            }
            last = to;
        }
        last
    }

    /// The first time at or after `from` at which the value is above `level`, while the ramp
    /// lasts; `None` if it never is again. Virtual user `i` of a ramping closed loop runs while
    /// the value is above `i`.
    pub fn next_above(&self, level: f64, from: f64) -> Option<f64> {
        for (t0, length, v0, v1) in self.segments() {
            let end = t0 + length;
            if end <= from {
                continue;
            }
            let start = t0.max(from);
            let at = |t: f64| if length > 0.0 { v0 + (v1 - v0) * ((t - t0) / length) } else { v1 };
            if at(start) > level {
                return Some(start);
            }
            if v1 > level && v1 > v0 {
                // Rising through `level` inside this segment: just past the crossing.
                let crossing = t0 + length * (level - v0) / (v1 - v0);
                let t = crossing.max(start) + 1e-9;
                if t < end {
                    return Some(t);
                }
            }
        }
        None
    }
}

/// The arrival times of an open-loop run whose rate (arrivals per second) follows a ramp: the
/// n-th arrival (0-based) comes when the integral of the rate from 0 reaches n, so arrival 0 is
/// at the start and a constant rate r gives n / r.
#[derive(Debug, Clone)]
pub struct Arrivals {
    /// (start time, length, rate at start, rate at end, arrivals before the segment)
    segments: Vec<(f64, f64, f64, f64, f64)>,
    cursor: usize,
}

impl Arrivals {
    pub fn new(rate: &Ramp) -> Arrivals {
        let mut before = 0.0;
        let segments = rate
            .segments()
            .map(|(t0, length, r0, r1)| {
                let segment = (t0, length, r0.max(0.0), r1.max(0.0), before);
                before += length * (r0.max(0.0) + r1.max(0.0)) / 2.0;
                segment
            })
            .collect();
        Arrivals { segments, cursor: 0 }
    }

    /// When arrival `n` is due, in seconds from the start; `None` when the ramp ends before it.
    /// Calls are cheapest with `n` rising (a cursor remembers the segment).
    pub fn time_of(&mut self, n: u64) -> Option<f64> {
        let n = n as f64;
        if self.segments.get(self.cursor).is_none_or(|s| s.4 > n) {
            self.cursor = 0;
        }
        while let Some(&(t0, length, r0, r1, before)) = self.segments.get(self.cursor) {
            let inside = length * (r0 + r1) / 2.0;
            let need = n - before;
            // Arrival exactly at the end belongs to the next segment (or to none).
            if need < inside {
                // Rate r(t) = r0 + b·t in the segment; arrivals a·t + b·t²/2 = need.
                let b = if length > 0.0 { (r1 - r0) / length } else { 0.0 };
                let root = (r0 * r0 + 2.0 * b * need).max(0.0).sqrt();
                let t = if r0 + root > 0.0 { 2.0 * need / (r0 + root) } else { 0.0 };
                return Some(t0 + t.min(length));
            }
            self.cursor += 1;
        }
        None
    }
}

/// A k6-style duration: `90s`, `1m30s`, `500ms`, `1.5h`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Stages as k6's `--stage` writes them: `DURATION:TARGET`, comma-separated
/// (`30s:100,1m:100,10s:0`).
pub fn parse_stages(text: &str) -> Result<Vec<Stage>, String> {
    let mut stages = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((duration, target)) = item.split_once(':') else {
            return Err(format!("{item:?} is not DURATION:TARGET, e.g. 30s:100"));
        };
        let duration = parse_duration(duration)
            .ok_or_else(|| format!("{item:?}: {duration:?} is not a duration like 30s or 1m30s"))?;
        let target: f64 = target
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| format!("{item:?}: {target:?} is not a number ≥ 0"))?;
        stages.push(Stage { duration, target });
    }
    if stages.is_empty() {
        return Err("no stages; give DURATION:TARGET pairs, e.g. 30s:100,1m:100".into());
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly_and_ends_with_the_duration() {
        let mut arrivals = Arrivals::new(&Ramp::constant(100.0, secs(2.0)));
        assert_eq!(arrivals.time_of(0), Some(0.0));
        assert!((arrivals.time_of(1).unwrap() - 0.01).abs() < 1e-12);
        assert!((arrivals.time_of(199).unwrap() - 1.99).abs() < 1e-9);
        assert_eq!(arrivals.time_of(200), None, "200 arrivals in 2 s at 100/s: 0..=199");
    }

    #[test]
    fn a_rising_rate_brings_arrivals_closer_together() {
        // 0 → 10/s over 10 s: 50 arrivals; the n-th at sqrt(2n) s.
        let mut arrivals = Arrivals::new(&Ramp::new(0.0, vec![Stage { duration: secs(10.0), target: 10.0 }]));
        for n in [1_u64, 8, 32, 49] {
            let t = arrivals.time_of(n).unwrap();
            assert!((t - (2.0 * n as f64).sqrt()).abs() < 1e-9, "{n}: {t}");
        }
        assert_eq!(arrivals.time_of(50), None);
        // Back to an earlier arrival after a later one: still right.
        assert!((arrivals.time_of(2).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn stages_chain_and_a_pause_has_no_arrivals() {
        let ramp = Ramp::new(
            0.0,
            vec![
                Stage { duration: secs(1.0), target: 0.0 },
                Stage { duration: secs(1.0), target: 4.0 },
                Stage { duration: secs(1.0), target: 4.0 },
            ],
        );
        assert_eq!(ramp.total(), secs(3.0));
        assert_eq!(ramp.max(), 4.0);
        assert!((ramp.value_at(1.5) - 2.0).abs() < 1e-12);
        let mut arrivals = Arrivals::new(&ramp);
        let first = arrivals.time_of(0).unwrap();
        assert!((1.0..1.0001).contains(&first), "nothing during the pause: {first}");
        // 2 arrivals in the ramp (area 2), then 4 per second.
        assert!((arrivals.time_of(2).unwrap() - 2.0).abs() < 1e-9);
        assert!((arrivals.time_of(5).unwrap() - 2.75).abs() < 1e-9);
        assert_eq!(arrivals.time_of(6), None);
    }

    #[test]
    fn a_ramping_virtual_user_knows_when_it_starts_and_stops() {
        // 0 → 4 VUs over 4 s, hold 2 s, down to 0 over 2 s.
        let ramp = Ramp::new(
            0.0,
            vec![
                Stage { duration: secs(4.0), target: 4.0 },
                Stage { duration: secs(2.0), target: 4.0 },
                Stage { duration: secs(2.0), target: 0.0 },
            ],
        );
        let start_of_vu2 = ramp.next_above(2.0, 0.0).unwrap();
        assert!((start_of_vu2 - 2.0).abs() < 1e-6, "{start_of_vu2}");
        assert_eq!(ramp.next_above(0.0, 5.0), Some(5.0), "running already");
        assert_eq!(ramp.next_above(3.0, 7.0), None, "ramping down: VU 3 is done for good");
        assert_eq!(ramp.next_above(4.0, 0.0), None, "there is never a fifth VU");
    }

    #[test]
    fn durations_and_stages_read_like_k6() {
        assert_eq!(parse_duration("60s"), Some(secs(60.0)));
        assert_eq!(parse_duration("1m30s"), Some(secs(90.0)));
        assert_eq!(parse_duration("500ms"), Some(secs(0.5)));
        assert_eq!(parse_duration("1.5h"), Some(secs(5400.0)));
        assert_eq!(parse_duration("2.5"), Some(secs(2.5)));
        for bad in ["", "s", "10x", "-1", "1m-3s", "inf"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        let stages = parse_stages("30s:100, 1m:100,10s:0").unwrap();
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[1], Stage { duration: secs(60.0), target: 100.0 });
        for (bad, expected) in
            [("30s", "DURATION:TARGET"), ("3x:1", "not a duration"), ("1s:-1", "≥ 0"), (" , ", "no stages")]
        {
            assert!(parse_stages(bad).unwrap_err().contains(expected), "{bad}");
        }
    }
}
