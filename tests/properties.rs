//! Property tests (issue 5) against a live gateway over loopback: arbitrary
//! scripts of app streams misbehaving while callers call.
//!
//! - `prop_scripted_apps_and_callers`: apps connect, send every kind of
//!   message (every oneof variant, empty oneofs, repeated `initial_request`,
//!   replies with duplicate, future, unknown, malformed and huge ids, payloads
//!   either side of the size limit), answer some requests properly, end
//!   cleanly or abruptly at any point; rogue streams misbehave during the
//!   handshake; callers (gRPC and library, every call kind) come and go with
//!   and without deadlines, some giving up early.
//! - `prop_arbitrary_bytes_on_the_stream`: after a good handshake, messages
//!   that are valid, mutated or pure noise.
//!
//! Invariants checked after every case: no gateway thread panicked and the
//! gateway still serves; every caller got exactly one outcome, within its
//! deadline plus a margin (or promptly once the streams ended, when it had no
//! deadline), and that outcome is one the protocol allows (an OK carries the
//! caller's own answer, never another caller's); strays left every stream up
//! and the registration unchanged; only unfinished callers hold pending
//! entries; once the streams end, the registry is empty and nothing is pending.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::error::Error;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    InvokeActorRequest, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsRequestDeactivateResponseAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInitialAlpha1, SubscribeActorEventsRequestInvokeResponseAlpha1,
    SubscribeActorEventsRequestReminderResponseAlpha1, SubscribeActorEventsResponseAlpha1,
};
use callbackstream::transport::{
    DeactivateRequest, InvokeRequest, ReminderRequest, TimerRequest, Transport,
};
use harness::{PROMPTLY, TestGateway, eventually, promptly, server_panics, watch_panics};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// The gateway's message limit in these tests: small, so that payloads
/// either side of it are cheap.
const LIMIT: usize = 16 * 1024;
/// How far past its deadline a caller may finish. Generous: it bounds a
/// hang, it does not measure speed.
const MARGIN: Duration = Duration::from_secs(3);
/// What apps register with (R13 allows none).
const REGISTRATIONS: [&[&str]; 4] = [&["P"], &["P", "Q"], &["Q"], &[]];
/// What callers call: hosted types, and one nobody hosts.
const CALL_TYPES: [&str; 3] = ["P", "Q", "R"];
/// `request_failed` codes apps use: in range, and outside it (-> UNKNOWN).
const FAILED_CODES: [u32; 5] = [0, 5, 9, 14, 77];
/// Ids no request ever has, or that only look like ours.
const ODD_IDS: [&str; 9] = [
    "",
    "0",
    "007",
    "+1",
    "-1",
    " 1",
    "1.0",
    "18446744073709551615",
    "18446744073709551616",
];

type Result<T = ()> = std::result::Result<T, String>;

/// What the cases did, by label, printed at the end of a test: the evidence
/// that the interesting paths were taken.
static TALLY: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn tally(label: impl Into<String>) {
    let mut t = TALLY.lock().unwrap_or_else(|p| p.into_inner());
    *t.entry(label.into()).or_default() += 1;
}

/// Prints the labels starting with `prefix` (the tests share the tally).
fn print_tally(test: &str, prefix: &str) {
    let t = TALLY.lock().unwrap_or_else(|p| p.into_inner());
    let mine: Vec<_> = t.iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    println!("{test}: {mine:?}");
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result {
    if condition { Ok(()) } else { Err(what()) }
}

// ------------------------------------------------------------ the model

#[derive(Debug, Clone)]
struct Script {
    first_app: usize,
    steps: Vec<Step>,
    /// How the apps still up at the end go.
    end_abruptly: bool,
}

#[derive(Debug, Clone)]
enum Step {
    /// Another app registers (index into REGISTRATIONS).
    Connect(usize),
    /// An app sends a message nobody asked for.
    Send {
        app: usize,
        msg: Stray,
    },
    /// An app answers the `nth` request it received (a duplicate if answered before).
    Answer {
        app: usize,
        nth: usize,
        how: Answer,
    },
    Call(Call),
    Pause(u64),
    /// An app's stream ends: half-close, or reset.
    End {
        app: usize,
        abrupt: bool,
    },
    Rogue(Rogue),
}

#[derive(Debug, Clone)]
enum Stray {
    Empty,
    Initial(usize),
    Reply {
        kind: ReplyKind,
        id: IdPick,
        len: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum ReplyKind {
    Invoke { error: bool },
    Reminder { cancel: bool },
    Timer { cancel: bool },
    Deactivate,
    Failed(usize),
}

#[derive(Debug, Clone)]
enum IdPick {
    /// The id of the nth request this app received.
    Seen(usize),
    /// Past the newest id this app received: a reply before its request.
    Ahead(u64),
    Odd(usize),
    /// Any text at all.
    Text(String),
    /// A decimal number thousands of digits long.
    Huge(usize),
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Echo,
    AppError,
    Failed(usize),
}

#[derive(Debug, Clone)]
struct Call {
    via: Via,
    actor_type: usize,
    deadline_ms: Option<u64>,
    payload: usize,
    /// The caller gives up (its call is dropped) after this long.
    abandon_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Grpc,
    Invoke,
    Reminder,
    Timer,
    Deactivate,
}

#[derive(Debug, Clone)]
enum Rogue {
    /// Opens the stream and half-closes without a word.
    Silent,
    /// Opens with something other than `initial_request`.
    WrongFirst(Stray),
    /// A registration the gateway must refuse.
    BadRegistration(bool),
    /// Registers, then resets the stream.
    RegisterThenCancel,
    /// Sends `initial_request` and resets after this many ms, ack or not.
    CancelDuringHandshake(u64),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..64usize, 1 => (LIMIT - 160)..(LIMIT + 40)]
}

fn id_pick() -> impl Strategy<Value = IdPick> {
    prop_oneof![
        4 => (0..8usize).prop_map(IdPick::Seen),
        2 => (1..4u64).prop_map(IdPick::Ahead),
        2 => (0..ODD_IDS.len()).prop_map(IdPick::Odd),
        1 => vec(any::<char>(), 0..12).prop_map(|c| IdPick::Text(c.into_iter().collect())),
        1 => (20..4000usize).prop_map(IdPick::Huge),
    ]
}

fn reply_kind() -> impl Strategy<Value = ReplyKind> {
    prop_oneof![
        any::<bool>().prop_map(|error| ReplyKind::Invoke { error }),
        any::<bool>().prop_map(|cancel| ReplyKind::Reminder { cancel }),
        any::<bool>().prop_map(|cancel| ReplyKind::Timer { cancel }),
        Just(ReplyKind::Deactivate),
        (0..FAILED_CODES.len()).prop_map(ReplyKind::Failed),
    ]
}

fn stray() -> impl Strategy<Value = Stray> {
    prop_oneof![
        1 => Just(Stray::Empty),
        1 => (0..REGISTRATIONS.len()).prop_map(Stray::Initial),
        6 => (reply_kind(), id_pick(), size()).prop_map(|(kind, id, len)| Stray::Reply { kind, id, len }),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        4 => Just(Answer::Echo),
        1 => Just(Answer::AppError),
        1 => (0..FAILED_CODES.len()).prop_map(Answer::Failed),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    let via = prop_oneof![
        3 => Just(Via::Grpc),
        2 => Just(Via::Invoke),
        1 => Just(Via::Reminder),
        1 => Just(Via::Timer),
        1 => Just(Via::Deactivate),
    ];
    (
        via,
        0..CALL_TYPES.len(),
        prop_oneof![4 => (20..600u64).prop_map(Some), 1 => Just(None)],
        size(),
        prop_oneof![5 => Just(None), 1 => (0..100u64).prop_map(Some)],
    )
        .prop_map(|(via, actor_type, deadline_ms, payload, abandon_ms)| Call {
            via,
            actor_type,
            deadline_ms,
            payload,
            abandon_ms,
        })
}

fn rogue() -> impl Strategy<Value = Rogue> {
    let wrong_first = stray().prop_filter_map("not a registration", |s| match s {
        Stray::Initial(_) => None,
        other => Some(Rogue::WrongFirst(other)),
    });
    prop_oneof![
        Just(Rogue::Silent),
        wrong_first,
        any::<bool>().prop_map(Rogue::BadRegistration),
        Just(Rogue::RegisterThenCancel),
        (0..30u64).prop_map(Rogue::CancelDuringHandshake),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..REGISTRATIONS.len()).prop_map(Step::Connect),
        5 => (0..4usize, stray()).prop_map(|(app, msg)| Step::Send { app, msg }),
        4 => (0..4usize, 0..8usize, answer()).prop_map(|(app, nth, how)| Step::Answer { app, nth, how }),
        6 => call().prop_map(Step::Call),
        2 => (0..40u64).prop_map(Step::Pause),
        1 => (0..4usize, any::<bool>()).prop_map(|(app, abrupt)| Step::End { app, abrupt }),
        1 => rogue().prop_map(Step::Rogue),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (0..REGISTRATIONS.len(), vec(step(), 1..28), any::<bool>()).prop_map(
        |(first_app, steps, end_abruptly)| Script {
            first_app,
            steps,
            end_abruptly,
        },
    )
}

// ------------------------------------------------------------ running a script

/// A request an app received: its id, its kind, and what a proper answer
/// echoes.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    kind: Via,
    data: Vec<u8>,
}

struct LiveApp {
    /// Unique within the case, for "early" reply payloads.
    uid: usize,
    types: &'static [&'static str],
    host: AppHost,
    requests: mpsc::UnboundedReceiver<ResponseType>,
    received: Vec<Received>,
}

impl LiveApp {
    fn drain(&mut self, seen: &mut HashMap<String, (usize, String)>) {
        while let Ok(request) = self.requests.try_recv() {
            let (id, tag, kind, data) = match request {
                ResponseType::InvokeRequest(r) => (r.id, r.actor_id, Via::Invoke, r.data),
                ResponseType::ReminderRequest(r) => (r.id, r.actor_id, Via::Reminder, vec![]),
                ResponseType::TimerRequest(r) => (r.id, r.actor_id, Via::Timer, vec![]),
                ResponseType::DeactivateRequest(r) => (r.id, r.actor_id, Via::Deactivate, vec![]),
                ResponseType::InitialResponse(_) => continue,
            };
            seen.insert(tag, (self.uid, id.clone()));
            self.received.push(Received { id, kind, data });
        }
    }
}

/// How one call ended.
#[derive(Debug)]
enum Outcome {
    Grpc(std::result::Result<Vec<u8>, Status>),
    Library(std::result::Result<Vec<u8>, Error>),
}

type Ended = std::result::Result<(Outcome, Duration), tokio::task::JoinError>;

struct Caller {
    call: Call,
    tag: String,
    started: Instant,
    task: JoinHandle<(Outcome, Duration)>,
    /// The task's result, once awaited (a JoinHandle yields it only once).
    ended: Option<Ended>,
}

impl Caller {
    fn finished(&self) -> bool {
        self.ended.is_some() || self.task.is_finished()
    }

    /// Waits for the call until `bound`; its result, or None if it is still running.
    async fn wait_until(&mut self, bound: Instant) -> Option<&Ended> {
        if self.ended.is_none() {
            self.ended = Some(tokio::time::timeout_at(bound, &mut self.task).await.ok()?);
        }
        self.ended.as_ref()
    }
}

struct Case<'a> {
    gw: &'a TestGateway,
    client: DaprClient<Channel>,
    transport: Transport,
    apps: Vec<LiveApp>,
    /// Apps whose stream the gateway must have ended, with the status expected.
    ended_by_gateway: Vec<(AppHost, Code)>,
    next_uid: usize,
    callers: Vec<Caller>,
    /// Call tag -> (app uid, request id) for every request an app received.
    seen: HashMap<String, (usize, String)>,
}

impl<'a> Case<'a> {
    async fn new(gw: &'a TestGateway) -> Case<'a> {
        Case {
            gw,
            client: gw.client().await,
            transport: Transport::new(gw.manager()),
            apps: Vec::new(),
            ended_by_gateway: Vec::new(),
            next_uid: 0,
            callers: Vec::new(),
            seen: HashMap::new(),
        }
    }

    async fn connect(&mut self, registration: usize) -> Result {
        let types = REGISTRATIONS[registration];
        let (tx, requests) = mpsc::unbounded_channel();
        let options = AppHostOptions::echo(types.iter().copied()).with_handler(move |r| {
            let _ = tx.send(r);
            None
        });
        let host = promptly(AppHost::connect(self.gw.channel().await, options))
            .await
            .map_err(|s| format!("an app could not register: {s:?}"))?;
        self.next_uid += 1;
        self.apps.push(LiveApp {
            uid: self.next_uid,
            types,
            host,
            requests,
            received: Vec::new(),
        });
        Ok(())
    }

    fn drain_all(&mut self) {
        for app in &mut self.apps {
            app.drain(&mut self.seen);
        }
    }

    /// Sends `msg` on app `index`'s stream; an over-limit message must end
    /// that stream with RESOURCE_EXHAUSTED, so the app leaves the live set.
    async fn send(&mut self, index: usize, msg: SubscribeActorEventsRequestAlpha1) {
        let oversize = msg.encoded_len() > LIMIT;
        // The stream may already be ending; then the message goes nowhere.
        let _ = self.apps[index].host.sender().send(msg).await;
        if oversize {
            tally("script: app sent an oversized message");
            let app = self.apps.remove(index);
            self.ended_by_gateway
                .push((app.host, Code::ResourceExhausted));
        }
    }

    async fn run(&mut self, step: Step) -> Result {
        self.drain_all();
        tally(format!("script: step {}", step_name(&step)));
        let pick = |n: usize, len: usize| (len > 0).then(|| n % len);
        match step {
            Step::Connect(registration) if self.apps.len() < 3 => {
                self.connect(registration).await?
            }
            Step::Connect(_) => {}
            Step::Send { app, msg } => {
                if let Some(i) = pick(app, self.apps.len()) {
                    let msg = self.stray(i, msg);
                    self.send(i, msg).await;
                }
            }
            Step::Answer { app, nth, how } => {
                if let Some(i) = pick(app, self.apps.len())
                    && let Some(r) = pick(nth, self.apps[i].received.len())
                {
                    let msg = answer_to(&self.apps[i].received[r], how);
                    self.send(i, msg).await;
                }
            }
            Step::Call(call) => self.start_call(call),
            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Step::End { app, abrupt } => {
                if let Some(i) = pick(app, self.apps.len()) {
                    let app = self.apps.remove(i);
                    end_app(app.host, abrupt).await?;
                }
            }
            Step::Rogue(rogue) => self.rogue(rogue).await?,
        }
        Ok(())
    }

    /// The message a stray step sends on app `i`'s stream.
    fn stray(&self, i: usize, stray: Stray) -> SubscribeActorEventsRequestAlpha1 {
        let app = &self.apps[i];
        let request_type = match stray {
            Stray::Empty => None,
            Stray::Initial(r) => Some(RequestType::InitialRequest(registration(REGISTRATIONS[r]))),
            Stray::Reply { kind, id, len } => {
                let received = match &id {
                    IdPick::Seen(n) if !app.received.is_empty() => {
                        Some(&app.received[n % app.received.len()])
                    }
                    _ => None,
                };
                let id = match (id, received) {
                    (_, Some(r)) => r.id.clone(),
                    (IdPick::Seen(_), None) => "1".into(),
                    (IdPick::Ahead(k), _) => {
                        let newest = app
                            .received
                            .iter()
                            .filter_map(|r| r.id.parse::<u64>().ok())
                            .max()
                            .unwrap_or(0);
                        (newest + k).to_string()
                    }
                    (IdPick::Odd(n), _) => ODD_IDS[n].into(),
                    (IdPick::Text(text), _) => text,
                    (IdPick::Huge(digits), _) => "9".repeat(digits),
                };
                // A reply that lands on a real request carries that request's
                // own answer; anything else says where it came from.
                let mut data = match received {
                    Some(r) => r.data.clone(),
                    None => early_payload(app.uid, &id),
                };
                data.resize(data.len().max(len), b'~');
                Some(reply(kind, id, data))
            }
        };
        SubscribeActorEventsRequestAlpha1 { request_type }
    }

    fn start_call(&mut self, call: Call) {
        let n = self.callers.len();
        let tag = format!("call{n}");
        let mut data = format!("{tag}|").into_bytes();
        data.resize(data.len().max(call.payload), b'.');
        let actor_type = CALL_TYPES[call.actor_type].to_owned();
        let deadline = call.deadline_ms.map(Duration::from_millis);
        let task = match call.via {
            Via::Grpc => {
                let mut client = self.client.clone();
                let mut request = Request::new(InvokeActorRequest {
                    actor_type,
                    actor_id: tag.clone(),
                    method: "m".into(),
                    data,
                    metadata: Default::default(),
                });
                if let Some(d) = deadline {
                    request.set_timeout(d);
                }
                timed(async move {
                    Outcome::Grpc(
                        client
                            .invoke_actor(request)
                            .await
                            .map(|r| r.into_inner().data),
                    )
                })
            }
            via => {
                let transport = self.transport.clone();
                let deadline = deadline.map(|d| Instant::now() + d);
                let actor_id = tag.clone();
                timed(async move {
                    Outcome::Library(
                        library_call(&transport, via, actor_type, actor_id, data, deadline).await,
                    )
                })
            }
        };
        if let Some(ms) = call.abandon_ms {
            let abort = task.abort_handle();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                abort.abort();
            });
        }
        self.callers.push(Caller {
            call,
            tag,
            started: Instant::now(),
            task,
            ended: None,
        });
    }

    async fn rogue(&mut self, rogue: Rogue) -> Result {
        let channel = self.gw.channel().await;
        let mut client = DaprClient::new(channel);
        let (tx, rx) = mpsc::channel::<SubscribeActorEventsRequestAlpha1>(4);
        let wrap = |request_type| SubscribeActorEventsRequestAlpha1 { request_type };
        match rogue {
            Rogue::Silent => {
                drop(tx);
                let opened = client.subscribe_actor_events_alpha1(ReceiverStream::new(rx));
                refused(promptly(opened).await, Code::InvalidArgument)?;
            }
            Rogue::WrongFirst(stray) => {
                let first = match stray {
                    Stray::Reply { kind, len, .. } => {
                        // Keep it under the limit: an oversized first message
                        // is H5's business, covered by Send.
                        Some(reply(kind, "1".into(), vec![b'x'; len.min(LIMIT / 2)]))
                    }
                    _ => None,
                };
                tx.send(wrap(first)).await.map_err(|e| e.to_string())?;
                let opened = client.subscribe_actor_events_alpha1(ReceiverStream::new(rx));
                refused(promptly(opened).await, Code::InvalidArgument)?;
            }
            Rogue::BadRegistration(negative) => {
                let mut init = registration(&["P"]);
                if negative {
                    init.actor_idle_timeout = Some(prost_types::Duration {
                        seconds: -5,
                        nanos: 0,
                    });
                } else {
                    init.entities = vec![String::new()];
                }
                tx.send(wrap(Some(RequestType::InitialRequest(init))))
                    .await
                    .map_err(|e| e.to_string())?;
                let opened = client.subscribe_actor_events_alpha1(ReceiverStream::new(rx));
                refused(promptly(opened).await, Code::InvalidArgument)?;
            }
            Rogue::RegisterThenCancel => {
                tx.send(wrap(Some(RequestType::InitialRequest(registration(&[
                    "P",
                ])))))
                .await
                .map_err(|e| e.to_string())?;
                let mut stream =
                    promptly(client.subscribe_actor_events_alpha1(ReceiverStream::new(rx)))
                        .await
                        .map_err(|s| format!("a good registration was refused: {s:?}"))?
                        .into_inner();
                let ack = promptly(stream.message()).await;
                ensure(
                    matches!(
                        &ack,
                        Ok(Some(SubscribeActorEventsResponseAlpha1 {
                            response_type: Some(ResponseType::InitialResponse(_))
                        }))
                    ),
                    || format!("expected the ack, got {ack:?}"),
                )?;
                drop(stream); // RST_STREAM
            }
            Rogue::CancelDuringHandshake(ms) => {
                tx.send(wrap(Some(RequestType::InitialRequest(registration(&[
                    "Q",
                ])))))
                .await
                .map_err(|e| e.to_string())?;
                let opening = tokio::spawn(async move {
                    let _keep_open = tx;
                    let opened = client
                        .subscribe_actor_events_alpha1(ReceiverStream::new(rx))
                        .await;
                    // Hold whatever came until the abort drops it.
                    std::future::pending::<()>().await;
                    drop(opened);
                });
                tokio::time::sleep(Duration::from_millis(ms)).await;
                opening.abort();
            }
        }
        Ok(())
    }

    /// Phase 1: every caller with a deadline ends within it (plus the
    /// margin); the streams are still up, so strays must not have ended any,
    /// and only the callers still waiting hold pending entries.
    async fn check_while_streams_are_up(&mut self) -> Result {
        for caller in &mut self.callers {
            let Some(ms) = caller.call.deadline_ms else {
                continue;
            };
            let bound = caller.started + Duration::from_millis(ms) + MARGIN;
            if caller.wait_until(bound).await.is_none() {
                return Err(format!(
                    "{:?} did not end within its deadline + {MARGIN:?}",
                    caller.call
                ));
            }
        }
        let live = self.apps.len();
        let mut types: Vec<String> = self
            .apps
            .iter()
            .flat_map(|a| a.types.iter().map(|t| t.to_string()))
            .collect();
        types.sort();
        types.dedup();
        let gw = self.gw;
        let callers = &self.callers;
        let waiting = || callers.iter().filter(|c| !c.finished()).count();
        let deadline = Instant::now() + PROMPTLY;
        loop {
            let view = gw.describe().await;
            let pending = gw.pending().await;
            let expected = waiting();
            if view.connections.len() == live && view.actor_types == types && pending == expected {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "with the streams up: {} connection(s) hosting {:?}, {pending} pending; \
                     expected {live} hosting {types:?}, {expected} pending (the unfinished callers)",
                    view.connections.len(),
                    view.actor_types
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Phase 2: end the streams; every caller ends promptly with an allowed
    /// outcome, and nothing is left registered or pending.
    async fn check_after_streams_end(mut self, abrupt: bool) -> Result {
        for app in std::mem::take(&mut self.apps) {
            end_app(app.host, abrupt).await?;
        }
        for (host, code) in std::mem::take(&mut self.ended_by_gateway) {
            match promptly(host.finished()).await {
                Err(status) if status.code() == code => {}
                other => {
                    return Err(format!(
                        "an oversized message ended its stream with {other:?}, not {code:?}"
                    ));
                }
            }
        }
        self.drain_all();
        for mut caller in std::mem::take(&mut self.callers) {
            if caller.wait_until(Instant::now() + PROMPTLY).await.is_none() {
                return Err(format!(
                    "{:?} still waiting after its stream ended",
                    caller.call
                ));
            }
            let (outcome, took) = match caller.ended.take().expect("waited for above") {
                Ok(done) => done,
                Err(e) if e.is_cancelled() && caller.call.abandon_ms.is_some() => {
                    tally("script: call abandoned");
                    continue;
                }
                Err(e) => return Err(format!("{:?}: caller task failed: {e}", caller.call)),
            };
            if let Some(ms) = caller.call.deadline_ms {
                ensure(took <= Duration::from_millis(ms) + MARGIN, || {
                    format!("{:?} took {took:?}", caller.call)
                })?;
            }
            check_outcome(&caller.call, &caller.tag, &outcome, &self.seen)?;
        }
        eventually("an empty registry and nothing pending", || async {
            self.gw.describe().await.connections.is_empty() && self.gw.pending().await == 0
        })
        .await;
        Ok(())
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Connect(_) => "connect",
        Step::Send {
            msg: Stray::Empty, ..
        } => "send empty oneof",
        Step::Send {
            msg: Stray::Initial(_),
            ..
        } => "send initial_request again",
        Step::Send { .. } => "send stray reply",
        Step::Answer { .. } => "answer",
        Step::Call(_) => "call",
        Step::Pause(_) => "pause",
        Step::End { abrupt: true, .. } => "end abruptly",
        Step::End { .. } => "end cleanly",
        Step::Rogue(_) => "rogue stream",
    }
}

/// The rogue stream was refused with `code`.
fn refused<T>(result: std::result::Result<T, Status>, code: Code) -> Result {
    match result {
        Err(status) if status.code() == code => Ok(()),
        Err(status) => Err(format!("a rogue stream got {status:?}, not {code:?}")),
        Ok(_) => Err("a rogue stream was accepted".into()),
    }
}

async fn end_app(host: AppHost, abrupt: bool) -> Result {
    if abrupt {
        host.abort();
        Ok(())
    } else {
        promptly(host.close())
            .await
            .map_err(|s| format!("a half-closed stream ended with {s:?}, not OK"))
    }
}

fn timed<F>(call: F) -> JoinHandle<(Outcome, Duration)>
where
    F: std::future::Future<Output = Outcome> + Send + 'static,
{
    tokio::spawn(async move {
        let t0 = Instant::now();
        let outcome = call.await;
        (outcome, t0.elapsed())
    })
}

async fn library_call(
    transport: &Transport,
    via: Via,
    actor_type: String,
    actor_id: String,
    data: Vec<u8>,
    deadline: Option<Instant>,
) -> std::result::Result<Vec<u8>, Error> {
    match via {
        Via::Grpc | Via::Invoke => {
            let request = InvokeRequest {
                actor_type,
                actor_id,
                method: "m".into(),
                data,
                ..Default::default()
            };
            transport.invoke(request, deadline).await.map(|r| r.data)
        }
        Via::Reminder => {
            let request = ReminderRequest {
                actor_type,
                actor_id,
                name: "r".into(),
                ..Default::default()
            };
            transport.reminder(request, deadline).await.map(|_| vec![])
        }
        Via::Timer => {
            let request = TimerRequest {
                actor_type,
                actor_id,
                name: "t".into(),
                ..Default::default()
            };
            transport.timer(request, deadline).await.map(|_| vec![])
        }
        Via::Deactivate => {
            let request = DeactivateRequest {
                actor_type,
                actor_id,
                ..Default::default()
            };
            transport
                .deactivate(request, deadline)
                .await
                .map(|_| vec![])
        }
    }
}

fn registration(types: &[&str]) -> SubscribeActorEventsRequestInitialAlpha1 {
    SubscribeActorEventsRequestInitialAlpha1 {
        entities: types.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn early_payload(app_uid: usize, id: &str) -> Vec<u8> {
    format!("early:{app_uid}:{id}|").into_bytes()
}

fn reply(kind: ReplyKind, id: String, data: Vec<u8>) -> RequestType {
    match kind {
        ReplyKind::Invoke { error } => {
            RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id,
                data,
                metadata: Default::default(),
                error,
            })
        }
        ReplyKind::Reminder { cancel } => {
            RequestType::ReminderResponse(SubscribeActorEventsRequestReminderResponseAlpha1 {
                id,
                cancel,
            })
        }
        ReplyKind::Timer { cancel } => {
            RequestType::TimerResponse(SubscribeActorEventsRequestReminderResponseAlpha1 {
                id,
                cancel,
            })
        }
        ReplyKind::Deactivate => {
            RequestType::DeactivateResponse(SubscribeActorEventsRequestDeactivateResponseAlpha1 {
                id,
            })
        }
        ReplyKind::Failed(code) => {
            RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
                id,
                code: FAILED_CODES[code],
                message: String::from_utf8_lossy(&data).into_owned(),
            })
        }
    }
}

/// The proper answer to a received request, of its own kind.
fn answer_to(r: &Received, how: Answer) -> SubscribeActorEventsRequestAlpha1 {
    let kind = match (how, r.kind) {
        (Answer::Failed(code), _) => ReplyKind::Failed(code),
        (Answer::AppError, Via::Invoke) => ReplyKind::Invoke { error: true },
        (_, Via::Grpc | Via::Invoke) => ReplyKind::Invoke { error: false },
        (_, Via::Reminder) => ReplyKind::Reminder { cancel: false },
        (_, Via::Timer) => ReplyKind::Timer { cancel: false },
        (_, Via::Deactivate) => ReplyKind::Deactivate,
    };
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(reply(kind, r.id.clone(), r.data.clone())),
    }
}

/// Whether the data of an OK may go to the caller tagged `tag`: its own
/// answer, or a reply an app sent before it had seen the request, as long as
/// the id it carried is the one that request had (when the app saw it).
fn legit_data(data: &[u8], tag: &str, seen: &HashMap<String, (usize, String)>) -> bool {
    if data.starts_with(format!("{tag}|").as_bytes()) {
        return true;
    }
    let Some(rest) = data.strip_prefix(b"early:") else {
        return false;
    };
    let text = String::from_utf8_lossy(rest);
    let Some((early, _)) = text.split_once('|') else {
        return false;
    };
    match seen.get(tag) {
        Some((uid, id)) => early == format!("{uid}:{id}"),
        // The app never read the request (it went before it could): any early
        // reply on its stream may have matched the request's id.
        None => true,
    }
}

fn check_outcome(
    call: &Call,
    tag: &str,
    outcome: &Outcome,
    seen: &HashMap<String, (usize, String)>,
) -> Result {
    let has_deadline = call.deadline_ms.is_some();
    tally(match outcome {
        Outcome::Grpc(Ok(d)) | Outcome::Library(Ok(d)) if d.starts_with(b"early:") => {
            "script: call OK early".to_string()
        }
        Outcome::Grpc(Ok(_)) | Outcome::Library(Ok(_)) => "script: call OK".to_string(),
        Outcome::Grpc(Err(status)) => format!("script: call {:?}", status.code()),
        Outcome::Library(Err(e)) => format!(
            "script: call {:?}",
            callbackstream::service::status::to_status(e.clone()).code()
        ),
    });
    let ok = match outcome {
        Outcome::Grpc(Ok(data)) | Outcome::Library(Ok(data)) => {
            let invoke = matches!(call.via, Via::Grpc | Via::Invoke);
            !invoke || legit_data(data, tag, seen)
        }
        Outcome::Grpc(Err(status)) => match status.code() {
            Code::DeadlineExceeded => has_deadline,
            // tonic's client gave up on its own timer, a hair before the gateway did.
            Code::Cancelled => has_deadline && status.message() == "Timeout expired",
            Code::Unavailable
            | Code::ResourceExhausted
            | Code::Internal
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Unknown => true,
            _ => false,
        },
        Outcome::Library(Err(e)) => match e {
            Error::DeadlineExceeded => has_deadline,
            Error::AppFailed { code, .. } => FAILED_CODES.contains(code),
            Error::AppError { .. } => call.via == Via::Invoke,
            Error::NoConnection
            | Error::Disconnected { .. }
            | Error::TooManyPending { .. }
            | Error::MessageTooLarge { .. }
            | Error::Protocol(_) => true,
            Error::ShuttingDown | Error::InvalidRegistration(_) | Error::MaxStackDepth => false,
        },
    };
    ensure(ok, || {
        let shown = match outcome {
            Outcome::Grpc(Ok(d)) | Outcome::Library(Ok(d)) => {
                format!("OK {:?}", String::from_utf8_lossy(&d[..d.len().min(60)]))
            }
            other => format!("{other:?}"),
        };
        format!("{call:?} (tag {tag}) ended with {shown}")
    })
}

async fn run_script(gw: &TestGateway, script: Script) -> Result {
    let mut case = Case::new(gw).await;
    case.connect(script.first_app).await?;
    for step in script.steps {
        case.run(step).await?;
    }
    case.check_while_streams_are_up().await?;
    case.check_after_streams_end(script.end_abruptly).await?;
    still_serves(gw).await
}

/// Runs `test` against a gateway of its own, so that a failing case cannot
/// leave anything behind for the next one (and shrinking stays meaningful);
/// then checks that no gateway thread panicked and that the gateway stops
/// cleanly.
async fn on_fresh_gateway<F>(options: ConnectionOptions, test: F) -> Result
where
    F: AsyncFnOnce(&TestGateway) -> Result,
{
    let panics = server_panics();
    let gw = TestGateway::start_with(gateway_settings(), options).await;
    let result = test(&gw).await;
    let stopped = tokio::time::timeout(PROMPTLY, gw.shutdown()).await;
    result?;
    ensure(server_panics() == panics, || {
        "a gateway thread panicked".into()
    })?;
    ensure(matches!(stopped, Ok(Ok(()))), || {
        format!("the gateway did not stop cleanly: {stopped:?}")
    })
}

/// A newcomer registers and gets its round trip: the gateway is fine.
async fn still_serves(gw: &TestGateway) -> Result {
    let app = promptly(AppHost::connect(
        gw.channel().await,
        AppHostOptions::echo(["Fresh"]),
    ))
    .await
    .map_err(|s| format!("a fresh app was refused: {s:?}"))?;
    let reply = promptly(
        gw.client()
            .await
            .invoke_actor(harness::invoke("Fresh", "1", "m", b"fresh")),
    )
    .await
    .map_err(|s| format!("a fresh call failed: {s:?}"))?;
    ensure(reply.into_inner().data == b"fresh", || {
        "a fresh call got the wrong data".into()
    })?;
    promptly(app.close())
        .await
        .map_err(|s| format!("a fresh app's close ended with {s:?}"))?;
    eventually("the fresh app to be gone", || async {
        gw.describe().await.connections.is_empty()
    })
    .await;
    Ok(())
}

/// Runs `cases` cases of `strategy` through `test` on this (multi-threaded)
/// runtime, with shrinking bounded so that a failure is reported in seconds.
fn check<S, F, Fut>(cases: u32, strategy: S, test: F)
where
    S: Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result>,
{
    let config = Config {
        cases,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&strategy, |value| {
            runtime.block_on(test(value)).map_err(TestCaseError::fail)
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

fn gateway_settings() -> GatewaySettings {
    GatewaySettings {
        max_message_bytes: LIMIT,
        ..GatewaySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prop_scripted_apps_and_callers() {
    watch_panics();
    // A small outbox and pending limit, so that waiting for room and
    // RESOURCE_EXHAUSTED are part of the mix.
    let options = ConnectionOptions {
        outbox_capacity: 2,
        max_pending: 6,
    };
    check(64, script(), |script| {
        on_fresh_gateway(options, async |gw| run_script(gw, script).await)
    });
    print_tally("prop_scripted_apps_and_callers", "script");
}

// ------------------------------------------------------------ arbitrary bytes

/// A message that encodes to exactly the bytes it holds: lets a test put any
/// bytes on the stream, framed as gRPC messages.
#[derive(Debug, Clone, Default, PartialEq)]
struct RawMessage(Vec<u8>);

impl prost::Message for RawMessage {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> std::result::Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The encoding of a real (stray) message.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    stray().prop_map(|s| {
        let request_type = match s {
            Stray::Empty => None,
            Stray::Initial(r) => Some(RequestType::InitialRequest(registration(REGISTRATIONS[r]))),
            Stray::Reply { kind, len, .. } => Some(reply(kind, "5".into(), vec![b'v'; len])),
        };
        SubscribeActorEventsRequestAlpha1 { request_type }.encode_to_vec()
    })
}

fn raw_message() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (valid_message(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut bytes, at, value)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            bytes
        },
    );
    prop_oneof![
        3 => valid_message(),
        3 => mutated,
        3 => vec(any::<u8>(), 0..48),
        1 => vec(any::<u8>(), (LIMIT + 1)..(LIMIT + 64)),
    ]
}

/// The status the stream must end with after `messages`: none (it stays up)
/// if every one decodes within the limit, else that of the first bad one.
fn expected_end(messages: &[Vec<u8>]) -> Option<Code> {
    messages.iter().find_map(|m| {
        if m.len() > LIMIT {
            Some(Code::ResourceExhausted)
        } else if SubscribeActorEventsRequestAlpha1::decode(m.as_slice()).is_err() {
            Some(Code::Internal)
        } else {
            None
        }
    })
}

async fn run_bytes(gw: &TestGateway, messages: Vec<Vec<u8>>) -> Result {
    let expected = expected_end(&messages);
    tally(format!("bytes: stream ends {expected:?}"));
    let (tx, rx) = mpsc::channel(messages.len() + 1);
    tx.send(RawMessage(
        SubscribeActorEventsRequestAlpha1 {
            request_type: Some(RequestType::InitialRequest(registration(&["Raw"]))),
        }
        .encode_to_vec(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    for m in messages {
        tx.send(RawMessage(m)).await.map_err(|e| e.to_string())?;
    }
    let mut grpc = tonic::client::Grpc::new(gw.channel().await);
    promptly(grpc.ready()).await.map_err(|e| e.to_string())?;
    let codec =
        tonic_prost::ProstCodec::<RawMessage, SubscribeActorEventsResponseAlpha1>::default();
    let path = PathAndQuery::from_static("/dapr.proto.runtime.v1.Dapr/SubscribeActorEventsAlpha1");
    let mut stream = promptly(grpc.streaming(Request::new(ReceiverStream::new(rx)), path, codec))
        .await
        .map_err(|s| format!("the handshake was refused: {s:?}"))?
        .into_inner();
    let ack = promptly(stream.message()).await;
    ensure(matches!(&ack, Ok(Some(_))), || {
        format!("expected the ack, got {ack:?}")
    })?;
    match expected {
        None => {
            // Every message was fine: the stream stays up (strays included)
            // until the app half-closes, and then ends with OK.
            eventually("the stream to be registered", || async {
                gw.describe().await.actor_types == ["Raw"]
            })
            .await;
            drop(tx);
            let end = promptly(stream.message()).await;
            ensure(matches!(end, Ok(None)), || {
                format!("a half-closed stream ended with {end:?}")
            })?;
        }
        Some(code) => {
            let end = promptly(stream.message()).await;
            ensure(matches!(&end, Err(status) if status.code() == code), || {
                format!("expected the stream to end with {code:?}, got {end:?}")
            })?;
        }
    }
    gw.wait_until_idle().await;
    still_serves(gw).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prop_arbitrary_bytes_on_the_stream() {
    watch_panics();
    check(96, vec(raw_message(), 0..8), |messages| {
        on_fresh_gateway(ConnectionOptions::default(), async |gw| {
            run_bytes(gw, messages).await
        })
    });
    print_tally("prop_arbitrary_bytes_on_the_stream", "bytes");
}
