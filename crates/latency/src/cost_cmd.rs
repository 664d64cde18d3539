//! `latency cost`: the itemised cost of each architecture, per million calls and per month;
//! `latency cost --ingest`: the ingest architectures at a volume of events an hour.

use std::path::PathBuf;

use cost::{Arch, Estimate, Format, PriceBook, Profile};

use crate::error::Error;

/// Prices and the parameters every estimate shares (also used by `latency report`).
#[derive(clap::Args, Clone)]
pub struct PriceArgs {
    /// Region of the built-in price files (eu-west-2, us-east-1).
    #[arg(long, default_value = "eu-west-2")]
    pub region: String,
    /// Date of the price file (e.g. 2021 for the original's London prices); default: the latest.
    #[arg(long)]
    pub as_of: Option<String>,
    /// A price file of your own (TOML, format in crates/cost/prices/README.md); overrides --region.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Calls per month, for the monthly total [default: the architecture's own volume (the
    /// queue's 10 calculations a second, the pipeline's 12M items an hour), else 1,000,000].
    #[arg(long)]
    pub calls_per_month: Option<u64>,
    /// Lambda architecture (arm64, x86_64); default: each architecture's own.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Lambda memory in MB; default: each architecture's own.
    #[arg(long = "memory", value_name = "MB")]
    pub memory_mb: Option<u32>,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub prices: PriceArgs,
    /// Only these architectures (ids from the summary, or a group: queue, pipeline; repeat or
    /// comma-separate). Default: all.
    #[arg(long = "architecture", short = 'a', value_delimiter = ',')]
    architectures: Vec<String>,
    /// Billed Lambda duration per call in ms (default: each architecture's placeholder; measure
    /// it with `latency report`).
    #[arg(long)]
    duration_ms: Option<f64>,
    /// A named function's duration per invocation in ms, replacing the architecture's
    /// assumption: NAME=MS (the pipeline's upstream, midstream, downstream); repeat or
    /// comma-separate.
    #[arg(long, value_name = "NAME=MS", value_delimiter = ',', value_parser = parse_function_ms)]
    function_ms: Vec<(String, f64)>,
    /// Lambda INIT duration in ms, billed on cold calls.
    #[arg(long)]
    init_ms: Option<f64>,
    /// Fraction of calls that are cold starts (0..1).
    #[arg(long, default_value_t = 0.0)]
    cold_start_ratio: f64,
    /// EC2 instance type for the EC2 architectures (e.g. t3.micro).
    #[arg(long)]
    instance_type: Option<String>,
    /// The ingest comparison instead: API Gateway (HTTP and REST) + Lambda per event against the
    /// batching server on Fargate Spot (without and with an ALB), itemised per month, with the
    /// Firehose packing saving and seed 001's own figure.
    #[arg(long, conflicts_with_all = ["architectures", "calls_per_month", "instance_type"])]
    ingest: bool,
    /// Events an hour, every hour of the month (with --ingest; seed 001's 12,000,000).
    #[arg(long, default_value_t = 12_000_000, requires = "ingest")]
    events_per_hour: u64,
    /// Bytes of one event as put in a record, its newline included (default: each
    /// architecture's, 200).
    #[arg(long)]
    event_bytes: Option<u64>,
    /// Events one HTTP request carries: 1, or an array of up to 500. The Lambda path packs a
    /// request's events into records; the batching server packs many requests'.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=500))]
    events_per_request: u32,
    /// Events a second one vCPU of the batching server handles, to size its fleet (default
    /// 5,000, well under what scripts/bench-ingest measures; see docs/results.md).
    #[arg(long, value_name = "EVENTS")]
    events_per_vcpu_s: Option<f64>,
    /// Share of the batching server fleet's capacity to size for, 0 < u ≤ 1 (default 0.5).
    #[arg(long)]
    utilisation: Option<f64>,
    /// Only the summary table, not each architecture's items.
    #[arg(long)]
    summary: bool,
    /// Markdown instead of aligned text.
    #[arg(long)]
    markdown: bool,
}

impl PriceArgs {
    /// The price book: the user's file if given, else the built-in one for region and date.
    pub fn book(&self) -> Result<PriceBook, Error> {
        match &self.prices {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(Error::io(format!("reading {}", path.display())))?;
                Ok(PriceBook::parse(&text, &path.display().to_string())?)
            }
            None => Ok(cost::book(&self.region, self.as_of.as_deref())?.clone()),
        }
    }

    /// `--calls-per-month`, or the model's default volume.
    pub fn calls_per_month(&self) -> u64 {
        self.calls_per_month.unwrap_or(cost::Params::default().calls_per_month)
    }

    /// Parameters for an estimate, with a measured or assumed duration.
    pub fn params(&self, duration_ms: Option<f64>) -> cost::Params {
        cost::Params {
            arch: self.arch,
            memory_mb: self.memory_mb,
            duration_ms,
            calls_per_month: self.calls_per_month(),
            ..cost::Params::default()
        }
    }
}

/// `midstream=42.5` → (`midstream`, 42.5).
fn parse_function_ms(text: &str) -> Result<(String, f64), String> {
    let (name, ms) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=MS"))?;
    let ms: f64 = ms.trim().parse().map_err(|_| format!("`{ms}` is not a number of milliseconds"))?;
    if name.trim().is_empty() {
        return Err(format!("`{text}`: the function's name is missing"));
    }
    Ok((name.trim().to_owned(), ms))
}

pub fn run(args: Args) -> Result<(), Error> {
    let book = args.prices.book()?;
    let profiles: Vec<&Profile> = if args.architectures.is_empty() {
        cost::profiles()?.iter().collect()
    } else {
        let mut chosen: Vec<&Profile> = Vec::new();
        for id in &args.architectures {
            for profile in cost::select(id.trim())? {
                if !chosen.iter().any(|p| p.id == profile.id) {
                    chosen.push(profile);
                }
            }
        }
        chosen
    };
    let params = cost::Params {
        init_ms: args.init_ms,
        cold_start_ratio: args.cold_start_ratio,
        instance_type: args.instance_type.clone(),
        events_per_call: args.events_per_request,
        event_bytes: args.event_bytes,
        events_per_vcpu_s: args.events_per_vcpu_s,
        utilisation: args.utilisation,
        function_ms: args.function_ms.clone(),
        ..args.prices.params(args.duration_ms)
    };
    let format = if args.markdown { Format::Markdown } else { Format::Text };
    if args.ingest {
        let load = cost::IngestLoad {
            events_per_hour: args.events_per_hour,
            event_bytes: args.event_bytes.unwrap_or(cost::IngestLoad::default().event_bytes),
            events_per_request: args.events_per_request,
        };
        print!("{}", cost::compare_ingest(&book, &load, &params)?.render(format, args.summary));
        return Ok(());
    }
    // Each architecture at the volume asked for, else at its own (the pipeline's 12M an hour).
    let default_calls = cost::Params::default().calls_per_month;
    let estimates: Vec<Estimate> = profiles
        .iter()
        .map(|profile| {
            let calls_per_month =
                args.prices.calls_per_month.or(profile.calls_per_month).unwrap_or(default_calls);
            cost::estimate(profile, &book, &cost::Params { calls_per_month, ..params.clone() })
        })
        .collect::<Result<_, _>>()?;
    print!("{}", cost::render_summary(&estimates, format));
    if !args.summary {
        for estimate in &estimates {
            println!();
            print!("{}", estimate.render(format));
        }
    }
    Ok(())
}
