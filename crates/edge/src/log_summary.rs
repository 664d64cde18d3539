//! Per-request failures logged as counts, not one line each: what keeps a server's log readable
//! (and its disk from filling) while it sheds load or its store is down.
//!
//! A [`LogSummary`] counts failures by *cause* (a short, fixed text: `the buffer is full`,
//! `dynamodb store unavailable`). The first failure of a cause after a quiet spell is logged at
//! once, in full; the ones after it are only counted, and one line per cause sums them up when
//! the window (1 s) closes:
//!
//! ```text
//! WARN request refused: the ingest buffer is full (8388608 of 8388608 bytes); retry after 1s cause="the buffer is full"
//! WARN 41234 requests refused in the last 1.0 s: the buffer is full; the last: the ingest buffer is full (8388100 of 8388608 bytes); retry after 1s count=41234 cause="the buffer is full"
//! ```
//!
//! So a flood of one cause writes at most about one line a second, each carrying its count, and
//! the metrics (which count every failure) stay the place for exact rates. The closing line is
//! written by a timer on the Tokio runtime (armed only while something is counted), by the next
//! failure of that cause when there is no runtime, and at the latest when the summary is dropped
//! (the server's router, at shutdown).

use std::collections::HashMap;
use std::error::Error;
use std::fmt::{self, Display};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::Level;

/// How long failures of one cause are counted before their line is written.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Causes tracked one by one; failures of further causes are counted together under
/// [`OTHER_CAUSES`], so a cause text that varies by mistake cannot grow the map without end.
const MAX_CAUSES: usize = 64;
const OTHER_CAUSES: &str = "(other causes)";

/// Counts per-request failures by cause and logs them as described in the module doc. Cheap to
/// clone; clones share the counts.
#[derive(Clone)]
pub struct LogSummary {
    inner: Arc<Inner>,
}

struct Inner {
    level: Level,
    /// What one failure is, and what several are: `request refused`, `requests refused`.
    one: &'static str,
    many: &'static str,
    window: Duration,
    tallies: Mutex<HashMap<String, Tally>>,
}

type Detail = Box<dyn Display + Send + Sync>;

/// One cause's window.
struct Tally {
    /// When the window began: the failure logged in full, or the last summary line.
    since: Instant,
    /// Failures counted and not yet logged.
    counted: u64,
    /// The newest of them.
    last: Option<Detail>,
    /// A timer will write the line when the window closes.
    armed: bool,
}

/// One line to write, taken from the tallies under the lock and written after it.
enum Line {
    First { cause: String, detail: Detail },
    Summary { cause: String, count: u64, elapsed: Duration, last: Option<Detail> },
}

impl LogSummary {
    /// A summary logging at `level`; `one` and `many` name one failure and several
    /// (`"request refused"`, `"requests refused"`).
    pub fn new(level: Level, one: &'static str, many: &'static str) -> LogSummary {
        LogSummary::with_window(level, one, many, WINDOW)
    }

    /// The same with another window (tests; a quieter log).
    pub fn with_window(level: Level, one: &'static str, many: &'static str, window: Duration) -> LogSummary {
        LogSummary {
            inner: Arc::new(Inner { level, one, many, window, tallies: Mutex::new(HashMap::new()) }),
        }
    }

    /// One failure of `cause`; `detail` is the full error, written only on the lines that show
    /// it (the first after a quiet spell, and as the last of a summary), so a counted failure
    /// costs no formatting.
    pub fn record(&self, cause: &str, detail: impl Display + Send + Sync + 'static) {
        let detail: Detail = Box::new(detail);
        let now = Instant::now();
        let window = self.inner.window;
        let mut lines = Vec::new();
        let mut arm = None;
        {
            let mut tallies = self.inner.tallies.lock();
            let cause = if tallies.len() >= MAX_CAUSES && !tallies.contains_key(cause) {
                OTHER_CAUSES
            } else {
                cause
            };
            match tallies.get_mut(cause) {
                None => {
                    tallies.insert(cause.to_owned(), Tally::quiet(now));
                    lines.push(Line::First { cause: cause.to_owned(), detail });
                }
                Some(tally) if tally.counted == 0 && now >= tally.since + window => {
                    tally.since = now;
                    lines.push(Line::First { cause: cause.to_owned(), detail });
                }
                Some(tally) => {
                    // No timer closed the last window (no runtime): close it now.
                    if tally.counted > 0 && !tally.armed && now >= tally.since + window {
                        lines.push(tally.close(cause, now));
                    }
                    tally.counted += 1;
                    tally.last = Some(detail);
                    if !tally.armed
                        && let Ok(runtime) = tokio::runtime::Handle::try_current()
                    {
                        tally.armed = true;
                        arm = Some((runtime, tally.since + window));
                    }
                }
            }
        }
        if let Some((runtime, at)) = arm {
            let summary = Arc::downgrade(&self.inner);
            let cause = cause.to_owned();
            runtime.spawn(close_at(summary, cause, at));
        }
        lines.into_iter().for_each(|line| self.inner.write(line));
    }

    /// Writes every count now (the process is about to stop).
    pub fn flush(&self) {
        self.inner.flush();
    }
}

impl fmt::Debug for LogSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSummary").field("many", &self.inner.many).finish_non_exhaustive()
    }
}

/// The timer of one window: writes its line when it closes, unless the summary is gone (its
/// drop wrote it).
async fn close_at(summary: Weak<Inner>, cause: String, at: Instant) {
    tokio::time::sleep_until(at).await;
    let Some(inner) = summary.upgrade() else {
        return;
    };
    let line = {
        let mut tallies = inner.tallies.lock();
        let Some(tally) = tallies.get_mut(&cause) else {
            return;
        };
        tally.armed = false;
        if tally.counted == 0 {
            return;
        }
        tally.close(&cause, Instant::now())
    };
    inner.write(line);
}

impl Tally {
    fn quiet(now: Instant) -> Tally {
        Tally { since: now, counted: 0, last: None, armed: false }
    }

    /// The summary line of the window, which closes at `now`; the next one begins.
    fn close(&mut self, cause: &str, now: Instant) -> Line {
        let line = Line::Summary {
            cause: cause.to_owned(),
            count: std::mem::take(&mut self.counted),
            elapsed: now.saturating_duration_since(self.since),
            last: self.last.take(),
        };
        self.since = now;
        line
    }
}

impl Inner {
    fn flush(&self) {
        let now = Instant::now();
        let lines: Vec<Line> = {
            let mut tallies = self.tallies.lock();
            tallies
                .iter_mut()
                .filter(|(_, tally)| tally.counted > 0)
                .map(|(cause, tally)| tally.close(cause, now))
                .collect()
        };
        lines.into_iter().for_each(|line| self.write(line));
    }

    fn write(&self, line: Line) {
        match line {
            Line::First { cause, detail } => {
                let one = self.one;
                log(self.level, &cause, None, format_args!("{one}: {detail}"));
            }
            Line::Summary { cause, count, elapsed, last } => {
                let what = if count == 1 { self.one } else { self.many };
                let secs = elapsed.as_secs_f64();
                match last {
                    Some(last) => log(
                        self.level,
                        &cause,
                        Some(count),
                        format_args!("{count} {what} in the last {secs:.1} s: {cause}; the last: {last}"),
                    ),
                    None => log(
                        self.level,
                        &cause,
                        Some(count),
                        format_args!("{count} {what} in the last {secs:.1} s: {cause}"),
                    ),
                }
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.flush();
    }
}

/// One line at a level chosen at run time (tracing's macros take a constant one).
fn log(level: Level, cause: &str, count: Option<u64>, message: fmt::Arguments<'_>) {
    macro_rules! at {
        ($macro:ident) => {
            match count {
                Some(count) => tracing::$macro!(count, cause, "{message}"),
                None => tracing::$macro!(cause, "{message}"),
            }
        };
    }
    match level {
        Level::ERROR => at!(error),
        Level::WARN => at!(warn),
        Level::INFO => at!(info),
        Level::DEBUG => at!(debug),
        _ => at!(trace),
    }
}

/// An error with its sources, as one line: `outer: inner: root`, leaving out a source whose
/// text the line already holds (errors that print their source themselves).
#[derive(Debug, Clone)]
pub struct ErrorChain<E>(pub E);

impl<E: Error> Display for ErrorChain<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut source = self.0.source();
        while let Some(error) = source {
            let text = error.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            source = error.source();
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::tests::one_at_a_time;

    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Captures what is logged on this thread (the tests run on a current-thread runtime, so
    /// the timers' lines too) until the guard's buffer is read.
    fn capture() -> (Buffer, tracing::subscriber::DefaultGuard) {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .finish();
        (buffer, tracing::subscriber::set_default(subscriber))
    }

    fn lines(buffer: &Buffer) -> Vec<String> {
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap().lines().map(str::to_owned).collect()
    }

    /// How many failures a line stands for: its `count=` field, or 1 for a line in full.
    fn count_of(line: &str) -> u64 {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix("count="))
            .map_or(1, |n| n.parse().unwrap())
    }

    /// Runs `test` on a current-thread runtime with a paused clock (time moves only when the
    /// test advances it or every task waits for a timer).
    fn on_a_paused_clock(test: impl std::future::Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        runtime.unwrap().block_on(test);
    }

    #[test]
    fn a_flood_of_one_cause_makes_about_one_counted_line_a_second() {
        let _turn = one_at_a_time();
        let (buffer, _guard) = capture();
        on_a_paused_clock(flood());
        let lines = lines(&buffer);
        assert!(lines.len() <= 5, "{} lines for 10,000 failures in 3 s:\n{}", lines.len(), lines.join("\n"));
        assert_eq!(lines.iter().map(|l| count_of(l)).sum::<u64>(), 10_000, "{lines:#?}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("request refused: the buffer is full (0 bytes)")
        );
        assert!(lines[1].contains("requests refused in the last "), "{}", lines[1]);
        assert!(lines[1].contains(" s: the buffer is full; the last: the buffer is full ("), "{}", lines[1]);
        assert!(lines.iter().all(|l| l.contains("cause=\"the buffer is full\"")), "{lines:#?}");
    }

    async fn flood() {
        let summary = LogSummary::new(Level::WARN, "request refused", "requests refused");
        // 10,000 failures over 3 s, 1,000 every 300 ms.
        for i in 0..10_000u64 {
            summary.record("the buffer is full", format!("the buffer is full ({i} bytes)"));
            if i % 1000 == 999 {
                tokio::time::advance(Duration::from_millis(300)).await;
            }
        }
        // The last window's timer (the clock is paused: this only lets it run).
        tokio::time::sleep(WINDOW * 2).await;
    }

    #[test]
    fn causes_are_counted_apart_and_a_quiet_spell_logs_the_next_one_in_full() {
        let _turn = one_at_a_time();
        let (buffer, _guard) = capture();
        on_a_paused_clock(async {
            let summary = LogSummary::new(Level::ERROR, "request failed", "requests failed");
            for _ in 0..3 {
                summary.record("store unavailable", "connection refused");
                summary.record("store contended", "gave up after 8 attempts");
            }
            tokio::time::sleep(WINDOW * 3).await;
            summary.record("store unavailable", "timed out");
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].contains("request failed: connection refused"), "{}", lines[0]);
        assert!(lines[1].contains("request failed: gave up after 8 attempts"), "{}", lines[1]);
        let summaries: Vec<&String> = lines[2..4].iter().collect();
        assert!(
            summaries.iter().any(|l| l.contains("2 requests failed in the last 1.0 s: store unavailable"))
        );
        assert!(summaries.iter().any(|l| l.contains("2 requests failed in the last 1.0 s: store contended")));
        assert!(
            lines[4].contains("request failed: timed out"),
            "in full after the quiet spell: {}",
            lines[4]
        );
        assert!(lines.iter().all(|l| l.contains("ERROR")));
    }

    #[test]
    fn without_a_runtime_the_next_failure_or_the_drop_writes_the_count() {
        let _turn = one_at_a_time();
        let (buffer, _guard) = capture();
        let summary = LogSummary::with_window(Level::WARN, "x failed", "x failed", Duration::from_secs(3600));
        summary.record("cause", "first");
        summary.record("cause", "second");
        summary.record("cause", "third");
        drop(summary);
        let lines = lines(&buffer);
        assert_eq!(lines.iter().map(|l| count_of(l)).sum::<u64>(), 3, "{lines:#?}");
        assert!(lines.last().unwrap().contains("the last: third"), "{lines:#?}");
    }

    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        #[derive(Debug)]
        struct Outer {
            prints_source: bool,
            source: std::io::Error,
        }
        impl Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("store unavailable")?;
                if self.prints_source { write!(f, ": {}", self.source) } else { Ok(()) }
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.source)
            }
        }
        let outer = |prints_source| Outer { prints_source, source: std::io::Error::other("timed out") };
        assert_eq!(ErrorChain(outer(true)).to_string(), "store unavailable: timed out");
        assert_eq!(ErrorChain(outer(false)).to_string(), "store unavailable: timed out");
        assert_eq!(ErrorChain(std::io::Error::other("root")).to_string(), "root");
    }
}
