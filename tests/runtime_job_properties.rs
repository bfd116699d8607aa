//! Property tests of the runtime's timers and reminders (SPEC T1, D2, D3,
//! TM1-TM3, RM1, RM5): random scripts of timer and reminder
//! (un)registrations, invokes, time passing (idle deactivations) and the
//! app's stream going and coming back, driven through the `Dapr` service
//! with the app played by hand, on a paused clock. After every step and at
//! the end:
//!
//! 1. two turns of one actor never overlap: no invoke, fire or deactivate
//!    for an actor reaches the app while it has not yet answered another
//!    one for that actor (the app holds each request until the next
//!    `settle`, so an overlap would show);
//! 2. no timer fires after it was unregistered, after its actor's
//!    `deactivate_request` was answered (D2), or after the stream that
//!    hosted its type ended (D3), unless registered again since;
//! 3. no reminder is lost: each one registered and not unregistered has
//!    fired by the end (it survives deactivations and reconnects, RM1,
//!    RM5), and none fires after its unregister.
//!
//! Each registration carries its own generation in `data`, which every
//! fire echoes, so a fire names the registration it belongs to.
//!
//! # Found by it
//!
//! A timer that fell due while its actor's `deactivate_request` was out with
//! the app fired once more after the app had answered it: the fire waited
//! for the actor's turn behind the deactivation, the answer removed the
//! actor and its timers (D2), and the waiting fire was then granted the
//! fresh instance's turn and sent. A fire now checks, with the turn in
//! hand, that its job is still the one registered
//! (`JobsActor::spawn_fire`). `d2_timer_due_while_its_actor_deactivates_...`
//! below is the shortest script.

mod common;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use callbackstream::config::ActorSettings;
use callbackstream::manager::Register;
use callbackstream::proto::dapr_server::Dapr;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    InvokeActorRequest, RegisterActorReminderRequest, RegisterActorTimerRequest,
    UnregisterActorReminderRequest, UnregisterActorTimerRequest,
};
use callbackstream::runtime::{Runtime, RuntimeOptions, data};
use callbackstream::service::DaprService;
use callbackstream::store::MemoryStore;
use callbackstream::{ManagerActor, RegistrationConfig};
use common::{App, echo_reply};
use proptest::prelude::*;
use tokio::time::Instant;
use tonic::Request;

const P: &str = "P";
const ACTORS: usize = 3;
const NAMES: usize = 2;
const IDLE: Duration = Duration::from_millis(700);
const SCAN: Duration = Duration::from_millis(100);
/// Time passes in slices this long, the held requests answered between
/// them: the app answers within a slice.
const SLICE: u64 = 50;
/// Time run at the end, answering everything, before the reminders are
/// checked: far past any due time (≤ 500 ms), a scan and a retry (1 s).
const WIND_DOWN: u64 = 3000;

#[derive(Debug, Clone)]
enum Step {
    Timer {
        actor: usize,
        name: usize,
        due_ms: u64,
        period_ms: Option<u64>,
    },
    Untimer {
        actor: usize,
        name: usize,
    },
    Reminder {
        actor: usize,
        name: usize,
        due_ms: u64,
        period_ms: Option<u64>,
    },
    Unremind {
        actor: usize,
        name: usize,
    },
    /// An InvokeActor call, answered by the app.
    Invoke {
        actor: usize,
    },
    /// The clock runs on (fires, idle deactivations).
    Advance {
        ms: u64,
    },
    /// The app's stream ends (D3), the clock runs this long with no host
    /// (reminders falling due meanwhile wait, RM5), and a new one registers.
    Reconnect {
        gap_ms: u64,
    },
}

fn schedule() -> impl Strategy<Value = (u64, Option<u64>)> {
    (0u64..500, prop::option::of(100u64..1000))
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..ACTORS, 0..NAMES, schedule()).prop_map(|(actor, name, (due_ms, period_ms))| {
            Step::Timer { actor, name, due_ms, period_ms }
        }),
        2 => (0..ACTORS, 0..NAMES).prop_map(|(actor, name)| Step::Untimer { actor, name }),
        3 => (0..ACTORS, 0..NAMES, schedule()).prop_map(|(actor, name, (due_ms, period_ms))| {
            Step::Reminder { actor, name, due_ms, period_ms }
        }),
        2 => (0..ACTORS, 0..NAMES).prop_map(|(actor, name)| Step::Unremind { actor, name }),
        3 => (0..ACTORS).prop_map(|actor| Step::Invoke { actor }),
        4 => (1u64..1500).prop_map(|ms| Step::Advance { ms }),
        1 => (0u64..800).prop_map(|gap_ms| Step::Reconnect { gap_ms }),
    ]
}

/// A live reminder registration.
struct LiveReminder {
    generation: u64,
    fired: bool,
}

/// What the test expects, and what it saw go wrong.
#[derive(Default)]
struct Model {
    next_generation: u64,
    /// The generation each fire's `data` names.
    generations: HashMap<Vec<u8>, u64>,
    /// The current timer registration per (actor, name).
    timers: HashMap<(usize, usize), u64>,
    /// Timer generations that must not fire any more, and why.
    dead_timers: HashMap<u64, String>,
    reminders: HashMap<(usize, usize), LiveReminder>,
    /// Reminder generations unregistered, and when.
    dead_reminders: HashMap<u64, String>,
    violations: Vec<String>,
}

impl Model {
    /// A new generation, and the `data` that names it.
    fn generation(&mut self) -> (u64, Vec<u8>) {
        self.next_generation += 1;
        let g = self.next_generation;
        let bytes = format!("g{g}").into_bytes();
        let any = data::encode(&bytes).expect("not empty");
        self.generations.insert(any.value, g);
        (g, bytes)
    }

    fn kill_timer(&mut self, key: (usize, usize), why: String) {
        if let Some(g) = self.timers.remove(&key) {
            self.dead_timers.insert(g, why);
        }
    }

    fn of_any(&self, any: &Option<prost_types::Any>) -> Option<u64> {
        self.generations.get(&any.as_ref()?.value).copied()
    }
}

struct Rig {
    manager: Addr<ManagerActor>,
    service: Rc<DaprService>,
    app: App,
    /// Requests the app has not answered yet.
    held: Vec<ResponseType>,
    model: Model,
    start: Instant,
}

fn actor_of(request: &ResponseType) -> usize {
    let id = match request {
        ResponseType::InvokeRequest(r) => &r.actor_id,
        ResponseType::TimerRequest(r) => &r.actor_id,
        ResponseType::ReminderRequest(r) => &r.actor_id,
        ResponseType::DeactivateRequest(r) => &r.actor_id,
        ResponseType::InitialResponse(_) => panic!("initial_response is not a request"),
    };
    id.parse().expect("numeric actor id")
}

async fn register_app(manager: &Addr<ManagerActor>) -> App {
    let config = RegistrationConfig {
        settings: ActorSettings {
            idle_timeout: Some(IDLE),
            ..ActorSettings::default()
        },
        ..RegistrationConfig::hosting([P])
    };
    manager.send(Register::new(config)).await.unwrap().into()
}

impl Rig {
    fn now(&self) -> String {
        format!("{}ms", (Instant::now() - self.start).as_millis())
    }

    /// Takes what reached the app, checking each arrival.
    fn collect(&mut self) {
        while let Some(request) = self.app.try_next() {
            let actor = actor_of(&request);
            let now = self.now();
            trace(|| format!("{now}: arrives {request:?}"));
            let m = &mut self.model;
            if let Some(other) = self.held.iter().find(|h| actor_of(h) == actor) {
                m.violations.push(format!(
                    "{now}: actor {actor}: {} arrived while {} was unanswered (two turns)",
                    kind(&request),
                    kind(other)
                ));
            }
            match &request {
                ResponseType::TimerRequest(r) => match m.of_any(&r.data) {
                    Some(g) => {
                        // Property 2 (it found the bug in the module doc).
                        if let Some(why) = m.dead_timers.get(&g) {
                            m.violations.push(format!(
                                "{now}: timer {actor}/{} (gen {g}) fired after {why}",
                                r.name
                            ));
                        }
                    }
                    None => m
                        .violations
                        .push(format!("{now}: timer fire of no registration")),
                },
                ResponseType::ReminderRequest(r) => match m.of_any(&r.data) {
                    Some(g) => {
                        if let Some(why) = m.dead_reminders.get(&g) {
                            m.violations.push(format!(
                                "{now}: reminder {actor}/{} (gen {g}) fired after {why}",
                                r.name
                            ));
                        }
                        let name: usize = r.name[1..].parse().unwrap();
                        if let Some(live) = m.reminders.get_mut(&(actor, name))
                            && live.generation == g
                        {
                            live.fired = true;
                        }
                    }
                    None => m
                        .violations
                        .push(format!("{now}: reminder fire of no registration")),
                },
                _ => {}
            }
            self.held.push(request);
        }
    }

    /// Lets everything run without moving the clock: the requests held
    /// since the last settle are answered first (a deactivate's answer ends
    /// its actor's timers, D2), then what arrives meanwhile (or arrived
    /// during the step) is held until the next settle.
    async fn settle(&mut self) {
        let answered = self.held.len();
        self.collect();
        let mut held = std::mem::take(&mut self.held);
        self.held = held.split_off(answered);
        for request in held {
            trace(|| format!("{}: answers {}", self.now(), kind(&request)));
            if let ResponseType::DeactivateRequest(_) = &request {
                let actor = actor_of(&request);
                let why = format!("actor {actor} was deactivated at {}", self.now());
                for name in 0..NAMES {
                    self.model.kill_timer((actor, name), why.clone());
                }
            }
            self.app.answer(echo_reply(&request, self.app.id)).await;
        }
        yields().await;
        self.collect();
    }

    async fn advance(&mut self, ms: u64) {
        let mut left = ms;
        while left > 0 {
            let slice = left.min(SLICE);
            tokio::time::advance(Duration::from_millis(slice)).await;
            self.settle().await;
            left -= slice;
        }
    }

    async fn step(&mut self, step: Step) {
        let now = self.now();
        trace(|| format!("{now}: {step:?}"));
        match step {
            Step::Timer {
                actor,
                name,
                due_ms,
                period_ms,
            } => {
                let (g, bytes) = self.model.generation();
                let r = RegisterActorTimerRequest {
                    actor_type: P.into(),
                    actor_id: actor.to_string(),
                    name: format!("n{name}"),
                    due_time: format!("{due_ms}ms"),
                    period: period_ms.map(|p| format!("{p}ms")).unwrap_or_default(),
                    callback: "cb".into(),
                    data: bytes,
                    ..Default::default()
                };
                match self.service.register_actor_timer(Request::new(r)).await {
                    Ok(_) => {
                        self.model.timers.insert((actor, name), g);
                    }
                    Err(e) => self
                        .model
                        .violations
                        .push(format!("{now}: timer registration refused: {e:?}")),
                }
            }
            Step::Untimer { actor, name } => {
                let r = UnregisterActorTimerRequest {
                    actor_type: P.into(),
                    actor_id: actor.to_string(),
                    name: format!("n{name}"),
                };
                match self.service.unregister_actor_timer(Request::new(r)).await {
                    Ok(_) => self
                        .model
                        .kill_timer((actor, name), format!("its unregister at {now}")),
                    Err(e) => self
                        .model
                        .violations
                        .push(format!("{now}: timer unregister refused: {e:?}")),
                }
            }
            Step::Reminder {
                actor,
                name,
                due_ms,
                period_ms,
            } => {
                let (g, bytes) = self.model.generation();
                let r = RegisterActorReminderRequest {
                    actor_type: P.into(),
                    actor_id: actor.to_string(),
                    name: format!("n{name}"),
                    due_time: format!("{due_ms}ms"),
                    period: period_ms.map(|p| format!("{p}ms")).unwrap_or_default(),
                    data: bytes,
                    ..Default::default()
                };
                match self.service.register_actor_reminder(Request::new(r)).await {
                    Ok(_) => {
                        let live = LiveReminder {
                            generation: g,
                            fired: false,
                        };
                        self.model.reminders.insert((actor, name), live);
                    }
                    Err(e) => self
                        .model
                        .violations
                        .push(format!("{now}: reminder registration refused: {e:?}")),
                }
            }
            Step::Unremind { actor, name } => {
                let r = UnregisterActorReminderRequest {
                    actor_type: P.into(),
                    actor_id: actor.to_string(),
                    name: format!("n{name}"),
                };
                match self
                    .service
                    .unregister_actor_reminder(Request::new(r))
                    .await
                {
                    Ok(_) => {
                        if let Some(live) = self.model.reminders.remove(&(actor, name)) {
                            let why = format!("its unregister at {now}");
                            self.model.dead_reminders.insert(live.generation, why);
                        }
                    }
                    Err(e) => self
                        .model
                        .violations
                        .push(format!("{now}: reminder unregister refused: {e:?}")),
                }
            }
            Step::Invoke { actor } => {
                let service = self.service.clone();
                actix_rt::spawn(async move {
                    let r = InvokeActorRequest {
                        actor_type: P.into(),
                        actor_id: actor.to_string(),
                        method: "m".into(),
                        data: b"x".to_vec(),
                        ..Default::default()
                    };
                    // Refused when the stream ends meanwhile: that is D3.
                    let _ = service.invoke_actor(Request::new(r)).await;
                });
            }
            Step::Advance { ms } => self.advance(ms).await,
            Step::Reconnect { gap_ms } => {
                self.collect();
                // The old app goes without answering what it holds.
                self.held.clear();
                let why = format!("the stream's end at {now}");
                let keys: Vec<_> = self.model.timers.keys().copied().collect();
                for key in keys {
                    self.model.kill_timer(key, why.clone());
                }
                common::close(&self.manager, self.app.id).await;
                yields().await;
                let mut left = gap_ms;
                while left > 0 {
                    let slice = left.min(SLICE);
                    tokio::time::advance(Duration::from_millis(slice)).await;
                    yields().await;
                    left -= slice;
                }
                self.app = register_app(&self.manager).await;
            }
        }
        self.settle().await;
    }
}

fn kind(request: &ResponseType) -> &'static str {
    match request {
        ResponseType::InvokeRequest(_) => "an invoke",
        ResponseType::TimerRequest(_) => "a timer fire",
        ResponseType::ReminderRequest(_) => "a reminder fire",
        ResponseType::DeactivateRequest(_) => "a deactivate",
        ResponseType::InitialResponse(_) => "an initial response",
    }
}

/// With `JOBPROPS_TRACE` set, prints what the app sees and does.
fn trace(line: impl FnOnce() -> String) {
    if std::env::var_os("JOBPROPS_TRACE").is_some() {
        eprintln!("{}", line());
    }
}

async fn yields() {
    for _ in 0..300 {
        tokio::task::yield_now().await;
    }
}

fn run_script(steps: Vec<Step>) -> Vec<String> {
    let system = actix::System::new();
    system.block_on(async move {
        tokio::time::pause();
        let manager = common::start_manager();
        let options = RuntimeOptions {
            idle_scan_interval: SCAN,
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::start(&manager, Arc::new(MemoryStore::new()), options)
            .await
            .unwrap();
        let service = DaprService::new(manager.clone(), "app").with_runtime(runtime);
        let app = register_app(&manager).await;
        let mut rig = Rig {
            manager,
            service: Rc::new(service),
            app,
            held: Vec::new(),
            model: Model::default(),
            start: Instant::now(),
        };
        for step in steps {
            rig.step(step).await;
        }
        rig.advance(WIND_DOWN).await;
        let mut m = rig.model;
        let mut lost: Vec<_> = m
            .reminders
            .iter()
            .filter(|(_, live)| !live.fired)
            .map(|((actor, name), live)| {
                format!(
                    "reminder {actor}/n{name} (gen {}) never fired",
                    live.generation
                )
            })
            .collect();
        lost.sort();
        m.violations.extend(lost);
        m.violations
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn turns_timers_and_reminders_keep_their_rules(steps in prop::collection::vec(step(), 1..40)) {
        let violations = run_script(steps);
        prop_assert!(violations.is_empty(), "{:#?}", violations);
    }
}

/// The shortest script the property found failing (the module doc's
/// "Found by it"): actor 0's timer falls due again at ~2092 ms
/// while the deactivate_request sent at ~2048 ms (idle since 1325 ms) is
/// still with the app. The fire queues behind the deactivation for the
/// actor's turn; when the app answers (2098 ms) the actor leaves the table
/// and its timers are removed (D2), but the queued fire is then granted
/// the fresh instance's turn, and its timer_request must not go out.
#[test]
fn d2_timer_due_while_its_actor_deactivates_does_not_fire_after() {
    let violations = run_script(vec![
        Step::Advance { ms: 1148 },
        Step::Timer {
            actor: 0,
            name: 0,
            due_ms: 177,
            period_ms: Some(694),
        },
    ]);
    assert!(violations.is_empty(), "{violations:#?}");
}
