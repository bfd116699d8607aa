//! Prometheus metrics: what the gateway counts, and the one place the
//! counting is switched on.
//!
//! The metrics are process-wide, as daprd's are: a process exports one
//! `/metrics`, and every gateway in it adds to the same series. They are off
//! until [`enable`] is called (by `serve` unless `--no-metrics`), and every
//! recording site goes through [`get`], so a library user or a test that
//! never enables them pays one relaxed load per site and nothing else.
//!
//! Names follow daprd's where daprd has one (`dapr_runtime_actor_*`); the rest
//! are `callbackstream_*`. Counters get their `_total` suffix and histograms
//! their `_seconds` unit from the encoder (OpenMetrics text).
//!
//! The hot path (one call through a stream) touches only handles resolved at
//! start: [`CallTimer`] holds its histogram slot by index, and the pending
//! gauge is one atomic. Per-actor-type series are looked up by label, which
//! costs a lock and a hash, so they are recorded only on events that are rare
//! next to calls (activation, deactivation, a call waiting for its turn, a
//! timer or reminder registered or fired).
//!
//! Actor types come from the network, so the number of per-type series is
//! capped ([`MAX_TYPE_LABELS`]): types first seen past the cap are counted
//! under [`OTHER_TYPES`], and a scrape stays bounded however many types apps
//! register over the process's life.

pub mod endpoint;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

/// Distinct actor types that get series of their own.
pub const MAX_TYPE_LABELS: usize = 1_000;

/// The label value that stands for every actor type past [`MAX_TYPE_LABELS`].
pub const OTHER_TYPES: &str = "(other)";

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Switches recording on for this process (idempotent) and returns the
/// metrics, for the endpoint to encode.
pub fn enable() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The metrics, if recording is on.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// The kinds of callback that go down an app stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values, as they appear in a scrape
pub enum CallKind {
    invoke,
    reminder,
    timer,
    deactivate,
}

/// How a call down a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CallOutcome {
    /// The app answered (whatever it answered but `request_failed`).
    ok,
    /// The app answered with `request_failed`.
    failed,
    /// The caller gave up first (its deadline passed or it went away).
    abandoned,
    /// The stream ended before the answer.
    disconnected,
    /// The connection refused it (too many pending, too large).
    refused,
}

const KINDS: [CallKind; 4] = [
    CallKind::invoke,
    CallKind::reminder,
    CallKind::timer,
    CallKind::deactivate,
];
const OUTCOMES: [CallOutcome; 5] = [
    CallOutcome::ok,
    CallOutcome::failed,
    CallOutcome::abandoned,
    CallOutcome::disconnected,
    CallOutcome::refused,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    kind: CallKind,
    outcome: CallOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TypeLabels {
    actor_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FiredLabels {
    actor_type: String,
    success: bool,
}

/// Timers or reminders, for the series both have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Timer,
    Reminder,
}

/// Every series the gateway records, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    streams_live: Gauge,
    streams_registered: Counter,
    /// `calls[kind][outcome]`, resolved once so a call never looks up a label.
    calls: Vec<Histogram>,
    pending_requests: Gauge,
    outbox_waits: Counter,
    actors_active: Family<TypeLabels, Gauge>,
    actors_deactivated: Family<TypeLabels, Counter>,
    pending_actor_calls: Family<TypeLabels, Gauge>,
    timers: Family<TypeLabels, Gauge>,
    reminders: Family<TypeLabels, Gauge>,
    timers_fired: Family<FiredLabels, Counter>,
    reminders_fired: Family<FiredLabels, Counter>,
    timer_lateness: Histogram,
    reminder_lateness: Histogram,
    state_transactions: Histogram,
    state_transaction_errors: Counter,
    /// The actor types that have series of their own (at most
    /// [`MAX_TYPE_LABELS`]).
    named_types: Mutex<HashSet<String>>,
}

/// Latency buckets from 50 µs to ~26 s, doubling: a call through a stream
/// takes tens of µs on a quiet machine, and a slow app takes seconds.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(50e-6, 2.0, 20)
}

impl Metrics {
    fn new() -> Metrics {
        let calls_family = Family::<CallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        let calls = KINDS
            .iter()
            .flat_map(|&kind| OUTCOMES.iter().map(move |&outcome| (kind, outcome)))
            .map(|(kind, outcome)| calls_family.get_or_create_owned(&CallLabels { kind, outcome }))
            .collect();
        let histogram = || Histogram::new(latency_buckets());
        let m = Metrics {
            registry: Registry::default(),
            streams_live: Gauge::default(),
            streams_registered: Counter::default(),
            calls,
            pending_requests: Gauge::default(),
            outbox_waits: Counter::default(),
            actors_active: Family::default(),
            actors_deactivated: Family::default(),
            pending_actor_calls: Family::default(),
            timers: Family::default(),
            reminders: Family::default(),
            timers_fired: Family::default(),
            reminders_fired: Family::default(),
            timer_lateness: histogram(),
            reminder_lateness: histogram(),
            state_transactions: histogram(),
            state_transaction_errors: Counter::default(),
            named_types: Mutex::new(HashSet::new()),
        };
        m.register(calls_family)
    }

    /// Registers every series under its public name. Takes `self` by value:
    /// the registry holds clones of the handles (they share their values).
    fn register(mut self, calls: Family<CallLabels, Histogram>) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "callbackstream_app_streams",
            "App streams registered and open now",
            self.streams_live.clone(),
        );
        r.register(
            "callbackstream_app_streams_registered",
            "App streams registered since start",
            self.streams_registered.clone(),
        );
        r.register_with_unit(
            "callbackstream_calls_duration",
            "Calls down app streams by kind and outcome: count and time from dispatch to end",
            Unit::Seconds,
            calls,
        );
        r.register(
            "callbackstream_pending_requests",
            "Requests sent or queued down app streams and not yet answered",
            self.pending_requests.clone(),
        );
        r.register(
            "callbackstream_outbox_waits",
            "Requests that waited for room in a stream's outbox",
            self.outbox_waits.clone(),
        );
        r.register(
            "callbackstream_actors_active",
            "Active actors by type",
            self.actors_active.clone(),
        );
        r.register(
            "dapr_runtime_actor_deactivated",
            "Actors deactivated, by type",
            self.actors_deactivated.clone(),
        );
        r.register(
            "dapr_runtime_actor_pending_actor_calls",
            "Calls waiting for their actor's turn, by type",
            self.pending_actor_calls.clone(),
        );
        r.register(
            "dapr_runtime_actor_timers",
            "Timers registered now, by type",
            self.timers.clone(),
        );
        r.register(
            "dapr_runtime_actor_reminders",
            "Reminders registered now, by type",
            self.reminders.clone(),
        );
        r.register(
            "dapr_runtime_actor_timers_fired",
            "Timer fires, by type and whether the app answered without failure",
            self.timers_fired.clone(),
        );
        r.register(
            "dapr_runtime_actor_reminders_fired",
            "Reminder fires, by type and whether the app answered without failure",
            self.reminders_fired.clone(),
        );
        r.register_with_unit(
            "callbackstream_timer_fire_lateness",
            "How long after its due time a timer fire went out",
            Unit::Seconds,
            self.timer_lateness.clone(),
        );
        r.register_with_unit(
            "callbackstream_reminder_fire_lateness",
            "How long after its due time a reminder fire went out",
            Unit::Seconds,
            self.reminder_lateness.clone(),
        );
        r.register_with_unit(
            "callbackstream_actor_state_transactions_duration",
            "Actor state transactions committed: count and time to commit",
            Unit::Seconds,
            self.state_transactions.clone(),
        );
        r.register(
            "callbackstream_actor_state_transaction_errors",
            "Actor state transactions refused or failed",
            self.state_transaction_errors.clone(),
        );
        self
    }

    /// The scrape: every series in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// The scrape in Prometheus' classic text format (version 0.0.4), for
    /// scrapers that do not ask for OpenMetrics (curl, promtool). The two
    /// differ in what matters here only in that a classic counter's HELP
    /// and TYPE name its sample, `_total` included, and in the `# UNIT` and
    /// `# EOF` lines, which it does not have.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: HashSet<&str> = open
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open.len() + 8 * counters.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let named = ["# HELP ", "# TYPE "]
                .iter()
                .find_map(|tag| Some((*tag, line.strip_prefix(tag)?)));
            match named {
                Some((tag, rest)) => {
                    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                    let total = if counters.contains(name) {
                        "_total"
                    } else {
                        ""
                    };
                    out.push_str(&format!("{tag}{name}{total} {tail}\n"));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub fn stream_registered(&self) {
        self.streams_live.inc();
        self.streams_registered.inc();
    }

    pub fn stream_closed(&self) {
        self.streams_live.dec();
    }

    pub fn outbox_wait(&self) {
        self.outbox_waits.inc();
    }

    pub fn actor_activated(&self, actor_type: &str) {
        self.actors_active
            .get_or_create(&self.type_labels(actor_type))
            .inc();
    }

    pub fn actor_deactivated(&self, actor_type: &str) {
        let labels = self.type_labels(actor_type);
        self.actors_active.get_or_create(&labels).dec();
        self.actors_deactivated.get_or_create(&labels).inc();
    }

    /// A call waits for its actor's turn while the guard lives.
    pub fn turn_waiter(&self, actor_type: &str) -> Waiting {
        let gauge = self
            .pending_actor_calls
            .get_or_create_owned(&self.type_labels(actor_type));
        gauge.inc();
        Waiting(gauge)
    }

    /// A timer or reminder was added (`+1`) or removed (`-1`).
    pub fn jobs_registered(&self, kind: JobKind, actor_type: &str, change: i64) {
        let family = match kind {
            JobKind::Timer => &self.timers,
            JobKind::Reminder => &self.reminders,
        };
        family
            .get_or_create(&self.type_labels(actor_type))
            .inc_by(change);
    }

    /// A fire went out `late` seconds after its due time.
    pub fn job_sent(&self, kind: JobKind, late: f64) {
        match kind {
            JobKind::Timer => self.timer_lateness.observe(late),
            JobKind::Reminder => self.reminder_lateness.observe(late),
        }
    }

    /// The app's answer to a fire (`success`: it answered without failure).
    pub fn job_fired(&self, kind: JobKind, actor_type: &str, success: bool) {
        let family = match kind {
            JobKind::Timer => &self.timers_fired,
            JobKind::Reminder => &self.reminders_fired,
        };
        let labels = FiredLabels {
            actor_type: self.type_labels(actor_type).actor_type,
            success,
        };
        family.get_or_create(&labels).inc();
    }

    /// A state transaction ended: committed after `seconds`, or not.
    pub fn state_transaction(&self, committed: Option<f64>) {
        match committed {
            Some(seconds) => self.state_transactions.observe(seconds),
            None => {
                self.state_transaction_errors.inc();
            }
        }
    }

    /// The label for `actor_type`: its own name while fewer than
    /// [`MAX_TYPE_LABELS`] types have one, [`OTHER_TYPES`] after.
    fn type_labels(&self, actor_type: &str) -> TypeLabels {
        let mut named = self.named_types.lock().unwrap_or_else(|e| e.into_inner());
        let name = if named.contains(actor_type) {
            actor_type
        } else if named.len() < MAX_TYPE_LABELS {
            named.insert(actor_type.to_owned());
            actor_type
        } else {
            OTHER_TYPES
        };
        TypeLabels {
            actor_type: name.to_owned(),
        }
    }
}

/// Counts one call waiting for its actor's turn until dropped, however the
/// wait ends (granted, given up, or its actor removed).
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One call down a stream, from dispatch to its end: counts it as pending
/// while it lives, and records its kind, outcome and time when finished.
///
/// The pending gauge is decremented on drop, so a call the connection drops
/// without finishing (its actor stopped) cannot leave it high.
pub struct CallTimer {
    metrics: &'static Metrics,
    kind: CallKind,
    started: Instant,
}

impl CallTimer {
    /// `None` when metrics are off: the caller then keeps nothing.
    pub fn start(kind: CallKind) -> Option<CallTimer> {
        let metrics = get()?;
        metrics.pending_requests.inc();
        Some(CallTimer {
            metrics,
            kind,
            started: Instant::now(),
        })
    }

    pub fn finish(self, outcome: CallOutcome) {
        let slot = self.kind as usize * OUTCOMES.len() + outcome as usize;
        self.metrics.calls[slot].observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        self.metrics.pending_requests.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_slots_line_up_with_their_labels() {
        for (k, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, k);
        }
        for (o, outcome) in OUTCOMES.iter().enumerate() {
            assert_eq!(*outcome as usize, o);
        }
    }

    #[test]
    fn types_past_the_cap_share_one_series() {
        let m = Metrics::new();
        for n in 0..MAX_TYPE_LABELS + 5 {
            m.actor_activated(&format!("T{n}"));
        }
        m.actor_activated("T0");
        let scrape = m.encode();
        let series = scrape
            .lines()
            .filter(|l| l.starts_with("callbackstream_actors_active{"))
            .count();
        assert_eq!(series, MAX_TYPE_LABELS + 1, "named types plus one (other)");
        assert!(scrape.contains("callbackstream_actors_active{actor_type=\"(other)\"} 5"));
        assert!(scrape.contains("callbackstream_actors_active{actor_type=\"T0\"} 2"));
    }

    #[test]
    fn the_classic_format_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.stream_registered();
        let classic = m.encode_classic();
        assert!(classic.contains("# TYPE callbackstream_app_streams_registered_total counter\n"));
        assert!(classic.contains("# HELP callbackstream_app_streams_registered_total App"));
        assert!(classic.contains("\ncallbackstream_app_streams_registered_total 1\n"));
        assert!(classic.contains("# TYPE callbackstream_app_streams gauge\n"));
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"));
    }
}
