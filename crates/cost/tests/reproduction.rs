//! The seed's published figures (seed 000, "Results", eu-west-2, 2021), reproduced within 2%
//! from the 2021 London book and the original's assumptions: 128 MB x86_64 functions behind an
//! HTTP API, GetItem + UpdateItem per call, S3 GET + PUT per call, 730 hours a month.
//!
//! The original did not publish billed durations; these are the ones its totals imply at
//! 128 MB x86_64 ($0.0000166667 per GB-s → $0.0020833 per million calls per billed ms):
//!
//! - Rust / C++ + DynamoDB, $3.09: 3.09 − (1.16 HTTP API + 0.20 Lambda + 1.4135 WRU + 0.283 RRU)
//!   = 0.0335 → 16.1 ms → **16 ms** billed.
//! - Python + DynamoDB, $3.24: 3.24 − 3.0565 = 0.1835 → **88 ms** (the issue's "~90 ms").
//! - JavaScript + DynamoDB, $3.39: 0.3335 → **160 ms**.
//! - Python + S3, $7.16: 7.16 − (1.16 + 0.20 + 0.42 GET + 5.30 PUT) = 0.08 → 38.4 ms → **38 ms**.
//!
//! Those are inferences from rounded totals (±0.005 $ ≈ ±2.4 ms), not measurements.
//!
//! The monthly figures need no inference: 730 h × $0.0132 + 8 GB × $0.116 = $10.564 (printed
//! $10.56, a cent under the published $10.57: 730.5 h would give $10.57 but then the ALB would be
//! $19.33, not $19.32, so the original's rounding is not recoverable); 730 h × (0.25 × $0.04656 +
//! 0.5 × $0.00511) × 0.3 = $3.109 plus a negligible EFS; 730 h × $0.02646 = $19.316.
//!
//! Seed 001 (2018) priced API Gateway alone at "$3.50 per million" (the REST API) for a month of
//! **24 × 30 = 720 hours**: `$3.50 * 5 * 24 * 30 = $12,600.00` at 5,000,000 requests an hour and
//! `$3.50 * 12 * 24 * 30 = $30,240.00` at 12,000,000. The tests below give the model the seed's
//! own 720-hour month as the volume and a 2018 book (today's us-east-1 with the seed's REST price
//! written over it), and reproduce both to the cent; the model's own month is 730 hours, which
//! gives $12,775 and $30,660. Its Elixir nodes: `$0.0552 * 1.1 * 4 * 24 * 30 = $174` (174.87,
//! which the seed truncates).

use cost::{CostError, Estimate, Params, PriceBook, SEED_001_ELIXIR, book, estimate, profile};

fn within_2_percent(actual: f64, published: f64) -> bool {
    (actual - published).abs() <= 0.02 * published
}

fn original(id: &str, params: &Params) -> Result<Estimate, CostError> {
    estimate(profile(id)?, book("eu-west-2", Some("2021"))?, params)
}

fn with_duration(ms: f64) -> Params {
    Params { duration_ms: Some(ms), ..Params::default() }
}

#[test]
fn rust_and_cpp_with_dynamodb_cost_3_09_per_million_calls_at_16_ms_billed() -> Result<(), CostError> {
    let e = original("original-lambda-dynamodb", &with_duration(16.0))?;
    assert!(within_2_percent(e.per_million_calls, 3.09), "{e}");
    assert_eq!(e.fixed_per_month, 0.0);
    assert!(e.fixed_per_month.is_sign_positive());
    Ok(())
}

#[test]
fn the_rust_profile_defaults_to_the_inferred_16_ms() -> Result<(), CostError> {
    let e = original("original-lambda-dynamodb", &Params::default())?;
    assert_eq!(e.lambda.as_ref().map(|l| l.billed_ms), Some(16));
    assert!(within_2_percent(e.per_million_calls, 3.09), "{e}");
    Ok(())
}

#[test]
fn python_with_dynamodb_costs_3_24_per_million_calls_at_88_ms_billed() -> Result<(), CostError> {
    let e = original("original-lambda-dynamodb", &with_duration(88.0))?;
    assert!(within_2_percent(e.per_million_calls, 3.24), "{e}");
    Ok(())
}

#[test]
fn javascript_with_dynamodb_costs_3_39_per_million_calls_at_160_ms_billed() -> Result<(), CostError> {
    let e = original("original-lambda-dynamodb", &with_duration(160.0))?;
    assert!(within_2_percent(e.per_million_calls, 3.39), "{e}");
    Ok(())
}

#[test]
fn python_with_s3_costs_7_16_per_million_calls_at_38_ms_billed() -> Result<(), CostError> {
    let e = original("original-lambda-s3", &Params::default())?;
    assert_eq!(e.lambda.as_ref().map(|l| l.billed_ms), Some(38));
    assert!(within_2_percent(e.per_million_calls, 7.16), "{e}");
    Ok(())
}

#[test]
fn t2_micro_ec2_with_8_gb_gp2_costs_10_57_a_month() -> Result<(), CostError> {
    let e = original("original-ec2", &Params::default())?;
    assert!(within_2_percent(e.fixed_per_month, 10.57), "{e}");
    assert_eq!(e.per_million_calls, 0.0);
    Ok(())
}

#[test]
fn fargate_spot_with_a_quarter_vcpu_and_half_a_gb_costs_3_11_a_month() -> Result<(), CostError> {
    let e = original("original-fargate-spot", &Params::default())?;
    assert!(within_2_percent(e.fixed_per_month, 3.11), "{e}");
    Ok(())
}

#[test]
fn the_load_balancer_the_original_left_out_costs_19_32_a_month() -> Result<(), CostError> {
    let e = original("original-alb", &Params::default())?;
    assert!(within_2_percent(e.fixed_per_month, 19.32), "{e}");
    Ok(())
}

#[test]
fn the_reproduction_fails_with_todays_dynamodb_prices() -> Result<(), CostError> {
    // The 2021 book is what makes the DynamoDB figures match: with today's (halved) request
    // units the same call costs well under $3.09, so these tests can fail.
    let today = estimate(
        profile("original-lambda-dynamodb")?,
        book("eu-west-2", Some("2026-11"))?,
        &with_duration(16.0),
    )?;
    assert!(!within_2_percent(today.per_million_calls, 3.09), "{today}");
    Ok(())
}

/// Seed 001's price: today's us-east-1 book with the REST API request at the seed's $3.50.
const SEED_001_BOOK: &str = r#"
region = "us-east-1"
as_of = "2018"
currency = "USD"
inherits = "us-east-1-2026-11"

[prices.apigw.rest_request]
usd = 3.50
per = 1_000_000
unit = "request"
source = "https://aws.amazon.com/api-gateway/pricing/"
note = "seed 001 (2018): \"API Gateway alone costs $3.50 per million HTTP requests\"; not re-checked offline"
"#;

/// The REST API line of the Lambda ingest path at `requests_per_hour` for `hours` a month.
fn seed_001_api_gateway(requests_per_hour: u64, hours: u64) -> Result<f64, CostError> {
    let prices = PriceBook::parse(SEED_001_BOOK, "seed-001-2018.toml")?;
    let params = Params { calls_per_month: requests_per_hour * hours, ..Params::default() };
    let e = estimate(profile("ingest-firehose-rest")?, &prices, &params)?;
    e.lines
        .iter()
        .find(|l| l.price_key == "apigw.rest_request")
        .map(|l| l.per_month)
        .ok_or_else(|| CostError::InvalidParam { name: "test", reason: format!("no REST API line in {e}") })
}

fn to_the_cent(actual: f64, published: f64) -> bool {
    (actual - published).abs() < 0.005
}

#[test]
fn api_gateway_alone_costs_12_600_a_month_at_5_million_requests_an_hour_over_24_x_30_hours()
-> Result<(), CostError> {
    let usd = seed_001_api_gateway(5_000_000, 24 * 30)?;
    assert!(to_the_cent(usd, 12_600.0), "{usd}");
    Ok(())
}

#[test]
fn api_gateway_alone_would_cost_30_240_a_month_at_12_million_requests_an_hour_over_24_x_30_hours()
-> Result<(), CostError> {
    let usd = seed_001_api_gateway(12_000_000, 24 * 30)?;
    assert!(to_the_cent(usd, 30_240.0), "{usd}");
    Ok(())
}

#[test]
fn over_the_models_730_hour_month_the_same_requests_cost_12_775_and_30_660() -> Result<(), CostError> {
    assert!(to_the_cent(seed_001_api_gateway(5_000_000, 730)?, 12_775.0));
    assert!(to_the_cent(seed_001_api_gateway(12_000_000, 730)?, 30_660.0));
    Ok(())
}

#[test]
fn the_seeds_elixir_nodes_cost_174_a_month_at_about_760_events_a_second_per_vcpu() {
    let usd = SEED_001_ELIXIR.per_month();
    assert!(to_the_cent(usd, 174.87), "{usd}");
    assert_eq!(usd.trunc(), 174.0, "the seed prints $174");
    let rate = SEED_001_ELIXIR.events_per_vcpu_s();
    assert!((rate - 757.6).abs() < 0.1, "{rate}");
}
