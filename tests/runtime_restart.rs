//! Reminders and state ttl across a restart (SPEC RM1, RM5, ST3, P3), in
//! process: a "gateway" is a manager with a runtime over a store, and a
//! restart drops one (its runtime stops with it, as a crash would stop it,
//! mid-fire included) and starts another over the same store. The real
//! binary's restarts, on disk, are in `tests/restart.rs`.
//!
//! Time is tokio's paused clock, and both gateways read wall time from one
//! [`Clock`], so the time that passes while "down" passes for schedules
//! and expiries too. Nothing sleeps.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use actix::Addr;
use callbackstream::ManagerActor;
use callbackstream::proto::dapr_server::Dapr;
use callbackstream::proto::{
    GetActorReminderRequest, GetActorReminderResponse, RegisterActorReminderRequest,
};
use callbackstream::runtime::clock::Clock;
use callbackstream::runtime::purge::PURGE_INTERVAL;
use callbackstream::runtime::state::{Operation, PURGE_BATCH, TTL_EXPIRE_TIME};
use callbackstream::runtime::{Runtime, RuntimeOptions};
use callbackstream::service::DaprService;
use callbackstream::store::{
    Batch, KeyValue, MemoryStore, Store, StoreError, StoreFuture, namespace,
};
use common::{App, pass, settle, start_manager};
use futures::FutureExt;
use tokio::sync::Notify;
use tokio::time::advance;
use tonic::{Code, Request};

const T: &str = "T";

/// A gateway: its own manager, a runtime over the given store.
struct Gateway {
    manager: Addr<ManagerActor>,
    runtime: Runtime,
    service: DaprService,
}

impl Gateway {
    async fn start(store: &Arc<dyn Store>, clock: Clock) -> Gateway {
        let manager = start_manager();
        let runtime =
            Runtime::start_with_clock(&manager, store.clone(), RuntimeOptions::default(), clock)
                .await
                .expect("runtime starts");
        let service = DaprService::new(manager.clone(), "app").with_runtime(runtime.clone());
        Gateway {
            manager,
            runtime,
            service,
        }
    }

    async fn app(&self) -> App {
        App::register(&self.manager, &[T]).await
    }

    async fn reminder(&self, r: RegisterActorReminderRequest) -> Result<(), tonic::Status> {
        self.service
            .register_actor_reminder(Request::new(r))
            .await
            .map(|_| ())
    }

    async fn get(&self, name: &str) -> Result<GetActorReminderResponse, tonic::Status> {
        let r = GetActorReminderRequest {
            actor_type: T.into(),
            actor_id: "a".into(),
            name: name.into(),
        };
        self.service
            .get_actor_reminder(Request::new(r))
            .await
            .map(|r| r.into_inner())
    }

    /// Stops it as a crash would: nothing more fires or is written, and the
    /// runtime lets go of the store.
    async fn crash(self, store: &Arc<dyn Store>) {
        drop(self);
        settle().await;
        assert_eq!(
            Arc::strong_count(store),
            1,
            "the runtime still holds the store"
        );
    }
}

/// A fixed date, so wall time is the same in every run.
fn clock() -> Clock {
    tokio::time::pause();
    Clock::starting_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

fn reminder(name: &str, due: &str, period: &str, ttl: &str) -> RegisterActorReminderRequest {
    RegisterActorReminderRequest {
        actor_type: T.into(),
        actor_id: "a".into(),
        name: name.into(),
        due_time: due.into(),
        period: period.into(),
        ttl: ttl.into(),
        ..Default::default()
    }
}

/// Takes one fire of `name` and answers it.
async fn fires(app: &mut App, name: &str) {
    let fire = app.next_reminder().await;
    assert_eq!(fire.name, name);
    app.answer_reminder(&fire.id, false).await;
    settle().await;
}

#[actix_rt::test]
async fn p3_every_reminder_schedule_is_restored() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let _app = before.app().await;
    let mut r = reminder("a", "10s", "1m", "");
    r.data = b"rstate".to_vec();
    before.reminder(r).await.unwrap();
    before
        .reminder(reminder("b", "20s", "R2/PT5S", "1h"))
        .await
        .unwrap();
    let registered = (
        before.get("a").await.unwrap(),
        before.get("b").await.unwrap(),
    );
    before.crash(&store).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    assert_eq!(after.get("a").await.unwrap(), registered.0);
    assert_eq!(after.get("b").await.unwrap(), registered.1);
    // Each fires at its own stored due time, not at the restart.
    settle().await;
    app.assert_no_request();
    pass(Duration::from_secs(10)).await;
    fires(&mut app, "a").await;
    app.assert_no_request();
    pass(Duration::from_secs(10)).await;
    fires(&mut app, "b").await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn p3_rm5_a_reminder_due_while_down_fires_once_at_once() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let _app = before.app().await;
    before
        .reminder(reminder("r", "5s", "1s", ""))
        .await
        .unwrap();
    before.crash(&store).await;
    // Down for ten periods past its due time.
    pass(Duration::from_secs(15)).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    settle().await;
    fires(&mut app, "r").await;
    app.assert_no_request(); // once, not once per missed period
    pass(Duration::from_millis(999)).await;
    app.assert_no_request();
    pass(Duration::from_millis(1)).await;
    fires(&mut app, "r").await;
}

#[actix_rt::test]
async fn rm5_a_fire_not_answered_before_a_crash_fires_again() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let mut old_app = before.app().await;
    before
        .reminder(reminder("r", "1s", "1h", ""))
        .await
        .unwrap();
    pass(Duration::from_secs(1)).await;
    let unanswered = old_app.next_reminder().await;
    assert_eq!(unanswered.name, "r");
    before.crash(&store).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    settle().await;
    fires(&mut app, "r").await;
    // Answered now: the next is an hour on, and no earlier.
    pass(Duration::from_secs(3599)).await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    fires(&mut app, "r").await;
}

#[actix_rt::test]
async fn rm5_an_answered_fire_does_not_fire_again_after_a_restart() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let mut old_app = before.app().await;
    before
        .reminder(reminder("r", "1s", "1h", ""))
        .await
        .unwrap();
    pass(Duration::from_secs(1)).await;
    fires(&mut old_app, "r").await;
    before.crash(&store).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    pass(Duration::from_secs(3599)).await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    fires(&mut app, "r").await;
}

#[actix_rt::test]
async fn rm1_repetitions_left_survive_a_restart() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let mut old_app = before.app().await;
    before
        .reminder(reminder("r", "1s", "R3/PT1S", ""))
        .await
        .unwrap();
    pass(Duration::from_secs(1)).await;
    fires(&mut old_app, "r").await;
    before.crash(&store).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    for _ in 0..2 {
        pass(Duration::from_secs(1)).await;
        fires(&mut app, "r").await;
    }
    // Three in all: none more, and it is gone from the store too.
    pass(Duration::from_secs(10)).await;
    app.assert_no_request();
    assert_eq!(after.get("r").await.unwrap_err().code(), Code::NotFound);
    after.crash(&store).await;
    let again = Gateway::start(&store, clock).await;
    let mut app = again.app().await;
    pass(Duration::from_secs(10)).await;
    app.assert_no_request();
}

#[actix_rt::test]
async fn rm1_ttl_survives_a_restart() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let mut old_app = before.app().await;
    // Fires at 1 s, 2 s, 3 s; the ttl (from the due time) ends at 3 s.
    before
        .reminder(reminder("r", "1s", "1s", "2s"))
        .await
        .unwrap();
    pass(Duration::from_secs(1)).await;
    fires(&mut old_app, "r").await;
    before.crash(&store).await;

    let after = Gateway::start(&store, clock).await;
    let mut app = after.app().await;
    for _ in 0..2 {
        pass(Duration::from_secs(1)).await;
        fires(&mut app, "r").await;
    }
    pass(Duration::from_secs(10)).await;
    app.assert_no_request();
    assert_eq!(after.get("r").await.unwrap_err().code(), Code::NotFound);
}

#[actix_rt::test]
async fn st3_an_expired_key_reads_absent_after_a_restart() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    let write = vec![
        Operation::upsert("short", b"1".to_vec()).with_ttl("10"),
        Operation::upsert("long", b"2".to_vec()).with_ttl("100"),
    ];
    before
        .runtime
        .state()
        .transact(T, "a", write)
        .await
        .unwrap();
    let expire = before.runtime.state().get(T, "a", "long").await.unwrap();
    before.crash(&store).await;
    advance(Duration::from_secs(11)).await;

    let after = Gateway::start(&store, clock).await;
    let state = after.runtime.state();
    let short = state.get(T, "a", "short").await.unwrap();
    assert!(
        short.data.is_empty() && short.metadata.is_empty(),
        "{short:?}"
    );
    let long = state.get(T, "a", "long").await.unwrap();
    assert_eq!(long.data, b"2");
    assert_eq!(
        long.metadata.get(TTL_EXPIRE_TIME),
        expire.metadata.get(TTL_EXPIRE_TIME)
    );
}

/// Keys of one namespace in the store, read behind the runtime's back.
async fn stored(store: &Arc<dyn Store>, space: u8) -> Vec<KeyValue> {
    store.scan(vec![space], None, usize::MAX).await.unwrap()
}

/// Enough past an instant for a sleep until it to have ended: tokio rounds
/// deadlines up to its next millisecond tick.
const TICK: Duration = Duration::from_millis(2);

#[actix_rt::test]
async fn st3_expired_keys_are_purged_from_the_store_without_a_read() {
    let (clock, store) = (clock(), memory());
    let gateway = Gateway::start(&store, clock).await;
    settle().await; // the purge's first round: nothing stored
    let state = gateway.runtime.state();
    let write = vec![
        Operation::upsert("gone", b"1".to_vec()).with_ttl("5"),
        Operation::upsert("kept", b"2".to_vec()),
    ];
    state.transact(T, "a", write).await.unwrap();
    assert_eq!(stored(&store, namespace::STATE).await.len(), 2);
    assert_eq!(stored(&store, namespace::STATE_EXPIRY).await.len(), 1);
    pass(Duration::from_millis(4999)).await;
    assert_eq!(stored(&store, namespace::STATE).await.len(), 2);
    // The write woke the purge for its expiry, at 5 s.
    pass(TICK).await;
    assert_eq!(stored(&store, namespace::STATE).await.len(), 1);
    assert!(stored(&store, namespace::STATE_EXPIRY).await.is_empty());
    assert_eq!(state.get(T, "a", "kept").await.unwrap().data, b"2");
}

#[actix_rt::test]
async fn st3_expired_keys_are_purged_after_a_restart_and_many_in_batches() {
    let (clock, store) = (clock(), memory());
    let before = Gateway::start(&store, clock).await;
    // More than a batch's worth, in one transaction.
    let many = PURGE_BATCH * 3 + 7;
    let write = (0..many)
        .map(|n| Operation::upsert(format!("k{n}"), b"v".to_vec()).with_ttl("30"))
        .collect();
    before
        .runtime
        .state()
        .transact(T, "a", write)
        .await
        .unwrap();
    before.crash(&store).await;

    // The new purge finds the expiry in the store, at its first round.
    let _after = Gateway::start(&store, clock).await;
    pass(Duration::from_secs(29)).await;
    assert_eq!(stored(&store, namespace::STATE).await.len(), many);
    pass(Duration::from_secs(1) + TICK).await;
    assert!(stored(&store, namespace::STATE).await.is_empty());
    assert!(stored(&store, namespace::STATE_EXPIRY).await.is_empty());
}

#[actix_rt::test]
async fn st3_an_earlier_expiry_wakes_the_purge_sooner() {
    let (clock, store) = (clock(), memory());
    let gateway = Gateway::start(&store, clock).await;
    let state = gateway.runtime.state();
    let late = vec![Operation::upsert("late", b"1".to_vec()).with_ttl("3600")];
    state.transact(T, "a", late).await.unwrap();
    pass(Duration::from_secs(5)).await; // asleep until the late expiry
    let early = vec![Operation::upsert("early", b"2".to_vec()).with_ttl("2")];
    state.transact(T, "a", early).await.unwrap();
    settle().await; // re-armed for the early one
    pass(Duration::from_secs(2) + TICK).await;
    let left = stored(&store, namespace::STATE).await;
    assert_eq!(left.len(), 1, "the early key is still stored");
}

#[actix_rt::test]
async fn st3_purge_rounds_are_at_least_an_interval_apart() {
    let (clock, store) = (clock(), memory());
    let gateway = Gateway::start(&store, clock).await;
    settle().await;
    let state = gateway.runtime.state();
    // Expiring 10 ms apart: the second waits for the next round.
    for (key, ttl) in [("a", "1"), ("b", "1")] {
        let write = vec![Operation::upsert(key, b"v".to_vec()).with_ttl(ttl)];
        state.transact(T, "a", write).await.unwrap();
        pass(Duration::from_millis(10)).await;
    }
    pass(Duration::from_millis(980) + TICK).await;
    assert_eq!(stored(&store, namespace::STATE).await.len(), 1);
    pass(Duration::from_millis(500)).await;
    assert_eq!(stored(&store, namespace::STATE).await.len(), 1);
    pass(PURGE_INTERVAL - Duration::from_millis(500) + TICK).await;
    assert!(stored(&store, namespace::STATE).await.is_empty());
}

/// A store whose commits wait to be let through, then succeed or fail.
#[derive(Default)]
struct GatedStore {
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    store: MemoryStore,
    open: Notify,
    fail: AtomicBool,
}

impl GatedStore {
    /// Lets the one commit waiting through, failing it or not.
    fn release(&self, fail: bool) {
        self.gate.fail.store(fail, Ordering::SeqCst);
        self.gate.open.notify_one();
    }
}

impl Store for GatedStore {
    fn commit(&self, batch: Batch) -> StoreFuture<()> {
        // Held back until the gate opens: what a slow disk looks like.
        let gate = self.gate.clone();
        async move {
            gate.open.notified().await;
            if gate.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("disk full".into()));
            }
            gate.store.commit(batch).await
        }
        .boxed()
    }

    fn get(&self, key: Vec<u8>) -> StoreFuture<Option<Vec<u8>>> {
        self.gate.store.get(key)
    }

    fn scan(
        &self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> StoreFuture<Vec<KeyValue>> {
        self.gate.store.scan(prefix, after, limit)
    }
}

#[actix_rt::test]
async fn rm1_a_reminder_is_scheduled_only_once_its_commit_is_durable() {
    let clock = clock();
    let gated = Arc::new(GatedStore::default());
    let store: Arc<dyn Store> = gated.clone();
    let gateway = Gateway::start(&store, clock).await;
    let mut app = gateway.app().await;
    let registering = gateway.reminder(reminder("r", "", "1s", ""));
    tokio::pin!(registering);
    // Due at once, but not durable yet: no fire, no answer.
    for _ in 0..3 {
        tokio::select! {
            biased;
            done = &mut registering => panic!("answered before its commit: {done:?}"),
            () = pass(Duration::from_secs(1)) => {}
        }
        app.assert_no_request();
    }
    gated.release(false);
    registering.await.unwrap();
    settle().await;
    let fire = app.next_reminder().await;
    assert_eq!(fire.name, "r");
}

#[actix_rt::test]
async fn rm1_a_failed_registration_commit_leaves_nothing_scheduled() {
    let clock = clock();
    let gated = Arc::new(GatedStore::default());
    let store: Arc<dyn Store> = gated.clone();
    let gateway = Gateway::start(&store, clock).await;
    let mut app = gateway.app().await;
    let registering = gateway.reminder(reminder("r", "", "1s", ""));
    tokio::pin!(registering);
    tokio::select! {
        biased;
        done = &mut registering => panic!("answered before its commit: {done:?}"),
        () = pass(Duration::from_secs(1)) => {}
    }
    gated.release(true);
    let status = registering.await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    pass(Duration::from_secs(10)).await;
    app.assert_no_request();
    assert_eq!(gateway.get("r").await.unwrap_err().code(), Code::NotFound);
}

#[actix_rt::test]
async fn rm1_a_failed_replacement_leaves_the_old_reminder_firing() {
    let clock = clock();
    let gated = Arc::new(GatedStore::default());
    let store: Arc<dyn Store> = gated.clone();
    let gateway = Gateway::start(&store, clock).await;
    let mut app = gateway.app().await;
    let first = gateway.reminder(reminder("r", "10s", "", ""));
    let release = async {
        settle().await;
        gated.release(false);
    };
    let (first, ()) = tokio::join!(first, release);
    first.unwrap();
    let replacing = gateway.reminder(reminder("r", "1s", "", ""));
    let release = async {
        settle().await;
        gated.release(true);
    };
    let (replaced, ()) = tokio::join!(replacing, release);
    assert!(replaced.is_err());
    assert_eq!(
        gateway.get("r").await.unwrap().due_time.as_deref(),
        Some("10s")
    );
    pass(Duration::from_secs(9)).await;
    app.assert_no_request();
    pass(Duration::from_secs(1)).await;
    fires(&mut app, "r").await;
}

#[actix_rt::test]
async fn the_runtime_lets_go_of_the_store_when_it_stops() {
    let (clock, store) = (clock(), memory());
    let gateway = Gateway::start(&store, clock).await;
    let _app = gateway.app().await;
    gateway
        .reminder(reminder("r", "1s", "1s", ""))
        .await
        .unwrap();
    let ttl = vec![Operation::upsert("k", b"1".to_vec()).with_ttl("60")];
    gateway.runtime.state().transact(T, "a", ttl).await.unwrap();
    // Reminders, their fires and the purge all hold the store; all stop.
    gateway.crash(&store).await;
}
