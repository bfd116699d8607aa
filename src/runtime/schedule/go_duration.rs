//! Go-style duration strings (`1h30m`, `1.5s`, `0h0m1s0ms0μs`), the format
//! the Dapr SDKs send for due times, periods and ttls (facts §2).
//!
//! The grammar is `[-+]?([0-9]*(\.[0-9]*)?unit)+` or a bare `0`, with units
//! `ns us µs μs ms s m h`. Both micro signs are units because the Python SDK
//! writes the Greek mu (U+03BC) while Go's own formatter writes the micro
//! sign (U+00B5): refusing either would refuse someone's registrations.
//! One pass over the input, no backtracking, so a hostile string costs time
//! linear in its length.

use std::time::Duration;

use super::Problem;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// The largest duration Go can hold (an `int64` of nanoseconds). Beyond it a
/// Go sidecar would refuse the string, so we do too.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Fraction digits past this many cannot move the result by a nanosecond for
/// any unit up to an hour, and keeping them would overflow the accumulator.
const MAX_FRACTION_DIGITS: u32 = 18;

/// Parses a Go duration. `Ok(None)`: not a Go duration at all (the caller may
/// try another format). `Err`: a Go duration we refuse (negative, too long).
pub(super) fn parse(s: &str) -> Result<Option<Duration>, Problem> {
    let (negative, body) = split_sign(s);
    if body == "0" {
        return Ok(Some(Duration::ZERO));
    }
    let Some(nanos) = sum_of_terms(body) else {
        return Ok(None);
    };
    if nanos > MAX_NANOS {
        return Err(Problem::OutOfRange);
    }
    if negative && nanos > 0 {
        return Err(Problem::Negative);
    }
    Ok(Some(nanos_to_duration(nanos)))
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// The total of `number unit` terms in nanoseconds, saturating (a saturated
/// total is above `MAX_NANOS` and refused by the caller); None if malformed.
fn sum_of_terms(mut rest: &str) -> Option<u128> {
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (number, after_number) = Number::take(rest)?;
        let (unit_nanos, after_unit) = take_unit(after_number)?;
        total = total.saturating_add(number.times(unit_nanos));
        rest = after_unit;
    }
    Some(total)
}

/// `12.345` as read: the whole part and up to 18 fraction digits.
struct Number {
    whole: u128,
    fraction: u128,
    fraction_digits: u32,
}

impl Number {
    /// Reads `[0-9]*(\.[0-9]*)?` with at least one digit somewhere.
    fn take(s: &str) -> Option<(Number, &str)> {
        let (whole_digits, rest) = split_digits(s);
        let (fraction_digits, rest) = match rest.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", rest),
        };
        if whole_digits.is_empty() && fraction_digits.is_empty() {
            return None;
        }
        let kept = &fraction_digits[..fraction_digits.len().min(MAX_FRACTION_DIGITS as usize)];
        let number = Number {
            whole: digits_value(whole_digits),
            fraction: digits_value(kept),
            fraction_digits: kept.len() as u32,
        };
        Some((number, rest))
    }

    /// This many units, in nanoseconds, the fraction truncated toward zero.
    fn times(&self, unit_nanos: u128) -> u128 {
        let whole = self.whole.saturating_mul(unit_nanos);
        let fraction = self.fraction * unit_nanos / 10u128.pow(self.fraction_digits);
        whole.saturating_add(fraction)
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

/// The value of ASCII digits, saturating instead of overflowing.
fn digits_value(digits: &str) -> u128 {
    digits.bytes().fold(0u128, |acc, d| {
        acc.saturating_mul(10).saturating_add(u128::from(d - b'0'))
    })
}

/// Reads a unit (everything up to the next digit or dot) and gives its length
/// in nanoseconds; None for a missing or unknown unit.
fn take_unit(s: &str) -> Option<(u128, &str)> {
    let end = s
        .bytes()
        .position(|b| b.is_ascii_digit() || b == b'.')
        .unwrap_or(s.len());
    let (unit, rest) = s.split_at(end);
    let nanos = match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        _ => return None,
    };
    Some((nanos, rest))
}

fn nanos_to_duration(nanos: u128) -> Duration {
    // Below MAX_NANOS, so the seconds fit a u64 and the rest a u32.
    Duration::new(
        (nanos / NANOS_PER_SEC) as u64,
        (nanos % NANOS_PER_SEC) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> Duration {
        parse(s)
            .unwrap()
            .unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    fn not_go(s: &str) {
        assert_eq!(parse(s), Ok(None), "{s:?} should not parse");
    }

    #[test]
    fn every_unit_is_known() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7ms"), Duration::from_millis(7));
        assert_eq!(ok("7s"), Duration::from_secs(7));
        assert_eq!(ok("7m"), Duration::from_secs(420));
        assert_eq!(ok("7h"), Duration::from_secs(7 * 3600));
    }

    #[test]
    fn both_micro_signs_are_microseconds() {
        assert_eq!(ok("3\u{b5}s"), Duration::from_micros(3));
        assert_eq!(ok("3\u{3bc}s"), Duration::from_micros(3));
    }

    #[test]
    fn the_python_sdk_format_parses() {
        assert_eq!(ok("0h0m1s0ms0μs"), Duration::from_secs(1));
        assert_eq!(ok("1h2m3s4ms5μs"), Duration::new(3723, 4_005_000));
    }

    #[test]
    fn bare_zero_and_signed_zero_are_zero() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("-0s"), Duration::ZERO);
    }

    #[test]
    fn fractions_are_truncated_to_the_nanosecond() {
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5m"), Duration::from_secs(30));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1.0000000019s"), Duration::new(1, 1));
        assert_eq!(
            ok("0.000000000999999999999999999999h"),
            Duration::from_nanos(3599)
        );
    }

    #[test]
    fn malformed_strings_are_not_go_durations() {
        for s in [
            "", "+", "-", "1", "s", ".s", "1x", "1d", "1 s", "1s ", "1.2.3s", "1sm", "P1D",
        ] {
            not_go(s);
        }
    }

    #[test]
    fn negative_durations_are_refused() {
        assert_eq!(parse("-1s"), Err(Problem::Negative));
        assert_eq!(parse("-0.000000001s"), Err(Problem::Negative));
    }

    #[test]
    fn durations_past_go_range_are_refused() {
        assert_eq!(
            ok("2562047h47m16.854775807s"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert_eq!(parse("2562047h47m16.854775808s"), Err(Problem::OutOfRange));
        assert_eq!(
            parse("99999999999999999999999999999999999999999h"),
            Err(Problem::OutOfRange)
        );
    }

    /// A Go-style spelling of `d` made of the given units, largest first.
    fn spell(d: Duration, mu: &str, with_fraction: bool) -> String {
        let nanos = d.as_nanos();
        if with_fraction {
            return format!("{}.{:09}s", d.as_secs(), d.subsec_nanos());
        }
        let h = nanos / 3_600_000_000_000;
        let m = nanos / 60_000_000_000 % 60;
        let s = nanos / 1_000_000_000 % 60;
        let ms = nanos / 1_000_000 % 1000;
        let us = nanos / 1000 % 1000;
        let ns = nanos % 1000;
        format!("{h}h{m}m{s}s{ms}ms{us}{mu}s{ns}ns")
    }

    proptest! {
        #[test]
        fn a_spelled_duration_parses_back_to_itself(
            nanos in 0u64..=i64::MAX as u64,
            mu in prop::sample::select(vec!["u", "\u{b5}", "\u{3bc}"]),
            with_fraction: bool,
        ) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&spell(d, mu, with_fraction)), Ok(Some(d)));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn unit_soup_never_panics(s in "[-+.0-9nuµμmsh]{0,40}") {
            let _ = parse(&s);
        }
    }
}
