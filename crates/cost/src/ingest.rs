//! Queue and ingest arithmetic: how Firehose, SQS and Kinesis turn bytes into billed units.

use crate::CostError;
use crate::book::PriceBook;
use crate::profile::RecordSizing;

/// Firehose rounds every record up to a multiple of 5 KB (5,120 bytes).
pub const FIREHOSE_RECORD_INCREMENT_BYTES: u64 = 5 * 1024;
/// A Kinesis Data Streams PUT payload unit: 25 KB (25,600 bytes).
pub const KINESIS_PUT_UNIT_BYTES: u64 = 25 * 1024;
/// SQS bills one request per 64 KB (65,536 bytes) chunk of a payload.
pub const SQS_REQUEST_CHUNK_BYTES: u64 = 64 * 1024;
/// The largest Firehose record: 1,000 KiB (what `ingest` packs up to).
pub const FIREHOSE_MAX_RECORD_BYTES: u64 = 1000 * 1024;
/// The largest Kinesis record `ingest` packs: 1 MiB less room for a 256-byte partition key.
pub const KINESIS_MAX_RECORD_BYTES: u64 = 1024 * 1024 - 256;
/// The largest SQS message: 256 KiB.
pub const SQS_MAX_MESSAGE_BYTES: u64 = 256 * 1024;
/// The GB that Firehose's per-GB price is for: 2^30 bytes, as AWS billing meters data.
pub const GB_BYTES: f64 = 1_073_741_824.0;

/// Bytes Firehose bills for one record of `record_bytes`: rounded up to the next 5 KB, and at
/// least 5 KB (a 100-byte record bills 5,120; 5,121 bytes bill 10,240).
pub fn firehose_billed_bytes(record_bytes: u64) -> u64 {
    record_bytes
        .div_ceil(FIREHOSE_RECORD_INCREMENT_BYTES)
        .max(1)
        .saturating_mul(FIREHOSE_RECORD_INCREMENT_BYTES)
}

/// Kinesis PUT payload units for one record: one per started 25 KB, at least one.
pub fn kinesis_put_units(record_bytes: u64) -> u64 {
    record_bytes.div_ceil(KINESIS_PUT_UNIT_BYTES).max(1)
}

/// SQS requests billed for sending `messages` messages of `message_bytes` each, one API call per
/// message: one request per started 64 KB chunk, at least one.
pub fn sqs_requests(messages: u64, message_bytes: u64) -> u64 {
    messages.saturating_mul(message_bytes.div_ceil(SQS_REQUEST_CHUNK_BYTES).max(1))
}

impl RecordSizing {
    /// The sink's name: `Firehose`, `Kinesis`, `SQS`.
    pub fn sink(self) -> &'static str {
        match self {
            RecordSizing::Firehose => "Firehose",
            RecordSizing::Kinesis => "Kinesis",
            RecordSizing::Sqs => "SQS",
        }
    }

    /// The most bytes one record (message) may hold.
    pub fn max_record_bytes(self) -> u64 {
        match self {
            RecordSizing::Firehose => FIREHOSE_MAX_RECORD_BYTES,
            RecordSizing::Kinesis => KINESIS_MAX_RECORD_BYTES,
            RecordSizing::Sqs => SQS_MAX_MESSAGE_BYTES,
        }
    }

    /// Billed units of one record of `record_bytes`: GB after rounding up to 5 KB (Firehose),
    /// 25 KB PUT payload units (Kinesis), 64 KB requests (SQS).
    pub fn billed_units(self, record_bytes: u64) -> f64 {
        match self {
            RecordSizing::Firehose => firehose_billed_bytes(record_bytes) as f64 / GB_BYTES,
            RecordSizing::Kinesis => kinesis_put_units(record_bytes) as f64,
            RecordSizing::Sqs => sqs_requests(1, record_bytes) as f64,
        }
    }
}

impl PriceBook {
    /// Dollars for `records` Firehose records (Direct PUT) of `record_bytes` each. Packing events
    /// into records matters: 50 events of 100 bytes as 50 records bill 250 KB; as one
    /// 5,000-byte record, 5 KB.
    pub fn firehose_usd(&self, records: u64, record_bytes: u64) -> Result<f64, CostError> {
        let bytes = records as f64 * firehose_billed_bytes(record_bytes) as f64;
        Ok(bytes / GB_BYTES * self.unit_usd("firehose.gb_ingested")?)
    }

    /// Dollars for `requests` SQS standard-queue requests (count them with [`sqs_requests`];
    /// receiving and deleting are requests too).
    pub fn sqs_usd(&self, requests: u64) -> Result<f64, CostError> {
        Ok(requests as f64 * self.unit_usd("sqs.request")?)
    }

    /// Dollars for `records` Kinesis Data Streams records of `record_bytes` each plus
    /// `shard_hours` (one shard all month is [`crate::HOURS_PER_MONTH`]).
    pub fn kinesis_usd(&self, records: u64, record_bytes: u64, shard_hours: f64) -> Result<f64, CostError> {
        if !(shard_hours.is_finite() && shard_hours >= 0.0) {
            return Err(CostError::InvalidParam {
                name: "shard_hours",
                reason: format!("{shard_hours} must be finite and not negative"),
            });
        }
        let units = records as f64 * kinesis_put_units(record_bytes) as f64;
        Ok(units * self.unit_usd("kinesis.put_payload_unit")?
            + shard_hours * self.unit_usd("kinesis.shard_hour")?)
    }
}
