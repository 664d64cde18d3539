//! Seed 003's own figures, shown beside ours: what the original (Python functions, whole-second
//! stamps, per-second averages) measured with its k6 run — 10 virtual users for 60 s — on its
//! emulator. Quoted as published; they were never re-measured here.

use serde::Serialize;

/// The original, on its emulator.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeedFigures {
    pub requests_in_per_s: f64,
    pub items_through_per_s: f64,
    pub end_to_end_mean_s: f64,
    pub end_to_end_p99_s: f64,
    pub end_to_end_max_s: f64,
}

pub const SEED: SeedFigures = SeedFigures {
    requests_in_per_s: 28.0,
    items_through_per_s: 17.8,
    end_to_end_mean_s: 41.0,
    end_to_end_p99_s: 58.5,
    end_to_end_max_s: 59.0,
};

/// How the figures are labelled wherever they appear.
pub const LABEL: &str = "the original, on its emulator";
