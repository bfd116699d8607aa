//! SPEC P2 against a real process: writers run ExecuteActorStateTransaction
//! on a `serve --data-dir` child, the child is SIGKILLed at a random moment,
//! restarted on the same directory, and every write it acknowledged must be
//! there, and no transaction half applied. Many rounds, each with its own
//! random kill point (the seed is printed, and `CRASH_SEED` replays it).
//!
//! Each writer owns one actor and writes transactions numbered 1, 2, 3...,
//! each setting the actor's [`KEYS`] keys to the transaction's number. After
//! a crash all keys must hold one number (else a transaction was torn), at
//! least the last acknowledged one (else an acknowledged write was lost),
//! and at most the last one sent (a transaction in flight at the kill may or
//! may not have been applied).

mod child;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest, InvokeActorRequest,
    TransactionalActorStateOperation,
};
use child::ChildGateway;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

const ACTOR_TYPE: &str = "Crash";
const WRITERS: usize = 16;
const KEYS: usize = 4;
const ROUNDS: usize = 30;
/// When in a round the kill comes: long enough for many group commits.
const KILL_AFTER_MS: std::ops::Range<u64> = 30..400;

/// One writer's progress across rounds.
#[derive(Default)]
struct Progress {
    /// The last transaction acknowledged OK.
    acked: AtomicU64,
    /// The last transaction sent.
    sent: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_acknowledged_state_survives_sigkill() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("CRASH_SEED={seed}");
    let mut random = XorShift(seed | 1);
    let data = TempDir::new().unwrap();
    let writers: Arc<Vec<Progress>> = Arc::new((0..WRITERS).map(|_| Progress::default()).collect());
    let mut acked_total = 0;
    let mut in_doubt = Tally::default();

    for round in 0..ROUNDS {
        let gateway = ChildGateway::start(data.path());
        let channel = connect(&gateway.url()).await;
        in_doubt.add(check_and_resume(&channel, &writers, round).await);
        let _app = AppHost::connect(channel.clone(), AppHostOptions::echo([ACTOR_TYPE]))
            .await
            .expect("app registers");
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(write(channel.clone(), w, writers.clone(), stop.clone())))
            .collect();
        let kill_after = Duration::from_millis(random.within(KILL_AFTER_MS));
        tokio::time::sleep(kill_after).await;
        gateway.kill();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        acked_total = writers
            .iter()
            .map(|w| w.acked.load(Ordering::Relaxed))
            .sum();
    }
    let gateway = ChildGateway::start(data.path());
    in_doubt.add(check_and_resume(&connect(&gateway.url()).await, &writers, ROUNDS).await);
    println!(
        "{acked_total} transactions acknowledged; at the kills {} were in flight, of which {} had been applied",
        in_doubt.in_flight, in_doubt.applied
    );
    assert!(
        acked_total >= (WRITERS * ROUNDS) as u64,
        "too few writes to mean anything: {acked_total}"
    );
}

/// Transactions in flight at a kill (sent, not acknowledged), and how many of
/// them were found applied: both show the kills land inside commits.
#[derive(Default)]
struct Tally {
    in_flight: u64,
    applied: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.in_flight += other.in_flight;
        self.applied += other.applied;
    }
}

/// Checks every writer's keys after a restart and sets its numbering to go
/// on from what is stored.
async fn check_and_resume(channel: &Channel, writers: &[Progress], round: usize) -> Tally {
    let mut tally = Tally::default();
    let mut client = DaprClient::new(channel.clone());
    for (w, progress) in writers.iter().enumerate() {
        let mut values = Vec::with_capacity(KEYS);
        for k in 0..KEYS {
            let request = GetActorStateRequest {
                actor_type: ACTOR_TYPE.into(),
                actor_id: actor_id(w),
                key: key(k),
            };
            let data = client
                .get_actor_state(request)
                .await
                .unwrap()
                .into_inner()
                .data;
            values.push(number(&data));
        }
        let stored = values[0];
        assert!(
            values.iter().all(|v| *v == stored),
            "round {round}, writer {w}: a transaction was half applied: {values:?}"
        );
        let acked = progress.acked.load(Ordering::Relaxed);
        let sent = progress.sent.load(Ordering::Relaxed);
        assert!(
            stored >= acked,
            "round {round}, writer {w}: transaction {acked} was acknowledged, but {stored} is stored"
        );
        assert!(
            stored <= sent,
            "round {round}, writer {w}: {stored} is stored, but only {sent} was sent"
        );
        if sent > acked {
            tally.in_flight += 1;
            tally.applied += u64::from(stored == sent);
        }
        progress.acked.store(stored, Ordering::Relaxed);
        progress.sent.store(stored, Ordering::Relaxed);
    }
    tally
}

/// Activates the writer's actor, then writes numbered transactions until
/// told to stop or the gateway is gone.
async fn write(channel: Channel, w: usize, writers: Arc<Vec<Progress>>, stop: Arc<AtomicBool>) {
    let mut client = DaprClient::new(channel);
    let progress = &writers[w];
    let activate = InvokeActorRequest {
        actor_type: ACTOR_TYPE.into(),
        actor_id: actor_id(w),
        method: "activate".into(),
        ..Default::default()
    };
    if client.invoke_actor(activate).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let n = progress.sent.load(Ordering::Relaxed) + 1;
        progress.sent.store(n, Ordering::Relaxed);
        let operations = (0..KEYS).map(|k| upsert(&key(k), n)).collect();
        let request = ExecuteActorStateTransactionRequest {
            actor_type: ACTOR_TYPE.into(),
            actor_id: actor_id(w),
            operations,
        };
        match client.execute_actor_state_transaction(request).await {
            Ok(_) => progress.acked.store(n, Ordering::Relaxed),
            Err(_) => return,
        }
    }
}

fn upsert(key: &str, n: u64) -> TransactionalActorStateOperation {
    TransactionalActorStateOperation {
        operation_type: "upsert".into(),
        key: key.into(),
        value: Some(prost_types::Any {
            type_url: String::new(),
            value: n.to_string().into_bytes(),
        }),
        metadata: Default::default(),
    }
}

/// A stored number; nothing stored is 0, the number before the first.
fn number(data: &[u8]) -> u64 {
    if data.is_empty() {
        return 0;
    }
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {data:?}"))
}

fn actor_id(w: usize) -> String {
    format!("writer-{w}")
}

fn key(k: usize) -> String {
    format!("key-{k}")
}

async fn connect(url: &str) -> Channel {
    let start = Instant::now();
    loop {
        match Endpoint::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => return channel,
            Err(e) if start.elapsed() > child::BOUND => panic!("cannot connect to {url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A small seeded generator: the kill points must be replayable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn within(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}
