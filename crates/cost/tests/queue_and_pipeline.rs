//! The queue (seed 000's calc(x) through SQS + Lambda and through RabbitMQ on Kubernetes) and the
//! pipeline (issue 15: HTTP API → Lambda → Kinesis → Lambda → DynamoDB → stream → Lambda →
//! CloudWatch) as the model prices them: what each item bills, and how the figures move.

use cost::{
    Basis, CostError, Estimate, HOURS_PER_MONTH, Params, PriceBook, StreamMode, book, estimate,
    parse_profiles, profile, select,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12)
}

fn london() -> Result<&'static PriceBook, CostError> {
    book("eu-west-2", None)
}

/// The profile at its own volume (what `latency cost -a ID` prints), with `params` otherwise.
fn priced(id: &str, params: Params) -> Result<Estimate, CostError> {
    let p = profile(id)?;
    let calls_per_month = p.calls_per_month.unwrap_or(params.calls_per_month);
    estimate(p, london()?, &Params { calls_per_month, ..params })
}

fn line<'a>(e: &'a Estimate, item: &str) -> &'a cost::Line {
    e.lines.iter().find(|l| l.item.starts_with(item)).unwrap_or_else(|| panic!("no `{item}` line in\n{e}"))
}

fn unit(key: &str) -> f64 {
    london().and_then(|b| b.price(key)).map_or(f64::NAN, cost::Price::unit_usd)
}

#[test]
fn the_queue_group_prices_both_lambda_shapes_and_both_clusters_at_ten_calculations_a_second()
-> Result<(), CostError> {
    let ids: Vec<&str> = select("queue")?.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        ["queue-sqs-lambda", "queue-sqs-lambda-burst", "queue-rabbitmq-eks", "queue-rabbitmq-kops"]
    );
    for id in ids {
        let p = profile(id)?;
        assert_eq!(p.calls_per_month, Some((10.0 * 3600.0 * HOURS_PER_MONTH) as u64), "{id}");
        assert_eq!(p.call.as_deref(), Some("calculation"), "{id}");
    }
    Ok(())
}

#[test]
fn a_calculation_on_the_lambda_path_bills_the_mean_x_plus_overhead_at_the_templates_memory_and_arch()
-> Result<(), CostError> {
    let e = priced("queue-sqs-lambda", Params::default())?;
    let lambda = e.lambda.as_ref().expect("a Lambda profile");
    // template.yaml's Globals: arm64, MemorySize 128; x ~ U(0, 2 s) has mean 1 s, +20 ms.
    assert_eq!((lambda.arch, lambda.memory_mb, lambda.billed_ms), (cost::Arch::Arm64, 128, 1020));
    assert!(close(line(&e, "Lambda duration").quantity, 0.125 * 1.020));
    assert!(close(line(&e, "Lambda request").quantity, 1.0));
    // One REST API request, a send, a receive and a delete: SQS requests, one each.
    assert!(close(line(&e, "REST API request").per_million_calls, 3.50));
    let sqs: f64 = e
        .lines
        .iter()
        .filter(|l| l.price_key == "sqs.request" && l.basis == Basis::PerCall)
        .map(|l| l.quantity)
        .sum();
    assert!(close(sqs, 3.0), "{e}");
    Ok(())
}

#[test]
fn a_burst_shares_each_invocation_among_ten_calculations_and_bills_the_batchs_longest_x()
-> Result<(), CostError> {
    let steady = priced("queue-sqs-lambda", Params::default())?;
    let burst = priced("queue-sqs-lambda-burst", Params::default())?;
    assert!(close(line(&burst, "Lambda request").quantity, 0.1));
    // E[max of 10 draws of U(0, 2 s)] = 2 × 10/11 s, + 20 ms, shared by 10.
    let billed = (2000.0 * 10.0 / 11.0 + 20.0_f64).ceil();
    assert_eq!(burst.lambda.as_ref().map(|l| l.billed_ms), Some(billed as u64));
    assert!(close(line(&burst, "Lambda duration").quantity, 0.125 * billed / 1000.0 / 10.0));
    let sqs: f64 = burst
        .lines
        .iter()
        .filter(|l| l.price_key == "sqs.request" && l.basis == Basis::PerCall)
        .map(|l| l.quantity)
        .sum();
    assert!(close(sqs, 1.2), "{burst}");
    assert!(burst.per_million_calls < steady.per_million_calls);
    // The front door and the ledger do not batch.
    assert!(close(line(&burst, "REST API request").quantity, line(&steady, "REST API request").quantity));
    Ok(())
}

#[test]
fn the_ledger_bills_four_write_units_a_calculation_on_every_path() -> Result<(), CostError> {
    for p in select("queue")? {
        let e = priced(&p.id, Params::default())?;
        let wru: f64 =
            e.lines.iter().filter(|l| l.price_key == "dynamodb.write_request_unit").map(|l| l.quantity).sum();
        // TransactWriteItems: 2 WRU for the message id's Put, 2 for the ADD on `done`.
        assert!(close(wru, 4.0), "{}: {wru}", p.id);
    }
    Ok(())
}

#[test]
fn kops_saves_the_eks_fee_less_its_own_control_plane_node_and_volumes() -> Result<(), CostError> {
    let eks = priced("queue-rabbitmq-eks", Params::default())?;
    let kops = priced("queue-rabbitmq-kops", Params::default())?;
    let eks_fee = 730.0 * unit("eks.cluster_hour");
    let control_plane = 730.0 * unit("ec2.t4g.small") + 60.0 * unit("ebs.gp3_gb_month");
    assert!(close(eks.fixed_per_month - kops.fixed_per_month, eks_fee - control_plane), "{eks}\n{kops}");
    assert!(close(eks.per_million_calls, kops.per_million_calls));
    // The seed's "$73" for EKS against "a minimum of $12.06" for kOps' control node.
    assert!(close(eks_fee, 73.0));
    Ok(())
}

#[test]
fn the_serverless_queue_costs_less_than_a_cluster_below_the_break_even_rate_and_more_above()
-> Result<(), CostError> {
    let at = |id: &str, calls: u64| {
        estimate(profile(id)?, london()?, &Params { calls_per_month: calls, ..Params::default() })
    };
    let sqs = at("queue-sqs-lambda", 1_000_000)?;
    for cluster in ["queue-rabbitmq-kops", "queue-rabbitmq-eks"] {
        let k8s = at(cluster, 1_000_000)?;
        let break_even = (k8s.fixed_per_month - sqs.fixed_per_month)
            / ((sqs.per_million_calls - k8s.per_million_calls) / 1e6);
        let below = (break_even * 0.9) as u64;
        let above = (break_even * 1.1) as u64;
        assert!(at("queue-sqs-lambda", below)?.per_month < at(cluster, below)?.per_month, "{cluster}");
        assert!(at("queue-sqs-lambda", above)?.per_month > at(cluster, above)?.per_month, "{cluster}");
    }
    Ok(())
}

#[test]
fn the_pipeline_is_priced_at_seed_001s_twelve_million_events_an_hour_in_both_stream_modes()
-> Result<(), CostError> {
    let modes: Vec<Option<StreamMode>> =
        select("pipeline")?.iter().map(|p| p.stream.as_ref().map(|s| s.mode)).collect();
    assert_eq!(modes, [Some(StreamMode::Provisioned), Some(StreamMode::OnDemand)]);
    for p in select("pipeline")? {
        assert_eq!(p.calls_per_month, Some(12_000_000 * 730), "{}", p.id);
        let e = priced(&p.id, Params::default())?;
        // The HTTP API request and three Lambdas' requests: one upstream a call, a batch of 100
        // for each consumer.
        assert!(close(line(&e, "HTTP API request").quantity, 1.0));
        assert!(close(line(&e, "Lambda upstream request").quantity, 1.0));
        assert!(close(line(&e, "Lambda midstream request").quantity, 0.01));
        assert!(close(line(&e, "Lambda downstream request").quantity, 0.01));
        // Two tables, one write unit each.
        let wru: f64 =
            e.lines.iter().filter(|l| l.price_key == "dynamodb.write_request_unit").map(|l| l.quantity).sum();
        assert!(close(wru, 2.0));
        // DynamoDB stream reads by a Lambda event source are free: no read line at all.
        assert!(e.lines.iter().all(|l| !l.price_key.starts_with("dynamodb.read")), "{e}");
        assert!(e.notes.iter().any(|n| n.contains("Lambda-based consumers are free")), "{e}");
        assert!(close(line(&e, "CloudWatch custom metrics").quantity, 8.0));
    }
    Ok(())
}

#[test]
fn the_provisioned_stream_needs_four_shards_for_3333_records_a_second_of_200_bytes() -> Result<(), CostError>
{
    let e = priced("pipeline-provisioned", Params::default())?;
    let stream = e.stream.as_ref().expect("a stream");
    assert!(close(stream.records_per_s, 12_000_000.0 / 3600.0));
    // 3,333 records/s ÷ 1,000 a shard = 4; 667 KB/s is under one shard's 1 MB/s.
    assert_eq!((stream.record_bytes, stream.shards), (200, 4));
    assert!(close(line(&e, "Kinesis shard-hours").quantity, 4.0 * 730.0));
    assert!(close(line(&e, "Kinesis PUT payload units").quantity, 1.0));
    Ok(())
}

#[test]
fn large_records_size_the_shards_by_bytes_and_bill_a_put_unit_per_started_25_kb() -> Result<(), CostError> {
    // 30,000-byte records at 3,333/s: 95 MiB/s → 96 shards by bytes (4 by records); 2 PUT units.
    let e = priced("pipeline-provisioned", Params { event_bytes: Some(30_000), ..Params::default() })?;
    let bytes_per_s = 12_000_000.0 / 3600.0 * 30_000.0;
    assert_eq!(e.stream.as_ref().map(|s| s.shards), Some((bytes_per_s / 1_048_576.0_f64).ceil() as u64));
    assert!(close(line(&e, "Kinesis PUT payload units").quantity, 2.0));
    // A quiet stream still pays its one shard.
    let quiet = estimate(
        profile("pipeline-provisioned")?,
        london()?,
        &Params { calls_per_month: 1000, ..Params::default() },
    )?;
    assert_eq!(quiet.stream.as_ref().map(|s| s.shards), Some(1));
    Ok(())
}

#[test]
fn on_demand_bills_each_record_in_as_a_whole_kilobyte_and_out_as_its_bytes() -> Result<(), CostError> {
    let e = priced("pipeline-on-demand", Params::default())?;
    let gb = 1_073_741_824.0;
    assert!(close(line(&e, "Kinesis on-demand data in").quantity, 1024.0 / gb));
    assert!(close(line(&e, "Kinesis on-demand data out").quantity, 200.0 / gb));
    assert!(close(line(&e, "Kinesis on-demand stream-hours").quantity, 730.0));
    assert!(e.lines.iter().all(|l| l.price_key != "kinesis.shard_hour"), "{e}");
    let big = priced("pipeline-on-demand", Params { event_bytes: Some(1025), ..Params::default() })?;
    assert!(close(line(&big, "Kinesis on-demand data in").quantity, 2048.0 / gb));
    Ok(())
}

#[test]
fn measured_durations_replace_the_pipelines_assumptions_by_function_name() -> Result<(), CostError> {
    let assumed = priced("pipeline-provisioned", Params::default())?;
    let measured = priced(
        "pipeline-provisioned",
        Params {
            function_ms: vec![("midstream".into(), 42.2), ("downstream".into(), 7.0), ("nosuch".into(), 1.0)],
            duration_ms: Some(9.5),
            ..Params::default()
        },
    )?;
    let ms: Vec<u64> = measured.lambda.iter().chain(&measured.functions).map(|l| l.billed_ms).collect();
    assert_eq!(ms, [10, 43, 7]);
    assert!(close(line(&measured, "Lambda midstream duration").quantity, 0.125 * 0.043 / 100.0));
    assert!(measured.per_million_calls < assumed.per_million_calls);
    // The upstream is named too: its measured duration can come by name.
    let by_name = priced(
        "pipeline-provisioned",
        Params { function_ms: vec![("upstream".into(), 9.5)], ..Params::default() },
    )?;
    assert_eq!(by_name.lambda.as_ref().map(|l| l.billed_ms), Some(10));
    let bad = priced(
        "pipeline-provisioned",
        Params { function_ms: vec![("midstream".into(), -1.0)], ..Params::default() },
    );
    assert!(matches!(bad, Err(CostError::InvalidParam { name: "function_ms", .. })), "{bad:?}");
    Ok(())
}

#[test]
fn a_group_names_its_profiles_and_an_unknown_id_lists_the_groups_too() -> Result<(), CostError> {
    assert_eq!(select("lambda-dynamodb")?.len(), 1);
    match select("queues") {
        Err(CostError::UnknownProfile { known, .. }) => {
            assert!(known.contains("queue-sqs-lambda") && known.contains("pipeline"), "{known}");
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn malformed_functions_streams_and_groups_are_refused_naming_the_profile() {
    let head = "[[profile]]\nid = \"p\"\nlabel = \"P\"\n";
    for (body, says) in [
        ("functions = [{ arch = \"arm64\", memory_mb = 128, duration_ms = 1 }]\n", "needs a name"),
        (
            "lambda = { name = \"a\", arch = \"arm64\", memory_mb = 128, duration_ms = 1 }\nfunctions = [{ name = \"a\", arch = \"arm64\", memory_mb = 128, duration_ms = 1 }]\n",
            "two functions are named `a`",
        ),
        (
            "lambda = { arch = \"arm64\", memory_mb = 128, duration_ms = 1, calls_per_invocation = 0.5 }\n",
            "at least 1",
        ),
        ("stream = { mode = \"provisioned\" }\n", "event_bytes"),
        ("event_bytes = 10\nstream = { mode = \"provisioned\", min_shards = 0 }\n", "at least 1"),
        ("calls_per_month = 0\nmonthly = [{ item = \"x\", price = \"a.b\" }]\n", "calls_per_month"),
    ] {
        let err = parse_profiles(&format!("{head}{body}"), "mine.toml").map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("profile `p`") && err.contains(says), "{body}: {err}");
    }
    let group = format!(
        "{head}monthly = [{{ item = \"x\", price = \"a.b\" }}]\n[[group]]\nid = \"g\"\nprofiles = [\"p\", \"q\"]\n"
    );
    let err = parse_profiles(&group, "mine.toml").map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("`q`, which is not a profile"), "{err}");
    let clash = format!(
        "{head}monthly = [{{ item = \"x\", price = \"a.b\" }}]\n[[group]]\nid = \"p\"\nprofiles = [\"p\"]\n"
    );
    assert!(parse_profiles(&clash, "mine.toml").is_err());
}

#[test]
fn the_prices_added_for_the_queue_and_the_pipeline_say_when_and_how_they_were_found() -> Result<(), CostError>
{
    for b in cost::builtin_books()? {
        for key in [
            "kinesis.on_demand_gb_in",
            "kinesis.on_demand_gb_out",
            "kinesis.on_demand_stream_hour",
            "cloudwatch.custom_metric_month",
            "cloudwatch.logs_gb_ingested",
            "elb.nlb_hour",
        ] {
            let price = b.price(key)?;
            let note = price.note.as_deref().unwrap_or_default();
            assert!(
                note.contains("added 2026-12-06") && note.contains("not re-checked offline"),
                "{}: {key}",
                b.id()
            );
            assert!(price.source.starts_with("https://aws.amazon.com/"), "{key}");
        }
    }
    Ok(())
}

#[test]
fn a_profile_whose_call_is_not_a_request_prints_its_cost_per_1000_of_them() -> Result<(), CostError> {
    let queue = priced("queue-sqs-lambda", Params::default())?;
    let text = queue.render(cost::Format::Text);
    let per_1000 = cost::money(queue.per_million_calls / 1000.0);
    assert!(text.contains("per month at 26,280,000 calculations"), "{text}");
    assert!(text.contains(&format!("per 1,000 calculations: {per_1000} (the per-call items")), "{text}");
    let markdown = queue.render(cost::Format::Markdown);
    assert!(markdown.contains(&format!("\nper 1,000 calculations: {per_1000} (")), "{markdown}");
    let hits =
        estimate(profile("lambda-dynamodb")?, london()?, &Params::default())?.render(cost::Format::Text);
    assert!(!hits.contains("per 1,000") && hits.contains("per month at 1,000,000 calls\n"), "{hits}");
    Ok(())
}
