//! Why a schedule was refused, worded as daprd words it (facts §2), so an app
//! that matches on daprd's messages keeps working. The RPC layer prefixes
//! `error creating actor timer: ` or `... reminder: ` and answers INTERNAL.
//!
//! Timers' texts come from daprd's own parsing (setReminderTimes and
//! dapr/kit), reminders' from the Scheduler (go-etcd-cron's builder and
//! daprd's scheduleFromPeriod). Refusals daprd does not make (negative
//! durations, over-long strings, out-of-range values) get our own words.

use thiserror::Error;

use super::parse::MAX_LEN;

/// What was wrong with one string, whatever it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Unrecognized,
    TooLong,
    Negative,
    OutOfRange,
    /// `Rn/` where a single instant is wanted.
    Repetitions,
    /// `R0/`.
    ZeroRepetitions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Timer,
    Reminder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    DueTime,
    Period,
    Ttl,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("{}", bad_value(*.kind, *.field, *.problem, .input))]
    BadValue {
        kind: Kind,
        field: Field,
        problem: Problem,
        input: String,
    },
    /// daprd also names the timer (`timer T||id||name has already expired`);
    /// a schedule does not know its timer, so the name is left out.
    #[error("timer has already expired: dueTime: {due} TTL: {ttl}")]
    TimerExpired { due: String, ttl: String },
    #[error("ttl must be greater than due time")]
    ReminderTtlBeforeDueTime,
}

fn bad_value(kind: Kind, field: Field, problem: Problem, input: &str) -> String {
    match kind {
        Kind::Timer => format!(
            "{}: {}",
            timer_prefix(field),
            timer_detail(field, problem, input)
        ),
        Kind::Reminder => reminder_text(field, problem, input),
    }
}

fn timer_prefix(field: Field) -> &'static str {
    match field {
        Field::DueTime => "error parsing timer due time",
        Field::Period => "invalid timer period",
        Field::Ttl => "error parsing timer TTL",
    }
}

fn timer_detail(field: Field, problem: Problem, input: &str) -> String {
    match (problem, field) {
        (Problem::Unrecognized, Field::Period) => {
            format!("parse error: unsupported duration format: {input}")
        }
        (Problem::Unrecognized, _) => format!("unsupported time/duration format: {input}"),
        (Problem::Repetitions, _) => "repetitions are not allowed".to_owned(),
        (Problem::ZeroRepetitions, _) => "has zero repetitions".to_owned(),
        (other, _) => our_detail(other, input),
    }
}

fn reminder_text(field: Field, problem: Problem, input: &str) -> String {
    match (field, problem) {
        (Field::DueTime, Problem::Unrecognized) => "due time format not recognized".to_owned(),
        (Field::DueTime, Problem::Repetitions) => "repeats not supported for due time".to_owned(),
        (Field::Ttl, Problem::Unrecognized | Problem::Repetitions) => {
            "ttl format not recognized".to_owned()
        }
        (Field::Period, Problem::Unrecognized) => format!("unsupported period format: {input}"),
        // The Scheduler reads R0 as "no limit"; daprd's own period check
        // (which reminders went through before the Scheduler) refuses it.
        (Field::Period, Problem::ZeroRepetitions) => {
            "invalid reminder period: has zero repetitions".to_owned()
        }
        (field, other) => format!("{}: {}", field_name(field), our_detail(other, input)),
    }
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::DueTime => "due time",
        Field::Period => "period",
        Field::Ttl => "ttl",
    }
}

/// Refusals of our own, the same for timers and reminders.
fn our_detail(problem: Problem, input: &str) -> String {
    match problem {
        Problem::TooLong => format!("longer than {MAX_LEN} bytes"),
        Problem::Negative => format!("negative durations are not allowed: {input}"),
        Problem::OutOfRange => format!("out of range: {input}"),
        Problem::Unrecognized => format!("format not recognized: {input}"),
        Problem::Repetitions => format!("repetitions are not allowed: {input}"),
        Problem::ZeroRepetitions => format!("has zero repetitions: {input}"),
    }
}
