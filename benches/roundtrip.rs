//! The in-process round trip: caller -> ManagerActor -> ConnectionActor ->
//! outbox -> (echo app) -> Deliver -> caller, with no gRPC in between.
//!
//! Beside it, a baseline doing the same work with plain tokio channels and a
//! HashMap (one router task instead of actors), so the actors' overhead is a
//! ratio measured in the same run; and the actor path with 1, 100 and 10,000
//! registered connections, to show routing cost does not grow with them.
//! Everything runs on one actix system (a single-threaded tokio runtime), the
//! way actors are used inside an actix application.

use std::time::{Duration, Instant};

use actix::{Actor, Addr, System, SystemRunner};
use callbackstream::RegistrationConfig;
use callbackstream::kit::apphost::echo;
use callbackstream::manager::{Connection, ManagerActor, Register, Send};
use callbackstream::proto::SubscribeActorEventsRequestAlpha1;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::transport::InvokeRequest;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::future::join_all;
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};

const ECHO: &str = "Echo";
const CALLERS: [usize; 2] = [1, 64];

fn request() -> ResponseType {
    ResponseType::InvokeRequest(InvokeRequest {
        id: String::new(),
        actor_type: ECHO.into(),
        actor_id: "a-1".into(),
        method: "echo".into(),
        data: vec![7; 64],
        metadata: Default::default(),
    })
}

/// `iters` round trips spread over `callers` concurrent tasks; total time.
fn drive<F, Fut>(system: &SystemRunner, iters: u64, callers: usize, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()>,
{
    system.block_on(async move {
        let per_caller = iters.div_ceil(callers as u64);
        let start = Instant::now();
        let tasks = (0..callers).map(|_| {
            let call = call.clone();
            actix_rt::spawn(async move {
                for _ in 0..per_caller {
                    call().await;
                }
            })
        });
        join_all(tasks).await;
        // Normalise to `iters` calls: the last caller may have done a few more.
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_caller * callers as u64) as f64)
    })
}

// ---- the actors ------------------------------------------------------------

/// Plays the app: answers every request the connection writes, in place.
fn spawn_echo_app(connection: Connection) {
    let Connection {
        inbound,
        mut outbox,
        closer,
        ..
    } = connection;
    actix_rt::spawn(async move {
        let _keep_open = closer;
        while let Some(msg) = outbox.recv().await {
            let reply = msg.response_type.and_then(echo);
            let _ = inbound
                .deliver(SubscribeActorEventsRequestAlpha1 {
                    request_type: reply,
                })
                .await;
        }
    });
}

/// A manager with `connections` registered: the echo app first (the oldest),
/// then idle ones hosting other types, so typed routing must find it.
fn actor_setup(system: &SystemRunner, connections: usize) -> Addr<ManagerActor> {
    system.block_on(async {
        let manager = ManagerActor::default().start();
        let echo = manager
            .send(Register::new(RegistrationConfig::hosting([ECHO])))
            .await
            .expect("manager alive");
        spawn_echo_app(echo);
        for i in 1..connections {
            let idle = manager
                .send(Register::new(RegistrationConfig::hosting([format!(
                    "idle-{i}"
                )])))
                .await
                .expect("manager alive");
            // Held open for the whole run; never read, never written to.
            Box::leak(Box::new(idle));
        }
        manager
    })
}

async fn actor_call(manager: Addr<ManagerActor>) {
    let pending = manager
        .send(Send::typed(request()))
        .await
        .expect("manager alive")
        .expect("routed");
    let reply = pending.await.expect("echoed");
    assert!(matches!(reply, RequestType::InvokeResponse(_)));
}

// ---- the plain-channel baseline ----------------------------------------------

type PlainReply = oneshot::Sender<RequestType>;

/// The same work without actors (same map type, same id formatting): one
/// router task owns the id counter and the pending map, a bounded outbox carries requests to the echo task, and
/// replies come back on a channel to the router.
fn plain_setup(system: &SystemRunner) -> mpsc::Sender<(ResponseType, PlainReply)> {
    system.block_on(async {
        let (requests, mut request_rx) = mpsc::channel::<(ResponseType, PlainReply)>(1024);
        let (outbox, mut outbox_rx) = mpsc::channel::<ResponseType>(128);
        let (replies, mut reply_rx) = mpsc::channel::<RequestType>(1024);
        actix_rt::spawn(async move {
            let mut pending: FxHashMap<u64, PlainReply> = FxHashMap::default();
            let mut last = 0u64;
            loop {
                tokio::select! {
                    Some((mut request, tx)) = request_rx.recv() => {
                        last += 1;
                        if let ResponseType::InvokeRequest(r) = &mut request {
                            r.id = itoa::Buffer::new().format(last).to_owned();
                        }
                        pending.insert(last, tx);
                        let _ = outbox.send(request).await;
                    }
                    Some(reply) = reply_rx.recv() => {
                        if let RequestType::InvokeResponse(r) = &reply
                            && let Some(tx) = r.id.parse().ok().and_then(|id| pending.remove(&id))
                        {
                            let _ = tx.send(reply);
                        }
                    }
                    else => break,
                }
            }
        });
        actix_rt::spawn(async move {
            while let Some(request) = outbox_rx.recv().await {
                if let Some(reply) = echo(request) {
                    let _ = replies.send(reply).await;
                }
            }
        });
        requests
    })
}

async fn plain_call(requests: mpsc::Sender<(ResponseType, PlainReply)>) {
    let (tx, rx) = oneshot::channel();
    requests.send((request(), tx)).await.expect("router alive");
    let reply = rx.await.expect("echoed");
    assert!(matches!(reply, RequestType::InvokeResponse(_)));
}

// ---- the benchmarks ----------------------------------------------------------

fn roundtrip(c: &mut Criterion) {
    let system = System::new();
    let manager = actor_setup(&system, 1);
    let plain = plain_setup(&system);
    let mut group = c.benchmark_group("roundtrip");
    for callers in CALLERS {
        group.bench_function(BenchmarkId::new("actors", callers), |b| {
            b.iter_custom(|iters| {
                let manager = manager.clone();
                drive(&system, iters, callers, move || actor_call(manager.clone()))
            })
        });
        group.bench_function(BenchmarkId::new("plain-channels", callers), |b| {
            b.iter_custom(|iters| {
                let plain = plain.clone();
                drive(&system, iters, callers, move || plain_call(plain.clone()))
            })
        });
    }
    group.finish();
}

fn routing_scale(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    for connections in [1, 100, 10_000] {
        let system = System::new();
        let manager = actor_setup(&system, connections);
        group.bench_function(BenchmarkId::new("connections", connections), |b| {
            b.iter_custom(|iters| {
                let manager = manager.clone();
                drive(&system, iters, 1, move || actor_call(manager.clone()))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = roundtrip, routing_scale
}
criterion_main!(benches);
