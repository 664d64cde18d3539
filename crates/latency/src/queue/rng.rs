//! The draw: the run's N values of x ~ U(0, max) from a seeded SplitMix64, so that `--seed`
//! repeats a run exactly, and the message ids, unique across runs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A seed from the clock and the process id, for a run without `--seed`.
pub(super) fn clock_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // Folded to 53 bits: the seed is printed and typed back as --seed.
    SplitMix64::new(nanos as u64 ^ u64::from(std::process::id())).next_u64() >> 11
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and good enough to draw x values.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, max).
    pub fn below(&mut self, max: f64) -> f64 {
        let x = self.next_f64() * max;
        // The product can round up to `max` itself; keep the interval half-open.
        if x < max { x } else { max * (1.0 - f64::EPSILON) }
    }
}

/// The calculations of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub xs: Vec<f64>,
    pub seed: u64,
    /// Prefix of the message ids: unique per run (the ledger remembers ids across runs), even
    /// when the seed repeats.
    pub run_id: String,
}

impl Plan {
    /// N values of x ~ U(0, max), the same for the same seed.
    pub fn draw(n: usize, max: f64, seed: u64) -> Plan {
        let mut rng = SplitMix64::new(seed);
        let xs = (0..n).map(|_| rng.below(max)).collect();
        Plan { xs, seed, run_id: run_id() }
    }

    /// The longest calculation: the run cannot end sooner.
    pub fn ideal(&self) -> f64 {
        self.xs.iter().copied().fold(0.0, f64::max)
    }

    pub(super) fn message_id(&self, index: usize) -> String {
        format!("{}-{index}", self.run_id)
    }
}

fn run_id() -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("latency-{nanos:x}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_reproducible_and_within_zero_to_max() {
        let a = Plan::draw(1000, 2.0, 42);
        let b = Plan::draw(1000, 2.0, 42);
        assert_eq!(a.xs, b.xs, "same seed, same x values");
        assert_ne!(a.xs, Plan::draw(1000, 2.0, 43).xs, "another seed, other values");
        assert!(a.xs.iter().all(|&x| (0.0..2.0).contains(&x)));
        let mean = a.xs.iter().sum::<f64>() / 1000.0;
        assert!((0.9..1.1).contains(&mean), "U(0, 2) has mean 1, got {mean}");
        assert_ne!(a.run_id, b.run_id, "message ids never repeat across runs, even with the same seed");
        // The first outputs of SplitMix64 seeded with 0 (the reference implementation's).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        // An x that would round up to max stays below it.
        assert!(SplitMix64(u64::MAX).below(f64::MIN_POSITIVE) < f64::MIN_POSITIVE);
    }

    #[test]
    fn the_ideal_is_the_longest_x() {
        let mut plan = Plan::draw(0, 1.0, 1);
        assert_eq!(plan.ideal(), 0.0);
        plan.xs = vec![0.3, 1.7, 0.2];
        assert_eq!(plan.ideal(), 1.7);
        let plan = Plan::draw(500, 2.0, 7);
        assert_eq!(plan.ideal(), plan.xs.iter().copied().fold(f64::MIN, f64::max));
    }
}
