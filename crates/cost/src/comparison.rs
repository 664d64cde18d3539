//! The ingest comparison: the Lambda path, one request per event, against the batching server, at
//! a volume of events an hour; the Firehose packing saving; seed 001's own figure for reference.

use crate::book::PriceBook;
use crate::estimate::{Estimate, HOURS_PER_MONTH, Params, estimate};
use crate::numbers::{amount, money, significant, thousands};
use crate::profile::profile;
use crate::render::{Format, Row, Table};
use crate::{CostError, GB_BYTES, firehose_billed_bytes};

/// The architectures compared, in the order printed: the Lambda path behind each API Gateway
/// flavour, then the batching server without and with a load balancer.
pub const INGEST_PROFILES: [&str; 4] =
    ["ingest-firehose", "ingest-firehose-rest", "ingest-server", "ingest-server-alb"];

/// The Lambda paths of [`INGEST_PROFILES`].
const LAMBDA_PATHS: [&str; 2] = ["ingest-firehose", "ingest-firehose-rest"];
/// The batching servers of [`INGEST_PROFILES`].
const SERVERS: [&str; 2] = ["ingest-server-alb", "ingest-server"];
/// The server whose records the packing block shows.
const PACKING_SERVER: &str = "ingest-server";

/// The load: how many events, how large, how many to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestLoad {
    /// Events an hour, all month (seed 001: 12,000,000).
    pub events_per_hour: u64,
    /// Size of one event as put in a record: a line of compact JSON and its newline.
    pub event_bytes: u64,
    /// Events one HTTP request carries (1, or an array of up to 500).
    pub events_per_request: u32,
}

impl Default for IngestLoad {
    /// Seed 001's 12,000,000 events an hour, 200-byte browser metrics, one event per request.
    fn default() -> IngestLoad {
        IngestLoad { events_per_hour: 12_000_000, event_bytes: 200, events_per_request: 1 }
    }
}

impl IngestLoad {
    /// `events_per_hour × 730`.
    pub fn events_per_month(&self) -> u64 {
        self.events_per_hour.saturating_mul(HOURS_PER_MONTH as u64)
    }

    /// Requests a month: events ÷ events per request, rounded up.
    pub fn requests_per_month(&self) -> u64 {
        self.events_per_month().div_ceil(u64::from(self.events_per_request.max(1)))
    }

    /// `base` with this load's volume (one call per request), events per call and event size.
    pub fn params(&self, base: Params) -> Params {
        Params {
            calls_per_month: self.requests_per_month(),
            events_per_call: self.events_per_request,
            event_bytes: Some(self.event_bytes),
            ..base
        }
    }
}

/// Seed 001's own figure for its Elixir replacement (2018): "$0.0552 * 1.1 (cpu) * 4 (nodes) *
/// 24 (hours) * 30 (days) = $174". Compute only, on a Kubernetes cluster it already had; its
/// Kinesis streams and load balancing are not in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedReference {
    /// Elixir nodes on average.
    pub nodes: f64,
    /// vCPUs each uses on average.
    pub vcpu_per_node: f64,
    /// A t2.2xlarge's $0.4416 an hour ÷ its 8 vCPUs.
    pub usd_per_vcpu_hour: f64,
    /// The seed's month: 24 × 30 hours.
    pub hours_per_month: f64,
    /// The load it served.
    pub events_per_hour: u64,
}

/// The numbers seed 001 published.
pub const SEED_001_ELIXIR: SeedReference = SeedReference {
    nodes: 4.0,
    vcpu_per_node: 1.1,
    usd_per_vcpu_hour: 0.4416 / 8.0,
    hours_per_month: 24.0 * 30.0,
    events_per_hour: 12_000_000,
};

impl SeedReference {
    /// Dollars a month: $174.87 (the seed prints $174).
    pub fn per_month(&self) -> f64 {
        self.usd_per_vcpu_hour * self.vcpu_per_node * self.nodes * self.hours_per_month
    }

    /// Events a second each vCPU handled: about 758.
    pub fn events_per_vcpu_s(&self) -> f64 {
        self.events_per_hour as f64 / 3600.0 / (self.nodes * self.vcpu_per_node)
    }
}

/// What packing saves on Firehose: the month's events put one to a record against packed as the
/// batching server packs them.
#[derive(Debug, Clone, PartialEq)]
pub struct FirehosePacking {
    /// Events a month.
    pub events: u64,
    /// Size of one event.
    pub event_bytes: u64,
    /// Dollars per GB ingested.
    pub usd_per_gb: f64,
    /// GB of the events themselves, no rounding.
    pub actual_gb: f64,
    /// One event per record: each billed as 5 KB (or its size rounded up to 5 KB).
    pub one_per_record_gb: f64,
    /// Events in one of the server's records.
    pub packed_events_per_record: u64,
    /// Packed: each record rounded up to 5 KB.
    pub packed_gb: f64,
}

impl FirehosePacking {
    /// Dollars a month, one event per record.
    pub fn one_per_record_usd(&self) -> f64 {
        self.one_per_record_gb * self.usd_per_gb
    }

    /// Dollars a month, packed.
    pub fn packed_usd(&self) -> f64 {
        self.packed_gb * self.usd_per_gb
    }

    /// Dollars a month if Firehose billed the bytes themselves.
    pub fn actual_usd(&self) -> f64 {
        self.actual_gb * self.usd_per_gb
    }

    /// What packing saves a month.
    pub fn saving_usd(&self) -> f64 {
        self.one_per_record_usd() - self.packed_usd()
    }
}

/// Every ingest architecture priced at one load, with the packing saving and the seed's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestComparison {
    /// The load priced.
    pub load: IngestLoad,
    /// One estimate per [`INGEST_PROFILES`] id, in that order.
    pub estimates: Vec<Estimate>,
    /// Firehose one event per record against packed.
    pub packing: FirehosePacking,
    /// Seed 001's Elixir figure.
    pub seed: SeedReference,
}

/// Prices [`INGEST_PROFILES`] with `book` at `load`; `params` carries the rest (Lambda duration,
/// events per vCPU a second, utilisation …) and its volume fields are replaced by the load's.
pub fn compare_ingest(
    book: &PriceBook,
    load: &IngestLoad,
    params: &Params,
) -> Result<IngestComparison, CostError> {
    if load.events_per_hour == 0 {
        return Err(CostError::InvalidParam { name: "events_per_hour", reason: "must be at least 1".into() });
    }
    let params = load.params(params.clone());
    let estimates = INGEST_PROFILES
        .iter()
        .map(|id| estimate(profile(id)?, book, &params))
        .collect::<Result<Vec<_>, _>>()?;
    let server = estimates.iter().find(|e| e.profile == PACKING_SERVER);
    let packed_events_per_record = server.and_then(|e| e.records.as_ref()).map_or(1, |r| r.events_per_record);
    // The model's events: whole requests of `events_per_request`, as the estimates price them.
    let events = params.calls_per_month.saturating_mul(u64::from(params.events_per_call));
    let packed_record = packed_events_per_record * load.event_bytes;
    let packing = FirehosePacking {
        events,
        event_bytes: load.event_bytes,
        usd_per_gb: book.price("firehose.gb_ingested")?.unit_usd(),
        actual_gb: events as f64 * load.event_bytes as f64 / GB_BYTES,
        one_per_record_gb: events as f64 * firehose_billed_bytes(load.event_bytes) as f64 / GB_BYTES,
        packed_events_per_record,
        packed_gb: events as f64 / packed_events_per_record as f64
            * firehose_billed_bytes(packed_record) as f64
            / GB_BYTES,
    };
    Ok(IngestComparison { load: *load, estimates, packing, seed: SEED_001_ELIXIR })
}

impl IngestComparison {
    /// The estimate of one of [`INGEST_PROFILES`].
    pub fn estimate(&self, id: &str) -> Option<&Estimate> {
        self.estimates.iter().find(|e| e.profile == id)
    }

    /// How many times `a` costs `b` a month.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.estimate(a)?.per_month / self.estimate(b)?.per_month)
    }

    /// The summary (with the ratios), the packing saving, then each architecture's items unless
    /// `summary_only`, then the assumptions.
    pub fn render(&self, format: Format, summary_only: bool) -> String {
        let Some(first) = self.estimates.first() else {
            return String::new();
        };
        let load = &self.load;
        let events_per_s = load.events_per_hour as f64 / 3600.0;
        let mut out = match format {
            Format::Text => format!(
                "Ingest at {} events an hour ({} a second), {} B each, {} a request\n\
                 prices {} as of {} (USD); a month is {} hours: {} events, {} requests\n\n",
                thousands(load.events_per_hour),
                amount(events_per_s),
                thousands(load.event_bytes),
                load.events_per_request,
                first.region,
                first.as_of,
                HOURS_PER_MONTH,
                thousands(self.packing.events),
                thousands(first.calls_per_month),
            ),
            Format::Markdown => format!(
                "## Ingest at {} events an hour\n\n{} events a second, {} B each, {} a request. Prices {} \
                 as of {} (USD); a month is {} hours: {} events, {} requests.\n\n",
                thousands(load.events_per_hour),
                amount(events_per_s),
                thousands(load.event_bytes),
                load.events_per_request,
                first.region,
                first.as_of,
                HOURS_PER_MONTH,
                thousands(self.packing.events),
                thousands(first.calls_per_month),
            ),
        };
        out.push_str(&self.summary_table(format));
        out.push('\n');
        for lambda in LAMBDA_PATHS {
            let ratios: Vec<String> = SERVERS
                .iter()
                .filter_map(|server| {
                    let r = self.ratio(lambda, server)?;
                    Some(format!("{}× {server}", significant(r, 3, 0)))
                })
                .collect();
            out.push_str(&format!("- the Lambda path {lambda} costs {}\n", ratios.join(", ")));
        }
        out.push('\n');
        out.push_str(&self.packing_table(format));
        if !summary_only {
            for estimate in &self.estimates {
                out.push('\n');
                out.push_str(&estimate.render_monthly(format));
            }
        }
        out.push('\n');
        out.push_str(match format {
            Format::Text => "Assumptions\n",
            Format::Markdown => "### Assumptions\n\n",
        });
        for note in self.assumptions() {
            out.push_str(&format!("- {note}\n"));
        }
        out
    }

    fn summary_table(&self, format: Format) -> String {
        let million_events = self.packing.events as f64 / 1e6;
        let mut rows: Vec<Row> = self
            .estimates
            .iter()
            .map(|e| {
                Row::Cells(vec![
                    e.profile.clone(),
                    e.label.clone(),
                    money(e.per_month),
                    money(e.per_month / million_events),
                ])
            })
            .collect();
        let seed = &self.seed;
        let seed_million_events = seed.events_per_hour as f64 * seed.hours_per_month / 1e6;
        rows.push(Row::Cells(vec![
            "seed-001-elixir".into(),
            format!(
                "Reference: seed 001's Elixir nodes, {} × {} vCPU at ${}/vCPU-hour × 24 × 30 h (2018, \
                 compute only)",
                seed.nodes, seed.vcpu_per_node, seed.usd_per_vcpu_hour
            ),
            money(seed.per_month()),
            money(seed.per_month() / seed_million_events),
        ]));
        Table {
            header: vec!["id", "architecture", "per month", "per 1M events"],
            right: vec![false, false, true, true],
            rows,
        }
        .render(format)
    }

    fn packing_table(&self, format: Format) -> String {
        let p = &self.packing;
        let packed_record = p.packed_events_per_record * p.event_bytes;
        let saving = p.saving_usd();
        let share = if p.one_per_record_usd() > 0.0 { saving / p.one_per_record_usd() * 100.0 } else { 0.0 };
        let per_request = self.load.events_per_request;
        let mut rows = vec![Row::Cells(vec![
            if per_request == 1 {
                "one event per record (the Lambda path, 1 event a request)".into()
            } else {
                "one event per record (a put per event)".into()
            },
            thousands(p.events),
            format!("{} B", thousands(firehose_billed_bytes(p.event_bytes))),
            amount(p.one_per_record_gb),
            money(p.one_per_record_usd()),
        ])];
        let lambda = self.estimate(LAMBDA_PATHS[0]);
        if let (true, Some(records), Some(line)) = (
            per_request > 1,
            lambda.and_then(|e| e.records.as_ref()),
            lambda.and_then(|e| e.lines.iter().find(|l| l.price_key == "firehose.gb_ingested")),
        ) {
            let calls = lambda.map_or(0, |e| e.calls_per_month) as f64;
            rows.push(Row::Cells(vec![
                format!(
                    "the Lambda path, {per_request} events a request packed per request: {} events ({} B) a record",
                    thousands(records.events_per_record),
                    thousands(records.record_bytes())
                ),
                amount(records.records_per_call * calls),
                format!("{} B", thousands(firehose_billed_bytes(records.record_bytes()))),
                amount(line.quantity * calls),
                money(line.per_month),
            ]));
        }
        rows.extend([
            Row::Cells(vec![
                format!(
                    "packed as {PACKING_SERVER} packs: {} events ({} B) a record",
                    thousands(p.packed_events_per_record),
                    thousands(packed_record)
                ),
                amount(p.events as f64 / p.packed_events_per_record as f64),
                format!("{} B", thousands(firehose_billed_bytes(packed_record))),
                amount(p.packed_gb),
                money(p.packed_usd()),
            ]),
            Row::Cells(vec![
                "the events' own bytes, no rounding".into(),
                "-".into(),
                "-".into(),
                amount(p.actual_gb),
                money(p.actual_usd()),
            ]),
            Row::Total(vec![
                format!("saving of packing ({}%)", significant(share, 3, 0)),
                String::new(),
                String::new(),
                amount(p.one_per_record_gb - p.packed_gb),
                money(saving),
            ]),
        ]);
        let heading = format!(
            "Firehose: {} events of {} B a month at {} per GB (each record billed rounded up to 5 KB)",
            thousands(p.events),
            thousands(p.event_bytes),
            money(p.usd_per_gb)
        );
        let table = Table {
            header: vec!["records", "records a month", "billed each", "GB billed", "per month"],
            right: vec![false, true, true, true, true],
            rows,
        }
        .render(format);
        match format {
            Format::Text => format!("{heading}\n\n{table}"),
            Format::Markdown => format!("### {heading}\n\n{table}"),
        }
    }

    /// What a reader must know to trust the figures, one sentence each.
    pub fn assumptions(&self) -> Vec<String> {
        let seed = &self.seed;
        let events_per_s = self.load.events_per_hour as f64 / 3600.0;
        let requests_per_s = events_per_s / f64::from(self.load.events_per_request.max(1));
        let duration_ms = self.estimate(LAMBDA_PATHS[0]).and_then(|e| e.lambda.as_ref()).map(|l| l.billed_ms);
        let mut notes = vec![
            format!(
                "The load is steady: {} events an hour every hour of a {}-hour month. Seed 001's \
                 12,000,000 is its peak (\"up to\"), so this overstates a month of it.",
                thousands(self.load.events_per_hour),
                HOURS_PER_MONTH
            ),
            "API Gateway is priced at its first tier for every request. AWS lowers the price past \
             300 M (HTTP API) and 333 M (REST API) requests a month (in us-east-1, recalled and not \
             re-checked offline: HTTP $0.90/M after 300 M; REST $2.80/M for the next 667 M, $2.38/M \
             for the next 19 B), so at billions of requests a month the API Gateway lines overstate the \
             bill (at seed 001's 8.76 B a month, by about 10% for HTTP and 30% for REST)."
                .into(),
            format!(
                "Firehose Direct PUT's default quota is 2,000 requests a second per stream in \
                 us-east-1, us-west-2 and eu-west-1 and 1,000 elsewhere (recalled, not re-checked \
                 offline). The Lambda path makes {} put calls a second (one per request): {}; the \
                 server's PutRecordBatch calls stay far below it.",
                amount(requests_per_s.round()),
                if requests_per_s > 2000.0 {
                    "above both, so it needs a quota increase or several streams"
                } else if requests_per_s > 1000.0 {
                    "above the 1,000, so outside those three regions it needs a quota increase"
                } else {
                    "within both"
                }
            ),
            "The server is sized at the throughput per vCPU given (default 5,000 events a second): \
             far below what scripts/bench-ingest measures on loopback (about 40,000-50,000 single-event \
             POSTs per CPU-second into a null sink), leaving room for TLS at the load balancer, larger \
             events and Firehose calls. Seed 001's Elixir nodes did about 760 a second per vCPU."
                .into(),
            format!(
                "seed-001-elixir is the seed's own arithmetic (2018, 24 × 30 hours, t2.2xlarge at \
                 $0.4416 an hour ÷ 8 vCPUs): {} a month (it prints $174), about {} events a second per \
                 vCPU, on a Kubernetes cluster it already ran. Its API side (load balancing) and its \
                 Kinesis streams are not included, so it is a reference, not a comparable total.",
                money(seed.per_month()),
                amount(seed.events_per_vcpu_s().round())
            ),
            "No data transfer, CloudWatch or free tier on any row. What happens after Firehose \
             (delivery to S3, the IngestTransformFunction it invokes on each buffered batch) is \
             much the same for every row and left out; the Lambda path adds no cold starts unless \
             asked."
                .into(),
        ];
        if let Some(ms) = duration_ms {
            let concurrency = (requests_per_s * ms as f64 / 1000.0).ceil();
            notes.push(format!(
                "Lambda concurrency at {} requests a second × {ms} ms ≈ {}: {} the default 1,000 a \
                 region.",
                amount(requests_per_s.round()),
                amount(concurrency),
                if concurrency <= 1000.0 { "within" } else { "above, so it needs a quota increase over" }
            ));
        }
        notes
    }
}
