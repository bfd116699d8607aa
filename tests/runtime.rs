//! The actor runtime's turns, activation and deactivation (SPEC T1, T3,
//! D1-D3) and actor state (ST1-ST3), on an in-process manager with a fake app
//! the test plays. Time is tokio's paused clock: a test waits by letting the
//! clock run to the next timer, never by sleeping.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use callbackstream::config::{ActorSettings, Reentrancy};
use callbackstream::manager::Register;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest,
    SubscribeActorEventsRequestFailedAlpha1, TransactionalActorStateOperation,
};
use callbackstream::runtime::jobs::{JobId, TimerSpec};
use callbackstream::runtime::table::ActorKey;
use callbackstream::runtime::{Runtime, RuntimeOptions};
use callbackstream::service::actor_state;
use callbackstream::service::front_door::REENTRANCY_ID;
use callbackstream::store::MemoryStore;
use callbackstream::transport::{InvokeRequest, invoke_outcome};
use callbackstream::{Error, ManagerActor, RegistrationConfig};
use common::{App, invoke_response, request_id, start_manager};
use tokio::time::Instant;
use tonic::Code;

const SCAN: Duration = Duration::from_millis(100);

async fn start_runtime(manager: &Addr<ManagerActor>) -> Runtime {
    tokio::time::pause();
    let options = RuntimeOptions {
        idle_scan_interval: SCAN,
        ..RuntimeOptions::default()
    };
    Runtime::start(manager, Arc::new(MemoryStore::new()), options)
        .await
        .unwrap()
}

/// An app hosting `types` with `settings` for all of them.
async fn app_with(manager: &Addr<ManagerActor>, types: &[&str], settings: ActorSettings) -> App {
    let config = RegistrationConfig {
        settings,
        ..RegistrationConfig::hosting(types.iter().copied())
    };
    manager.send(Register::new(config)).await.unwrap().into()
}

/// A call as the front door makes it: the invoke sent in the actor's turn,
/// the turn held until the reply. Spawned, so the test can play the app.
fn call(
    runtime: &Runtime,
    actor: (&str, &str),
    chain: Option<&str>,
) -> actix_rt::task::JoinHandle<Result<Vec<u8>, Error>> {
    let runtime = runtime.clone();
    let mut request = InvokeRequest {
        actor_type: actor.0.into(),
        actor_id: actor.1.into(),
        method: "m".into(),
        ..Default::default()
    };
    if let Some(chain) = chain {
        request.metadata.insert(REENTRANCY_ID.into(), chain.into());
    }
    actix_rt::spawn(async move {
        let (turn, pending) = runtime.invoke(request, None).await?;
        let reply = invoke_outcome(pending.await?)?;
        drop(turn);
        Ok(reply.data)
    })
}

fn actor_of(request: &ResponseType) -> (String, String) {
    match request {
        ResponseType::InvokeRequest(r) => (r.actor_type.clone(), r.actor_id.clone()),
        ResponseType::DeactivateRequest(r) => (r.actor_type.clone(), r.actor_id.clone()),
        other => panic!("unexpected request {other:?}"),
    }
}

/// Lets every task that can run, run (the clock does not move).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[actix_rt::test]
async fn t1_calls_to_one_actor_take_turns_in_order_and_other_actors_run_meanwhile() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;

    let first = call(&runtime, ("A", "1"), None);
    let first_request = app.next().await;
    let second = call(&runtime, ("A", "1"), None);
    settle().await;
    let third = call(&runtime, ("A", "1"), None);
    let other = call(&runtime, ("A", "2"), None);
    let other_request = app.next().await;
    assert_eq!(
        actor_of(&other_request),
        ("A".into(), "2".into()),
        "actor 2 runs while actor 1 is busy"
    );
    settle().await;
    app.assert_no_request(); // actor 1's later calls wait for its turn

    app.answer(invoke_response(request_id(&first_request), "one"))
        .await;
    assert_eq!(first.await.unwrap().unwrap(), b"one");
    let second_request = app.next().await;
    app.answer(invoke_response(request_id(&second_request), "two"))
        .await;
    assert_eq!(second.await.unwrap().unwrap(), b"two");
    let third_request = app.next().await;
    app.answer(invoke_response(request_id(&third_request), "three"))
        .await;
    assert_eq!(third.await.unwrap().unwrap(), b"three");
    app.answer(invoke_response(request_id(&other_request), "other"))
        .await;
    assert_eq!(other.await.unwrap().unwrap(), b"other");
}

#[actix_rt::test]
async fn t1_a_caller_whose_deadline_passes_while_waiting_leaves_the_queue() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;

    let first = call(&runtime, ("A", "1"), None);
    let first_request = app.next().await;
    let key = ActorKey::new("A", "1");
    let deadline = Instant::now() + Duration::from_millis(200);
    let waiting = runtime.turn(key.clone(), None, Some(deadline)).await;
    assert!(
        matches!(waiting, Err(Error::DeadlineExceeded)),
        "{waiting:?}"
    );

    let third = call(&runtime, ("A", "1"), None);
    app.answer(invoke_response(request_id(&first_request), "one"))
        .await;
    first.await.unwrap().unwrap();
    // The turn goes to the third caller: the one that left took nothing.
    let third_request = app.next().await;
    app.answer(invoke_response(request_id(&third_request), "three"))
        .await;
    assert_eq!(third.await.unwrap().unwrap(), b"three");
}

fn reentrant(max_stack_depth: Option<i32>) -> ActorSettings {
    ActorSettings {
        reentrancy: Some(Reentrancy {
            enabled: true,
            max_stack_depth,
        }),
        ..ActorSettings::default()
    }
}

fn chain_of(request: &ResponseType) -> Option<String> {
    match request {
        ResponseType::InvokeRequest(r) => r.metadata.get(REENTRANCY_ID).cloned(),
        _ => None,
    }
}

#[actix_rt::test]
async fn t3_a_call_of_the_chain_holding_the_turn_enters_and_depth_is_capped() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = app_with(&manager, &["R"], reentrant(Some(2))).await;

    let outer = call(&runtime, ("R", "1"), None);
    let outer_request = app.next().await;
    let chain = chain_of(&outer_request).expect("a call that starts a chain gets an id");
    assert!(uuid::Uuid::parse_str(&chain).is_ok(), "{chain}");

    // The app calls back into the same actor within the chain: it enters.
    let inner = call(&runtime, ("R", "1"), Some(&chain));
    let inner_request = app.next().await;
    assert_eq!(chain_of(&inner_request).as_deref(), Some(chain.as_str()));
    // Depth 3 is past the registration's max_stack_depth of 2.
    let too_deep = runtime
        .turn(ActorKey::new("R", "1"), Some(chain.clone()), None)
        .await;
    assert!(
        matches!(too_deep, Err(Error::MaxStackDepth)),
        "{too_deep:?}"
    );
    // Another chain waits for the turn.
    let stranger = call(&runtime, ("R", "1"), Some("another-chain"));
    settle().await;
    app.assert_no_request();

    app.answer(invoke_response(request_id(&inner_request), "in"))
        .await;
    inner.await.unwrap().unwrap();
    app.answer(invoke_response(request_id(&outer_request), "out"))
        .await;
    outer.await.unwrap().unwrap();
    let stranger_request = app.next().await;
    app.answer(invoke_response(request_id(&stranger_request), "s"))
        .await;
    stranger.await.unwrap().unwrap();
}

/// A timer's fire holds its actor's turn until the app answers; with
/// reentrancy on it starts a chain like a top-level call, so the callback's
/// own call back into the actor (with the fire's chain id) enters at once.
#[actix_rt::test]
async fn t3_a_fire_starts_a_chain_its_callback_can_reenter() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = app_with(&manager, &["R"], reentrant(None)).await;
    let spec = TimerSpec {
        due_time: "0s".into(),
        callback: "cb".into(),
        ..TimerSpec::default()
    };
    runtime
        .jobs()
        .register_timer(JobId::new("R", "1", "t"), spec)
        .await
        .unwrap();
    let fire = app.next().await;
    let ResponseType::TimerRequest(timer) = &fire else {
        panic!("expected a timer fire, got {fire:?}");
    };
    let chain = timer
        .metadata
        .get(REENTRANCY_ID)
        .expect("the fire's chain id")
        .clone();
    assert!(uuid::Uuid::parse_str(&chain).is_ok(), "{chain}");

    let inner = call(&runtime, ("R", "1"), Some(&chain));
    let inner_request = app.next().await;
    assert_eq!(chain_of(&inner_request).as_deref(), Some(chain.as_str()));
    app.answer(invoke_response(request_id(&inner_request), "in"))
        .await;
    inner.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn t3_without_reentrancy_a_chain_id_waits_like_any_call() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;

    let outer = call(&runtime, ("A", "1"), None);
    let outer_request = app.next().await;
    assert_eq!(
        chain_of(&outer_request),
        None,
        "no chain ids without reentrancy"
    );
    let inner = call(&runtime, ("A", "1"), Some("chain"));
    settle().await;
    app.assert_no_request();
    app.answer(invoke_response(request_id(&outer_request), "out"))
        .await;
    outer.await.unwrap().unwrap();
    let inner_request = app.next().await;
    app.answer(invoke_response(request_id(&inner_request), "in"))
        .await;
    inner.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn d1_an_actor_is_active_from_its_first_turn_and_counted_per_type() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A", "B"]).await;
    assert!(runtime.active_counts().await.unwrap().is_empty());

    for actor in [("A", "1"), ("A", "2"), ("A", "1"), ("B", "9")] {
        let pending = call(&runtime, actor, None);
        let request = app.next().await;
        app.answer(invoke_response(request_id(&request), "ok"))
            .await;
        pending.await.unwrap().unwrap();
    }
    let counts = runtime.active_counts().await.unwrap();
    assert_eq!(counts.get("A"), Some(&2));
    assert_eq!(counts.get("B"), Some(&1));
    assert!(runtime.is_active(ActorKey::new("A", "2")).await.unwrap());
    assert!(!runtime.is_active(ActorKey::new("A", "3")).await.unwrap());
}

fn idle_after(timeout: Duration) -> ActorSettings {
    ActorSettings {
        idle_timeout: Some(timeout),
        ..ActorSettings::default()
    }
}

fn unknown_actor(id: &str) -> RequestType {
    RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
        id: id.into(),
        code: Code::Unknown as u32,
        message: "no instance".into(),
    })
}

#[actix_rt::test]
async fn d2_an_idle_actor_is_deactivated_within_one_scan_and_a_later_call_reactivates_it() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let idle = Duration::from_secs(1);
    let mut app = app_with(&manager, &["A"], idle_after(idle)).await;

    let pending = call(&runtime, ("A", "1"), None);
    let request = app.next().await;
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    pending.await.unwrap().unwrap();
    let idle_since = Instant::now();

    // The clock runs until the runtime sends something: the deactivation.
    let deactivate = app.next().await;
    let waited = idle_since.elapsed();
    assert!(
        matches!(deactivate, ResponseType::DeactivateRequest(_)),
        "{deactivate:?}"
    );
    assert_eq!(actor_of(&deactivate), ("A".into(), "1".into()));
    assert!(
        waited >= idle && waited <= idle + SCAN,
        "deactivated after {waited:?}"
    );

    // A call that arrives meanwhile waits for the deactivation, then
    // activates a fresh instance.
    let during = call(&runtime, ("A", "1"), None);
    settle().await;
    app.assert_no_request();
    // UNKNOWN: the app had no instance. Done all the same.
    app.answer(unknown_actor(request_id(&deactivate))).await;
    let fresh = app.next().await;
    assert!(matches!(fresh, ResponseType::InvokeRequest(_)));
    app.answer(invoke_response(request_id(&fresh), "again"))
        .await;
    assert_eq!(during.await.unwrap().unwrap(), b"again");
    assert_eq!(runtime.active_counts().await.unwrap().get("A"), Some(&1));
}

#[actix_rt::test]
async fn d2_a_busy_actor_is_not_deactivated() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = app_with(&manager, &["A"], idle_after(Duration::from_secs(1))).await;

    let pending = call(&runtime, ("A", "1"), None);
    let request = app.next().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    app.assert_no_request(); // its turn is still out: no deactivation
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    pending.await.unwrap().unwrap();
    assert_eq!(runtime.active_counts().await.unwrap().get("A"), Some(&1));
}

#[actix_rt::test]
async fn d3_when_the_last_host_of_a_type_goes_its_actors_are_dropped_without_deactivation() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;
    let pending = call(&runtime, ("A", "1"), None);
    let request = app.next().await;
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    pending.await.unwrap().unwrap();
    assert_eq!(runtime.active_counts().await.unwrap().get("A"), Some(&1));

    drop(app);
    common::within("the actors to be dropped", async {
        while !runtime.active_counts().await.unwrap().is_empty() {
            settle().await;
        }
    })
    .await;
}

fn operation(kind: &str, key: &str, value: &[u8]) -> TransactionalActorStateOperation {
    TransactionalActorStateOperation {
        operation_type: kind.into(),
        key: key.into(),
        value: Some(prost_types::Any {
            type_url: String::new(),
            value: value.to_vec(),
        }),
        metadata: Default::default(),
    }
}

fn transaction(ops: Vec<TransactionalActorStateOperation>) -> ExecuteActorStateTransactionRequest {
    ExecuteActorStateTransactionRequest {
        actor_type: "A".into(),
        actor_id: "1".into(),
        operations: ops,
    }
}

async fn read(runtime: &Runtime, key: &str) -> Vec<u8> {
    let request = GetActorStateRequest {
        actor_type: "A".into(),
        actor_id: "1".into(),
        key: key.into(),
    };
    actor_state::get(runtime, request)
        .await
        .unwrap()
        .into_inner()
        .data
}

#[actix_rt::test]
async fn st2_a_transaction_needs_the_actor_active_then_applies_all_or_nothing() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;

    let refused =
        actor_state::transact(&runtime, transaction(vec![operation("upsert", "k", b"1")]))
            .await
            .unwrap_err();
    assert_eq!(refused.code(), Code::Internal);
    assert_eq!(refused.message(), actor_state::ACTOR_INSTANCE_MISSING);
    assert_eq!(
        read(&runtime, "k").await,
        b"",
        "ST1: nothing stored reads empty"
    );

    let pending = call(&runtime, ("A", "1"), None);
    let request = app.next().await;
    // Inside the turn, as the SDK does it: state never waits for a turn (T2).
    actor_state::transact(
        &runtime,
        transaction(vec![
            operation("upsert", "k", b"1"),
            operation("upsert", "j", b"2"),
        ]),
    )
    .await
    .unwrap();
    let mixed = vec![
        operation("upsert", "k", b"changed"),
        operation("merge", "j", b"x"),
    ];
    let unsupported = actor_state::transact(&runtime, transaction(mixed))
        .await
        .unwrap_err();
    assert_eq!(unsupported.code(), Code::Unimplemented);
    assert_eq!(
        read(&runtime, "k").await,
        b"1",
        "nothing of a refused transaction applies"
    );
    actor_state::transact(&runtime, transaction(vec![operation("delete", "j", b"")]))
        .await
        .unwrap();
    assert_eq!(read(&runtime, "j").await, b"");
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    pending.await.unwrap().unwrap();
}

#[actix_rt::test]
async fn st3_a_key_with_a_ttl_reports_its_expiry_then_reads_absent() {
    let manager = start_manager();
    let runtime = start_runtime(&manager).await;
    let mut app = App::register(&manager, &["A"]).await;
    let pending = call(&runtime, ("A", "1"), None);
    let request = app.next().await;
    let mut op = operation("upsert", "k", b"v");
    op.metadata.insert("ttlInSeconds".into(), "2".into());
    actor_state::transact(&runtime, transaction(vec![op]))
        .await
        .unwrap();
    app.answer(invoke_response(request_id(&request), "ok"))
        .await;
    pending.await.unwrap().unwrap();

    let get = || GetActorStateRequest {
        actor_type: "A".into(),
        actor_id: "1".into(),
        key: "k".into(),
    };
    let live = actor_state::get(&runtime, get())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.data, b"v");
    assert!(
        live.metadata.contains_key("ttlExpireTime"),
        "{:?}",
        live.metadata
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let expired = actor_state::get(&runtime, get())
        .await
        .unwrap()
        .into_inner();
    assert!(expired.data.is_empty() && expired.metadata.is_empty());
}
