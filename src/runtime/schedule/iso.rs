//! ISO 8601 durations (`P1Y2M3W4DT5H6M7S`) and repetitions (`R3/PT1S`), the
//! other format Dapr takes for due times, periods and ttls (facts §2).
//!
//! Integers only, as daprd. We read the strict grammar: at least one
//! component, components in the standard order and each at most once, and
//! nothing else. daprd's parser skips letters it does not know; we refuse
//! them, because a typo that silently shortens a period is worse than an
//! error at registration. One pass, linear in the input.

use std::time::Duration;

use super::Problem;
use super::step::Step;

/// A parsed ISO duration: its step and, with an `Rn/` prefix, the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IsoDuration {
    pub step: Step,
    pub repetitions: Option<u32>,
}

/// Parses `[Rn/]P...`. `Ok(None)`: not an ISO duration (the caller may try
/// another format). `Err`: an ISO duration whose numbers do not fit.
pub(super) fn parse(s: &str) -> Result<Option<IsoDuration>, Problem> {
    let Some((repetitions, rest)) = split_repetitions(s) else {
        return Ok(None);
    };
    let repetitions = match repetitions.map(parse_count).transpose() {
        Ok(r) => r,
        Err(()) => return Err(Problem::OutOfRange),
    };
    let Some(body) = rest.strip_prefix('P') else {
        return Ok(None);
    };
    let Some(parts) = Parts::read(body) else {
        return Ok(None);
    };
    let step = parts.step().ok_or(Problem::OutOfRange)?;
    Ok(Some(IsoDuration { step, repetitions }))
}

/// `R12/rest` → `(Some("12"), rest)`; no `R` → `(None, s)`; a malformed
/// prefix → None.
fn split_repetitions(s: &str) -> Option<(Option<&str>, &str)> {
    let Some(after_r) = s.strip_prefix('R') else {
        return Some((None, s));
    };
    let (count, rest) = after_r.split_once('/')?;
    let digits_only = !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit());
    digits_only.then_some((Some(count), rest))
}

fn parse_count(digits: &str) -> Result<u32, ()> {
    digits.parse().map_err(|_| ())
}

/// The components as written; absent ones are zero.
#[derive(Debug, Default)]
struct Parts {
    years: u64,
    months: u64,
    weeks: u64,
    days: u64,
    hours: u64,
    minutes: u64,
    seconds: u64,
}

/// The designators allowed in the date part and in the time part, in order.
const DATE_DESIGNATORS: &[u8] = b"YMWD";
const TIME_DESIGNATORS: &[u8] = b"HMS";

impl Parts {
    /// Reads what follows `P`: `[nY][nM][nW][nD][T[nH][nM][nS]]`, at least one
    /// component, and at least one after a `T`.
    fn read(body: &str) -> Option<Parts> {
        let (date, time) = match body.split_once('T') {
            Some((date, time)) if !time.is_empty() => (date, Some(time)),
            Some(_) => return None,
            None => (body, None),
        };
        let mut parts = Parts::default();
        let date_count = read_components(date, DATE_DESIGNATORS, |d, n| parts.set(d, false, n))?;
        let time_count = match time {
            Some(time) => read_components(time, TIME_DESIGNATORS, |d, n| parts.set(d, true, n))?,
            None => 0,
        };
        (date_count + time_count > 0).then_some(parts)
    }

    fn set(&mut self, designator: u8, in_time: bool, n: u64) {
        let slot = match (designator, in_time) {
            (b'Y', false) => &mut self.years,
            (b'M', false) => &mut self.months,
            (b'W', false) => &mut self.weeks,
            (b'D', false) => &mut self.days,
            (b'H', true) => &mut self.hours,
            (b'M', true) => &mut self.minutes,
            // The only one left that `read_components` lets through.
            _ => &mut self.seconds,
        };
        *slot = n;
    }

    /// Months (years folded in) and the fixed rest. Days are fixed too: we
    /// step in UTC, where every day is 24 h. None if it does not fit.
    fn step(&self) -> Option<Step> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let days = self.weeks.checked_mul(7)?.checked_add(self.days)?;
        let seconds = [
            (days, 86_400),
            (self.hours, 3_600),
            (self.minutes, 60),
            (self.seconds, 1),
        ]
        .into_iter()
        .try_fold(0u64, |acc, (n, unit)| acc.checked_add(n.checked_mul(unit)?))?;
        Some(Step {
            months: u32::try_from(months).ok()?,
            fixed: Duration::from_secs(seconds),
        })
    }
}

/// Reads `(digits designator)*` where the designators appear in `allowed`'s
/// order, each at most once, calling `set` for each; returns how many were
/// read, or None if malformed or a number overflows.
fn read_components(mut s: &str, allowed: &[u8], mut set: impl FnMut(u8, u64)) -> Option<usize> {
    let mut next_allowed = 0;
    let mut count = 0;
    while !s.is_empty() {
        let end = s.bytes().position(|b| !b.is_ascii_digit())?;
        let (digits, rest) = s.split_at(end);
        let designator = *rest.as_bytes().first()?;
        let position = allowed[next_allowed..]
            .iter()
            .position(|&d| d == designator)?;
        if digits.is_empty() {
            return None;
        }
        set(designator, digits.parse().ok()?);
        next_allowed += position + 1;
        count += 1;
        s = &rest[1..];
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> IsoDuration {
        parse(s)
            .unwrap()
            .unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    fn step(months: u32, secs: u64) -> Step {
        Step {
            months,
            fixed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn every_component_is_read() {
        let all = ok("P1Y2M3W4DT5H6M7S");
        assert_eq!(
            all.step,
            step(14, (3 * 7 + 4) * 86_400 + 5 * 3600 + 6 * 60 + 7)
        );
        assert_eq!(all.repetitions, None);
        assert_eq!(ok("PT1S").step, step(0, 1));
        assert_eq!(ok("P1M").step, step(1, 0));
        assert_eq!(ok("PT1M").step, step(0, 60));
        assert_eq!(ok("P2W").step, step(0, 14 * 86_400));
    }

    #[test]
    fn repetitions_prefix_is_read() {
        assert_eq!(
            ok("R3/PT1S"),
            IsoDuration {
                step: step(0, 1),
                repetitions: Some(3)
            }
        );
        assert_eq!(ok("R0/PT1S").repetitions, Some(0));
    }

    #[test]
    fn fractions_and_junk_are_not_iso() {
        for s in [
            "", "P", "PT", "P1DT", "PT1.5S", "P1X", "P1DX", "PT1S ", "P1D1Y", "P1M1M", "PT1Y",
            "P1H", "PD", "R/PT1S", "R3PT1S", "R3/", "Rx/PT1S", "R-1/PT1S", "1s", "p1d",
        ] {
            assert_eq!(parse(s), Ok(None), "{s:?}");
        }
    }

    #[test]
    fn numbers_that_do_not_fit_are_out_of_range() {
        assert_eq!(parse("R4294967296/PT1S"), Err(Problem::OutOfRange));
        assert_eq!(parse("P357913942Y"), Err(Problem::OutOfRange));
        assert_eq!(parse("PT18446744073709551615H"), Err(Problem::OutOfRange));
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn designator_soup_never_panics(s in "R?[0-9/]{0,3}P?[0-9YMWDTHS]{0,30}") {
            let _ = parse(&s);
        }
    }
}
