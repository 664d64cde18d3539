//! What a run reports: the summary of a completed one, as text (one figure a line) or JSON, and
//! the message of one that timed out, accounting for every accepted calculation.

use std::time::Duration;

use serde::Serialize;

use super::rng::Plan;

/// A completed run, as printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub calculations: usize,
    pub accepted: usize,
    pub failed_posts: usize,
    /// Clock start → the last post answered.
    pub post_seconds: f64,
    /// Clock start → done ≥ accepted.
    pub elapsed_seconds: f64,
    /// The longest accepted x (all of them, unless posts failed).
    pub ideal_seconds: f64,
    /// elapsed / ideal.
    pub ratio: f64,
    /// Accepted calculations per second of elapsed.
    pub throughput_per_second: f64,
    /// `done` when the run ended (above `accepted` if something was counted twice or came
    /// from an earlier run).
    pub done: u64,
    pub seed: u64,
}

impl Summary {
    pub(super) fn new(plan: &Plan, posted: &Posted, post: Duration, elapsed: Duration, done: u64) -> Summary {
        let elapsed_seconds = elapsed.as_secs_f64();
        let ideal_seconds = posted.longest_accepted;
        Summary {
            calculations: plan.xs.len(),
            accepted: posted.accepted,
            failed_posts: posted.failed,
            post_seconds: post.as_secs_f64(),
            elapsed_seconds,
            ideal_seconds,
            ratio: elapsed_seconds / ideal_seconds,
            throughput_per_second: posted.accepted as f64 / elapsed_seconds,
            done,
            seed: plan.seed,
        }
    }

    /// The human-readable summary, one figure a line.
    pub fn render(&self) -> String {
        let mut lines = vec![
            format!("calculations     {}", self.calculations),
            format!("accepted         {}", self.accepted),
            format!("failed posts     {}", self.failed_posts),
            format!("post phase       {:.3} s", self.post_seconds),
            format!("elapsed          {:.3} s  (clock start → done = accepted)", self.elapsed_seconds),
            format!("ideal            {:.3} s  (the longest x: all in parallel)", self.ideal_seconds),
            format!("ratio            {:.2}  (elapsed / ideal)", self.ratio),
            format!("throughput       {:.1} calculations/s", self.throughput_per_second),
            format!("done             {}", self.done),
            format!("seed             {}", self.seed),
        ];
        if self.done > self.accepted as u64 {
            lines.push(format!(
                "note: done exceeds accepted by {}: a post retried after its answer was lost, or \
                 messages from an earlier run",
                self.done - self.accepted as u64
            ));
        }
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// What the post phase did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Posted {
    pub accepted: usize,
    pub failed: usize,
    /// The largest accepted x: the ideal.
    pub longest_accepted: f64,
    /// The first final failure, as printed.
    pub first_failure: Option<String>,
}

/// What the dead-letter queue said at the timeout.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum DlqReport {
    NotGiven,
    Depth { what: String, now: u64, before: Option<u64> },
    Failed { what: String, error: String },
}

/// "timed out after 60 s: 987 of 1000 done; 13 messages in the dead-letter queue … ; …"
pub(super) fn timeout_message(
    timeout: Duration,
    done: Option<u64>,
    accepted: u64,
    failed_posts: usize,
    dlq: &DlqReport,
    ledger_error: Option<&str>,
) -> String {
    let mut text = format!("timed out after {} s: ", fmt_secs(timeout.as_secs_f64()));
    match done {
        Some(done) => text.push_str(&format!("{done} of {accepted} done")),
        None => text.push_str(&format!("done unknown of {accepted}")),
    }
    if failed_posts > 0 {
        text.push_str(&format!(" ({failed_posts} posts failed)"));
    }
    let mut accounted = done.unwrap_or(0);
    match dlq {
        DlqReport::NotGiven => text.push_str("; the dead-letter queue was not read (no --dlq)"),
        DlqReport::Failed { what, error } => text.push_str(&format!("; reading {what} failed: {error}")),
        DlqReport::Depth { what, now, before } => {
            let new = now.saturating_sub(before.unwrap_or(0));
            let s = if new == 1 { "" } else { "s" };
            match before {
                Some(before) if *before > 0 => {
                    text.push_str(&format!("; {new} new message{s} in {what}, {now} in all"));
                }
                _ => text.push_str(&format!("; {new} message{s} in {what}")),
            }
            accounted += new;
        }
    }
    let rest = accepted.saturating_sub(accounted);
    if rest > 0 {
        text.push_str(&format!("; the rest ({rest}) may still be in flight"));
    }
    if let Some(error) = ledger_error {
        text.push_str(&format!("; the last read of done failed: {error}"));
    }
    text
}

/// `60`, `0.5`, `84.1`: seconds without a trailing `.0`.
fn fmt_secs(secs: f64) -> String {
    let text = format!("{secs:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            calculations: 1000,
            accepted: 998,
            failed_posts: 2,
            post_seconds: 3.2104,
            elapsed_seconds: 12.5,
            ideal_seconds: 1.9990,
            ratio: 12.5 / 1.999,
            throughput_per_second: 998.0 / 12.5,
            done: 998,
            seed: 42,
        }
    }

    #[test]
    fn the_summary_prints_one_figure_a_line_and_as_json() {
        let text = summary().render();
        assert_eq!(
            text,
            "calculations     1000\n\
             accepted         998\n\
             failed posts     2\n\
             post phase       3.210 s\n\
             elapsed          12.500 s  (clock start → done = accepted)\n\
             ideal            1.999 s  (the longest x: all in parallel)\n\
             ratio            6.25  (elapsed / ideal)\n\
             throughput       79.8 calculations/s\n\
             done             998\n\
             seed             42\n"
        );
        let over = Summary { done: 1000, ..summary() }.render();
        assert!(over.contains("done exceeds accepted by 2"), "{over}");

        let json: serde_json::Value = serde_json::to_value(summary()).expect("serializes");
        for field in [
            "calculations",
            "accepted",
            "failed_posts",
            "post_seconds",
            "elapsed_seconds",
            "ideal_seconds",
            "ratio",
            "throughput_per_second",
            "done",
        ] {
            assert!(json[field].is_number(), "{field} in {json}");
        }
        assert_eq!(json["accepted"], 998);
        assert_eq!(json["elapsed_seconds"], 12.5);
    }

    #[test]
    fn the_timeout_message_accounts_for_every_accepted_calculation() {
        let dlq = |now, before| DlqReport::Depth { what: "the dead-letter queue q".into(), now, before };
        assert_eq!(
            timeout_message(Duration::from_secs(60), Some(987), 1000, 0, &dlq(13, Some(0)), None),
            "timed out after 60 s: 987 of 1000 done; 13 messages in the dead-letter queue q"
        );
        assert_eq!(
            timeout_message(Duration::from_millis(1500), Some(980), 1000, 3, &dlq(25, Some(20)), None),
            "timed out after 1.5 s: 980 of 1000 done (3 posts failed); 5 new messages in the dead-letter \
             queue q, 25 in all; the rest (15) may still be in flight"
        );
        assert_eq!(
            timeout_message(Duration::from_secs(5), None, 10, 0, &DlqReport::NotGiven, Some("throttled")),
            "timed out after 5 s: done unknown of 10; the dead-letter queue was not read (no --dlq); the \
             rest (10) may still be in flight; the last read of done failed: throttled"
        );
        let failed =
            DlqReport::Failed { what: "the dead-letter queue q".into(), error: "no such queue".into() };
        assert!(
            timeout_message(Duration::from_secs(5), Some(1), 2, 0, &failed, None)
                .contains("reading the dead-letter queue q failed: no such queue")
        );
    }
}
