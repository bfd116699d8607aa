//! The active actors and their turns (SPEC T1, T3, D1-D3), as one actix
//! actor: `ActorTable`.
//!
//! An actor is a row here from its first turn until it is deactivated. The
//! row holds who has the actor's turn, the FIFO of those waiting for it, and
//! when its last turn started. The turn itself travels as a [`Turn`] value:
//! whoever holds one may call the app for that actor, and dropping it hands
//! the turn on. So a turn spans the app's reply without the table awaiting
//! anything: the table only answers questions and hands out turns, and
//! different actors' turns run in parallel on their callers' tasks.
//!
//! Why the table and not the app serialises: the SDK dispatches every stream
//! message on a task of its own and has no per-actor lock (runtime-facts §6),
//! so without us two calls to one actor would overlap.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::{debug, info};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::clip::Clipped;
use crate::config::ActorSettings;
use crate::error::Error;
use crate::manager::{ManagerActor, Send, SendInTurn};
use crate::metrics;
use crate::pending::PendingReply;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::transport::{DeactivateRequest, InvokeRequest, Transport};

/// The metadata key of a reentrant call chain (exact spelling, as daprd).
pub const REENTRANCY_ID: &str = "Dapr-Reentrancy-Id";

/// Idle time after which an actor is deactivated unless its registration
/// says otherwise (daprd's default, runtime-facts §7).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How deep a reentrant call chain may go unless the registration says
/// otherwise (daprd's default, runtime-facts §6).
pub const DEFAULT_MAX_STACK_DEPTH: u32 = 32;

/// How long a deactivation waits for the app's answer. The actor leaves the
/// table whatever the answer (D2), so this only bounds how long callers
/// queued behind the deactivation wait for a fresh instance.
pub const DEACTIVATE_TIMEOUT: Duration = Duration::from_secs(60);

/// One actor: (type, id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorKey {
    pub actor_type: String,
    pub actor_id: String,
}

impl ActorKey {
    pub fn new(actor_type: impl Into<String>, actor_id: impl Into<String>) -> Self {
        ActorKey {
            actor_type: actor_type.into(),
            actor_id: actor_id.into(),
        }
    }
}

/// The rules a hosted type's actors run by, from its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeRules {
    pub idle_timeout: Duration,
    /// `Some(max depth)` when reentrancy is enabled.
    pub reentrancy: Option<u32>,
}

impl TypeRules {
    pub fn from_settings(settings: &ActorSettings) -> Self {
        let reentrancy = settings.reentrancy.filter(|r| r.enabled).map(|r| {
            r.max_stack_depth
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(DEFAULT_MAX_STACK_DEPTH)
        });
        TypeRules {
            idle_timeout: settings.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            reentrancy,
        }
    }
}

impl Default for TypeRules {
    fn default() -> Self {
        TypeRules::from_settings(&ActorSettings::default())
    }
}

/// Owns the active actors. Start it with [`crate::manager::StartTable`], on
/// the manager's thread, which keeps it told of the hosted types.
pub struct ActorTable {
    transport: Transport,
    idle_scan: Duration,
    actors: HashMap<ActorKey, Active>,
    /// Rules per hosted type; a type missing here is hosted by nobody.
    hosted: HashMap<String, TypeRules>,
    /// Active actors per type (D1), kept as rows come and go.
    counts: HashMap<String, usize>,
    /// Numbers each row, so a turn of a row that is gone (deactivated,
    /// dropped with its type) cannot release a newer row of the same actor.
    next_incarnation: u64,
    /// Told when an actor leaves the table and when types come and go: the
    /// runtime's timers and reminders (D2, D3, RM5). See [`Watch`].
    watcher: Option<Recipient<TableEvent>>,
}

struct Active {
    incarnation: u64,
    holder: Holder,
    waiting: VecDeque<Waiter>,
    last_turn: Instant,
}

enum Holder {
    Free,
    /// A turn is out; with reentrancy, the chain that holds it and how many
    /// nested calls of that chain are in it.
    Turn {
        chain: Option<Arc<str>>,
        depth: u32,
    },
    /// The app is being told to deactivate the actor; callers wait.
    Deactivating,
}

struct Waiter {
    chain: Option<Arc<str>>,
    call: Option<Call>,
    grant: oneshot::Sender<Granted>,
    /// Counts the wait in the metrics, while they are on.
    _counted: Option<metrics::Waiting>,
}

impl ActorTable {
    pub fn new(transport: Transport, idle_scan: Duration) -> Self {
        ActorTable {
            transport,
            idle_scan,
            actors: HashMap::new(),
            hosted: HashMap::new(),
            counts: HashMap::new(),
            next_incarnation: 0,
            watcher: None,
        }
    }

    fn tell(&self, event: TableEvent) {
        if let Some(watcher) = &self.watcher {
            watcher.do_send(event);
        }
    }

    fn rules(&self, actor_type: &str) -> TypeRules {
        self.hosted.get(actor_type).copied().unwrap_or_default()
    }

    /// The row of `key`, activating the actor if it has none (D1).
    fn activate(&mut self, key: &ActorKey) -> &mut Active {
        if !self.actors.contains_key(key) {
            self.next_incarnation += 1;
            *self.counts.entry(key.actor_type.clone()).or_default() += 1;
            if let Some(m) = metrics::get() {
                m.actor_activated(&key.actor_type);
            }
            let row = Active {
                incarnation: self.next_incarnation,
                holder: Holder::Free,
                waiting: VecDeque::new(),
                last_turn: Instant::now(),
            };
            self.actors.insert(key.clone(), row);
        }
        self.actors.get_mut(key).expect("inserted above")
    }

    /// Removes a row; its waiters' tickets drop, which tells them. Every
    /// way out of the table (D2, D3) passes here, so the watcher hears of
    /// each.
    fn remove(&mut self, key: &ActorKey) -> Option<Active> {
        let row = self.actors.remove(key)?;
        self.tell(TableEvent::ActorGone(key.clone()));
        if let Some(m) = metrics::get() {
            m.actor_deactivated(&key.actor_type);
        }
        if let Some(n) = self.counts.get_mut(&key.actor_type) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key.actor_type);
            }
        }
        Some(row)
    }

    /// Hands the turn of a free actor to the first waiter still waiting.
    fn hand_on(&mut self, key: &ActorKey, table: &Addr<ActorTable>) {
        let reentrancy = self.rules(&key.actor_type).reentrancy;
        let manager = self.transport.manager().clone();
        let Some(row) = self.actors.get_mut(key) else {
            return;
        };
        while let Some(waiter) = row.waiting.pop_front() {
            // The caller gave up (T1): it takes nothing with it.
            if waiter.grant.is_closed() {
                continue;
            }
            let chain = waiter.chain.or_else(|| fresh_chain(reentrancy));
            row.holder = Holder::Turn {
                chain: chain.clone(),
                depth: 1,
            };
            row.last_turn = Instant::now();
            let turn = Turn::new(table, key, row.incarnation, chain);
            deliver(&manager, waiter.grant, turn, waiter.call);
            return;
        }
        row.holder = Holder::Free;
    }

    /// D2: deactivates the actors idle for their type's timeout.
    fn scan_idle(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let idle: Vec<ActorKey> = self
            .actors
            .iter()
            .filter(|(key, row)| {
                matches!(row.holder, Holder::Free)
                    && row.waiting.is_empty()
                    && now.duration_since(row.last_turn) >= self.rules(&key.actor_type).idle_timeout
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in idle {
            self.deactivate(key, ctx);
        }
    }

    fn deactivate(&mut self, key: ActorKey, ctx: &mut Context<Self>) {
        let Some(row) = self.actors.get_mut(&key) else {
            return;
        };
        row.holder = Holder::Deactivating;
        let incarnation = row.incarnation;
        let transport = self.transport.clone();
        let request = DeactivateRequest {
            id: String::new(),
            actor_type: key.actor_type.clone(),
            actor_id: key.actor_id.clone(),
        };
        let table = ctx.address();
        actix_rt::spawn(async move {
            let deadline = Instant::now() + DEACTIVATE_TIMEOUT;
            let outcome = transport.deactivate(request, Some(deadline)).await;
            // Whatever the app said, the actor is gone (D2): UNKNOWN means it
            // had no instance, anything else is logged.
            if let Err(e) = &outcome {
                debug!(
                    "deactivating {}/{}: {e}",
                    Clipped(&key.actor_type),
                    Clipped(&key.actor_id)
                );
            }
            table.do_send(Deactivated { key, incarnation });
        });
    }
}

impl Actor for ActorTable {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Every turn passes through here twice; let bursts queue.
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(self.idle_scan, |table, ctx| table.scan_idle(ctx));
    }
}

/// The right to call the app for one actor. Dropping it hands the turn to
/// the next caller waiting (T1); keep it until the app has answered.
pub struct Turn {
    table: Option<Addr<ActorTable>>,
    key: ActorKey,
    incarnation: u64,
    chain: Option<Arc<str>>,
}

impl Turn {
    fn new(
        table: &Addr<ActorTable>,
        key: &ActorKey,
        incarnation: u64,
        chain: Option<Arc<str>>,
    ) -> Self {
        Turn {
            table: Some(table.clone()),
            key: key.clone(),
            incarnation,
            chain,
        }
    }

    /// The reentrancy chain this turn belongs to, when the type has
    /// reentrancy on: the app is told it, so that its calls back in enter.
    pub fn chain(&self) -> Option<&str> {
        self.chain.as_deref()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            table.do_send(Release {
                key: std::mem::replace(&mut self.key, ActorKey::new("", "")),
                incarnation: self.incarnation,
            });
        }
    }
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").field("key", &self.key).finish()
    }
}

/// Ask for an actor's turn. Answers at once with a ticket: it resolves to the
/// [`Granted`] turn when it is this caller's go, or fails with MaxStackDepth.
/// Dropping the ticket leaves the queue (T1).
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<Granted>, Error>")]
pub struct Acquire {
    pub key: ActorKey,
    /// The caller's `Dapr-Reentrancy-Id`, if it sent one.
    pub chain: Option<String>,
    /// The invoke to send once the turn is granted, if any. Sending it from
    /// here saves the caller a round trip to this thread and back: the
    /// manager is on this thread, so the hand-over to it is local.
    pub call: Option<Call>,
}

/// An invoke to send as soon as its turn is granted.
#[derive(Debug)]
pub struct Call {
    pub request: InvokeRequest,
    pub deadline: Option<Instant>,
}

/// A granted turn, and the invoke sent in it (when the `Acquire` had one):
/// the manager's answer, the pending reply or why not.
#[derive(Debug)]
pub struct Granted {
    pub turn: Turn,
    pub sent: Option<Result<PendingReply, Error>>,
}

/// Hands a granted turn to its caller; with a call, sends the call first,
/// in the turn, and hands over its pending reply too. The invoke learns the
/// turn's reentrancy chain (T3). A caller that is gone drops what it is
/// handed, which releases the turn and forgets the request.
fn deliver(
    manager: &Addr<ManagerActor>,
    grant: oneshot::Sender<Granted>,
    turn: Turn,
    call: Option<Call>,
) {
    let Some(Call {
        mut request,
        deadline,
    }) = call
    else {
        let _ = grant.send(Granted { turn, sent: None });
        return;
    };
    if let Some(chain) = turn.chain() {
        request
            .metadata
            .insert(REENTRANCY_ID.to_owned(), chain.to_owned());
    }
    let mut send = Send::typed(ResponseType::InvokeRequest(request));
    if let Some(at) = deadline {
        send = send.deadline(at);
    }
    // The manager is on this thread: a local message, no task.
    manager.do_send(SendInTurn { send, turn, grant });
}

impl Handler<Acquire> for ActorTable {
    type Result = Result<oneshot::Receiver<Granted>, Error>;

    fn handle(&mut self, msg: Acquire, ctx: &mut Self::Context) -> Self::Result {
        let reentrancy = self.rules(&msg.key.actor_type).reentrancy;
        // Without reentrancy a chain id means nothing to us (T3).
        let chain: Option<Arc<str>> = reentrancy.and(msg.chain.map(Arc::from));
        let table = ctx.address();
        let manager = self.transport.manager().clone();
        let row = self.activate(&msg.key);
        let (grant, ticket) = oneshot::channel();
        let enters = match &mut row.holder {
            Holder::Free => {
                let chain = chain.clone().or_else(|| fresh_chain(reentrancy));
                row.holder = Holder::Turn {
                    chain: chain.clone(),
                    depth: 1,
                };
                row.last_turn = Instant::now();
                Some(chain)
            }
            Holder::Turn {
                chain: Some(held),
                depth,
            } if chain.as_ref() == Some(held) => {
                let max = reentrancy.unwrap_or(DEFAULT_MAX_STACK_DEPTH);
                if *depth >= max {
                    return Err(Error::MaxStackDepth);
                }
                *depth += 1;
                Some(chain.clone())
            }
            _ => None,
        };
        match enters {
            Some(chain) => {
                let turn = Turn::new(&table, &msg.key, row.incarnation, chain);
                deliver(&manager, grant, turn, msg.call);
            }
            None => row.waiting.push_back(Waiter {
                chain,
                call: msg.call,
                grant,
                _counted: metrics::get().map(|m| m.turn_waiter(&msg.key.actor_type)),
            }),
        }
        Ok(ticket)
    }
}

/// A call that starts a chain gets a fresh id when the type has reentrancy
/// on (T3); without it there are no chains.
fn fresh_chain(reentrancy: Option<u32>) -> Option<Arc<str>> {
    reentrancy.map(|_| Arc::from(uuid::Uuid::new_v4().to_string()))
}

/// A turn ends (sent by [`Turn`]'s drop).
#[derive(Message)]
#[rtype(result = "()")]
struct Release {
    key: ActorKey,
    incarnation: u64,
}

impl Handler<Release> for ActorTable {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Self::Context) {
        let Some(row) = self.actors.get_mut(&msg.key) else {
            return;
        };
        if row.incarnation != msg.incarnation {
            return; // a turn of a row that is gone
        }
        if let Holder::Turn { depth, .. } = &mut row.holder
            && *depth > 1
        {
            *depth -= 1; // a reentrant call returned; the chain keeps the turn
            return;
        }
        self.hand_on(&msg.key, &ctx.address());
    }
}

/// The app answered (or not) a deactivation: the actor leaves the table
/// (D2); callers that queued meanwhile start a fresh instance.
#[derive(Message)]
#[rtype(result = "()")]
struct Deactivated {
    key: ActorKey,
    incarnation: u64,
}

impl Handler<Deactivated> for ActorTable {
    type Result = ();

    fn handle(&mut self, msg: Deactivated, ctx: &mut Self::Context) {
        let current = self.actors.get(&msg.key).map(|row| row.incarnation);
        if current != Some(msg.incarnation) {
            return;
        }
        let waiting = self
            .remove(&msg.key)
            .map(|row| row.waiting)
            .unwrap_or_default();
        if waiting.is_empty() {
            return;
        }
        self.activate(&msg.key).waiting = waiting;
        self.hand_on(&msg.key, &ctx.address());
    }
}

/// Which types are hosted now, and by what rules: sent by the manager as
/// registrations come and go.
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct HostingChanged {
    pub hosted: Vec<(String, TypeRules)>,
    /// Types no live stream lists any more (D3).
    pub unhosted: Vec<String>,
}

impl Handler<HostingChanged> for ActorTable {
    type Result = ();

    fn handle(&mut self, msg: HostingChanged, _: &mut Self::Context) {
        self.tell(TableEvent::Hosting {
            hosted: msg.hosted.iter().map(|(t, _)| t.clone()).collect(),
            unhosted: msg.unhosted.clone(),
        });
        self.hosted.extend(msg.hosted);
        if msg.unhosted.is_empty() {
            return;
        }
        for t in &msg.unhosted {
            self.hosted.remove(t);
        }
        // D3: nobody to deactivate them with; their callers are told by
        // their tickets dropping.
        let gone: Vec<ActorKey> = self
            .actors
            .keys()
            .filter(|k| !self.hosted.contains_key(&k.actor_type))
            .cloned()
            .collect();
        if !gone.is_empty() {
            info!(
                "dropping {} active actor(s) no stream hosts any more",
                gone.len()
            );
        }
        for key in gone {
            self.remove(&key);
        }
    }
}

/// Active actors per type (D1, GetMetadata's `count`).
#[derive(Message)]
#[rtype(result = "HashMap<String, usize>")]
pub struct CountActive;

impl Handler<CountActive> for ActorTable {
    type Result = MessageResult<CountActive>;

    fn handle(&mut self, _: CountActive, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.counts.clone())
    }
}

/// Whether an actor is active (ST2 needs it).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsActive(pub ActorKey);

impl Handler<IsActive> for ActorTable {
    type Result = bool;

    fn handle(&mut self, msg: IsActive, _: &mut Self::Context) -> bool {
        self.actors.contains_key(&msg.0)
    }
}

/// What the table tells its watcher.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum TableEvent {
    /// The actor left the table: deactivated (D2) or dropped with its type
    /// (D3).
    ActorGone(ActorKey),
    /// These types are hosted now (perhaps again), these no longer are.
    Hosting {
        hosted: Vec<String>,
        unhosted: Vec<String>,
    },
}

/// Makes the recipient the table's one watcher, which is first told every type hosted
/// now. The watcher subscribes (rather than being given to the table at its
/// start) so that the table and the manager that starts it need not know
/// what watches; events pass through the table, so the watcher sees them in
/// the table's own order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Recipient<TableEvent>);

impl Handler<Watch> for ActorTable {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) {
        self.watcher = Some(msg.0);
        self.tell(TableEvent::Hosting {
            hosted: self.hosted.keys().cloned().collect(),
            unhosted: Vec::new(),
        });
    }
}

/// Whether a live stream hosts the type (TM1, RM2). Asked of the table, not
/// of its watcher: the manager tells the table before it answers a stream's
/// registration, so a question that comes after that answer sees the type.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsHosted(pub String);

impl Handler<IsHosted> for ActorTable {
    type Result = bool;

    fn handle(&mut self, msg: IsHosted, _: &mut Self::Context) -> bool {
        self.hosted.contains_key(&msg.0)
    }
}
