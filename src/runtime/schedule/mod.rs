//! Timer and reminder schedules (SPEC TM2, RM1, RM5; facts §2, §4): reading
//! the due time, period and ttl strings an app registers, and working out
//! when each fire is due and when a schedule is spent.
//!
//! A [`Schedule`] is plain data (serde), because reminders are stored and a
//! gateway that restarts must know, for each, when the next fire is due, how
//! many are left and when it expires. It is advanced only after a fire's
//! reply ([`Schedule::after_fire`]), so fires never overlap and a fire
//! interrupted by a crash is still due after the restart (RM5).
//!
//! Choices where daprd's behaviour left room (facts §2):
//! - An empty due time means now, for reminders too (SPEC TM2 via RM1; the
//!   Scheduler would wait one period).
//! - A reminder with neither due time nor period fires once, at once, like
//!   a timer (RM1: reminders work like timers). The Scheduler refuses it, but
//!   SPEC gives every empty field a meaning, and the SDK never sends it.
//! - Reminders accept Y/M/D periods (the Scheduler refuses them): RM1 again.
//! - A ttl needs no period (the Scheduler refuses a ttl without one); it then
//!   only bounds the single fire.
//! - A zero period (`0s`, `PT0S`) fires once, as in daprd, where a period of
//!   zero length does not repeat.
//! - Calendar arithmetic is in UTC (see `step`).

mod error;
mod go_duration;
mod iso;
mod parse;
mod step;

use std::time::SystemTime;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use error::{Field, Kind, Problem, ScheduleError};
pub use parse::MAX_LEN;
pub use step::Step;

/// One timer's or reminder's schedule, and how far it has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    due_time: String,
    period: String,
    ttl: String,
    /// When the next fire is due.
    due: SystemTime,
    /// None: fires once.
    every: Option<Step>,
    /// Calendar steps count from here, so month ends are kept (see `step`).
    anchor: SystemTime,
    steps_from_anchor: u32,
    /// Fires still to come, the one at `due` included; None: no limit.
    fires_left: Option<u32>,
    expires: Option<SystemTime>,
}

impl Schedule {
    /// A timer's schedule, registered at `now`.
    pub fn timer(
        due_time: &str,
        period: &str,
        ttl: &str,
        now: SystemTime,
    ) -> Result<Schedule, ScheduleError> {
        Schedule::new(Kind::Timer, [due_time, period, ttl], now)
    }

    /// A reminder's schedule, registered at `now`.
    pub fn reminder(
        due_time: &str,
        period: &str,
        ttl: &str,
        now: SystemTime,
    ) -> Result<Schedule, ScheduleError> {
        Schedule::new(Kind::Reminder, [due_time, period, ttl], now)
    }

    fn new(
        kind: Kind,
        [due_time, period, ttl]: [&str; 3],
        now: SystemTime,
    ) -> Result<Schedule, ScheduleError> {
        let order = match kind {
            Kind::Timer => &parse::TIMER_ORDER,
            Kind::Reminder => &parse::REMINDER_ORDER,
        };
        let due = match due_time {
            "" => now,
            s => {
                parse::instant(s, now, order).map_err(|p| bad_value(kind, Field::DueTime, p, s))?
            }
        };
        let repeating = match period {
            "" => None,
            s => Some(parse::period(s).map_err(|p| bad_value(kind, Field::Period, p, s))?),
        };
        let expires = match ttl {
            "" => None,
            s => {
                Some(parse::instant(s, due, order).map_err(|p| bad_value(kind, Field::Ttl, p, s))?)
            }
        };
        check_expiry(kind, due, expires, ttl, now)?;
        let every = repeating.map(|r| r.step).filter(|step| !step.is_zero());
        Ok(Schedule {
            due_time: due_time.to_owned(),
            period: period.to_owned(),
            ttl: ttl.to_owned(),
            due,
            every,
            anchor: due,
            steps_from_anchor: 0,
            fires_left: repeating.and_then(|r| r.repetitions),
            expires,
        })
    }

    /// The due time as registered (for the fire messages and GetActorReminder).
    pub fn due_time(&self) -> &str {
        &self.due_time
    }

    /// The period as registered.
    pub fn period(&self) -> &str {
        &self.period
    }

    /// The ttl as registered.
    pub fn ttl(&self) -> &str {
        &self.ttl
    }

    /// When the next fire is due; it may be past (fire at once).
    pub fn due(&self) -> SystemTime {
        self.due
    }

    /// Fires still to come, the one at [`due`](Self::due) included; None: no limit.
    pub fn fires_left(&self) -> Option<u32> {
        self.fires_left
    }

    /// After this instant no fire is due.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// The schedule after the fire due at [`due`](Self::due) was answered at
    /// `now`, or None when that was the last (no period, repetitions used up,
    /// or the next due would be past the ttl).
    ///
    /// The next fire is one period after the last due. If that is already
    /// past (the gateway was down, no app hosted the type, or the app was
    /// slow), the fire just answered stands for the ones missed, and the
    /// cadence starts again from `now`: one fire per outage, never one per
    /// missed period (RM5). Firing again at once instead would, after a
    /// restart, fire twice in a row: the stored due fires at once (P3),
    /// and its successor would be past too.
    pub fn after_fire(self, now: SystemTime) -> Option<Schedule> {
        let every = self.every?;
        let fires_left = match self.fires_left {
            Some(n) => Some(n.checked_sub(1).filter(|&left| left > 0)?),
            None => None,
        };
        let (anchor, steps) = self.next_anchor(every);
        let natural = every.nth_after(anchor, steps)?;
        let (anchor, steps, due) = if natural < now {
            (now, 1, every.nth_after(now, 1)?)
        } else {
            (anchor, steps, natural)
        };
        if self.expires.is_some_and(|expires| due > expires) {
            return None;
        }
        Some(Schedule {
            due,
            anchor,
            steps_from_anchor: steps,
            fires_left,
            ..self
        })
    }

    /// Where the next step counts from: the anchor for calendar steps (to
    /// keep the day of the month), else the last due (the same instant, and
    /// the count never grows).
    fn next_anchor(&self, every: Step) -> (SystemTime, u32) {
        if every.is_calendar() {
            (self.anchor, self.steps_from_anchor.saturating_add(1))
        } else {
            (self.due, 1)
        }
    }
}

/// A timer that would be expired before it first fires is refused (daprd
/// checks against both now and the due time); a reminder only when its ttl
/// ends before its due time (the Scheduler's check).
fn check_expiry(
    kind: Kind,
    due: SystemTime,
    expires: Option<SystemTime>,
    ttl: &str,
    now: SystemTime,
) -> Result<(), ScheduleError> {
    let Some(expires) = expires else {
        return Ok(());
    };
    match kind {
        Kind::Timer if expires < now || expires < due => Err(ScheduleError::TimerExpired {
            due: rfc3339(due),
            ttl: ttl.to_owned(),
        }),
        Kind::Reminder if expires < due => Err(ScheduleError::ReminderTtlBeforeDueTime),
        _ => Ok(()),
    }
}

fn bad_value(kind: Kind, field: Field, problem: Problem, input: &str) -> ScheduleError {
    // An over-long string is not echoed back: it could be megabytes.
    let input = match problem {
        Problem::TooLong => String::new(),
        _ => input.to_owned(),
    };
    ScheduleError::BadValue {
        kind,
        field,
        problem,
        input,
    }
}

fn rfc3339(at: SystemTime) -> String {
    Timestamp::try_from(at).map_or_else(|_| format!("{at:?}"), |t| t.to_string())
}

/// An instant written in RFC3339, for tests.
#[cfg(test)]
fn instant(rfc3339: &str) -> SystemTime {
    SystemTime::try_from(rfc3339.parse::<Timestamp>().unwrap()).unwrap()
}

#[cfg(test)]
mod tests;
