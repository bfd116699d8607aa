//! Which formats a due time, period or ttl may take, tried in daprd's order,
//! and what each means (facts §2).
//!
//! The formats cannot be mistaken for one another (ISO starts with `P` or
//! `R`, a Go duration with a sign, digit or dot, an instant with a four-digit
//! year and a dash), so the order only decides which refusal a string gets;
//! we keep daprd's orders anyway, so that stays daprd's too.

use std::time::SystemTime;

use jiff::Timestamp;

use super::iso::{self, IsoDuration};
use super::step::Step;
use super::{Problem, go_duration};

/// Strings come from the network; past this a string is refused unread.
pub const MAX_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Iso,
    Go,
    Rfc3339,
}

/// Timers' due time and ttl: dapr/kit's ParseTime.
pub(super) const TIMER_ORDER: [Format; 3] = [Format::Iso, Format::Go, Format::Rfc3339];
/// Reminders' due time and ttl: the Scheduler's parsePointInTime.
pub(super) const REMINDER_ORDER: [Format; 3] = [Format::Rfc3339, Format::Go, Format::Iso];

/// A due time or ttl: an instant, or a duration counted from `base`.
/// Repetitions make no sense for a single instant and are refused.
pub(super) fn instant(s: &str, base: SystemTime, order: &[Format]) -> Result<SystemTime, Problem> {
    check_length(s)?;
    for &format in order {
        if let Some(at) = instant_as(format, s, base)? {
            return Ok(at);
        }
    }
    Err(Problem::Unrecognized)
}

fn instant_as(format: Format, s: &str, base: SystemTime) -> Result<Option<SystemTime>, Problem> {
    let step = match format {
        Format::Rfc3339 => return Ok(rfc3339(s)),
        Format::Go => go_duration::parse(s)?.map(Step::fixed),
        Format::Iso => match iso::parse(s)? {
            Some(IsoDuration {
                repetitions: Some(_),
                ..
            }) => return Err(Problem::Repetitions),
            parsed => parsed.map(|iso| iso.step),
        },
    };
    step.map(|step| step.nth_after(base, 1).ok_or(Problem::OutOfRange))
        .transpose()
}

/// An RFC3339 instant, read by jiff, which also takes a few spellings Go's
/// RFC3339 layout refuses (a space for the `T`, minutes without seconds, a
/// `[zone]` suffix). None of them can be mistaken for another format, so
/// being lenient here misreads nothing.
fn rfc3339(s: &str) -> Option<SystemTime> {
    let timestamp: Timestamp = s.parse().ok()?;
    SystemTime::try_from(timestamp).ok()
}

/// A period: ISO (with optional repetitions) first, then Go (kit's
/// ParseDuration). `R0/` is refused: a schedule that may never fire.
pub(super) fn period(s: &str) -> Result<IsoDuration, Problem> {
    check_length(s)?;
    if let Some(iso) = iso::parse(s)? {
        return match iso.repetitions {
            Some(0) => Err(Problem::ZeroRepetitions),
            _ => Ok(iso),
        };
    }
    match go_duration::parse(s)? {
        Some(d) => Ok(IsoDuration {
            step: Step::fixed(d),
            repetitions: None,
        }),
        None => Err(Problem::Unrecognized),
    }
}

fn check_length(s: &str) -> Result<(), Problem> {
    if s.len() > MAX_LEN {
        return Err(Problem::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::instant as at;
    use super::*;

    const BASE: &str = "2025-01-31T10:00:00Z";

    fn timer(s: &str) -> Result<SystemTime, Problem> {
        instant(s, at(BASE), &TIMER_ORDER)
    }

    fn reminder(s: &str) -> Result<SystemTime, Problem> {
        instant(s, at(BASE), &REMINDER_ORDER)
    }

    #[test]
    fn instants_take_every_format_in_both_orders() {
        for parse in [timer, reminder] {
            assert_eq!(parse("1h"), Ok(at("2025-01-31T11:00:00Z")));
            assert_eq!(parse("0h0m1s0ms0μs"), Ok(at("2025-01-31T10:00:01Z")));
            assert_eq!(parse("PT1H"), Ok(at("2025-01-31T11:00:00Z")));
            assert_eq!(parse("P1M"), Ok(at("2025-02-28T10:00:00Z")));
            assert_eq!(
                parse("2020-10-02T15:00:00Z"),
                Ok(at("2020-10-02T15:00:00Z"))
            );
            assert_eq!(
                parse("2020-10-02T17:00:00.5+02:00"),
                Ok(at("2020-10-02T15:00:00.5Z"))
            );
        }
    }

    #[test]
    fn repetitions_in_an_instant_are_refused() {
        assert_eq!(timer("R3/PT1S"), Err(Problem::Repetitions));
        assert_eq!(reminder("R3/PT1S"), Err(Problem::Repetitions));
    }

    #[test]
    fn an_unknown_instant_is_unrecognized() {
        for s in [
            "",
            "soon",
            "1d",
            "2020-13-02T15:00:00Z",
            "PT1.5S",
            "R0/PT1S/",
        ] {
            assert_eq!(timer(s), Err(Problem::Unrecognized), "{s:?}");
        }
    }

    #[test]
    fn a_negative_instant_offset_is_refused() {
        assert_eq!(timer("-1s"), Err(Problem::Negative));
    }

    #[test]
    fn periods_take_iso_repetitions_and_go() {
        let second = Step::fixed(Duration::from_secs(1));
        assert_eq!(
            period("1s").map(|p| (p.step, p.repetitions)),
            Ok((second, None))
        );
        assert_eq!(
            period("PT1S").map(|p| (p.step, p.repetitions)),
            Ok((second, None))
        );
        assert_eq!(
            period("R3/PT1S").map(|p| (p.step, p.repetitions)),
            Ok((second, Some(3)))
        );
    }

    #[test]
    fn period_refusals() {
        assert_eq!(period("R0/PT1S").map(|_| ()), Err(Problem::ZeroRepetitions));
        assert_eq!(
            period("2020-10-02T15:00:00Z").map(|_| ()),
            Err(Problem::Unrecognized)
        );
        assert_eq!(period("-1s").map(|_| ()), Err(Problem::Negative));
        assert_eq!(period("often").map(|_| ()), Err(Problem::Unrecognized));
    }

    #[test]
    fn strings_past_the_cap_are_refused_unread() {
        let long = format!("{}s", "1".repeat(MAX_LEN));
        assert_eq!(period(&long).map(|_| ()), Err(Problem::TooLong));
        assert_eq!(timer(&long), Err(Problem::TooLong));
        let just_fits = format!("{}1s", "0".repeat(MAX_LEN - 2));
        assert_eq!(timer(&just_fits), Ok(at("2025-01-31T10:00:01Z")));
    }
}
