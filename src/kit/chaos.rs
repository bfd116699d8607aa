//! The chaos workload: app streams that come and go badly while callers keep
//! calling, and a tally of what every call ended with. The chaos test
//! (tests/chaos.rs) runs it for seconds, `callbackstream soak` for minutes.
//!
//! Each of `apps` slots runs app sessions back to back: connect an echo app,
//! serve for a random while, then end in one of three ways, chosen at random:
//! - close: half-close the stream and wait for the gateway to end it;
//! - abort: drop the stream abruptly, as a crashing app does (RST_STREAM);
//! - stall: stop answering (the stream stays open and requests keep
//!   arriving), then after a while close or abort.
//!
//! Meanwhile callers invoke without pause: gRPC callers through the front
//! door (`InvokeActor` with a `grpc-timeout`), and library callers through
//! the typed [`Transport`] (invoke, reminder, timer, deactivate), most with a
//! deadline and some with none, which then rely on the gateway failing their
//! request when its stream ends (SPEC R5). Every call's payload (or, for
//! calls without one, its actor id) is unique, so a reply that reaches the
//! wrong caller is counted. A call that has not ended within its deadline
//! plus a margin is counted as hung and given up on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix::Addr;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};

use crate::error::Error;
use crate::kit::apphost::{self, AppHost, AppHostOptions};
use crate::manager::ManagerActor;
use crate::proto::InvokeActorRequest;
use crate::proto::dapr_client::DaprClient;
use crate::service::status::to_status;
use crate::transport::{
    DeactivateRequest, InvokeRequest, ReminderRequest, TimerRequest, Transport,
};

/// The type every app hosts; each slot also hosts one of its own.
pub const SHARED_TYPE: &str = "Chaos";

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosSpec {
    /// App slots, each running one app session after another.
    pub apps: usize,
    /// Callers through the front door (gRPC `InvokeActor`).
    pub grpc_callers: usize,
    /// Callers through the library's typed transport (needs the manager).
    pub library_callers: usize,
    /// Callers stop starting calls after this long.
    pub duration: Duration,
    /// Each call's deadline (`grpc-timeout`, or the transport's deadline).
    pub call_timeout: Duration,
    /// How far past its deadline a call may end before it counts as hung.
    pub hang_margin: Duration,
    /// How long an app session serves before it ends (uniform in the range).
    pub serve_for: (Duration, Duration),
    /// How long a stalled app stays stalled before it goes.
    pub stall_for: (Duration, Duration),
    /// Pause between a session's end and the slot's next connect.
    pub reconnect_after: (Duration, Duration),
    /// Extra payload bytes per call, 0 up to this many, at random.
    pub max_padding: usize,
    /// Out of 100 library calls, how many carry no deadline at all.
    pub no_deadline_percent: u64,
    pub seed: u64,
}

impl ChaosSpec {
    /// A workload sized for 2 cores, running for `duration`.
    pub fn new(duration: Duration) -> Self {
        ChaosSpec {
            apps: 4,
            grpc_callers: 8,
            library_callers: 4,
            duration,
            call_timeout: Duration::from_millis(500),
            hang_margin: Duration::from_secs(5),
            serve_for: (Duration::from_millis(200), Duration::from_millis(2500)),
            stall_for: (Duration::from_millis(100), Duration::from_millis(1500)),
            reconnect_after: (Duration::ZERO, Duration::from_millis(300)),
            max_padding: 512,
            no_deadline_percent: 10,
            seed: 0x5eed_cafe,
        }
    }

    /// How long a call without deadline may take: it waits for its app to
    /// answer or to go, and an app goes at the latest when its stall ends.
    fn no_deadline_bound(&self) -> Duration {
        self.serve_for.1 + self.stall_for.1 + self.hang_margin
    }
}

/// Where the gateway is: its gRPC address and, for library callers, its
/// manager (the gateway must then live in this process).
#[derive(Clone)]
pub struct ChaosTarget {
    pub url: String,
    pub manager: Option<Addr<ManagerActor>>,
}

/// Live counts, readable while the workload runs.
#[derive(Debug, Default)]
pub struct ChaosCounters {
    calls: AtomicU64,
    ok: AtomicU64,
    unavailable: AtomicU64,
    deadline_exceeded: AtomicU64,
    client_timeouts: AtomicU64,
    hung: AtomicU64,
    wrong: AtomicU64,
    other: Mutex<BTreeMap<String, u64>>,
    sessions: AtomicU64,
    closes: AtomicU64,
    aborts: AtomicU64,
    stalls: AtomicU64,
    close_hangs: AtomicU64,
    connect_failures: AtomicU64,
    no_deadline_calls: AtomicU64,
}

/// The outcome classes a call is counted under.
enum Outcome {
    Ok,
    /// OK, but with another call's answer.
    Wrong,
    Unavailable,
    DeadlineExceeded,
    /// tonic's client gave up on its own timer before the gateway's
    /// DEADLINE_EXCEEDED arrived (the gateway answers a little before the
    /// deadline; on a loaded machine that answer can still lose the race).
    ClientTimeout,
    Hung,
    Other(String),
}

impl ChaosCounters {
    fn count(&self, outcome: Outcome) {
        let add = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        add(&self.calls);
        match outcome {
            Outcome::Ok => add(&self.ok),
            Outcome::Wrong => add(&self.wrong),
            Outcome::Unavailable => add(&self.unavailable),
            Outcome::DeadlineExceeded => add(&self.deadline_exceeded),
            Outcome::ClientTimeout => add(&self.client_timeouts),
            Outcome::Hung => add(&self.hung),
            Outcome::Other(code) => {
                let mut other = self.other.lock().unwrap_or_else(|p| p.into_inner());
                *other.entry(code).or_default() += 1;
            }
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> ChaosReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ChaosReport {
            calls: get(&self.calls),
            ok: get(&self.ok),
            unavailable: get(&self.unavailable),
            deadline_exceeded: get(&self.deadline_exceeded),
            client_timeouts: get(&self.client_timeouts),
            hung: get(&self.hung),
            wrong: get(&self.wrong),
            other: self.other.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            sessions: get(&self.sessions),
            closes: get(&self.closes),
            aborts: get(&self.aborts),
            stalls: get(&self.stalls),
            close_hangs: get(&self.close_hangs),
            connect_failures: get(&self.connect_failures),
            no_deadline_calls: get(&self.no_deadline_calls),
        }
    }
}

/// What happened, as plain figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosReport {
    /// Calls that ended (or were given up on as hung).
    pub calls: u64,
    pub ok: u64,
    pub unavailable: u64,
    pub deadline_exceeded: u64,
    /// gRPC calls that tonic's client ended on its own timer (CANCELLED
    /// "Timeout expired"): the deadline passed, the gateway's answer was late.
    pub client_timeouts: u64,
    /// Calls not ended within their deadline plus the margin: must be 0.
    pub hung: u64,
    /// Calls answered with another call's reply: must be 0.
    pub wrong: u64,
    /// Any other status, by code name: none is expected.
    pub other: BTreeMap<String, u64>,
    /// App sessions started, and how they ended.
    pub sessions: u64,
    pub closes: u64,
    pub aborts: u64,
    pub stalls: u64,
    /// Clean closes the gateway did not end within the margin: must be 0.
    pub close_hangs: u64,
    /// App connects the gateway refused or did not answer: must be 0.
    pub connect_failures: u64,
    /// Library calls made without a deadline.
    pub no_deadline_calls: u64,
}

impl ChaosReport {
    /// Calls that ended with anything but OK.
    pub fn errors(&self) -> u64 {
        self.calls - self.ok
    }

    /// Everything that breaks an invariant, in words; empty when all held.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut must_be_zero = |n: u64, what: &str| {
            if n != 0 {
                out.push(format!("{n} {what}"));
            }
        };
        must_be_zero(self.hung, "hung call(s)");
        must_be_zero(self.wrong, "wrong reply(ies)");
        must_be_zero(self.close_hangs, "clean close(s) the gateway never ended");
        must_be_zero(self.connect_failures, "refused app connect(s)");
        must_be_zero(
            self.other.values().sum(),
            &format!("call(s) with an unexpected status {:?}", self.other),
        );
        if self.ok == 0 {
            out.push("no call succeeded".into());
        }
        out
    }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "calls {}: OK {}, UNAVAILABLE {}, DEADLINE_EXCEEDED {}, client timer {}, other {:?}; \
             hung {}, wrong {}; app sessions {} (closed {}, aborted {}, stalled {}), \
             close hangs {}, connect failures {}, calls without deadline {}",
            self.calls,
            self.ok,
            self.unavailable,
            self.deadline_exceeded,
            self.client_timeouts,
            self.other,
            self.hung,
            self.wrong,
            self.sessions,
            self.closes,
            self.aborts,
            self.stalls,
            self.close_hangs,
            self.connect_failures,
            self.no_deadline_calls,
        )
    }
}

/// Runs `spec` against `target` until its duration is over and every call
/// and app session has ended, counting into `counters`; the final counts.
pub async fn run(
    target: ChaosTarget,
    spec: ChaosSpec,
    counters: Arc<ChaosCounters>,
) -> Result<ChaosReport, tonic::transport::Error> {
    let stop_at = Instant::now() + spec.duration;
    let endpoint = Endpoint::from_shared(target.url.clone())?;
    let mut seeds = Rng::new(spec.seed);
    let mut tasks = JoinSet::new();
    for slot in 0..spec.apps {
        let slot = AppSlot {
            index: slot,
            endpoint: endpoint.clone(),
            spec: spec.clone(),
            rng: Rng::new(seeds.next_u64()),
            counters: counters.clone(),
            stop_at,
        };
        tasks.spawn(slot.run());
    }
    // Callers share a few HTTP/2 connections, as a real client pool would.
    let mut pool = Vec::new();
    for _ in 0..spec.grpc_callers.clamp(1, 4) {
        pool.push(endpoint.connect().await?);
    }
    for caller in 0..spec.grpc_callers {
        let grpc = GrpcCaller {
            index: caller,
            client: DaprClient::new(pool[caller % pool.len()].clone()),
            spec: spec.clone(),
            rng: Rng::new(seeds.next_u64()),
            counters: counters.clone(),
            stop_at,
        };
        tasks.spawn(grpc.run());
    }
    if let Some(manager) = &target.manager {
        for caller in 0..spec.library_callers {
            let library = LibraryCaller {
                index: caller,
                transport: Transport::new(manager.clone()),
                spec: spec.clone(),
                rng: Rng::new(seeds.next_u64()),
                counters: counters.clone(),
                stop_at,
            };
            tasks.spawn(library.run());
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(counters.snapshot())
}

/// The actor types a call may go to: the shared one (newest app) or a slot's.
fn pick_type(rng: &mut Rng, apps: usize) -> String {
    if apps == 0 || rng.chance(50) {
        SHARED_TYPE.into()
    } else {
        slot_type(rng.below(apps as u64) as usize)
    }
}

fn slot_type(slot: usize) -> String {
    format!("{SHARED_TYPE}{slot}")
}

/// A tag no other call carries, padded with up to `max_padding` bytes.
fn unique_payload(rng: &mut Rng, who: &str, n: u64, max_padding: usize) -> Vec<u8> {
    let mut data = format!("{who}:{n}:{:016x}|", rng.next_u64()).into_bytes();
    let padding = rng.below(max_padding as u64 + 1) as usize;
    data.resize(data.len() + padding, b'.');
    data
}

/// One app slot: sessions back to back until the run is over.
struct AppSlot {
    index: usize,
    endpoint: Endpoint,
    spec: ChaosSpec,
    rng: Rng,
    counters: Arc<ChaosCounters>,
    stop_at: Instant,
}

impl AppSlot {
    async fn run(mut self) {
        while Instant::now() < self.stop_at {
            self.session().await;
            let pause = self
                .rng
                .between(self.spec.reconnect_after.0, self.spec.reconnect_after.1);
            sleep_until_or(pause, self.stop_at).await;
        }
    }

    async fn session(&mut self) {
        let stalled = Arc::new(AtomicBool::new(false));
        let Some(app) = self.connect(stalled.clone()).await else {
            self.counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.counters.sessions.fetch_add(1, Ordering::Relaxed);
        let serve = self
            .rng
            .between(self.spec.serve_for.0, self.spec.serve_for.1);
        if !sleep_until_or(serve, self.stop_at).await {
            // The run is over: leave cleanly.
            self.close(app).await;
            return;
        }
        match self.rng.below(3) {
            0 => self.close(app).await,
            1 => self.abort(app),
            _ => {
                stalled.store(true, Ordering::Relaxed);
                self.counters.stalls.fetch_add(1, Ordering::Relaxed);
                let stall = self
                    .rng
                    .between(self.spec.stall_for.0, self.spec.stall_for.1);
                tokio::time::sleep(stall).await;
                if self.rng.chance(50) {
                    self.close(app).await;
                } else {
                    self.abort(app);
                }
            }
        }
    }

    /// An echo app for the shared type and this slot's own, which answers
    /// nothing once `stalled` is set.
    async fn connect(&self, stalled: Arc<AtomicBool>) -> Option<AppHost> {
        let options = AppHostOptions::echo([SHARED_TYPE.to_owned(), slot_type(self.index)])
            .with_handler(move |request| {
                if stalled.load(Ordering::Relaxed) {
                    None
                } else {
                    apphost::echo(request)
                }
            });
        let connecting = async {
            let channel = self.endpoint.connect().await.ok()?;
            AppHost::connect(channel, options).await.ok()
        };
        tokio::time::timeout(self.spec.hang_margin, connecting)
            .await
            .ok()
            .flatten()
    }

    async fn close(&self, app: AppHost) {
        self.counters.closes.fetch_add(1, Ordering::Relaxed);
        if tokio::time::timeout(self.spec.hang_margin, app.close())
            .await
            .is_err()
        {
            self.counters.close_hangs.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn abort(&self, app: AppHost) {
        self.counters.aborts.fetch_add(1, Ordering::Relaxed);
        app.abort();
    }
}

/// Sleeps for `d`, or until `stop_at` if that comes first; whether it slept
/// the whole `d`.
async fn sleep_until_or(d: Duration, stop_at: Instant) -> bool {
    let wake = Instant::now() + d;
    tokio::time::sleep_until(wake.min(stop_at)).await;
    wake <= stop_at
}

/// A caller through the front door.
struct GrpcCaller {
    index: usize,
    client: DaprClient<Channel>,
    spec: ChaosSpec,
    rng: Rng,
    counters: Arc<ChaosCounters>,
    stop_at: Instant,
}

impl GrpcCaller {
    async fn run(mut self) {
        let who = format!("g{}", self.index);
        let mut n = 0;
        while Instant::now() < self.stop_at {
            let data = unique_payload(&mut self.rng, &who, n, self.spec.max_padding);
            let mut request = Request::new(InvokeActorRequest {
                actor_type: pick_type(&mut self.rng, self.spec.apps),
                actor_id: format!("{who}-{}", n % 16),
                method: "echo".into(),
                data: data.clone(),
                metadata: Default::default(),
            });
            request.set_timeout(self.spec.call_timeout);
            let bound = self.spec.call_timeout + self.spec.hang_margin;
            let outcome = match tokio::time::timeout(bound, self.client.invoke_actor(request)).await
            {
                Err(_) => Outcome::Hung,
                Ok(Ok(reply)) if reply.get_ref().data == data => Outcome::Ok,
                Ok(Ok(_)) => Outcome::Wrong,
                Ok(Err(status)) => match status.code() {
                    Code::Unavailable => Outcome::Unavailable,
                    Code::DeadlineExceeded => Outcome::DeadlineExceeded,
                    Code::Cancelled if status.message() == "Timeout expired" => {
                        Outcome::ClientTimeout
                    }
                    code => Outcome::Other(format!("{code:?}")),
                },
            };
            self.counters.count(outcome);
            n += 1;
        }
    }
}

/// A caller through the library's typed transport.
struct LibraryCaller {
    index: usize,
    transport: Transport,
    spec: ChaosSpec,
    rng: Rng,
    counters: Arc<ChaosCounters>,
    stop_at: Instant,
}

impl LibraryCaller {
    async fn run(mut self) {
        let who = format!("l{}", self.index);
        let mut n = 0;
        while Instant::now() < self.stop_at {
            let tag = unique_payload(&mut self.rng, &who, n, self.spec.max_padding);
            let actor_type = pick_type(&mut self.rng, self.spec.apps);
            let (deadline, bound) = if self.rng.below(100) < self.spec.no_deadline_percent {
                self.counters
                    .no_deadline_calls
                    .fetch_add(1, Ordering::Relaxed);
                (None, self.spec.no_deadline_bound())
            } else {
                let timeout = self.spec.call_timeout;
                (
                    Some(Instant::now() + timeout),
                    timeout + self.spec.hang_margin,
                )
            };
            let kind = self.rng.below(4);
            let call = self.call(kind, actor_type, tag, deadline);
            let outcome = match tokio::time::timeout(bound, call).await {
                Err(_) => Outcome::Hung,
                Ok(outcome) => outcome,
            };
            self.counters.count(outcome);
            n += 1;
        }
    }

    /// One typed call of `kind` (invoke, reminder, timer, deactivate). The
    /// tag is the invoke's data, and every kind's actor id, so that an answer
    /// can be told apart from another call's.
    async fn call(
        &self,
        kind: u64,
        actor_type: String,
        tag: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Outcome {
        let actor_id = String::from_utf8_lossy(&tag).into_owned();
        let result = match kind {
            0 => {
                let request = InvokeRequest {
                    actor_type,
                    actor_id,
                    method: "echo".into(),
                    data: tag.clone(),
                    ..Default::default()
                };
                match self.transport.invoke(request, deadline).await {
                    Ok(reply) if reply.data == tag => Ok(()),
                    Ok(_) => return Outcome::Wrong,
                    Err(e) => Err(e),
                }
            }
            1 => {
                let request = ReminderRequest {
                    actor_type,
                    actor_id,
                    name: "chaos".into(),
                    ..Default::default()
                };
                self.transport.reminder(request, deadline).await.map(drop)
            }
            2 => {
                let request = TimerRequest {
                    actor_type,
                    actor_id,
                    name: "chaos".into(),
                    callback: "tick".into(),
                    ..Default::default()
                };
                self.transport.timer(request, deadline).await.map(drop)
            }
            _ => {
                let request = DeactivateRequest {
                    actor_type,
                    actor_id,
                    ..Default::default()
                };
                self.transport.deactivate(request, deadline).await
            }
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(Error::NoConnection | Error::Disconnected { .. }) => Outcome::Unavailable,
            Err(Error::DeadlineExceeded) => Outcome::DeadlineExceeded,
            // An echo app answers each request with its own kind: an answer of
            // another kind was meant for another call.
            Err(Error::Protocol(_)) => Outcome::Wrong,
            Err(e) => Outcome::Other(format!("{:?}", to_status(e).code())),
        }
    }
}

/// A small deterministic generator (splitmix64): the workload needs
/// reproducible variety, not cryptographic randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True `percent` times out of 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `lo..=hi`, to the millisecond.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let (lo_ms, hi_ms) = (lo.as_millis() as u64, hi.as_millis() as u64);
        if hi_ms <= lo_ms {
            return lo;
        }
        Duration::from_millis(lo_ms + self.below(hi_ms - lo_ms + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_stays_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        for _ in 0..1000 {
            assert!(a.below(10) < 10);
            let d = a.between(Duration::from_millis(5), Duration::from_millis(9));
            assert!((5..=9).contains(&(d.as_millis() as u64)));
        }
        assert_eq!(a.below(0), 0);
    }

    #[test]
    fn payloads_are_unique_per_call_and_padded() {
        let mut rng = Rng::new(1);
        let a = unique_payload(&mut rng, "g0", 1, 0);
        let b = unique_payload(&mut rng, "g0", 1, 0);
        assert_ne!(a, b);
        let padded = unique_payload(&mut rng, "g0", 2, 64);
        assert!(padded.len() <= "g0:2:0000000000000000|".len() + 64);
    }

    #[test]
    fn a_clean_report_has_no_violations_and_a_bad_one_names_them() {
        let clean = ChaosReport {
            calls: 3,
            ok: 2,
            unavailable: 1,
            ..Default::default()
        };
        assert!(clean.violations().is_empty(), "{:?}", clean.violations());
        let bad = ChaosReport {
            calls: 2,
            hung: 1,
            wrong: 1,
            ..Default::default()
        };
        let v = bad.violations();
        assert_eq!(v.len(), 3, "{v:?}");
    }
}
