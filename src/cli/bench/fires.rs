//! Judging the fires of periodic jobs (the timers and reminders benches):
//! each job's fire k is due at `registered + due + k × period`
//! (`registered` taken just before its RPC, so lateness includes up to one
//! round trip), so each fire's lateness is its arrival minus that; a slot
//! with no fire by the end (less one period of slack) is a missed fire, two
//! fires in one slot a duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Arrival times of each job's fires, by job name.
pub(super) type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Notes that a fire of `name` arrived now.
pub(super) fn arrived(arrivals: &Arrivals, name: &str) {
    let now = Instant::now();
    let mut arrivals = arrivals.lock().unwrap();
    match arrivals.get_mut(name) {
        Some(seen) => seen.push(now),
        None => {
            arrivals.insert(name.to_owned(), vec![now]);
        }
    }
}

/// Fires so far, for the progress line.
pub(super) fn count(arrivals: &Arrivals) -> u64 {
    arrivals
        .lock()
        .unwrap()
        .values()
        .map(|v| v.len() as u64)
        .sum()
}

/// What the fires of a run were, against their schedule.
#[derive(Debug, Default, Serialize)]
pub(super) struct FireStats {
    pub fires: u64,
    pub expected_fires: u64,
    pub missed: u64,
    pub duplicates: u64,
    pub lateness_us: Option<Lateness>,
}

#[derive(Debug, Serialize)]
pub(super) struct Lateness {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl FireStats {
    pub(super) fn clean(&self) -> bool {
        self.missed == 0 && self.duplicates == 0
    }
}

/// Judges the `arrivals` of jobs first due `due` after they were
/// `registered`, then every `period`, over a run that ended at `end`.
pub(super) fn judge(
    registered: &HashMap<String, Instant>,
    arrivals: &HashMap<String, Vec<Instant>>,
    (due, period): (Duration, Duration),
    end: Instant,
) -> FireStats {
    let mut lateness = Histogram::<u64>::new(3).expect("valid precision");
    let (mut fires, mut expected, mut missed, mut duplicates) = (0, 0, 0, 0);
    let period_ns = period.as_nanos().max(1);
    for (name, at) in registered {
        // Slots that must have fired by the end, one period of slack kept.
        let first = *at + due;
        let slots = match end.checked_duration_since(first + period) {
            Some(span) => span.as_nanos() / period_ns + 1,
            None => 0,
        } as u64;
        expected += slots;
        let mut seen = vec![0u32; slots as usize];
        for arrival in arrivals.get(name).map(Vec::as_slice).unwrap_or_default() {
            fires += 1;
            // The nearest slot: a fire is late by far less than half a
            // period, or it is a missed one.
            let since = arrival.saturating_duration_since(first);
            let slot = ((since.as_nanos() + period_ns / 2) / period_ns) as usize;
            let late = since.saturating_sub(period * slot as u32);
            let _ = lateness.record(late.as_micros() as u64);
            if let Some(count) = seen.get_mut(slot) {
                *count += 1;
            }
        }
        missed += seen.iter().filter(|&&n| n == 0).count() as u64;
        duplicates += seen.iter().filter(|&&n| n > 1).count() as u64;
    }
    FireStats {
        fires,
        expected_fires: expected,
        missed,
        duplicates,
        lateness_us: (fires > 0).then(|| Lateness {
            p50: lateness.value_at_quantile(0.5),
            p99: lateness.value_at_quantile(0.99),
            max: lateness.max(),
        }),
    }
}

/// The text report's lateness line, if anything fired.
pub(super) fn print_lateness(stats: &FireStats) {
    if let Some(l) = &stats.lateness_us {
        println!(
            "fire lateness: p50 {} us, p99 {} us, max {} us",
            l.p50, l.p99, l.max
        );
    }
}

/// Whole milliseconds as a Go duration, the format the SDK sends.
pub(super) fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}
