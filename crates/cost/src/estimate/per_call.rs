//! Per-call items — API requests, database writes, object requests — and the records a call's
//! events make on Firehose, Kinesis or SQS: packed per call, or across calls by a server's buffer.

use super::bill::Bill;
use super::{Basis, Params};
use crate::numbers::{round_to, thousands, trim_number};
use crate::profile::{Profile, RecordSizing};
use crate::{CostError, firehose_billed_bytes};

/// How an estimate turned events into records, for profiles with a `record` item.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUsage {
    /// The sink and its billing.
    pub sizing: RecordSizing,
    /// Size of one event.
    pub event_bytes: u64,
    /// Events in one (full) record: at most what fits in the sink's record cap, and at most the
    /// events of one call (per-call packing) or of one linger (a server's buffer).
    pub events_per_record: u64,
    /// Records one call's events make, on average.
    pub records_per_call: f64,
    /// Billed units (GB, PUT payload units, requests) one call's records make.
    pub units_per_call: f64,
    /// The buffer's linger when a server pools many calls' events; `None`: packed per call.
    pub linger_ms: Option<f64>,
}

impl RecordUsage {
    /// Bytes of one (full) record: `events_per_record × event_bytes`.
    pub fn record_bytes(&self) -> u64 {
        self.events_per_record.saturating_mul(self.event_bytes)
    }
}

/// A line per per-call item, a record item's quantity in the sink's billed units; the records'
/// usage (the last record item's) and a note on each.
pub(super) fn price_items(
    bill: &mut Bill<'_>,
    events_per_s_per_task: f64,
) -> Result<Option<RecordUsage>, CostError> {
    let (profile, params) = (bill.profile, bill.params);
    let mut records = None;
    for item in &profile.per_call {
        let mut quantity = item.quantity / item.per_calls;
        let mut label = item.item.clone();
        if let Some(sizing) = item.record {
            let usage = record_usage(profile, params, sizing, events_per_s_per_task)?;
            quantity *= usage.units_per_call;
            label = record_label(&item.item, &usage);
            bill.notes.push(record_note(&usage, params.events_per_call));
            records = Some(usage);
        }
        bill.push(label, &item.price, Basis::PerCall, quantity, 0.0)?;
    }
    Ok(records)
}

/// How one call's events become records of `sizing`'s sink. `events_per_s_per_task` is what one
/// server task receives, for a buffered profile.
fn record_usage(
    profile: &Profile,
    params: &Params,
    sizing: RecordSizing,
    events_per_s_per_task: f64,
) -> Result<RecordUsage, CostError> {
    let event_bytes = params.event_bytes.or(profile.event_bytes).ok_or(CostError::InvalidParam {
        name: "event_bytes",
        reason: format!("`{}` needs an event size", profile.id),
    })?;
    let cap = sizing.max_record_bytes();
    if event_bytes > cap {
        return Err(CostError::InvalidParam {
            name: "event_bytes",
            reason: format!("{event_bytes} B is more than a {} record holds ({cap} B)", sizing.sink()),
        });
    }
    let fit = (cap / event_bytes).max(1);
    let events = u64::from(params.events_per_call);
    let units = |events_in_record: u64| sizing.billed_units(events_in_record * event_bytes);
    Ok(match &profile.buffer {
        None => {
            // One call's events, packed in order: full records, then what is left.
            let (full, rest) = (events / fit, events % fit);
            let records = full + u64::from(rest > 0);
            let rest_units = if rest > 0 { units(rest) } else { 0.0 };
            RecordUsage {
                sizing,
                event_bytes,
                events_per_record: events.min(fit),
                records_per_call: records as f64,
                units_per_call: full as f64 * units(fit) + rest_units,
                linger_ms: None,
            }
        }
        Some(buffer) => {
            // Floor: a record closes at the linger with the events that arrived by then.
            let per_linger = (events_per_s_per_task * buffer.linger_ms / 1000.0).floor();
            let per_record = if per_linger >= fit as f64 { fit } else { (per_linger as u64).max(1) };
            RecordUsage {
                sizing,
                event_bytes,
                events_per_record: per_record,
                records_per_call: events as f64 / per_record as f64,
                units_per_call: events as f64 * units(per_record) / per_record as f64,
                linger_ms: Some(buffer.linger_ms),
            }
        }
    })
}

fn record_label(item: &str, usage: &RecordUsage) -> String {
    if usage.events_per_record == 1 {
        format!("{item} of {} B", thousands(usage.event_bytes))
    } else {
        format!(
            "{item} of {} events ({} B)",
            thousands(usage.events_per_record),
            thousands(usage.record_bytes())
        )
    }
}

fn record_note(usage: &RecordUsage, events_per_call: u32) -> String {
    let sink = usage.sizing.sink();
    let record = usage.record_bytes();
    let billed = match usage.sizing {
        RecordSizing::Firehose => {
            let billed = firehose_billed_bytes(record);
            format!(
                "billed {} B ({}% of it rounding up to 5 KB)",
                thousands(billed),
                trim_number(round_to((billed - record) as f64 / billed as f64 * 100.0, 1))
            )
        }
        RecordSizing::Kinesis => {
            format!("{} PUT payload units", trim_number(usage.sizing.billed_units(record)))
        }
        RecordSizing::Sqs => format!("{} requests", trim_number(usage.sizing.billed_units(record))),
    };
    let events = |n: u64| if n == 1 { "1 event".to_owned() } else { format!("{} events", thousands(n)) };
    match usage.linger_ms {
        None if usage.records_per_call == 1.0 => format!(
            "{sink} records: each call's {} of {} B go into one record of {} B, {billed}.",
            events(u64::from(events_per_call)),
            thousands(usage.event_bytes),
            thousands(record),
        ),
        None => format!(
            "{sink} records: each call's {} of {} B are packed into {} records of at most {} B, {} \
             ({} B) in a full one, {billed}.",
            events(u64::from(events_per_call)),
            thousands(usage.event_bytes),
            trim_number(usage.records_per_call),
            thousands(usage.sizing.max_record_bytes()),
            events(usage.events_per_record),
            thousands(record),
        ),
        Some(linger) => format!(
            "{sink} records: the buffer packs many calls' events into records that close at {} B or \
             after {} ms, whichever comes first: {} of {} B a record ({} B), {billed}.",
            thousands(usage.sizing.max_record_bytes()),
            trim_number(linger),
            events(usage.events_per_record),
            thousands(usage.event_bytes),
            thousands(record),
        ),
    }
}
