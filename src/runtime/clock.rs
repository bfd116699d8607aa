//! The runtime's one clock: wall-clock time that moves with tokio's clock.
//!
//! Schedules are written in wall time (an RFC3339 due time, a reminder that
//! must survive a restart), but deadlines are awaited with tokio's timers, and
//! tests pause and advance tokio's clock instead of sleeping. So the wall time
//! here is read once, when the clock is made, and then advanced by tokio's
//! `Instant`: under a paused clock, wall time stands still and jumps with it,
//! and the two never disagree about how long is left until a deadline.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Wall-clock time tied to tokio's clock. Cheap to copy; every copy agrees.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: SystemTime,
    start: Instant,
}

impl Clock {
    /// A clock reading the system's wall time now.
    pub fn new() -> Self {
        Clock::starting_at(SystemTime::now())
    }

    /// A clock that reads `wall` now (tests: a fixed, known date).
    pub fn starting_at(wall: SystemTime) -> Self {
        Clock {
            wall_at_start: wall,
            start: Instant::now(),
        }
    }

    /// The wall time now.
    pub fn now(&self) -> SystemTime {
        self.wall_at_start + self.start.elapsed()
    }

    /// The tokio instant at which the wall clock reads `at` (now, if `at` is
    /// past), for `tokio::time::sleep_until`.
    pub fn instant_at(&self, at: SystemTime) -> Instant {
        let now_wall = self.now();
        let now = Instant::now();
        match at.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(_) => now,
        }
    }

    /// How long from now until the wall clock reads `at` (zero if past).
    pub fn until(&self, at: SystemTime) -> Duration {
        at.duration_since(self.now()).unwrap_or(Duration::ZERO)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_moves_with_a_paused_tokio_clock() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = Clock::starting_at(t0);
        assert_eq!(clock.now(), t0);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), t0 + Duration::from_secs(90));
        assert_eq!(
            clock.until(t0 + Duration::from_secs(100)),
            Duration::from_secs(10)
        );
        assert_eq!(clock.until(t0), Duration::ZERO);
        let at = clock.instant_at(t0 + Duration::from_secs(95));
        assert_eq!(at - Instant::now(), Duration::from_secs(5));
    }
}
