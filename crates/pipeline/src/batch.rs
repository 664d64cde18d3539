//! A batch's rows written into a table: concurrently, [`MAX_IN_FLIGHT`] at a time, in the
//! batch's order — and once a write has failed, the rows not yet started are not tried.
//!
//! Why stop: both event source mappings (Kinesis, DynamoDB Streams) checkpoint before the lowest
//! reported record and deliver everything after it again, so writing later rows gains nothing,
//! and against a stalled table each would wait out the SDK's operation timeout (a Kinesis batch
//! may hold 10,000 records). The rows already in flight finish; the rest fail at once.

use futures_util::StreamExt;
use parking_lot::Mutex;

use crate::{Error, Put, Row, Table};

/// The most table writes one invocation has in flight at once: a batch's records are written
/// concurrently, this many at a time, over the client's pooled connections.
pub const MAX_IN_FLIGHT: usize = 64;

/// Writes each `Some` row (`None`: nothing to write for that record) and returns, per record in
/// the same order, what its write did.
pub async fn put_all(table: &dyn Table, rows: &[Option<Row>]) -> Vec<Option<Result<Put, Error>>> {
    let first_failure: Mutex<Option<Error>> = Mutex::new(None);
    futures_util::stream::iter(rows)
        .map(|row| async {
            let row = row.as_ref()?;
            if let Some(e) = first_failure.lock().clone() {
                return Some(Err(Error::Table {
                    table: table.describe(),
                    detail: format!("not tried, an earlier write of this batch failed: {e}"),
                    timed_out: false,
                }));
            }
            let put = table.put_if_absent(row).await;
            if let Err(e) = &put {
                first_failure.lock().get_or_insert_with(|| e.clone());
            }
            Some(put)
        })
        .buffered(MAX_IN_FLIGHT)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::BoxFuture;
    use crate::memory::MemoryTable;

    fn row(id: &str) -> Row {
        Row { id: id.into(), attributes: Vec::new() }
    }

    #[tokio::test]
    async fn every_row_is_written_in_order_and_none_is_skipped() {
        let table = MemoryTable::new();
        table.put_if_absent(&row("1")).await.unwrap();
        let rows: Vec<Option<Row>> = (0..200).map(|i| (i != 7).then(|| row(&i.to_string()))).collect();
        let done = put_all(&table, &rows).await;
        assert_eq!(done.len(), 200);
        assert_eq!(done[0], Some(Ok(Put::Inserted)));
        assert_eq!(done[1], Some(Ok(Put::AlreadyThere)));
        assert_eq!(done[7], None);
        assert_eq!(table.rows().len(), 199);
    }

    /// Fails every write from the `fail_from`th call on, counting the calls.
    struct Failing {
        calls: AtomicUsize,
        fail_from: usize,
    }

    impl Table for Failing {
        fn put_if_absent<'a>(&'a self, _: &'a Row) -> BoxFuture<'a, Result<Put, Error>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::task::yield_now().await;
                if n >= self.fail_from {
                    Err(Error::Table { table: "t".into(), detail: "down".into(), timed_out: true })
                } else {
                    Ok(Put::Inserted)
                }
            })
        }
        fn warm(&self) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn describe(&self) -> String {
            "t".into()
        }
    }

    #[tokio::test]
    async fn after_a_failed_write_the_rows_not_yet_started_are_failed_without_a_call() {
        let table = Failing { calls: AtomicUsize::new(0), fail_from: 100 };
        let rows: Vec<Option<Row>> = (0..1000).map(|i| Some(row(&i.to_string()))).collect();
        let done = put_all(&table, &rows).await;
        assert!(done[..100].iter().all(|d| *d == Some(Ok(Put::Inserted))));
        assert!(done[100..].iter().all(|d| matches!(d, Some(Err(_)))));
        let calls = table.calls.load(Ordering::SeqCst);
        assert!(calls < 100 + 2 * MAX_IN_FLIGHT, "{calls} calls: the rest were not tried");
        let Some(Err(e)) = &done[999] else { unreachable!() };
        assert!(e.to_string().contains("not tried"), "{e}");
    }
}
