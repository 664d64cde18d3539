//! The model's arithmetic: Lambda billing, Firehose rounding, regional differences, defaults.

use cost::{
    Arch, Basis, CostError, Params, billed_ms, book, builtin_books, estimate, firehose_billed_bytes,
    kinesis_put_units, profile, profiles, sqs_requests,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn todays_london_lambda_dynamodb_on_arm64_is_cheaper_than_in_2021() -> Result<(), CostError> {
    let p = profile("lambda-dynamodb")?;
    let params = Params { arch: Some(Arch::Arm64), ..Params::default() };
    let today = estimate(p, book("eu-west-2", None)?, &params)?;
    let then = estimate(p, book("eu-west-2", Some("2021"))?, &params)?;
    assert_eq!(today.as_of, "2026-11");
    assert!(today.per_million_calls < then.per_million_calls);
    // The whole difference is the halved write unit.
    assert!(close(then.per_million_calls - today.per_million_calls, 1.4135 - 0.70675));
    Ok(())
}

#[test]
fn the_http_api_is_cheaper_in_us_east_1_than_in_london() -> Result<(), CostError> {
    let london = book("eu-west-2", None)?.price("apigw.http_request")?;
    let virginia = book("us-east-1", None)?.price("apigw.http_request")?;
    assert!(virginia.unit_usd() < london.unit_usd());
    assert_eq!((london.usd, virginia.usd), (1.16, 1.00));
    let p = profile("lambda-dynamodb")?;
    let params = Params::default();
    assert!(
        estimate(p, book("us-east-1", None)?, &params)?.per_million_calls
            < estimate(p, book("eu-west-2", None)?, &params)?.per_million_calls
    );
    Ok(())
}

#[test]
fn a_100_byte_firehose_record_bills_5_kb_and_5121_bytes_bill_10_kb() {
    assert_eq!(firehose_billed_bytes(100), 5_120);
    assert_eq!(firehose_billed_bytes(5_120), 5_120);
    assert_eq!(firehose_billed_bytes(5_121), 10_240);
    assert_eq!(firehose_billed_bytes(0), 5_120);
}

#[test]
fn packing_50_events_into_one_firehose_record_bills_a_fiftieth() -> Result<(), CostError> {
    let london = book("eu-west-2", None)?;
    let fifty_records = london.firehose_usd(50, 100)?;
    let one_record = london.firehose_usd(1, 50 * 100)?;
    assert!(close(fifty_records, 50.0 * one_record));
    // 50 × 5 KB = 250 KB at $0.031 per GB (2^30 bytes).
    assert!(close(fifty_records, 50.0 * 5_120.0 / 1_073_741_824.0 * 0.031));
    Ok(())
}

#[test]
fn kinesis_bills_a_put_unit_per_started_25_kb_and_sqs_a_request_per_64_kb() -> Result<(), CostError> {
    assert_eq!(kinesis_put_units(1), 1);
    assert_eq!(kinesis_put_units(25_600), 1);
    assert_eq!(kinesis_put_units(25_601), 2);
    assert_eq!(sqs_requests(1, 100), 1);
    assert_eq!(sqs_requests(10, 65_537), 20);
    let virginia = book("us-east-1", None)?;
    assert!(close(virginia.sqs_usd(1_000_000)?, 0.40));
    // A million 1 KB records plus one shard for a month: $0.014 + 730 × $0.015.
    assert!(close(virginia.kinesis_usd(1_000_000, 1_024, 730.0)?, 0.014 + 730.0 * 0.015));
    Ok(())
}

#[test]
fn lambda_duration_is_billed_rounded_up_to_whole_milliseconds() -> Result<(), CostError> {
    assert_eq!(billed_ms(15.01), 16);
    assert_eq!(billed_ms(16.0), 16);
    assert_eq!(billed_ms(0.2), 1);
    assert_eq!(billed_ms(0.0), 1);
    let p = profile("lambda-dynamodb-url")?;
    let london = book("eu-west-2", None)?;
    let at = |ms: f64| {
        estimate(p, london, &Params { duration_ms: Some(ms), memory_mb: Some(1024), ..Params::default() })
    };
    let (a, b) = (at(15.01)?, at(16.0)?);
    assert_eq!(a.per_million_calls, b.per_million_calls);
    // 1 GB × 0.016 s × $0.0000133334 × 1e6 = $0.2133 of duration per million calls.
    let duration =
        a.lines.iter().find(|l| l.price_key == "lambda.gb_second_arm64").map(|l| l.per_million_calls);
    assert!(duration.is_some_and(|d| close(d, 0.016 * 0.0000133334 * 1e6)));
    Ok(())
}

#[test]
fn init_is_billed_for_the_cold_fraction_of_calls() -> Result<(), CostError> {
    let p = profile("lambda-dynamodb")?;
    let london = book("eu-west-2", None)?;
    let params = Params {
        arch: Some(Arch::X86_64),
        memory_mb: Some(128),
        duration_ms: Some(10.0),
        init_ms: Some(100.0),
        cold_start_ratio: 0.1,
        ..Params::default()
    };
    let cold = estimate(p, london, &params)?;
    let warm = estimate(p, london, &Params { cold_start_ratio: 0.0, ..params.clone() })?;
    // 10% of calls bill 100 ms more at 0.125 GB: 0.00125 GB-s per call on average.
    let init = 0.1 * 0.125 * 0.100 * 0.0000166667 * 1e6;
    assert!(close(cold.per_million_calls - warm.per_million_calls, init));
    assert_eq!(cold.lambda.as_ref().map(|l| l.init_billed_ms), Some(100));
    assert!(cold.lines.iter().any(|l| l.item.starts_with("Lambda INIT")));
    assert!(!warm.lines.iter().any(|l| l.item.starts_with("Lambda INIT")));
    // Managed runtimes before August 2025 did not bill INIT.
    let unbilled = estimate(p, london, &Params { init_billed: false, ..params })?;
    assert_eq!(unbilled.per_million_calls, warm.per_million_calls);
    Ok(())
}

#[test]
fn a_cold_call_bills_init_and_duration_rounded_up_together() -> Result<(), CostError> {
    let params =
        Params { duration_ms: Some(10.4), init_ms: Some(100.4), cold_start_ratio: 1.0, ..Params::default() };
    let e = estimate(profile("lambda-dynamodb")?, book("eu-west-2", None)?, &params)?;
    // ceil(110.8) = 111 on a cold call, ceil(10.4) = 11 warm: INIT adds 100 ms, not 101.
    assert_eq!(e.lambda.as_ref().map(|l| (l.billed_ms, l.init_billed_ms)), Some((11, 100)));
    Ok(())
}

#[test]
fn the_function_url_has_no_request_charge_beyond_lambdas() -> Result<(), CostError> {
    let london = book("eu-west-2", None)?;
    let params = Params::default();
    let url = estimate(profile("lambda-dynamodb-url")?, london, &params)?;
    let http = estimate(profile("lambda-dynamodb")?, london, &params)?;
    let rest = estimate(profile("lambda-dynamodb-rest")?, london, &params)?;
    assert!(close(http.per_million_calls - url.per_million_calls, 1.16));
    assert!(close(rest.per_million_calls - url.per_million_calls, 3.50));
    assert!(!url.lines.iter().any(|l| l.price_key.starts_with("apigw.")));
    Ok(())
}

#[test]
fn the_ec2_instance_type_is_a_parameter() -> Result<(), CostError> {
    let p = profile("ec2")?;
    let london = book("eu-west-2", None)?;
    let t4g = estimate(p, london, &Params::default())?;
    let t3 = estimate(p, london, &Params { instance_type: Some("t3.micro".into()), ..Params::default() })?;
    assert!(close(t4g.fixed_per_month, 730.0 * 0.0094 + 8.0 * 0.0928));
    assert!(close(t3.fixed_per_month - t4g.fixed_per_month, 730.0 * (0.0118 - 0.0094)));
    let unknown =
        estimate(p, london, &Params { instance_type: Some("m7g.large".into()), ..Params::default() });
    let Err(CostError::InvalidParam { name, reason }) = unknown else {
        return Err(CostError::InvalidParam {
            name: "test",
            reason: format!("expected an instance_type error, got {unknown:?}"),
        });
    };
    assert_eq!(name, "instance_type");
    assert!(reason.contains("m7g.large") && reason.contains("t4g.micro"), "{reason}");
    Ok(())
}

#[test]
fn monthly_cost_is_fixed_plus_calls_times_the_variable_part() -> Result<(), CostError> {
    let params = Params { calls_per_month: 2_500_000, ..Params::default() };
    let e = estimate(profile("fargate-spot-alb")?, book("eu-west-2", None)?, &params)?;
    assert!(e.per_million_calls > 0.0 && e.fixed_per_month > 0.0);
    assert!(close(e.per_month, e.fixed_per_month + 2.5 * e.per_million_calls));
    let lines: f64 = e.lines.iter().map(|l| l.per_month).sum();
    assert!(close(e.per_month, lines));
    assert!(e.lines.iter().filter(|l| l.basis == Basis::PerMonth).all(|l| l.per_million_calls == 0.0));
    Ok(())
}

#[test]
fn fargate_spot_takes_the_discount_off_both_rates() -> Result<(), CostError> {
    let e = estimate(profile("fargate-spot")?, book("us-east-1", None)?, &Params::default())?;
    let compute = 730.0 * (0.25 * 0.04048 + 0.5 * 0.004445) * 0.3;
    assert!(close(e.fixed_per_month, compute + 0.001 * 0.30), "{e}");
    Ok(())
}

#[test]
fn unknown_regions_dates_and_architectures_list_the_known_ones() {
    let region = book("mars-north-1", None);
    assert!(
        matches!(&region, Err(CostError::UnknownRegion { known, .. })
        if known == "eu-west-2, us-east-1"),
        "{region:?}"
    );
    let date = book("eu-west-2", Some("2019"));
    assert!(
        matches!(&date, Err(CostError::UnknownDate { known, .. })
        if known.contains("2021") && known.contains("2026-11")),
        "{date:?}"
    );
    let arch = profile("lambda-cobol");
    assert!(
        matches!(&arch, Err(CostError::UnknownProfile { known, .. })
        if known.contains("lambda-dynamodb") && known.contains("original-alb")),
        "{arch:?}"
    );
}

#[test]
fn out_of_range_params_are_errors_not_panics() -> Result<(), CostError> {
    let p = profile("lambda-dynamodb")?;
    let london = book("eu-west-2", None)?;
    for params in [
        Params { cold_start_ratio: 1.5, ..Params::default() },
        Params { cold_start_ratio: f64::NAN, ..Params::default() },
        Params { memory_mb: Some(64), ..Params::default() },
        Params { duration_ms: Some(-1.0), ..Params::default() },
        Params { init_ms: Some(f64::INFINITY), ..Params::default() },
    ] {
        let result = estimate(p, london, &params);
        assert!(matches!(result, Err(CostError::InvalidParam { .. })), "{params:?}");
    }
    Ok(())
}

#[test]
fn every_architecture_id_is_unique_and_has_a_label() -> Result<(), CostError> {
    let all = profiles()?;
    for id in [
        "lambda-dynamodb",
        "lambda-s3",
        "lambda-dynamodb-url",
        "lambda-dynamodb-rest",
        "ec2",
        "fargate-spot",
        "fargate-spot-alb",
        "alb",
        "ingest-firehose",
        "original-lambda-dynamodb",
        "original-lambda-s3",
        "original-ec2",
        "original-fargate-spot",
        "original-alb",
    ] {
        assert!(all.iter().any(|p| p.id == id && !p.label.is_empty()), "{id}");
    }
    assert!(builtin_books()?.len() >= 3);
    Ok(())
}
