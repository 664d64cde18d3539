//! Packing events into records.
//!
//! Firehose bills every record rounded up to 5 KB, so 50 events of 100 bytes put as 50 records
//! bill 250 KB, and packed into one 5,050-byte record bill 10 KB. Each event is one line of
//! compact JSON; a record is one or more whole lines, never a split event, so whatever reads the
//! delivered objects (S3 + Athena, a Kinesis consumer) splits on `\n`.

use bytes::{BufMut, BytesMut};

use crate::Record;

/// Builds records of whole lines up to `cap` bytes. An event longer than the cap gets a record of
/// its own (the caller refuses events larger than the sink's record limit before this).
#[derive(Debug)]
pub struct Packer {
    cap: usize,
    current: BytesMut,
    events_in_current: usize,
}

impl Packer {
    /// `cap` is the most bytes per record; `0` or `1` means one event per record.
    pub fn new(cap: usize) -> Packer {
        Packer { cap, current: BytesMut::new(), events_in_current: 0 }
    }

    /// Adds one event (compact JSON, no trailing newline). Returns the record it closed, if the
    /// event did not fit in the open one.
    pub fn push(&mut self, event: &[u8]) -> Option<Record> {
        let line = event.len() + 1;
        let closed = if self.events_in_current > 0 && self.current.len() + line > self.cap {
            Some(self.take())
        } else {
            None
        };
        if self.current.capacity() - self.current.len() < line {
            self.current.reserve(line.max(self.cap.min(64 * 1024)));
        }
        self.current.put_slice(event);
        self.current.put_u8(b'\n');
        self.events_in_current += 1;
        closed
    }

    /// Bytes in the open record.
    pub fn open_bytes(&self) -> usize {
        self.current.len()
    }

    /// Events in the open record.
    pub fn open_events(&self) -> usize {
        self.events_in_current
    }

    /// Closes and returns the open record, if it holds anything.
    pub fn finish(&mut self) -> Option<Record> {
        (self.events_in_current > 0).then(|| self.take())
    }

    fn take(&mut self) -> Record {
        self.events_in_current = 0;
        self.current.split().freeze()
    }
}

/// Packs `events` into records of at most `cap` bytes each, in order.
pub fn pack<E: AsRef<[u8]>>(events: &[E], cap: usize) -> Vec<Record> {
    let mut packer = Packer::new(cap);
    let mut records: Vec<Record> = events.iter().filter_map(|e| packer.push(e.as_ref())).collect();
    records.extend(packer.finish());
    records
}

/// The events (lines, without the newline) of a record.
pub fn lines(record: &[u8]) -> impl Iterator<Item = &[u8]> {
    record.split(|b| *b == b'\n').filter(|line| !line.is_empty())
}

/// Splits records into calls that respect `limits` (count and bytes), in order.
pub fn batches(records: &[Record], limits: crate::Limits) -> Vec<&[Record]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, r) in records.iter().enumerate() {
        let full = i - start == limits.max_records || (i > start && bytes + r.len() > limits.max_batch_bytes);
        if full {
            out.push(&records[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// A record from one event, for sinks that want one event per record.
pub fn single(event: &[u8]) -> Record {
    let mut b = BytesMut::with_capacity(event.len() + 1);
    b.put_slice(event);
    b.put_u8(b'\n');
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use bytes::Bytes;

    #[test]
    fn small_events_share_a_record_up_to_the_cap() {
        let events = vec![vec![b'x'; 99]; 50]; // 100 bytes per line
        let records = pack(&events, 1000);
        assert_eq!(records.len(), 5);
        assert!(records.iter().all(|r| r.len() == 1000));
        assert_eq!(records.iter().flat_map(|r| lines(r)).count(), 50);
    }

    #[test]
    fn a_cap_of_zero_puts_one_event_per_record() {
        let records = pack(&["{\"a\":1}", "{\"b\":2}"], 0);
        assert_eq!(records, vec![Bytes::from("{\"a\":1}\n"), Bytes::from("{\"b\":2}\n")]);
    }

    #[test]
    fn an_event_over_the_cap_gets_its_own_record_and_order_is_kept() {
        let records = pack(&["a", "bbbbbbbbbb", "c"], 4);
        assert_eq!(records, vec![Bytes::from("a\n"), Bytes::from("bbbbbbbbbb\n"), Bytes::from("c\n")]);
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let records: Vec<Record> = (0..1200).map(|_| Bytes::from(vec![b'x'; 10])).collect();
        let split = batches(&records, Limits::FIREHOSE);
        assert_eq!(split.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![500, 500, 200]);
        let big: Vec<Record> = (0..10).map(|_| Bytes::from(vec![b'x'; 1000 * 1024])).collect();
        let split = batches(&big, Limits::FIREHOSE);
        assert_eq!(split.iter().map(|b| b.len()).collect::<Vec<_>>(), vec![4, 4, 2]);
        assert!(batches(&[], Limits::FIREHOSE).is_empty());
    }
}
