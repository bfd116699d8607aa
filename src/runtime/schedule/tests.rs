use std::time::Duration;

use proptest::prelude::*;

use super::*;

const NOW: &str = "2025-01-31T10:00:00Z";

fn now() -> SystemTime {
    instant(NOW)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn timer(due_time: &str, period: &str, ttl: &str) -> Schedule {
    Schedule::timer(due_time, period, ttl, now()).unwrap()
}

fn reminder(due_time: &str, period: &str, ttl: &str) -> Schedule {
    Schedule::reminder(due_time, period, ttl, now()).unwrap()
}

fn timer_error(due_time: &str, period: &str, ttl: &str) -> String {
    Schedule::timer(due_time, period, ttl, now())
        .unwrap_err()
        .to_string()
}

fn reminder_error(due_time: &str, period: &str, ttl: &str) -> String {
    Schedule::reminder(due_time, period, ttl, now())
        .unwrap_err()
        .to_string()
}

/// Every due time the schedule hands out when each fire is answered the
/// moment it is due.
fn prompt_fires(mut schedule: Schedule) -> Vec<SystemTime> {
    let mut dues = vec![schedule.due()];
    while let Some(next) = schedule.after_fire(dues[dues.len() - 1]) {
        assert!(dues.len() < 100, "runaway schedule");
        dues.push(next.due());
        schedule = next;
    }
    dues
}

fn offsets(dues: &[SystemTime]) -> Vec<u64> {
    dues.iter()
        .map(|d| d.duration_since(now()).unwrap().as_secs())
        .collect()
}

#[test]
fn empty_due_time_fires_at_once_for_timers_and_reminders() {
    assert_eq!(timer("", "1s", "").due(), now());
    assert_eq!(reminder("", "1s", "").due(), now());
}

#[test]
fn empty_period_fires_once() {
    assert_eq!(offsets(&prompt_fires(timer("5s", "", ""))), [5]);
}

#[test]
fn zero_period_fires_once() {
    assert_eq!(offsets(&prompt_fires(timer("", "0s", ""))), [0]);
    assert_eq!(offsets(&prompt_fires(timer("", "0h0m0s0ms0μs", ""))), [0]);
    assert_eq!(offsets(&prompt_fires(reminder("", "PT0S", ""))), [0]);
}

#[test]
fn reminder_with_neither_due_time_nor_period_fires_once_at_once() {
    assert_eq!(offsets(&prompt_fires(reminder("", "", ""))), [0]);
}

#[test]
fn sdk_strings_with_greek_mu_are_accepted_everywhere() {
    let s = timer("0h0m1s0ms0μs", "0h0m2s0ms0μs", "0h0m5s0ms0μs");
    assert_eq!(offsets(&prompt_fires(s)), [1, 3, 5]);
    let r = reminder("0h0m1s0ms0μs", "0h0m2s0ms0μs", "0h0m5s0ms0μs");
    assert_eq!(offsets(&prompt_fires(r)), [1, 3, 5]);
}

#[test]
fn the_micro_sign_is_accepted_too() {
    let s = timer("1000000\u{b5}s", "2000000\u{b5}s", "5s");
    assert_eq!(offsets(&prompt_fires(s)), [1, 3, 5]);
}

#[test]
fn registered_strings_are_kept_as_given() {
    let s = reminder("0h0m1s0ms0μs", "R3/PT1S", "2030-01-01T00:00:00Z");
    assert_eq!(
        (s.due_time(), s.period(), s.ttl()),
        ("0h0m1s0ms0μs", "R3/PT1S", "2030-01-01T00:00:00Z")
    );
}

#[test]
fn iso_due_time_and_period() {
    assert_eq!(
        offsets(&prompt_fires(timer("PT10S", "PT1M", "PT3M"))),
        [10, 70, 130, 190]
    );
}

#[test]
fn rfc3339_due_time_and_ttl() {
    let s = timer("2025-01-31T10:00:30Z", "10s", "2025-01-31T10:01:00Z");
    assert_eq!(offsets(&prompt_fires(s)), [30, 40, 50, 60]);
}

#[test]
fn monthly_period_from_jan_31_keeps_the_month_end() {
    let s = timer("", "R4/P1M", "");
    let want = [
        "2025-01-31T10:00:00Z",
        "2025-02-28T10:00:00Z",
        "2025-03-31T10:00:00Z",
        "2025-04-30T10:00:00Z",
    ];
    assert_eq!(prompt_fires(s), want.map(instant));
}

#[test]
fn calendar_due_time_steps_from_now() {
    assert_eq!(timer("P1M", "", "").due(), instant("2025-02-28T10:00:00Z"));
    assert_eq!(
        reminder("P1D", "", "").due(),
        instant("2025-02-01T10:00:00Z")
    );
}

#[test]
fn reminders_accept_calendar_periods() {
    let s = reminder("", "P1Y", "");
    assert_eq!(
        s.after_fire(now()).map(|s| s.due()),
        Some(instant("2026-01-31T10:00:00Z"))
    );
}

#[test]
fn repetitions_stop_after_n_fires() {
    let s = timer("", "R3/PT1S", "");
    assert_eq!(s.fires_left(), Some(3));
    assert_eq!(offsets(&prompt_fires(s)), [0, 1, 2]);
}

#[test]
fn ttl_stops_before_repetitions_when_it_comes_first() {
    assert_eq!(
        offsets(&prompt_fires(timer("", "R10/PT1S", "2s"))),
        [0, 1, 2]
    );
}

#[test]
fn repetitions_stop_before_ttl_when_they_come_first() {
    assert_eq!(
        offsets(&prompt_fires(reminder("", "R2/PT1S", "1h"))),
        [0, 1]
    );
}

#[test]
fn ttl_counts_from_the_due_time() {
    let s = timer("10s", "1s", "2s");
    assert_eq!(s.expires(), Some(now() + secs(12)));
    assert_eq!(offsets(&prompt_fires(s)), [10, 11, 12]);
}

#[test]
fn late_fire_skips_missed_periods_and_restarts_the_cadence_from_now() {
    let s = timer("", "10s", "");
    let answered = now() + secs(35);
    let next = s.after_fire(answered).unwrap();
    assert_eq!(next.due(), answered + secs(10));
    let after = next.clone().after_fire(next.due()).unwrap();
    assert_eq!(after.due(), answered + secs(20));
}

#[test]
fn a_slow_reply_within_the_period_keeps_the_cadence() {
    let s = timer("", "10s", "");
    assert_eq!(
        s.after_fire(now() + secs(9)).unwrap().due(),
        now() + secs(10)
    );
}

#[test]
fn late_fire_respects_the_ttl() {
    let s = timer("", "10s", "30s");
    assert_eq!(s.after_fire(now() + secs(25)), None);
}

#[test]
fn late_fire_of_a_calendar_period_restarts_the_anchor() {
    let s = reminder("", "P1M", "");
    let answered = instant("2025-03-15T00:00:00Z");
    let next = s.after_fire(answered).unwrap();
    assert_eq!(next.due(), instant("2025-04-15T00:00:00Z"));
    assert_eq!(
        next.after_fire(answered).unwrap().due(),
        instant("2025-05-15T00:00:00Z")
    );
}

#[test]
fn late_fire_counts_one_repetition() {
    let s = timer("", "R2/PT1S", "");
    let next = s.after_fire(now() + secs(60)).unwrap();
    assert_eq!(next.fires_left(), Some(1));
    assert_eq!(next.after_fire(now() + secs(61)), None);
}

#[test]
fn a_schedule_survives_serialization_midway() {
    let s = reminder("1s", "R5/P1M", "P1Y")
        .after_fire(now() + secs(1))
        .unwrap();
    let stored = serde_json::to_string(&s).unwrap();
    let restored: Schedule = serde_json::from_str(&stored).unwrap();
    assert_eq!(restored, s);
    assert_eq!(restored.fires_left(), Some(4));
}

#[test]
fn timer_refusals_use_daprd_texts() {
    let cases = [
        (
            ["soon", "", ""],
            "error parsing timer due time: unsupported time/duration format: soon",
        ),
        (
            ["R2/PT1S", "", ""],
            "error parsing timer due time: repetitions are not allowed",
        ),
        (
            ["", "often", ""],
            "invalid timer period: parse error: unsupported duration format: often",
        ),
        (
            ["", "R0/PT1S", ""],
            "invalid timer period: has zero repetitions",
        ),
        (
            ["", "1s", "never"],
            "error parsing timer TTL: unsupported time/duration format: never",
        ),
        (
            ["", "1s", "R2/PT1S"],
            "error parsing timer TTL: repetitions are not allowed",
        ),
    ];
    for ([due_time, period, ttl], want) in cases {
        assert_eq!(timer_error(due_time, period, ttl), want);
    }
}

#[test]
fn reminder_refusals_use_scheduler_texts() {
    let cases = [
        (["soon", "", ""], "due time format not recognized"),
        (["R2/PT1S", "", ""], "repeats not supported for due time"),
        (["", "often", ""], "unsupported period format: often"),
        (
            ["", "R0/PT1S", ""],
            "invalid reminder period: has zero repetitions",
        ),
        (["", "1s", "never"], "ttl format not recognized"),
        (["", "1s", "R2/PT1S"], "ttl format not recognized"),
    ];
    for ([due_time, period, ttl], want) in cases {
        assert_eq!(reminder_error(due_time, period, ttl), want);
    }
}

#[test]
fn timer_already_expired_at_registration_is_refused() {
    let want = "timer has already expired: dueTime: 2025-01-31T09:00:00Z TTL: 2025-01-31T09:59:59Z";
    assert_eq!(
        timer_error("2025-01-31T09:00:00Z", "", "2025-01-31T09:59:59Z"),
        want
    );
    assert!(
        timer_error("10s", "1s", "2025-01-31T10:00:05Z").starts_with("timer has already expired")
    );
}

#[test]
fn timer_expiring_exactly_now_is_accepted() {
    assert_eq!(offsets(&prompt_fires(timer("", "1s", "0s"))), [0]);
}

#[test]
fn reminder_ttl_before_due_time_is_refused() {
    assert_eq!(
        reminder_error("10s", "1s", "2025-01-31T10:00:05Z"),
        "ttl must be greater than due time"
    );
    assert_eq!(
        reminder_error("", "1s", "2025-01-31T09:00:00Z"),
        "ttl must be greater than due time"
    );
}

#[test]
fn reminder_whose_due_time_and_ttl_are_both_past_still_fires_once() {
    let s = reminder("2025-01-31T09:00:00Z", "1s", "2025-01-31T09:30:00Z");
    assert_eq!(s.due(), instant("2025-01-31T09:00:00Z"));
    assert_eq!(s.after_fire(now()), None);
}

#[test]
fn negative_durations_are_refused() {
    assert_eq!(
        timer_error("-1s", "", ""),
        "error parsing timer due time: negative durations are not allowed: -1s"
    );
    assert_eq!(
        timer_error("", "-1s", ""),
        "invalid timer period: negative durations are not allowed: -1s"
    );
    assert_eq!(
        reminder_error("", "1s", "-1s"),
        "ttl: negative durations are not allowed: -1s"
    );
}

#[test]
fn over_long_strings_are_refused_without_echo() {
    let long = "1".repeat(MAX_LEN) + "s";
    assert_eq!(
        timer_error(&long, "", ""),
        format!("error parsing timer due time: longer than {MAX_LEN} bytes")
    );
    assert_eq!(
        reminder_error("", &long, ""),
        format!("period: longer than {MAX_LEN} bytes")
    );
}

#[test]
fn out_of_range_values_are_refused() {
    assert_eq!(
        timer_error("", "P357913942Y", ""),
        "invalid timer period: out of range: P357913942Y"
    );
    assert!(reminder_error("P20000Y", "", "").starts_with("due time: out of range"));
}

#[test]
fn a_period_past_the_calendar_ends_the_schedule() {
    let s = reminder("", "P5000Y", "");
    let next = s.after_fire(now()).unwrap();
    assert_eq!(next.due(), instant("7025-01-31T10:00:00Z"));
    assert_eq!(next.after_fire(instant("7025-01-31T10:00:00Z")), None);
}

proptest! {
    #[test]
    fn arbitrary_registrations_never_panic(
        due_time in "\\PC{0,30}",
        period in "(R[0-9]{1,3}/)?P?T?[0-9.YMWDHS]{0,12}|[-+0-9.hmsuµμn]{0,20}",
        ttl in "\\PC{0,30}",
        late in 0u64..1_000_000,
    ) {
        for schedule in [
            Schedule::timer(&due_time, &period, &ttl, now()),
            Schedule::reminder(&due_time, &period, &ttl, now()),
        ].into_iter().flatten() {
            let answered = schedule.due() + secs(late);
            let _ = schedule.after_fire(answered);
        }
    }
}
