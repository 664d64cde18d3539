//! The ingest architectures: events packed into Firehose records per request (Lambda) or across
//! requests (the batching server's buffer), the server fleet sized by throughput, and the
//! comparison `latency cost --ingest` prints.

use cost::{
    CostError, Format, INGEST_PROFILES, IngestLoad, Params, RecordUsage, compare_ingest, estimate,
    firehose_billed_bytes, parse_profiles, profile,
};

const GB: f64 = 1_073_741_824.0;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn london() -> Result<&'static cost::PriceBook, CostError> {
    cost::book("eu-west-2", Some("2026-11"))
}

fn records(e: &cost::Estimate) -> Result<&RecordUsage, CostError> {
    e.records
        .as_ref()
        .ok_or_else(|| CostError::InvalidParam { name: "test", reason: format!("no records: {e}") })
}

fn firehose_line(e: &cost::Estimate) -> Result<&cost::Line, CostError> {
    e.lines
        .iter()
        .find(|l| l.price_key == "firehose.gb_ingested")
        .ok_or_else(|| CostError::InvalidParam { name: "test", reason: format!("no Firehose line: {e}") })
}

/// The seed's load: 12,000,000 events an hour of 200 bytes, `per_request` to a request.
fn seed_load(per_request: u32) -> Params {
    IngestLoad { events_per_request: per_request, ..IngestLoad::default() }.params(Params::default())
}

#[test]
fn every_ingest_architecture_is_a_built_in_profile() -> Result<(), CostError> {
    for id in INGEST_PROFILES {
        assert!(!profile(id)?.label.is_empty(), "{id}");
    }
    Ok(())
}

#[test]
fn one_event_per_request_bills_every_event_as_a_5_kb_firehose_record() -> Result<(), CostError> {
    let e = estimate(profile("ingest-firehose")?, london()?, &seed_load(1))?;
    let r = records(&e)?;
    assert_eq!((r.events_per_record, r.records_per_call, r.linger_ms), (1, 1.0, None));
    let line = firehose_line(&e)?;
    assert!(close(line.quantity, 5_120.0 / GB));
    assert!(close(line.per_month, 8_760_000_000.0 * 5_120.0 / GB * 0.031));
    assert_eq!(line.item, "Firehose record (5 KB-rounded) of 200 B");
    Ok(())
}

#[test]
fn a_request_of_500_events_is_packed_into_one_record_billed_per_request() -> Result<(), CostError> {
    let e = estimate(profile("ingest-firehose")?, london()?, &seed_load(500))?;
    let r = records(&e)?;
    assert_eq!((r.events_per_record, r.record_bytes(), r.records_per_call), (500, 100_000, 1.0));
    // 100,000 bytes bill 102,400 (20 × 5 KB); 17,520,000 requests a month.
    assert_eq!(e.calls_per_month, 17_520_000);
    assert!(close(firehose_line(&e)?.quantity, 102_400.0 / GB));
    // One Lambda and one API request per 500 events.
    let http = e.lines.iter().find(|l| l.price_key == "apigw.http_request").map(|l| l.per_month);
    assert!(http.is_some_and(|usd| close(usd, 17_520_000.0 * 1.16 / 1e6)), "{e}");
    Ok(())
}

#[test]
fn a_request_too_large_for_one_record_spills_into_a_second() -> Result<(), CostError> {
    // 10,000-byte events: 102 fit in 1,000 KiB, so 200 events make a record of 102 and one of 98.
    let params = Params { events_per_call: 200, event_bytes: Some(10_000), ..Params::default() };
    let e = estimate(profile("ingest-firehose")?, london()?, &params)?;
    let r = records(&e)?;
    assert_eq!((r.events_per_record, r.records_per_call), (102, 2.0));
    let billed = firehose_billed_bytes(1_020_000) + firehose_billed_bytes(980_000);
    assert!(close(firehose_line(&e)?.quantity, billed as f64 / GB));
    Ok(())
}

#[test]
fn an_event_larger_than_a_firehose_record_is_refused() -> Result<(), CostError> {
    let params = Params { event_bytes: Some(1_024_001), ..Params::default() };
    let result = estimate(profile("ingest-firehose")?, london()?, &params);
    assert!(
        matches!(&result, Err(CostError::InvalidParam { name: "event_bytes", reason }) if reason.contains("1024000")),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn the_server_fleet_is_sized_by_throughput_with_at_least_two_tasks() -> Result<(), CostError> {
    let server = profile("ingest-server")?;
    // 3,333.3 events/s ÷ (0.25 vCPU × 5,000 × 0.5 = 625 a task) = 5.33 → 6 tasks.
    let e = estimate(server, london()?, &seed_load(1))?;
    let fleet = e.fleet.as_ref().map(|f| (f.tasks, f.task_events_per_s, f.min_tasks));
    assert_eq!(fleet, Some((6, 1_250.0, 2)));
    let fargate: f64 =
        e.lines.iter().filter(|l| l.price_key.starts_with("fargate.")).map(|l| l.per_month).sum();
    assert!(close(fargate, 6.0 * 730.0 * (0.25 * 0.04656 + 0.5 * 0.00511) * 0.3), "{e}");
    assert!(e.lines.iter().any(|l| l.item == "Fargate 0.25 vCPU × 730 h × 6 tasks (Spot, 70% off)"), "{e}");
    // A trickle still runs two.
    let trickle = estimate(server, london()?, &Params::default())?;
    assert_eq!(trickle.fleet.map(|f| f.tasks), Some(2));
    // At seed 001's ~760 events/s per vCPU: 3,333.3 ÷ 95 = 35.1 → 36 tasks.
    let elixir_speed = Params { events_per_vcpu_s: Some(760.0), ..seed_load(1) };
    assert_eq!(estimate(server, london()?, &elixir_speed)?.fleet.map(|f| f.tasks), Some(36));
    // Full utilisation of the same capacity: 3,333.3 ÷ 1,250 → 3 tasks.
    let flat_out = Params { utilisation: Some(1.0), ..seed_load(1) };
    assert_eq!(estimate(server, london()?, &flat_out)?.fleet.map(|f| f.tasks), Some(3));
    Ok(())
}

#[test]
fn a_server_without_a_fleet_still_runs_one_task() -> Result<(), CostError> {
    let e = estimate(profile("fargate-spot")?, london()?, &seed_load(1))?;
    assert!(e.fleet.is_none());
    assert!(e.lines.iter().any(|l| l.item == "Fargate 0.25 vCPU × 730 h (Spot, 70% off)"), "{e}");
    Ok(())
}

#[test]
fn the_servers_records_hold_what_a_task_buffers_in_its_linger() -> Result<(), CostError> {
    // 3,333.3 events/s over 6 tasks × 200 ms = 111.1 → records of 111 events, 22,200 bytes,
    // billed 25,600.
    let e = estimate(profile("ingest-server")?, london()?, &seed_load(1))?;
    let r = records(&e)?;
    assert_eq!((r.events_per_record, r.record_bytes(), r.linger_ms), (111, 22_200, Some(200.0)));
    assert!(close(firehose_line(&e)?.quantity, 25_600.0 / 111.0 / GB));
    // Many requests' events are packed whatever each request carries.
    let arrays = estimate(profile("ingest-server")?, london()?, &seed_load(10))?;
    assert_eq!(records(&arrays)?.events_per_record, 111);
    Ok(())
}

#[test]
fn a_busy_servers_records_fill_to_1000_kib_and_bill_their_bytes() -> Result<(), CostError> {
    // 200 M events an hour = 55,556/s on 2 fast tasks: 5,556 in 200 ms, more than the 5,120
    // 200-byte events that fill 1,024,000 bytes, itself a multiple of 5 KB.
    let load = IngestLoad { events_per_hour: 200_000_000, ..IngestLoad::default() };
    let params = load.params(Params { events_per_vcpu_s: Some(1_000_000.0), ..Params::default() });
    let e = estimate(profile("ingest-server")?, london()?, &params)?;
    assert_eq!(e.fleet.as_ref().map(|f| f.tasks), Some(2));
    let r = records(&e)?;
    assert_eq!((r.events_per_record, r.record_bytes()), (5_120, 1_024_000));
    assert!(close(firehose_line(&e)?.quantity, 200.0 / GB));
    Ok(())
}

#[test]
fn at_a_trickle_the_servers_buffer_packs_nothing() -> Result<(), CostError> {
    // A million requests a month is 0.38 events/s: nothing else arrives within 200 ms.
    let e = estimate(profile("ingest-server")?, london()?, &Params::default())?;
    assert_eq!(records(&e)?.events_per_record, 1);
    assert!(close(firehose_line(&e)?.quantity, 5_120.0 / GB));
    Ok(())
}

#[test]
fn the_alb_adds_its_hours_and_one_new_connection_per_request() -> Result<(), CostError> {
    let params = seed_load(1);
    let plain = estimate(profile("ingest-server")?, london()?, &params)?;
    let alb = estimate(profile("ingest-server-alb")?, london()?, &params)?;
    let lcu = 8_760_000_000.0 / 90_000.0 * 0.0084;
    assert!(close(alb.per_month - plain.per_month, 730.0 * 0.02646 + lcu), "{alb}");
    Ok(())
}

#[test]
fn fleet_and_event_params_out_of_range_are_errors() -> Result<(), CostError> {
    let server = profile("ingest-server")?;
    for params in [
        Params { events_per_call: 0, ..Params::default() },
        Params { event_bytes: Some(0), ..Params::default() },
        Params { events_per_vcpu_s: Some(0.0), ..Params::default() },
        Params { events_per_vcpu_s: Some(f64::NAN), ..Params::default() },
        Params { utilisation: Some(0.0), ..Params::default() },
        Params { utilisation: Some(1.5), ..Params::default() },
    ] {
        assert!(
            matches!(estimate(server, london()?, &params), Err(CostError::InvalidParam { .. })),
            "{params:?}"
        );
    }
    Ok(())
}

#[test]
fn malformed_buffers_and_fleets_are_errors_naming_the_profile() {
    let fargate = "fargate = { vcpu = 0.25, memory_gb = 0.5, hours = 730, spot = true }\n";
    let record = "event_bytes = 200\nper_call = [{ item = \"r\", price = \"firehose.gb_ingested\", record = \"firehose\" }]\n";
    for (body, expect) in [
        (format!("buffer = {{ linger_ms = 200 }}\n{record}"), "needs a server"),
        (format!("{fargate}buffer = {{ linger_ms = 200 }}\n"), "`record` item to pack"),
        (format!("{fargate}buffer = {{ linger_ms = 0 }}\n{record}"), "linger_ms"),
        ("fleet = { min_tasks = 2, events_per_vcpu_s = 5000, utilisation = 0.5 }\nmonthly = [{ item = \"x\", price = \"elb.alb_hour\" }]\n".to_owned(), "needs `fargate`"),
        (format!("{fargate}fleet = {{ min_tasks = 0, events_per_vcpu_s = 5000, utilisation = 0.5 }}\n"), "min_tasks"),
        (format!("{fargate}fleet = {{ min_tasks = 2, events_per_vcpu_s = 5000, utilisation = 2 }}\n"), "utilisation"),
        (
            "event_bytes = 200\nper_call = [{ item = \"a\", price = \"firehose.gb_ingested\", record = \"firehose\" }, { item = \"b\", price = \"sqs.request\", record = \"sqs\" }]\n".to_owned(),
            "one sink",
        ),
    ] {
        let text = format!("[[profile]]\nid = \"bad\"\nlabel = \"Bad\"\n{body}");
        let err = match parse_profiles(&text, "mine-profiles.toml") {
            Ok(_) => String::from("parsed"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("mine-profiles.toml") && err.contains("`bad`") && err.contains(expect), "{expect}: {err}");
    }
}

#[test]
fn the_comparison_at_12m_events_an_hour_adds_up_item_by_item() -> Result<(), CostError> {
    let c = compare_ingest(london()?, &IngestLoad::default(), &Params::default())?;
    assert_eq!(c.estimates.iter().map(|e| e.profile.as_str()).collect::<Vec<_>>(), INGEST_PROFILES);
    let events = 8_760_000_000.0;
    let firehose_per_event = 5_120.0 / GB * 0.031;
    // Lambda: request, 10 ms at 128 MB on arm64, HTTP API request, a 5 KB record: per event.
    let lambda = 0.20 / 1e6 + 0.125 * 0.010 * 0.0000133334 + firehose_per_event;
    let http = c.estimate("ingest-firehose").map(|e| e.per_month);
    let rest = c.estimate("ingest-firehose-rest").map(|e| e.per_month);
    assert!(http.is_some_and(|usd| close(usd, events * (lambda + 1.16 / 1e6))), "{http:?}");
    assert!(rest.is_some_and(|usd| close(usd, events * (lambda + 3.50 / 1e6))), "{rest:?}");
    // Server: 6 Spot tasks and records of 111 events billed 25,600 bytes.
    let tasks = 6.0 * 730.0 * (0.25 * 0.04656 + 0.5 * 0.00511) * 0.3;
    let packed = events / 111.0 * 25_600.0 / GB * 0.031;
    let server = c.estimate("ingest-server").map(|e| e.per_month);
    assert!(server.is_some_and(|usd| close(usd, tasks + packed)), "{server:?}");
    // The ratio is whatever the model says, both ways of reaching the servers.
    let ratio = c.ratio("ingest-firehose", "ingest-server-alb");
    let alb = c.estimate("ingest-server-alb").map(|e| e.per_month);
    assert_eq!(ratio, http.zip(alb).map(|(h, a)| h / a));
    assert!(ratio.is_some_and(|r| r > 1.0));
    Ok(())
}

#[test]
fn the_packing_saving_is_the_lambda_paths_firehose_line_less_the_servers() -> Result<(), CostError> {
    let c = compare_ingest(london()?, &IngestLoad::default(), &Params::default())?;
    let p = &c.packing;
    assert_eq!((p.events, p.event_bytes, p.packed_events_per_record), (8_760_000_000, 200, 111));
    let lambda = c.estimate("ingest-firehose").map(firehose_line).transpose()?.map(|l| l.per_month);
    let server = c.estimate("ingest-server").map(firehose_line).transpose()?.map(|l| l.per_month);
    assert!(lambda.is_some_and(|usd| close(usd, p.one_per_record_usd())));
    assert!(server.is_some_and(|usd| close(usd, p.packed_usd())));
    assert!(close(p.saving_usd(), p.one_per_record_usd() - p.packed_usd()));
    // Billed bytes: 5,120 per event against 25,600 per 111; the events themselves are 200.
    assert!(close(p.one_per_record_gb, 8.76e9 * 5_120.0 / GB));
    assert!(close(p.actual_gb, 8.76e9 * 200.0 / GB));
    assert!(p.actual_gb < p.packed_gb && p.packed_gb < 1.2 * p.actual_gb);
    Ok(())
}

#[test]
fn arrays_of_events_cut_the_lambda_paths_requests_not_its_events() -> Result<(), CostError> {
    let load = IngestLoad { events_per_request: 10, ..IngestLoad::default() };
    let c = compare_ingest(london()?, &load, &Params::default())?;
    assert_eq!(c.packing.events, 8_760_000_000);
    assert_eq!(c.estimate("ingest-firehose").map(|e| e.calls_per_month), Some(876_000_000));
    // 2,000-byte records still bill 5 KB: a tenth of one event per record.
    let line = c.estimate("ingest-firehose").map(firehose_line).transpose()?.map(|l| l.per_month);
    assert!(line.is_some_and(|usd| close(usd, c.packing.one_per_record_usd() / 10.0)));
    Ok(())
}

#[test]
fn the_rendered_comparison_itemises_every_architecture_and_the_seed_reference() -> Result<(), CostError> {
    let c = compare_ingest(london()?, &IngestLoad::default(), &Params::default())?;
    let text = c.render(Format::Text, false);
    println!("{text}");
    for needle in INGEST_PROFILES.iter().copied().chain([
        "seed-001-elixir",
        "$174.87",
        "saving of packing",
        "one event per record",
        "111 events (22,200 B)",
        "REST API request",
        "$30,660.00",
        "× 6 tasks",
        "ALB hours",
        "Assumptions",
        "costs 14.6× ingest-server-alb",
    ]) {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let summary = c.render(Format::Markdown, true);
    assert!(
        summary.contains("| ingest-server-alb |") && summary.contains("| seed-001-elixir |"),
        "{summary}"
    );
    assert!(!summary.contains("| ALB hours |"), "--summary leaves the items out: {summary}");
    Ok(())
}

#[test]
fn a_load_of_no_events_is_refused() -> Result<(), CostError> {
    let load = IngestLoad { events_per_hour: 0, ..IngestLoad::default() };
    assert!(matches!(
        compare_ingest(london()?, &load, &Params::default()),
        Err(CostError::InvalidParam { .. })
    ));
    Ok(())
}
