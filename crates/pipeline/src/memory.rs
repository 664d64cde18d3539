//! In-memory adapters, for tests: a stream that keeps its records and a table that keeps its
//! rows; both can be set to fail (`set_down`), as an unreachable service would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::{BoxFuture, Error, Put, Row, Stream, Table};

/// A stream in memory: `(partition key, data)` in the order put.
#[derive(Default)]
pub struct MemoryStream {
    records: Mutex<Vec<(String, Vec<u8>)>>,
    down: AtomicBool,
}

impl MemoryStream {
    pub fn new() -> MemoryStream {
        MemoryStream::default()
    }

    pub fn records(&self) -> Vec<(String, Vec<u8>)> {
        self.records.lock().clone()
    }

    /// Every put fails while down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Stream for MemoryStream {
    fn put<'a>(&'a self, partition_key: &'a str, data: Vec<u8>) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::Stream { detail: "memory stream is down".into(), timed_out: false });
            }
            self.records.lock().push((partition_key.to_owned(), data));
            Ok(())
        })
    }

    fn warm(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// A table in memory, rows by id.
#[derive(Default)]
pub struct MemoryTable {
    rows: Mutex<BTreeMap<String, Row>>,
    down: AtomicBool,
}

impl MemoryTable {
    pub fn new() -> MemoryTable {
        MemoryTable::default()
    }

    pub fn rows(&self) -> Vec<Row> {
        self.rows.lock().values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Row> {
        self.rows.lock().get(id).cloned()
    }

    /// Every put fails while down.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Table for MemoryTable {
    fn put_if_absent<'a>(&'a self, row: &'a Row) -> BoxFuture<'a, Result<Put, Error>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::Table { table: "memory".into(), detail: "down".into(), timed_out: false });
            }
            let mut rows = self.rows.lock();
            if rows.contains_key(&row.id) {
                return Ok(Put::AlreadyThere);
            }
            rows.insert(row.id.clone(), row.clone());
            Ok(Put::Inserted)
        })
    }

    fn warm(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
