//! A Kinesis data stream on the call's path, one record a call: provisioned (shard-hours for the
//! shards the rate needs, 25 KB PUT payload units) or on demand (GB in with each record rounded
//! up to 1 KB, GB out per consumer, stream-hours).

use super::bill::Bill;
use super::{Basis, HOURS_PER_MONTH};
use crate::numbers::{amount, thousands};
use crate::profile::{Stream, StreamMode};
use crate::{CostError, GB_BYTES, kinesis_put_units};

/// Records a second one provisioned shard takes in.
pub const KINESIS_SHARD_RECORDS_PER_S: f64 = 1000.0;
/// Bytes a second one provisioned shard takes in: 1 MB (2^20 bytes; data and partition key).
pub const KINESIS_SHARD_BYTES_PER_S: f64 = 1_048_576.0;
/// On demand, each record is billed rounded up to this (1 KB).
const ON_DEMAND_RECORD_INCREMENT_BYTES: u64 = 1024;

/// How an estimate sized and billed a Kinesis stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamUsage {
    /// Provisioned or on demand.
    pub mode: StreamMode,
    /// Bytes of one record (data and partition key).
    pub record_bytes: u64,
    /// Records a second: the month's average.
    pub records_per_s: f64,
    /// Provisioned: `max(min_shards, ceil(records/s ÷ 1,000), ceil(bytes/s ÷ 1 MB))`; 0 on demand.
    pub shards: u64,
}

/// The stream's lines at `calls_per_s` (one record a call).
pub(super) fn price(
    bill: &mut Bill<'_>,
    stream: &Stream,
    calls_per_s: f64,
) -> Result<StreamUsage, CostError> {
    let record_bytes =
        bill.params.event_bytes.or(bill.profile.event_bytes).ok_or(CostError::InvalidParam {
            name: "event_bytes",
            reason: format!("`{}` needs a record size", bill.profile.id),
        })?;
    let bytes_per_s = calls_per_s * record_bytes as f64;
    let usage = match stream.mode {
        StreamMode::Provisioned => {
            let by_records = (calls_per_s / KINESIS_SHARD_RECORDS_PER_S).ceil();
            let by_bytes = (bytes_per_s / KINESIS_SHARD_BYTES_PER_S).ceil();
            // Saturating cast: billions of shards are already an answer.
            let shards = (by_records.max(by_bytes) as u64).max(u64::from(stream.min_shards));
            bill.push(
                format!("Kinesis PUT payload units ({} B record)", thousands(record_bytes)),
                "kinesis.put_payload_unit",
                Basis::PerCall,
                kinesis_put_units(record_bytes) as f64,
                0.0,
            )?;
            bill.push(
                format!(
                    "Kinesis shard-hours ({shards} shard{} all month)",
                    if shards == 1 { "" } else { "s" }
                ),
                "kinesis.shard_hour",
                Basis::PerMonth,
                shards as f64 * HOURS_PER_MONTH,
                0.0,
            )?;
            bill.notes.push(format!(
                "Kinesis provisioned: {} records/s of {} B = {} KB/s, the month's average; a shard takes \
                 1,000 records/s or 1 MB/s, so {} shard{} by records, {} by bytes (at least {}) → {shards}. \
                 No headroom: a peak above the average, or a hot partition key, is throttled \
                 (WriteProvisionedThroughputExceeded) unless shards are added.",
                amount(calls_per_s),
                thousands(record_bytes),
                amount((bytes_per_s / 1024.0).round()),
                by_records,
                if by_records == 1.0 { "" } else { "s" },
                by_bytes,
                stream.min_shards,
            ));
            StreamUsage { mode: stream.mode, record_bytes, records_per_s: calls_per_s, shards }
        }
        StreamMode::OnDemand => {
            let billed_in = record_bytes.div_ceil(ON_DEMAND_RECORD_INCREMENT_BYTES).max(1)
                * ON_DEMAND_RECORD_INCREMENT_BYTES;
            let consumers = f64::from(stream.consumers);
            bill.push(
                format!(
                    "Kinesis on-demand data in ({} B record billed as {} B)",
                    thousands(record_bytes),
                    thousands(billed_in)
                ),
                "kinesis.on_demand_gb_in",
                Basis::PerCall,
                billed_in as f64 / GB_BYTES,
                0.0,
            )?;
            bill.push(
                format!(
                    "Kinesis on-demand data out ({} consumer{})",
                    stream.consumers,
                    if stream.consumers == 1 { "" } else { "s" }
                ),
                "kinesis.on_demand_gb_out",
                Basis::PerCall,
                consumers * record_bytes as f64 / GB_BYTES,
                0.0,
            )?;
            bill.push(
                "Kinesis on-demand stream-hours".into(),
                "kinesis.on_demand_stream_hour",
                Basis::PerMonth,
                HOURS_PER_MONTH,
                0.0,
            )?;
            bill.notes.push(format!(
                "Kinesis on demand: each {} B record billed in as {} B (rounded up to 1 KB), read once \
                 by each of {} consumer{} (out, not rounded here), plus the stream's hourly charge; no \
                 shards to size.",
                thousands(record_bytes),
                thousands(billed_in),
                stream.consumers,
                if stream.consumers == 1 { "" } else { "s" },
            ));
            StreamUsage { mode: stream.mode, record_bytes, records_per_s: calls_per_s, shards: 0 }
        }
    };
    Ok(usage)
}
