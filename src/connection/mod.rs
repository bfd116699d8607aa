//! One registered app stream, as an actor: `ConnectionActor` owns the stream's
//! bounded outbox and the table of requests waiting for the app's reply.
//!
//! Nobody else touches that state: the manager hands it requests (`Dispatch`),
//! the app's messages come from the stream it reads itself (`Listen`) or one
//! by one (`Deliver`), a caller that gives up says so (`Forget`), and the
//! manager ends it (`Stop`). Because one actor serialises all of them, "a
//! reply finds its caller" needs no locks.
//!
//! A request's life here: `Dispatch` stamps the id the manager gave it, parks
//! its oneshot sender under that id and puts the message in the outbox (or, when the outbox is
//! full, in a FIFO of messages waiting for room). A reply removes the entry
//! whose id it echoes and completes the oneshot. The caller holds the
//! receiving half as a [`PendingReply`]. The app's side (how its messages
//! reach the actor, and how a reply is matched) is in `inbound.rs`, the
//! outbox itself in `outbox.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use log::debug;
use prost::Message as _;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::log_throttle::LogThrottle;
use crate::manager::Closer;
use crate::metrics::{self, CallKind, CallOutcome, CallTimer};
pub use crate::pending::PendingReply;
use crate::proto::SubscribeActorEventsResponseAlpha1;
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;

mod inbound;
mod outbox;

pub(crate) use inbound::Received;
pub use inbound::{Deliver, Inbound};
pub use outbox::Outbox;
use outbox::{OutboxSender, TrySendError};

/// A message the sidecar sends down an app stream.
pub type Outgoing = SubscribeActorEventsResponseAlpha1;

/// What the app answered to one request: any `request_type` but `initial_request`.
pub type Reply = RequestType;

/// Identifies one registration; ids grow with registration order, so "newest"
/// is simply "largest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Per-connection limits, the same for every connection of a manager.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionOptions {
    /// Messages the outbox holds before senders wait (SPEC R11).
    pub outbox_capacity: usize,
    /// Requests (sent or waiting for room) one connection may hold unanswered.
    pub max_pending: usize,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            outbox_capacity: 128,
            max_pending: 16_384,
        }
    }
}

/// The actor behind one app stream. Created by the manager on `Register`.
pub struct ConnectionActor {
    id: ConnectionId,
    /// Requests this connection may hold unanswered (`ConnectionOptions`).
    max_pending: usize,
    /// The stream's message limit: a request the stream could not carry is
    /// refused here, because writing it would end the stream for everyone.
    max_message_bytes: Option<usize>,
    /// The outbox's only sender: when this actor stops it is dropped, and
    /// that is what ends the stream's writer.
    outbox: OutboxSender,
    /// The highest request id seen; the manager numbers a connection's
    /// requests `1, 2, 3...` and never reuses one, so an id at or below it
    /// that is not pending is a late reply, anything else a stranger.
    last_id: u64,
    /// Keyed by our own sequential ids (never by anything the app chose), so
    /// a fast non-DoS-resistant hash is safe here.
    pending: FxHashMap<u64, Waiter>,
    /// Ids whose message is still waiting for outbox room, oldest first.
    /// Invariant: every id here has a `pending` entry holding its message.
    queued: VecDeque<u64>,
    /// Whether a future waiting for outbox room is running (at most one).
    awaiting_room: bool,
    /// Warnings about strays (unknown ids, empty or repeated handshakes).
    /// Made on the first stray: most connections never see one, and the
    /// actor's size counts (see `the_actor_task_fits_640_bytes`).
    strays: Option<Box<LogThrottle>>,
    /// Held once the actor reads its app's stream itself (`Listen`); dropped
    /// when that stream ends, which closes the connection through the manager.
    closer: Option<Closer>,
}

struct Waiter {
    reply: oneshot::Sender<Result<Reply, Error>>,
    /// The message, while it waits for outbox room.
    unsent: Option<Box<Outgoing>>,
    /// `Some` while metrics are on.
    timer: Option<CallTimer>,
}

impl Waiter {
    /// Completes the caller's reply slot and records how the call ended.
    fn settle(self, result: Result<Reply, Error>, outcome: CallOutcome) {
        if let Some(timer) = self.timer {
            timer.finish(outcome);
        }
        // The caller may have just given up; then nobody needs the answer.
        let _ = self.reply.send(result);
    }
}

impl ConnectionActor {
    pub(crate) fn new(
        id: ConnectionId,
        options: ConnectionOptions,
        max_message_bytes: Option<usize>,
    ) -> (Self, Outbox) {
        let (outbox, rx) = outbox::outbox(options.outbox_capacity);
        let actor = ConnectionActor {
            id,
            max_pending: options.max_pending,
            max_message_bytes,
            outbox,
            last_id: 0,
            pending: FxHashMap::default(),
            queued: VecDeque::new(),
            awaiting_room: false,
            strays: None,
            closer: None,
        };
        (actor, rx)
    }

    /// Puts `msg` in the outbox, or returns it when it has to wait for room.
    /// Messages never overtake each other: once one waits, all later ones do.
    fn offer(&mut self, msg: Box<Outgoing>) -> Result<Option<Box<Outgoing>>, Error> {
        if !self.queued.is_empty() {
            return Ok(Some(msg));
        }
        match self.outbox.try_send(msg) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(msg)) => Ok(Some(msg)),
            Err(TrySendError::Closed) => Err(Error::disconnected()),
        }
    }

    /// Starts (at most one) future that waits for outbox room, then moves the
    /// oldest waiting messages into the outbox.
    fn await_room(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_room {
            return;
        }
        self.awaiting_room = true;
        ctx.spawn(self.outbox.room().into_actor(self).map(|open, act, ctx| {
            act.awaiting_room = false;
            // A closed outbox means the stream writer is gone; the stream
            // handler is about to Close us, which fails the waiters.
            if open {
                act.flush_queued(ctx);
            }
        }));
    }

    fn flush_queued(&mut self, ctx: &mut Context<Self>) {
        while let Some(&id) = self.queued.front() {
            let msg = self
                .pending
                .get_mut(&id)
                .and_then(|w| w.unsent.take())
                .expect("queued ids have a pending entry holding their message");
            match self.outbox.try_send(msg) {
                Ok(()) => {
                    self.queued.pop_front();
                }
                Err(TrySendError::Full(msg)) => {
                    self.pending.get_mut(&id).expect("checked above").unsent = Some(msg);
                    self.await_room(ctx);
                    return;
                }
                Err(TrySendError::Closed) => return,
            }
        }
    }

    fn fail_all(&mut self, cause: &Arc<str>) {
        self.queued.clear();
        for (_, w) in self.pending.drain() {
            let cause = cause.clone();
            w.settle(
                Err(Error::Disconnected { cause }),
                CallOutcome::disconnected,
            );
        }
    }
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Dispatch and Forget arrive from many callers at once (and Deliver,
        // for library users); a roomier mailbox means fewer of them park on it.
        ctx.set_mailbox_capacity(1024);
        debug!("{}: registered", self.id);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Normally `Stop` already failed everything; this covers an actor
        // stopped any other way, so no caller waits for a reply that cannot come.
        self.fail_all(&Arc::from(crate::error::DISCONNECTED));
        debug!("{}: closed", self.id);
    }
}

/// Hand a request to this connection: stamp its id on it, park its reply
/// slot and queue it for the app. Any refusal goes to the reply slot too.
///
/// Sent with `do_send`, which ignores mailbox capacity. The backlog is
/// bounded by the callers all the same: a caller has one `Send` in flight,
/// the manager answers each at once, and when the manager and the connection
/// share an actor thread (always with one thread; with more, for the first
/// app to connect, which lands beside the manager) their mailboxes are
/// drained in turn; so what waits here is at most about one manager batch of
/// Dispatch/Forget pairs, and `max_pending` caps what a connection keeps once
/// it has read them. A connection on another thread than the manager's is
/// bounded only by that thread keeping up with the manager's (see
/// docs/reliability.md).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Dispatch {
    /// Numbered by the manager, per connection, in the order it routes.
    pub id: u64,
    pub request: ResponseType,
    pub reply: oneshot::Sender<Result<Reply, Error>>,
}

impl Handler<Dispatch> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, ctx: &mut Self::Context) {
        self.last_id = self.last_id.max(msg.id);
        let timer = call_kind(&msg.request).and_then(CallTimer::start);
        match self.admit(msg.id, msg.request, ctx) {
            Ok(unsent) => {
                let waiter = Waiter {
                    reply: msg.reply,
                    unsent,
                    timer,
                };
                self.pending.insert(msg.id, waiter);
            }
            Err(e) => {
                if let Some(timer) = timer {
                    timer.finish(CallOutcome::refused);
                }
                let _ = msg.reply.send(Err(e));
            }
        }
    }
}

impl ConnectionActor {
    /// Checks a request against this stream's limits, stamps `id` on it and
    /// offers it to the outbox; returns it if it has to wait for room.
    fn admit(
        &mut self,
        id: u64,
        mut request: ResponseType,
        ctx: &mut Context<Self>,
    ) -> Result<Option<Box<Outgoing>>, Error> {
        if self.pending.len() >= self.max_pending {
            return Err(Error::TooManyPending {
                limit: self.max_pending,
            });
        }
        stamp_id(&mut request, itoa::Buffer::new().format(id).to_owned())?;
        // Boxed: the outbox's slots are then a pointer each, not the size of
        // the largest request variant (which made even an idle outbox ~8 KiB).
        let outgoing = Box::new(Outgoing {
            response_type: Some(request),
        });
        if let Some(limit) = self.max_message_bytes {
            let size = outgoing.encoded_len();
            if size > limit {
                return Err(Error::MessageTooLarge { size, limit });
            }
        }
        let unsent = self.offer(outgoing)?;
        if unsent.is_some() {
            self.queued.push_back(id);
            self.await_room(ctx);
            if let Some(m) = metrics::get() {
                m.outbox_wait();
            }
        }
        Ok(unsent)
    }
}

/// A caller gave up on request `id` (its future was dropped or its deadline
/// passed): forget it, so no entry outlives its caller (SPEC R10).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Forget {
    pub id: u64,
}

impl Handler<Forget> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, Forget { id }: Forget, _: &mut Self::Context) {
        if let Some(mut w) = self.pending.remove(&id) {
            if w.unsent.is_some() {
                self.queued.retain(|&q| q != id);
            }
            if let Some(timer) = w.timer.take() {
                timer.finish(CallOutcome::abandoned);
            }
        }
    }
}

/// End this connection: fail everything pending with `cause` and stop.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stop {
    pub cause: Arc<str>,
}

impl Handler<Stop> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, Stop { cause }: Stop, ctx: &mut Self::Context) {
        self.fail_all(&cause);
        ctx.stop();
    }
}

/// How much a connection holds right now, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Requests waiting for a reply, including those waiting for outbox room.
    pub pending: usize,
    /// Of those, how many wait for outbox room.
    pub queued: usize,
}

/// Ask a connection how much it holds.
#[derive(Message)]
#[rtype(result = "ConnectionStats")]
pub struct Stats;

impl Handler<Stats> for ConnectionActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(ConnectionStats {
            pending: self.pending.len(),
            queued: self.queued.len(),
        })
    }
}

/// The kind a call is counted under; `None` for what is not a call (an
/// initial response, which `stamp_id` refuses).
fn call_kind(request: &ResponseType) -> Option<CallKind> {
    match request {
        ResponseType::InvokeRequest(_) => Some(CallKind::invoke),
        ResponseType::ReminderRequest(_) => Some(CallKind::reminder),
        ResponseType::TimerRequest(_) => Some(CallKind::timer),
        ResponseType::DeactivateRequest(_) => Some(CallKind::deactivate),
        ResponseType::InitialResponse(_) => None,
    }
}

fn stamp_id(request: &mut ResponseType, id: String) -> Result<(), Error> {
    let slot = match request {
        ResponseType::InvokeRequest(r) => &mut r.id,
        ResponseType::ReminderRequest(r) => &mut r.id,
        ResponseType::TimerRequest(r) => &mut r.id,
        ResponseType::DeactivateRequest(r) => &mut r.id,
        ResponseType::InitialResponse(_) => {
            return Err(Error::Protocol(
                "initial_response is the handshake, not a request".into(),
            ));
        }
    };
    *slot = id;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every app stream keeps its connection actor's task for life, and
    /// tokio allocates task cells in 128-byte steps (it aligns them to 128
    /// bytes on x86_64). The actor's context future (504 bytes) plus the
    /// cell's own ~100 fit 640. Past about 536 every idle stream would cost
    /// 768, so growing past 528 should be a decision, made here, not an
    /// accident (docs/performance.md, "Memory").
    #[test]
    fn the_actor_task_fits_640_bytes() {
        let context = std::mem::size_of::<
            actix::dev::ContextFut<ConnectionActor, Context<ConnectionActor>>,
        >();
        assert!(context <= 528, "{context}");
    }
}
