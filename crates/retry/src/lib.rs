//! The one way to wait before a retry here: exponential backoff with jitter.
//!
//! The ceiling of retry `n` (1 after the first failure) is `first × 2^(n−1)`, capped at `max`.
//! The wait is drawn below it:
//!
//! * [`Jitter::Full`]: uniform in `[0, ceiling]` — for many clients that failed together (a
//!   throttled stream, an S3 object raced for): it spreads them widest, so they do not return
//!   in step;
//! * [`Jitter::Equal`]: uniform in `[ceiling/2, ceiling]` — for a process that must back off at
//!   least some (its own transaction conflicted) but still spread its retries.
//!
//! The draw is `fastrand`'s thread-local generator: jitter needs spread, not secrecy.

use std::time::Duration;

/// Where in `[0, ceiling]` a wait is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, ceiling]`.
    Full,
    /// Uniform in `[ceiling / 2, ceiling]`.
    Equal,
}

/// Exponential backoff with jitter; see the crate doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry.
    pub first: Duration,
    /// The ceiling it doubles up to.
    pub max: Duration,
    pub jitter: Jitter,
}

impl Backoff {
    /// Full jitter, from `first` doubling to `max`.
    pub const fn full(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, jitter: Jitter::Full }
    }

    /// Equal jitter, from `first` doubling to `max`.
    pub const fn equal(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, jitter: Jitter::Equal }
    }

    /// The most retry `retry` (1-based; 0 counts as 1) may wait: `first × 2^(retry−1)`, at most
    /// `max`. Never overflows, whatever the numbers.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The wait before retry `retry`, drawn as [`Backoff::jitter`] says.
    pub fn delay(&self, retry: u32) -> Duration {
        self.delay_at(retry, fastrand::f64())
    }

    /// The wait before retry `retry` for a draw `unit` in `[0, 1]` (tests, seeded callers).
    pub fn delay_at(&self, retry: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 1.0 };
        let ceiling = self.ceiling(retry);
        let share = match self.jitter {
            Jitter::Full => unit,
            Jitter::Equal => 0.5 + 0.5 * unit,
        };
        // Not `mul_f64`: it panics where the float product rounds above `Duration::MAX`.
        Duration::try_from_secs_f64(ceiling.as_secs_f64() * share).map_or(ceiling, |d| d.min(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_ceiling_doubles_from_the_first_retry_up_to_the_maximum() {
        let backoff = Backoff::full(10 * MS, 100 * MS);
        let ceilings: Vec<_> = (0..7).map(|n| backoff.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [10, 10, 20, 40, 80, 100, 100]);
        assert_eq!(backoff.ceiling(u32::MAX), 100 * MS);
    }

    #[test]
    fn full_jitter_draws_from_zero_and_equal_jitter_from_half() {
        let full = Backoff::full(20 * MS, Duration::from_secs(1));
        let equal = Backoff::equal(20 * MS, Duration::from_secs(1));
        assert_eq!(full.delay_at(3, 0.0), Duration::ZERO);
        assert_eq!(full.delay_at(3, 1.0), 80 * MS);
        assert_eq!(equal.delay_at(3, 0.0), 40 * MS);
        assert_eq!(equal.delay_at(3, 1.0), 80 * MS);
        assert_eq!(equal.delay_at(3, f64::NAN), 80 * MS, "a bad draw waits the most, never panics");
        for n in 0..40 {
            let d = equal.delay(n);
            assert!(d >= equal.ceiling(n) / 2 && d <= equal.ceiling(n), "{n}: {d:?}");
        }
    }

    #[test]
    fn draws_spread() {
        let backoff = Backoff::full(MS, Duration::from_secs(1));
        let draws: std::collections::HashSet<Duration> = (0..100).map(|_| backoff.delay(10)).collect();
        assert!(draws.len() > 50, "only {} distinct waits", draws.len());
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let backoff = Backoff::full(Duration::MAX, Duration::MAX);
        assert!(backoff.delay(40) <= Duration::MAX);
        assert_eq!(Backoff::equal(Duration::MAX, Duration::MAX).delay_at(40, 1.0), Duration::MAX);
    }
}
