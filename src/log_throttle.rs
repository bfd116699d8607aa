//! Rate-limited warnings. An app that floods a stream with bad replies must
//! not flood the log too (or slow every other stream by formatting and
//! writing thousands of lines a second), yet the operator must still hear
//! about it: so one line per interval, carrying the count of those suppressed.

use std::time::{Duration, Instant};

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
        match std::mem::take(&mut self.suppressed) {
            0 => log::warn!("{}", message()),
            n => log::warn!("{} ({n} similar warnings suppressed)", message()),
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
}
