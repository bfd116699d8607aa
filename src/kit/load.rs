//! A load generator for the front door: C concurrent callers invoking actor
//! methods through a gateway, with latencies in an HDR histogram. The demo
//! and the bench drive it.
//!
//! The callers share a pool of channels, caller `i` on channel `i mod pool`:
//! the pool's size decides how many HTTP/2 connections the load arrives on,
//! which matters as much as the number of callers (one connection is
//! served by one task on each side). A [`Progress`] counter lets a watcher
//! see the calls as they complete, and [`LoadReport::summary`] is the
//! report in a form serde can print.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::proto::InvokeActorRequest;
use crate::proto::dapr_client::DaprClient;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub callers: usize,
    /// Stop after this long, or after `max_calls` in total, whichever first.
    pub duration: Duration,
    pub max_calls: Option<u64>,
    /// Request payload size; a payload is never shorter than the tag that
    /// makes it unique (`caller:call:`).
    pub payload_bytes: usize,
    /// Calls go round these actor types (one per echo app, so that each app
    /// gets its share: a type is routed to the newest app hosting it).
    pub actor_types: Vec<String>,
    /// Calls spread over this many actor ids.
    pub actor_ids: usize,
    /// Each call's gRPC deadline.
    pub call_timeout: Duration,
}

/// Calls completed so far, shared with whoever watches a run.
#[derive(Debug, Default)]
pub struct Progress {
    calls: AtomicU64,
}

impl Progress {
    /// Calls completed (successful or not) so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn add_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// What happened.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub elapsed: Duration,
    pub ok: u64,
    /// Failed calls by status code.
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful calls, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Replies whose data was not the data sent (must be 0 against an echo app).
    pub wrong_replies: u64,
}

/// A [`LoadReport`] as plain figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub elapsed_s: f64,
    pub calls: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub wrong_replies: u64,
    pub calls_per_sec: f64,
    pub latency_us: Percentiles,
}

/// Latency of the successful calls, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl LoadReport {
    fn empty() -> Self {
        LoadReport {
            elapsed: Duration::ZERO,
            ok: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
            wrong_replies: 0,
        }
    }

    pub fn calls(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    pub fn calls_per_sec(&self) -> f64 {
        self.calls() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A latency percentile (0..=100) in microseconds.
    pub fn percentile_us(&self, p: f64) -> u64 {
        self.latency_us.value_at_quantile(p / 100.0)
    }

    pub fn summary(&self) -> LoadSummary {
        LoadSummary {
            elapsed_s: self.elapsed.as_secs_f64(),
            calls: self.calls(),
            ok: self.ok,
            errors: self.errors.clone(),
            wrong_replies: self.wrong_replies,
            calls_per_sec: self.calls_per_sec(),
            latency_us: Percentiles {
                p50: self.percentile_us(50.0),
                p90: self.percentile_us(90.0),
                p99: self.percentile_us(99.0),
                max: self.latency_us.max(),
            },
        }
    }

    fn merge(&mut self, part: LoadReport) {
        self.ok += part.ok;
        self.wrong_replies += part.wrong_replies;
        for (code, n) in part.errors {
            *self.errors.entry(code).or_default() += n;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_us.add(&part.latency_us);
    }
}

/// Runs `spec` against the gateway behind `channel`, all callers on it.
pub async fn run(channel: Channel, spec: LoadSpec) -> LoadReport {
    run_on(&[channel], spec, &Arc::default()).await
}

/// Runs `spec` with the callers spread over `pool`, counting each finished
/// call in `progress`. An empty pool runs no call.
pub async fn run_on(pool: &[Channel], spec: LoadSpec, progress: &Arc<Progress>) -> LoadReport {
    let callers = if pool.is_empty() { 0 } else { spec.callers };
    let invokers = (0..callers)
        .map(|caller| GrpcInvoker {
            client: DaprClient::new(pool[caller % pool.len()].clone()),
            timeout: spec.call_timeout,
        })
        .collect();
    run_with(invokers, spec, progress).await
}

/// One caller's way of invoking an actor method: gRPC here, daprd's HTTP
/// API in `kit::http_load`.
pub trait Invoker: Send + 'static {
    /// Calls `method` on the actor with `data`; the reply's data, or the
    /// name of what went wrong (a status code).
    fn invoke(
        &mut self,
        actor_type: String,
        actor_id: String,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// Runs `spec` with one caller per invoker, counting each finished call in
/// `progress`.
pub async fn run_with<I: Invoker>(
    invokers: Vec<I>,
    spec: LoadSpec,
    progress: &Arc<Progress>,
) -> LoadReport {
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let per_caller = spec
        .max_calls
        .map(|n| n.div_ceil(invokers.len().max(1) as u64));
    // A JoinSet aborts the callers if this future is dropped (an interrupted bench).
    let mut tasks = JoinSet::new();
    for (caller, invoker) in invokers.into_iter().enumerate() {
        tasks.spawn(caller_loop(
            invoker,
            spec.clone(),
            caller,
            Limits {
                stop_at,
                max_calls: per_caller,
            },
            progress.clone(),
        ));
    }
    let mut report = LoadReport::empty();
    while let Some(part) = tasks.join_next().await {
        if let Ok(part) = part {
            report.merge(part);
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// When one caller stops.
struct Limits {
    stop_at: Instant,
    max_calls: Option<u64>,
}

struct GrpcInvoker {
    client: DaprClient<Channel>,
    timeout: Duration,
}

impl Invoker for GrpcInvoker {
    async fn invoke(
        &mut self,
        actor_type: String,
        actor_id: String,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let mut request = Request::new(InvokeActorRequest {
            actor_type,
            actor_id,
            method: "echo".into(),
            data,
            metadata: Default::default(),
        });
        request.set_timeout(self.timeout);
        match self.client.invoke_actor(request).await {
            Ok(reply) => Ok(reply.into_inner().data),
            Err(status) => Err(code_name(status.code())),
        }
    }
}

async fn caller_loop<I: Invoker>(
    mut invoker: I,
    spec: LoadSpec,
    caller: usize,
    limits: Limits,
    progress: Arc<Progress>,
) -> LoadReport {
    let mut part = LoadReport::empty();
    let mut n: u64 = 0;
    while Instant::now() < limits.stop_at && limits.max_calls.is_none_or(|m| n < m) {
        let data = payload(caller, n, spec.payload_bytes);
        let turn = caller + n as usize;
        let actor_type = pick(&spec.actor_types, turn);
        let actor_id = format!("actor-{}", turn % spec.actor_ids.max(1));
        let t0 = Instant::now();
        match invoker.invoke(actor_type, actor_id, data.clone()).await {
            Ok(reply) => {
                let _ = part.latency_us.record(t0.elapsed().as_micros() as u64);
                part.ok += 1;
                if reply != data {
                    part.wrong_replies += 1;
                }
            }
            Err(code) => {
                *part.errors.entry(code).or_default() += 1;
                // A gateway that is gone fails calls without waiting; yield
                // so such a loop cannot hold its worker until the deadline.
                tokio::task::yield_now().await;
            }
        }
        progress.add_call();
        n += 1;
    }
    part
}

/// The `turn`th of `types`, round robin; none given is an empty type, which
/// the gateway refuses, so the mistake shows as errors rather than a panic.
fn pick(types: &[String], turn: usize) -> String {
    types
        .get(turn % types.len().max(1))
        .cloned()
        .unwrap_or_default()
}

/// A payload unique to (caller, call) so a reply delivered to the wrong caller
/// is noticed.
fn payload(caller: usize, n: u64, len: usize) -> Vec<u8> {
    let mut data = format!("{caller}:{n}:").into_bytes();
    data.resize(len.max(data.len()), b'.');
    data
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}
