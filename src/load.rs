//! A load generator for the front door: C concurrent callers invoking actor
//! methods through a gateway, with latencies in an HDR histogram. The demo
//! and the bench drive it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
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
    pub payload_bytes: usize,
    pub actor_type: String,
    /// Calls spread over this many actor ids.
    pub actor_ids: usize,
    /// Each call's gRPC deadline.
    pub call_timeout: Duration,
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

impl LoadReport {
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
}

/// Runs `spec` against the gateway behind `channel`.
pub async fn run(channel: Channel, spec: LoadSpec) -> LoadReport {
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let per_caller = spec
        .max_calls
        .map(|n| n.div_ceil(spec.callers.max(1) as u64));
    let callers: Vec<_> = (0..spec.callers.max(1))
        .map(|caller| {
            let client = DaprClient::new(channel.clone());
            tokio::spawn(caller_loop(
                client,
                spec.clone(),
                caller,
                stop_at,
                per_caller,
            ))
        })
        .collect();
    let mut report = LoadReport {
        elapsed: Duration::ZERO,
        ok: 0,
        errors: BTreeMap::new(),
        latency_us: new_histogram(),
        wrong_replies: 0,
    };
    for c in callers {
        if let Ok(part) = c.await {
            report.ok += part.ok;
            report.wrong_replies += part.wrong_replies;
            for (code, n) in part.errors {
                *report.errors.entry(code).or_default() += n;
            }
            let _ = report.latency_us.add(&part.latency_us);
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn caller_loop(
    mut client: DaprClient<Channel>,
    spec: LoadSpec,
    caller: usize,
    stop_at: Instant,
    max_calls: Option<u64>,
) -> LoadReport {
    let mut part = LoadReport {
        elapsed: Duration::ZERO,
        ok: 0,
        errors: BTreeMap::new(),
        latency_us: new_histogram(),
        wrong_replies: 0,
    };
    let mut n: u64 = 0;
    while Instant::now() < stop_at && max_calls.is_none_or(|m| n < m) {
        let data = payload(caller, n, spec.payload_bytes);
        let mut request = Request::new(InvokeActorRequest {
            actor_type: spec.actor_type.clone(),
            actor_id: format!("actor-{}", (caller + n as usize) % spec.actor_ids.max(1)),
            method: "echo".into(),
            data: data.clone(),
            metadata: Default::default(),
        });
        request.set_timeout(spec.call_timeout);
        let t0 = Instant::now();
        match client.invoke_actor(request).await {
            Ok(reply) => {
                let _ = part.latency_us.record(t0.elapsed().as_micros() as u64);
                part.ok += 1;
                if reply.into_inner().data != data {
                    part.wrong_replies += 1;
                }
            }
            Err(status) => *part.errors.entry(code_name(status.code())).or_default() += 1,
        }
        n += 1;
    }
    part
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
