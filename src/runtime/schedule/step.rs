//! A schedule's unit of time: whole calendar months plus a fixed duration,
//! and the arithmetic that moves an instant on by it.
//!
//! Months are calendar steps (facts §2: Y/M/D are AddDate steps), done by
//! jiff in UTC. A month added to a day the target month lacks lands on that
//! month's last day (Jan 31 + 1 month = Feb 28). Counting every step from
//! one anchor, rather than from the previous step, keeps the day of the
//! month: Jan 31, Feb 28, Mar 31, Apr 30, not Jan 31, Feb 28, Mar 28.
//! Days and weeks are fixed 24 h steps, which in UTC is the same thing.

use std::time::{Duration, SystemTime};

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub months: u32,
    pub fixed: Duration,
}

impl Step {
    pub fn fixed(duration: Duration) -> Step {
        Step {
            months: 0,
            fixed: duration,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.months == 0 && self.fixed.is_zero()
    }

    /// Whether the step's length depends on where it starts.
    pub fn is_calendar(&self) -> bool {
        self.months != 0
    }

    /// `anchor` moved on by `n` steps; None past the range of dates we keep.
    pub fn nth_after(&self, anchor: SystemTime, n: u32) -> Option<SystemTime> {
        let months = i64::from(self.months) * i64::from(n);
        let shifted = if months == 0 {
            anchor
        } else {
            add_months(anchor, months)?
        };
        shifted.checked_add(self.fixed.checked_mul(n)?)
    }
}

fn add_months(at: SystemTime, months: i64) -> Option<SystemTime> {
    let span = Span::new().try_months(months).ok()?;
    let moved = Timestamp::try_from(at)
        .ok()?
        .to_zoned_datetime(TimeZone::UTC)
        .checked_add(span)
        .ok()?;
    SystemTime::try_from(moved.timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::super::instant as at;
    use super::*;

    #[test]
    fn month_steps_from_jan_31_keep_the_month_end() {
        let monthly = Step {
            months: 1,
            fixed: Duration::ZERO,
        };
        let anchor = at("2025-01-31T10:00:00Z");
        let expected = [
            "2025-02-28T10:00:00Z",
            "2025-03-31T10:00:00Z",
            "2025-04-30T10:00:00Z",
        ];
        for (n, want) in (1..).zip(expected) {
            assert_eq!(monthly.nth_after(anchor, n), Some(at(want)), "step {n}");
        }
    }

    #[test]
    fn a_year_step_from_feb_29_lands_on_feb_28() {
        let yearly = Step {
            months: 12,
            fixed: Duration::ZERO,
        };
        let anchor = at("2024-02-29T00:00:00Z");
        assert_eq!(
            yearly.nth_after(anchor, 1),
            Some(at("2025-02-28T00:00:00Z"))
        );
        assert_eq!(
            yearly.nth_after(anchor, 4),
            Some(at("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn months_then_fixed_part() {
        let step = Step {
            months: 1,
            fixed: Duration::from_secs(86_400 + 3600),
        };
        let anchor = at("2025-01-31T00:00:00Z");
        assert_eq!(step.nth_after(anchor, 1), Some(at("2025-03-01T01:00:00Z")));
        assert_eq!(step.nth_after(anchor, 2), Some(at("2025-04-02T02:00:00Z")));
    }

    #[test]
    fn past_the_calendar_is_none() {
        let step = Step {
            months: 12 * 20_000,
            fixed: Duration::ZERO,
        };
        assert_eq!(step.nth_after(at("2025-01-01T00:00:00Z"), 1), None);
    }
}
