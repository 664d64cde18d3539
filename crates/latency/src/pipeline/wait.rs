//! Waiting for the items to come through, and where the rest are stuck when they do not.
//!
//! After the load, every accepted id is looked up in the results table; those not there yet are
//! looked up again every `poll` (only those), until none is missing or the drain timeout passes.
//! Then the missing ones are placed: in the items table (midstream wrote them, downstream has not:
//! stuck **between midstream and downstream** — the table's stream, its event source mapping, the
//! downstream function or its results table), or not (stuck **between upstream and midstream** —
//! the Kinesis stream, its mapping or the midstream function); and the on-failure queue, where
//! both mappings send what they gave up on, is counted.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::source::{QueueDepth, ResultsSource, Row};
use crate::error::Error;

/// What the waiter found.
#[derive(Debug, Default)]
pub struct Waited {
    /// The rows of the ids that came through, in no particular order.
    pub rows: Vec<Row>,
    /// The ids that had not come through when the time was up, in the order they were given.
    pub missing: Vec<String>,
    /// How many lookups of the results table it took.
    pub polls: u32,
}

/// Looks `ids` up in the results table until all are there, `until` passes or `stop` resolves
/// (Ctrl-C: the run's report is then what came through so far), `poll` apart;
/// `on_poll(found, total)` after each lookup.
pub async fn wait_for(
    source: &impl ResultsSource,
    ids: &[String],
    until: Instant,
    poll: Duration,
    stop: impl Future<Output = ()>,
    mut on_poll: impl FnMut(usize, usize),
) -> Result<Waited, Error> {
    let mut stop = std::pin::pin!(stop);
    let mut waited = Waited { missing: ids.to_vec(), ..Waited::default() };
    loop {
        let rows = source.results(&waited.missing).await?;
        waited.polls += 1;
        // Only rows of ids still missing, each once: a source adds no others, but a duplicate
        // row must not count twice.
        let mut asked: HashSet<&str> = waited.missing.iter().map(String::as_str).collect();
        let new: Vec<Row> = rows.into_iter().filter(|r| asked.remove(r.id.as_str())).collect();
        let found: HashSet<&str> = new.iter().map(|r| r.id.as_str()).collect();
        waited.missing.retain(|id| !found.contains(id.as_str()));
        waited.rows.extend(new);
        on_poll(ids.len() - waited.missing.len(), ids.len());
        let now = Instant::now();
        if waited.missing.is_empty() || now >= until {
            return Ok(waited);
        }
        tokio::select! {
            () = tokio::time::sleep(poll.min(until - now)) => {}
            () = &mut stop => return Ok(waited),
        }
    }
}

/// Where the items that did not come through are.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stuck {
    /// In the items table, not in the results table.
    pub between_midstream_and_downstream: Vec<String>,
    /// Not in the items table.
    pub between_upstream_and_midstream: Vec<String>,
    /// The on-failure queue before the run and now (`None`: no queue given).
    pub failure_queue_before: Option<QueueDepth>,
    pub failure_queue_now: Option<QueueDepth>,
}

/// At most this many ids named per place in the message (all of them are in pipeline.json).
const NAMED: usize = 5;

impl Stuck {
    /// Places `missing`: see the module docs.
    pub async fn locate(
        source: &impl ResultsSource,
        missing: &[String],
        failure_queue_before: Option<QueueDepth>,
    ) -> Result<Stuck, Error> {
        let written: HashSet<String> = source.in_items(missing).await?.into_iter().collect();
        let (between_midstream_and_downstream, between_upstream_and_midstream) =
            missing.iter().cloned().partition(|id| written.contains(id));
        Ok(Stuck {
            between_midstream_and_downstream,
            between_upstream_and_midstream,
            failure_queue_before,
            failure_queue_now: source.failure_queue().await?,
        })
    }

    /// The missing items in words: how many, which, where.
    pub fn describe(&self) -> String {
        let total = self.between_midstream_and_downstream.len() + self.between_upstream_and_midstream.len();
        let mut lines = vec![format!("{total} accepted items did not come through:")];
        let places = [
            (
                &self.between_midstream_and_downstream,
                "in the items table but not in the results table: stuck between midstream and downstream \
                 (the table's stream, its event source mapping, the downstream function)",
            ),
            (
                &self.between_upstream_and_midstream,
                "not in the items table: stuck between upstream and midstream (the Kinesis stream, its \
                 event source mapping, the midstream function)",
            ),
        ];
        for (ids, place) in places {
            if ids.is_empty() {
                continue;
            }
            let mut named: Vec<&str> = ids.iter().take(NAMED).map(String::as_str).collect();
            if ids.len() > NAMED {
                named.push("…");
            }
            lines.push(format!("  {} {place}: {}", ids.len(), named.join(", ")));
        }
        lines.push(match (self.failure_queue_before, self.failure_queue_now) {
            (_, None) => "  the on-failure queue was not given (--failure-queue-url): not counted".to_owned(),
            (before, Some(now)) => {
                let mut text = format!(
                    "  the on-failure queue holds {} messages ({} in flight)",
                    now.messages, now.in_flight
                );
                if let Some(before) = before {
                    let added =
                        (now.messages + now.in_flight).saturating_sub(before.messages + before.in_flight);
                    text.push_str(&format!(
                        "; {added} more than before the run (records the event source mappings gave up on)"
                    ));
                }
                text
            }
        });
        lines.join("\n")
    }
}
