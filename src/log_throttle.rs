//! Rate-limited warnings. An app that floods a stream with bad replies must
//! not flood the log too (or slow every other stream by formatting and
//! writing thousands of lines a second), yet the operator must still hear
//! about it: so one line per interval, carrying the count of those suppressed.
//! Lines are bounded in bytes too ([`MAX_LINE_BYTES`]): with both bounds, a
//! throttled warning writes at most that many bytes per interval, whatever an
//! app sends.

use std::time::{Duration, Instant};

use crate::clip::cut_to;

/// The longest warning logged, in bytes; longer ones are cut. Messages should
/// clip what came from the network themselves (`crate::clip`); this is the
/// backstop that keeps the rate limit a limit on bytes.
pub const MAX_LINE_BYTES: usize = 1024;

/// At most one warning per `interval`; the rest are counted.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Logs `message()` at warn level unless one was logged within the
    /// interval; then only counts it. The message is built only when logged.
    pub fn warn(&mut self, message: impl FnOnce() -> String) {
        if !self.admit(Instant::now()) {
            return;
        }
        let line = cut(message());
        match std::mem::take(&mut self.suppressed) {
            0 => log::warn!("{line}"),
            n => log::warn!("{line} ({n} similar warnings suppressed)"),
        }
    }

    /// Whether a warning at `now` gets logged; counts it when not.
    fn admit(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// Warnings not logged since the last one that was.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

fn cut(line: String) -> String {
    cut_to(line, MAX_LINE_BYTES, "...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_and_the_rest_are_counted() {
        let mut t = LogThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(t.admit(t0));
        for ms in [1, 10, 500, 999] {
            assert!(!t.admit(t0 + Duration::from_millis(ms)));
        }
        assert_eq!(t.suppressed(), 4);
        assert!(t.admit(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn a_long_warning_is_cut_to_the_line_limit() {
        let line = cut("é".repeat(MAX_LINE_BYTES));
        assert!(line.len() <= MAX_LINE_BYTES, "{} bytes", line.len());
        assert!(line.ends_with("..."));
        assert_eq!(cut("short".into()), "short");
    }
}
