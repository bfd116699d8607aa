//! Property tests of the actor runtime's turns: random sequences of callers
//! (some with deadlines), turns ending, time passing (idle deactivations),
//! and the app's stream going and coming back never let two turns of one
//! actor overlap, never deactivate an actor while a turn of it is out, and
//! never strand a caller without a deadline: each one gets its turn, or
//! hears that its type lost its host.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use callbackstream::config::ActorSettings;
use callbackstream::manager::Register;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::runtime::table::{ActorKey, Turn};
use callbackstream::runtime::{Runtime, RuntimeOptions};
use callbackstream::store::MemoryStore;
use callbackstream::{Error, ManagerActor, RegistrationConfig};
use common::{App, echo_reply};
use proptest::prelude::*;
use tokio::time::Instant;

const ACTORS: usize = 3;
const IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
enum Step {
    /// A caller asks for actor `n`'s turn, with a deadline in ms or none.
    Call {
        actor: usize,
        deadline_ms: Option<u64>,
    },
    /// The oldest turn held for actor `n` ends.
    End { actor: usize },
    /// The clock runs on (idle actors get deactivated).
    Advance { ms: u64 },
    /// The app's stream ends (D3), and a new one registers.
    Reconnect,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..ACTORS, prop::option::of(1u64..400)).prop_map(|(actor, deadline_ms)| Step::Call { actor, deadline_ms }),
        4 => (0..ACTORS).prop_map(|actor| Step::End { actor }),
        2 => (1u64..1500).prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::Reconnect),
    ]
}

/// What the test sees happen.
#[derive(Default)]
struct World {
    /// Turns out per actor, oldest first.
    held: HashMap<usize, Vec<Turn>>,
    violations: Vec<String>,
    /// Callers without a deadline still waiting, per actor.
    waiting_forever: HashMap<usize, usize>,
    unhosted_refusals: usize,
}

type Shared = Rc<RefCell<World>>;

fn key(actor: usize) -> ActorKey {
    ActorKey::new("P", actor.to_string())
}

/// The app: answers whatever comes, and checks no deactivation arrives for
/// an actor whose turn is out.
async fn app(manager: &Addr<ManagerActor>, world: Shared) -> actix_rt::task::JoinHandle<()> {
    let config = RegistrationConfig {
        settings: ActorSettings {
            idle_timeout: Some(IDLE),
            ..ActorSettings::default()
        },
        ..RegistrationConfig::hosting(["P"])
    };
    let mut app: App = manager.send(Register::new(config)).await.unwrap().into();
    actix_rt::spawn(async move {
        loop {
            let request = app.next_or_end().await;
            let Some(request) = request else { return };
            if let ResponseType::DeactivateRequest(r) = &request {
                let actor: usize = r.actor_id.parse().unwrap();
                if world
                    .borrow()
                    .held
                    .get(&actor)
                    .is_some_and(|h| !h.is_empty())
                {
                    world
                        .borrow_mut()
                        .violations
                        .push(format!("actor {actor} deactivated during a turn"));
                }
            }
            app.answer(echo_reply(&request, app.id)).await;
        }
    })
}

fn call(runtime: &Runtime, world: &Shared, actor: usize, deadline_ms: Option<u64>) {
    let (runtime, world) = (runtime.clone(), world.clone());
    if deadline_ms.is_none() {
        *world.borrow_mut().waiting_forever.entry(actor).or_default() += 1;
    }
    actix_rt::spawn(async move {
        let deadline = deadline_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
        let outcome = runtime.turn(key(actor), None, deadline).await;
        let mut w = world.borrow_mut();
        if deadline_ms.is_none() {
            *w.waiting_forever.get_mut(&actor).unwrap() -= 1;
        }
        match outcome {
            Ok(turn) => {
                let held = w.held.entry(actor).or_default();
                if !held.is_empty() {
                    w.violations
                        .push(format!("actor {actor}: two turns at once"));
                }
                w.held.entry(actor).or_default().push(turn);
            }
            Err(Error::DeadlineExceeded) if deadline_ms.is_some() => {}
            Err(Error::Disconnected { .. }) => w.unhosted_refusals += 1,
            Err(e) => w
                .violations
                .push(format!("actor {actor}: unexpected {e:?}")),
        }
    });
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn run_script(steps: Vec<Step>) -> World {
    let system = actix::System::new();
    system.block_on(async move {
        tokio::time::pause();
        let manager = common::start_manager();
        let options = RuntimeOptions {
            idle_scan_interval: Duration::from_millis(100),
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::start(&manager, Arc::new(MemoryStore::new()), options)
            .await
            .unwrap();
        let world: Shared = Rc::default();
        let mut app_task = app(&manager, world.clone()).await;
        for step in steps {
            match step {
                Step::Call { actor, deadline_ms } => call(&runtime, &world, actor, deadline_ms),
                Step::End { actor } => {
                    let ended = world
                        .borrow_mut()
                        .held
                        .get_mut(&actor)
                        .and_then(|h| (!h.is_empty()).then(|| h.remove(0)));
                    drop(ended);
                }
                Step::Advance { ms } => tokio::time::advance(Duration::from_millis(ms)).await,
                Step::Reconnect => {
                    app_task.abort();
                    let _ = (&mut app_task).await;
                    settle().await;
                    // The turns still out belong to the instances the old
                    // stream hosted, which went with it (D3).
                    let void: Vec<Turn> = world
                        .borrow_mut()
                        .held
                        .values_mut()
                        .flat_map(std::mem::take)
                        .collect();
                    drop(void);
                    app_task = app(&manager, world.clone()).await;
                }
            }
            settle().await;
        }
        // Liveness: end every turn as it comes; every caller without a
        // deadline must then have had its turn.
        for _ in 0..200 {
            let turns: Vec<Turn> = world
                .borrow_mut()
                .held
                .values_mut()
                .flat_map(std::mem::take)
                .collect();
            drop(turns);
            settle().await;
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        app_task.abort();
        let mut w = world.take();
        let stranded: usize = w.waiting_forever.values().sum();
        if stranded > 0 {
            w.violations.push(format!(
                "{stranded} caller(s) without a deadline never got a turn"
            ));
        }
        w
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn turns_never_overlap_and_no_caller_is_stranded(steps in prop::collection::vec(step(), 1..60)) {
        let world = run_script(steps);
        prop_assert!(world.violations.is_empty(), "{:?}", world.violations);
    }
}
