//! Pure statistics over latency samples in milliseconds: no I/O, no clocks.
//!
//! Percentiles use the **nearest-rank** method on the sorted samples: the p-th percentile of n
//! samples is the sample at rank ⌈p/100 · n⌉ (1-based), so it is always one of the measured
//! values, never an interpolation between two (p50 of `[1, 2]` is 1). p100 is the maximum.

use crate::report::{Bucket, Stats};

/// Histogram bucket upper bounds (inclusive), a 1-2-5 series from 0.1 ms to 10 s. A sample
/// above the last one goes to the overflow bucket, reported with `le_ms: null`.
pub const BUCKETS_MS: [f64; 16] =
    [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];

/// `x` rounded to 2 decimals: what the report shows for milliseconds.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `x` rounded to 3 decimals (a microsecond, for samples in ms).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending); `None` when empty.
/// `p` ≤ 0 gives the minimum, `p` > 100 the maximum.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // p · n first: exact for whole p and any realistic n, so ⌈90 · 10 / 100⌉ is 9, not 10.
    let rank = (p * n as f64 / 100.0).ceil();
    let index = if rank.is_nan() || rank < 1.0 { 0 } else { (rank as usize).min(n) - 1 };
    sorted.get(index).copied()
}

/// The arithmetic mean; `None` when empty.
pub fn mean(samples: &[f64]) -> Option<f64> {
    (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64)
}

/// mean, min, p50, p90, p99, max of `samples` (any order), rounded to 2 decimals; `None` when
/// there are none.
pub fn summarize(samples: &[f64]) -> Option<Stats> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Stats {
        mean: round2(mean(&sorted)?),
        min: round2(*sorted.first()?),
        p50: round2(percentile(&sorted, 50.0)?),
        p90: round2(percentile(&sorted, 90.0)?),
        p99: round2(percentile(&sorted, 99.0)?),
        max: round2(*sorted.last()?),
    })
}

/// The compact histogram of `samples`: each sample counted in the first bucket of
/// [`BUCKETS_MS`] whose bound it does not exceed, or in the overflow bucket; only non-empty
/// buckets are listed, in ascending order, overflow last.
pub fn histogram(samples: &[f64]) -> Vec<Bucket> {
    let mut counts = [0u64; BUCKETS_MS.len() + 1];
    for &x in samples {
        let i = BUCKETS_MS.iter().position(|&le| x <= le).unwrap_or(BUCKETS_MS.len());
        counts[i] += 1;
    }
    counts
        .iter()
        .enumerate()
        .filter(|&(_, &count)| count > 0)
        .map(|(i, &count)| Bucket { le_ms: BUCKETS_MS.get(i).copied(), count })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(s: &Stats) -> bool {
        s.min <= s.p50
            && s.p50 <= s.p90
            && s.p90 <= s.p99
            && s.p99 <= s.max
            && s.min <= s.mean
            && s.mean <= s.max
    }

    #[test]
    fn nearest_rank_picks_a_measured_value() {
        let sorted: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(5.0));
        assert_eq!(percentile(&sorted, 90.0), Some(9.0));
        assert_eq!(percentile(&sorted, 99.0), Some(10.0));
        assert_eq!(percentile(&sorted, 100.0), Some(10.0));
        assert_eq!(percentile(&sorted, 10.0), Some(1.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0], 50.0), Some(1.0));
    }

    #[test]
    fn p99_of_a_hundred_samples_is_the_ninety_ninth() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile(&sorted, 50.0), Some(50.0));
    }

    #[test]
    fn no_samples_give_no_stats() {
        assert_eq!(summarize(&[]), None);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(mean(&[]), None);
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let s = summarize(&[12.34567]).unwrap();
        assert_eq!(s, Stats { mean: 12.35, min: 12.35, p50: 12.35, p90: 12.35, p99: 12.35, max: 12.35 });
    }

    #[test]
    fn equal_samples_give_equal_statistics() {
        let s = summarize(&[7.0; 1000]).unwrap();
        assert_eq!(s, Stats { mean: 7.0, min: 7.0, p50: 7.0, p90: 7.0, p99: 7.0, max: 7.0 });
    }

    #[test]
    fn statistics_are_ordered_whatever_the_samples() {
        // A deterministic spread of shapes: uniform, skewed, heavy-tailed, unsorted input.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in [1usize, 2, 3, 7, 10, 99, 100, 101, 1000, 4321] {
            let samples: Vec<f64> = (0..n)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
                    match i % 3 {
                        0 => u * 10.0,
                        1 => 0.1 / (1.0 - u * 0.999),
                        _ => u * u * 1000.0,
                    }
                })
                .collect();
            let s = summarize(&samples).unwrap();
            assert!(ordered(&s), "n={n}: {s:?}");
            let total: u64 = histogram(&samples).iter().map(|b| b.count).sum();
            assert_eq!(total, n as u64, "every sample is in one bucket");
        }
    }

    #[test]
    fn the_mean_is_the_average_and_is_rounded_to_two_decimals() {
        let s = summarize(&[1.0, 2.0, 2.0]).unwrap();
        assert_eq!(s.mean, 1.67);
        assert_eq!(s.p50, 2.0);
    }

    #[test]
    fn histogram_bounds_are_inclusive_and_empty_buckets_are_left_out() {
        let h = histogram(&[0.05, 0.1, 0.11, 0.5, 3.0, 10_000.0, 10_000.5, 60_000.0]);
        let pairs: Vec<(Option<f64>, u64)> = h.iter().map(|b| (b.le_ms, b.count)).collect();
        assert_eq!(
            pairs,
            vec![
                (Some(0.1), 2),
                (Some(0.2), 1),
                (Some(0.5), 1),
                (Some(5.0), 1),
                (Some(10_000.0), 1),
                (None, 2)
            ]
        );
    }

    #[test]
    fn rounding_keeps_two_or_three_decimals() {
        assert_eq!(round2(0.17849), 0.18);
        assert_eq!(round2(12.0), 12.0);
        assert_eq!(round3(0.17849), 0.178);
    }
}
