//! The registry of live app streams, as an actor: `ManagerActor` decides which
//! connection serves each request.
//!
//! Its state (the live connections in registration order, and an index from
//! actor type to the connections that host it) is private; the rest of the
//! system talks to it with `Register`, `Close`, `Send` and a few questions.
//! Being one actor, it sees registrations, closes and sends in one order, which
//! is what makes "Register returns only once sends can see it" (SPEC R8) and
//! "newest live connection wins" (R2, R3) simple to keep.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::ArbiterHandle;
use log::info;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::clip::{Clipped, ClippedList};
use crate::config::RegistrationConfig;
pub use crate::connection::Inbound;
use crate::connection::{
    ConnectionActor, ConnectionId, ConnectionOptions, Dispatch, Outbox, PendingReply, Stats, Stop,
};
use crate::error::{DISCONNECTED, Error};
use crate::metrics;
use crate::pending::deadline_in;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::runtime::table::{ActorTable, Granted, HostingChanged, Turn, TypeRules};

/// Owns the set of live connections. Start one per gateway, in an actix system.
pub struct ManagerActor {
    options: ConnectionOptions,
    next_id: u64,
    /// Live connections; `ConnectionId`s grow, so the last entry is the newest.
    live: BTreeMap<ConnectionId, Entry>,
    /// Actor type -> the live connections whose registration lists it.
    /// Invariant: holds exactly the ids in `live`, under each type they list.
    by_type: HashMap<String, BTreeSet<ConnectionId>>,
    /// The actor runtime's table, once started: told whenever the hosted
    /// types or their rules (the newest listing connection's) change.
    table: Option<Addr<ActorTable>>,
}

struct Entry {
    addr: Addr<ConnectionActor>,
    config: Arc<RegistrationConfig>,
    /// The last request id given out on this connection. Numbering here,
    /// where the route is chosen, lets `Send` answer at once: the caller holds
    /// its id (to forget it if it gives up) without a round trip to the
    /// connection. Only the manager routes, so ids stay unique per connection.
    last_request: u64,
}

impl ManagerActor {
    pub fn new(options: ConnectionOptions) -> Self {
        ManagerActor {
            options,
            next_id: 0,
            live: BTreeMap::new(),
            by_type: HashMap::new(),
            table: None,
        }
    }

    /// The connection a request goes to (SPEC R2, R13): the newest that lists
    /// `actor_type`, else the newest of all.
    fn route(&mut self, actor_type: Option<&str>) -> Option<&mut Entry> {
        let id = actor_type
            .and_then(|t| self.by_type.get(t))
            .and_then(|ids| ids.last())
            .or_else(|| self.live.keys().next_back())
            .copied()?;
        self.live.get_mut(&id)
    }
}

impl ManagerActor {
    /// After a close: the closed connection's types that nobody hosts any
    /// more, and those now served by an older connection, with its rules.
    fn tell_table_closed(&self, closed: &RegistrationConfig) {
        let Some(table) = &self.table else {
            return;
        };
        let mut change = HostingChanged::default();
        let mut indexes = HashMap::new();
        for t in &closed.actor_types {
            let Some(newest) = self.by_type.get(t).and_then(|ids| ids.last()) else {
                change.unhosted.push(t.clone());
                continue;
            };
            let config = &self.live[newest].config;
            let index = indexes
                .entry(*newest)
                .or_insert_with(|| config.settings_by_type());
            if let Some(settings) = index.get(t.as_str()) {
                change
                    .hosted
                    .push((t.clone(), TypeRules::from_settings(settings)));
            }
        }
        table.do_send(change);
    }

    /// Everything hosted now, for a table that has just started.
    fn hosting_now(&self) -> HostingChanged {
        let mut change = HostingChanged::default();
        for (id, entry) in &self.live {
            for (t, settings) in entry.config.settings_by_type() {
                // Newest listing wins: later ids overwrite earlier ones.
                let newest = self.by_type.get(t).and_then(|ids| ids.last());
                if newest == Some(id) {
                    change
                        .hosted
                        .push((t.to_owned(), TypeRules::from_settings(settings)));
                }
            }
        }
        change
    }
}

/// Start the actor runtime's table beside the manager (one per manager) and
/// keep it told of the hosted types from now on. Answers with its address
/// and the thread it runs on, where the runtime's other actors start too
/// (only actors start actors: `Runtime::start` may run on any thread).
#[derive(Message)]
#[rtype(result = "(Addr<ActorTable>, ArbiterHandle)")]
pub struct StartTable {
    /// How often idle actors are looked for (SPEC D2).
    pub idle_scan: Duration,
}

impl Handler<StartTable> for ManagerActor {
    type Result = MessageResult<StartTable>;

    fn handle(&mut self, msg: StartTable, ctx: &mut Self::Context) -> Self::Result {
        if let Some(table) = &self.table {
            return MessageResult((table.clone(), actix::Arbiter::current()));
        }
        let transport = crate::transport::Transport::new(ctx.address());
        let table = ActorTable::new(transport, msg.idle_scan).start();
        table.do_send(self.hosting_now());
        self.table = Some(table.clone());
        MessageResult((table, actix::Arbiter::current()))
    }
}

impl Default for ManagerActor {
    fn default() -> Self {
        ManagerActor::new(ConnectionOptions::default())
    }
}

impl Actor for ManagerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Every request passes through here; let bursts queue instead of park.
        ctx.set_mailbox_capacity(4096);
    }
}

/// Add a connection for an app that completed its handshake. Answers once the
/// connection is visible to `Send`.
#[derive(Message)]
#[rtype(result = "Connection")]
pub struct Register {
    pub config: RegistrationConfig,
    /// The largest message the stream can carry to the app; larger requests
    /// are refused at dispatch instead of breaking the stream when written.
    pub max_message_bytes: Option<usize>,
    /// The arbiter to run the connection actor on; the manager's when `None`.
    /// The stream handler passes its own, so that the actor shares a thread
    /// with the stream it serves (see `crate::runtime`).
    pub arbiter: Option<ArbiterHandle>,
}

impl Register {
    /// A registration with no message size limit of its own, whose
    /// connection actor runs beside the manager.
    pub fn new(config: RegistrationConfig) -> Self {
        Register {
            config,
            max_message_bytes: None,
            arbiter: None,
        }
    }
}

/// The stream handler's side of a registered connection.
#[derive(Debug)]
pub struct Connection {
    pub id: ConnectionId,
    pub inbound: Inbound,
    /// What to write to the app's stream. Ends when the connection closes.
    pub outbox: Outbox,
    /// Closes the connection when dropped: keep it as long as you serve it.
    pub closer: Closer,
}

/// Closes its connection when dropped. Whoever serves a connection holds it,
/// so a connection never outlives its server: not when the stream ends, not
/// when the serving task is cancelled or panics, and not when the `Register`
/// answer itself is dropped on the way to a caller that went away. (A dead
/// connection left registered would stay "newest" and swallow every send.)
#[derive(Debug)]
pub struct Closer {
    id: ConnectionId,
    /// Weak: a strong `Addr` costs two allocations of its own, and every
    /// connection keeps its closer for life. A manager that is gone has no
    /// registry left to close anything in.
    manager: actix::WeakAddr<ManagerActor>,
    cause: Option<String>,
}

impl Closer {
    /// The cause callers still waiting on the connection will be told.
    pub fn set_cause(&mut self, cause: impl Into<String>) {
        self.cause = Some(cause.into());
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        // Close is idempotent, so an earlier explicit Close costs nothing here.
        if let Some(manager) = self.manager.upgrade() {
            manager.do_send(Close {
                id: self.id,
                cause: self.cause.take(),
            });
        }
    }
}

impl Handler<Register> for ManagerActor {
    type Result = MessageResult<Register>;

    fn handle(&mut self, msg: Register, ctx: &mut Self::Context) -> Self::Result {
        self.next_id += 1;
        let id = ConnectionId(self.next_id);
        let (actor, outbox) = ConnectionActor::new(id, self.options, msg.max_message_bytes);
        let addr = match &msg.arbiter {
            Some(arbiter) => ConnectionActor::start_in_arbiter(arbiter, move |_| actor),
            None => actor.start(),
        };
        let config = Arc::new(msg.config);
        for t in &config.actor_types {
            self.by_type.entry(t.clone()).or_default().insert(id);
        }
        info!(
            "{id}: registered, hosting {}",
            ClippedList(&config.actor_types)
        );
        if let Some(table) = &self.table {
            let rules = config.settings_by_type();
            let hosted = rules
                .into_iter()
                .map(|(t, s)| (t.to_owned(), TypeRules::from_settings(s)))
                .collect();
            table.do_send(HostingChanged {
                hosted,
                unhosted: Vec::new(),
            });
        }
        if let Some(m) = metrics::get() {
            m.stream_registered();
        }
        self.live.insert(
            id,
            Entry {
                addr: addr.clone(),
                config,
                last_request: 0,
            },
        );
        MessageResult(Connection {
            id,
            inbound: Inbound::new(addr),
            outbox,
            closer: Closer {
                id,
                manager: ctx.address().downgrade(),
                cause: None,
            },
        })
    }
}

/// Remove a connection and fail what it still owes (SPEC R5). Closing an
/// unknown or already closed connection does nothing (R8).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close {
    pub id: ConnectionId,
    /// Told to callers still waiting on it; defaults to [`DISCONNECTED`].
    pub cause: Option<String>,
}

impl Handler<Close> for ManagerActor {
    type Result = ();

    fn handle(&mut self, msg: Close, _: &mut Self::Context) {
        let Some(entry) = self.live.remove(&msg.id) else {
            return;
        };
        if let Some(m) = metrics::get() {
            m.stream_closed();
        }
        for t in &entry.config.actor_types {
            if let Some(ids) = self.by_type.get_mut(t) {
                ids.remove(&msg.id);
                if ids.is_empty() {
                    self.by_type.remove(t);
                }
            }
        }
        if self.table.is_some() {
            self.tell_table_closed(&entry.config);
        }
        match &msg.cause {
            Some(cause) => info!("{}: closed ({})", msg.id, Clipped(cause)),
            None => info!("{}: closed", msg.id),
        }
        let cause = Arc::from(msg.cause.as_deref().unwrap_or(DISCONNECTED));
        entry.addr.do_send(Stop { cause });
    }
}

/// Close every connection, e.g. at shutdown.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll {
    pub cause: String,
}

impl Handler<CloseAll> for ManagerActor {
    type Result = usize;

    fn handle(&mut self, msg: CloseAll, ctx: &mut Self::Context) -> usize {
        let ids: Vec<_> = self.live.keys().copied().collect();
        for id in &ids {
            let cause = Some(msg.cause.clone());
            <Self as Handler<Close>>::handle(self, Close { id: *id, cause }, ctx);
        }
        ids.len()
    }
}

/// Send one request to an app and get a [`PendingReply`] for its answer.
///
/// Answers at once: with `NoConnection` when no app is registered (SPEC R1),
/// else with the pending reply, while the chosen connection stamps the
/// request's id on it and queues it. Refusals from the connection (limits)
/// arrive through the pending reply.
#[derive(Debug)]
pub struct Send {
    request: ResponseType,
    route: Route,
    deadline: Option<Instant>,
}

/// How a `Send` picks its connection.
#[derive(Debug)]
enum Route {
    /// The newest live connection (SPEC R2).
    Newest,
    /// The newest that hosts this type, else the newest (SPEC R13).
    Type(String),
    /// Like `Type`, with the type the request itself carries (no copy of it).
    OwnType,
}

impl Send {
    /// A raw send of `request` (any variant but `initial_response`) to the
    /// newest live connection; its `id` field is overwritten.
    pub fn new(request: ResponseType) -> Self {
        Send {
            request,
            route: Route::Newest,
            deadline: None,
        }
    }

    /// A typed send: route by the actor type `request` carries (SPEC R13).
    pub fn typed(request: ResponseType) -> Self {
        Send {
            route: Route::OwnType,
            ..Send::new(request)
        }
    }

    /// Route to the newest connection that hosts `actor_type` (SPEC R13).
    pub fn for_type(mut self, actor_type: impl Into<String>) -> Self {
        self.route = Route::Type(actor_type.into());
        self
    }

    fn actor_type(&self) -> Option<&str> {
        match &self.route {
            Route::Newest => None,
            Route::Type(t) => Some(t),
            Route::OwnType => match &self.request {
                ResponseType::InvokeRequest(r) => Some(&r.actor_type),
                ResponseType::ReminderRequest(r) => Some(&r.actor_type),
                ResponseType::TimerRequest(r) => Some(&r.actor_type),
                ResponseType::DeactivateRequest(r) => Some(&r.actor_type),
                ResponseType::InitialResponse(_) => None,
            },
        }
    }

    /// Give up (waiting for outbox room or for the reply) at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Give up `timeout` from now.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(deadline_in(timeout))
    }

    /// When the caller gives up, if ever.
    pub fn deadline_at(&self) -> Option<Instant> {
        self.deadline
    }
}

impl Message for Send {
    type Result = Result<PendingReply, Error>;
}

impl Handler<Send> for ManagerActor {
    type Result = MessageResult<Send>;

    fn handle(&mut self, msg: Send, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.dispatch(msg))
    }
}

impl ManagerActor {
    /// Routes one request and hands it to its connection (SPEC R1, R2, R13).
    fn dispatch(&mut self, msg: Send) -> Result<PendingReply, Error> {
        let entry = self.route(msg.actor_type()).ok_or(Error::NoConnection)?;
        entry.last_request += 1;
        let id = entry.last_request;
        let (reply, rx) = oneshot::channel();
        entry.addr.do_send(Dispatch {
            id,
            request: msg.request,
            reply,
        });
        let connection = entry.addr.downgrade();
        Ok(PendingReply::new(id, rx, msg.deadline, connection))
    }
}

/// A `Send` in a granted turn, from the actor runtime's table on this
/// thread: the manager hands the turn and the pending reply (or why not)
/// straight to the caller, so the grant costs no task and no answer
/// channel of its own on the way.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendInTurn {
    pub send: Send,
    pub turn: Turn,
    pub grant: oneshot::Sender<Granted>,
}

impl Handler<SendInTurn> for ManagerActor {
    type Result = ();

    fn handle(&mut self, msg: SendInTurn, _: &mut Self::Context) {
        let sent = self.dispatch(msg.send);
        // A caller that is gone drops both: the turn is released and the
        // request forgotten.
        let _ = msg.grant.send(Granted {
            turn: msg.turn,
            sent: Some(sent),
        });
    }
}

/// The registration of the newest live connection, if any (SPEC R2).
#[derive(Message)]
#[rtype(result = "Option<Arc<RegistrationConfig>>")]
pub struct CurrentConfig;

impl Handler<CurrentConfig> for ManagerActor {
    type Result = Option<Arc<RegistrationConfig>>;

    fn handle(&mut self, _: CurrentConfig, _: &mut Self::Context) -> Self::Result {
        self.live.values().next_back().map(|e| e.config.clone())
    }
}

/// Whether any connection is live.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsConnected;

impl Handler<IsConnected> for ManagerActor {
    type Result = bool;

    fn handle(&mut self, _: IsConnected, _: &mut Self::Context) -> bool {
        !self.live.is_empty()
    }
}

/// A summary of the registry, for metadata and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryView {
    /// Live connections, oldest first.
    pub connections: Vec<ConnectionId>,
    /// Every actor type some live connection hosts, sorted, no repeats.
    pub actor_types: Vec<String>,
}

/// Ask for a [`RegistryView`].
#[derive(Message)]
#[rtype(result = "RegistryView")]
pub struct Describe;

impl Handler<Describe> for ManagerActor {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Self::Context) -> Self::Result {
        let mut actor_types: Vec<String> = self.by_type.keys().cloned().collect();
        actor_types.sort();
        MessageResult(RegistryView {
            connections: self.live.keys().copied().collect(),
            actor_types,
        })
    }
}

/// How many requests wait for a reply across all live connections (R10
/// checks, metrics). Asks each connection, so it is for tests and
/// diagnostics, not the hot path.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountPending;

impl Handler<CountPending> for ManagerActor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: CountPending, _: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self.live.values().map(|e| e.addr.send(Stats)).collect();
        Box::pin(async move {
            let stats = futures::future::join_all(asks).await;
            stats.into_iter().flatten().map(|s| s.pending).sum()
        })
    }
}
