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
//! receiving half as a [`PendingReply`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use log::debug;
use prost::Message as _;
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::log_throttle::LogThrottle;
use crate::manager::Closer;
pub use crate::pending::PendingReply;
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::proto::{SubscribeActorEventsRequestAlpha1, SubscribeActorEventsResponseAlpha1};

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
    options: ConnectionOptions,
    /// The stream's message limit: a request the stream could not carry is
    /// refused here, because writing it would end the stream for everyone.
    max_message_bytes: Option<usize>,
    /// The only long-lived sender of the outbox: when this actor stops the
    /// outbox closes, and that is what ends the stream's writer.
    outbox: mpsc::Sender<Box<Outgoing>>,
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
    strays: LogThrottle,
    /// Held once the actor reads its app's stream itself (`Listen`); dropped
    /// when that stream ends, which closes the connection through the manager.
    closer: Option<Closer>,
}

struct Waiter {
    reply: oneshot::Sender<Result<Reply, Error>>,
    /// The message, while it waits for outbox room.
    unsent: Option<Box<Outgoing>>,
}

impl ConnectionActor {
    pub(crate) fn new(
        id: ConnectionId,
        options: ConnectionOptions,
        max_message_bytes: Option<usize>,
    ) -> (Self, mpsc::Receiver<Box<Outgoing>>) {
        let (outbox, rx) = mpsc::channel(options.outbox_capacity.max(1));
        let actor = ConnectionActor {
            id,
            options,
            max_message_bytes,
            outbox,
            last_id: 0,
            pending: FxHashMap::default(),
            queued: VecDeque::new(),
            awaiting_room: false,
            strays: LogThrottle::new(Duration::from_secs(1)),
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
            Err(mpsc::error::TrySendError::Full(msg)) => Ok(Some(msg)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::disconnected()),
        }
    }

    /// Starts (at most one) future that waits for outbox room, then moves the
    /// oldest waiting messages into the outbox.
    fn await_room(&mut self, ctx: &mut Context<Self>) {
        if self.awaiting_room {
            return;
        }
        self.awaiting_room = true;
        let outbox = self.outbox.clone();
        ctx.spawn(
            outbox
                .reserve_owned()
                .into_actor(self)
                .map(|permit, act, ctx| {
                    act.awaiting_room = false;
                    // A closed outbox means the stream writer is gone; the stream
                    // handler is about to Close us, which fails the waiters.
                    if let Ok(permit) = permit {
                        act.flush_queued(permit, ctx);
                    }
                }),
        );
    }

    fn flush_queued(&mut self, permit: mpsc::OwnedPermit<Box<Outgoing>>, ctx: &mut Context<Self>) {
        let mut permit = Some(permit);
        while let Some(&id) = self.queued.front() {
            let msg = self
                .pending
                .get_mut(&id)
                .and_then(|w| w.unsent.take())
                .expect("queued ids have a pending entry holding their message");
            let sent = match permit.take() {
                Some(p) => {
                    p.send(msg);
                    Ok(())
                }
                None => self.outbox.try_send(msg),
            };
            match sent {
                Ok(()) => {
                    self.queued.pop_front();
                }
                Err(mpsc::error::TrySendError::Full(msg)) => {
                    self.pending.get_mut(&id).expect("checked above").unsent = Some(msg);
                    self.await_room(ctx);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }

    fn fail_all(&mut self, cause: &Arc<str>) {
        self.queued.clear();
        for (_, w) in self.pending.drain() {
            let _ = w.reply.send(Err(Error::Disconnected {
                cause: cause.clone(),
            }));
        }
    }

    /// Whether `id` is one we issued and is no longer waiting: a reply that
    /// comes after its caller gave up (or a duplicate), which is expected and
    /// not worth a warning.
    fn was_issued(&self, id: &str) -> bool {
        parse_id(id).is_some_and(|n| n <= self.last_id)
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
/// share an actor thread (the default: one thread) their mailboxes are
/// drained in turn; so what waits here is at most about one manager batch of
/// Dispatch/Forget pairs, and `max_pending` caps what a connection keeps once
/// it has read them. A connection on another thread (`--threads` > 1) is
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
        match self.admit(msg.id, msg.request, ctx) {
            Ok(unsent) => {
                self.pending.insert(
                    msg.id,
                    Waiter {
                        reply: msg.reply,
                        unsent,
                    },
                );
            }
            Err(e) => {
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
        if self.pending.len() >= self.options.max_pending {
            return Err(Error::TooManyPending {
                limit: self.options.max_pending,
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
        }
        Ok(unsent)
    }
}

/// A message the app sent on its stream, after the handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub SubscribeActorEventsRequestAlpha1);

impl Handler<Deliver> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, Deliver(msg): Deliver, _: &mut Self::Context) {
        self.receive(msg);
    }
}

/// From now on, read the app's messages straight from its stream.
///
/// This is how the gRPC service feeds a connection: the actor polls the
/// stream in its own task, so a reply reaches its caller with no reader task
/// and no mailbox hop in between, and a stream costs one task less. An `Err`
/// item is the stream's failure, told to the callers still waiting; when the
/// stream ends, however it ends, `closer` is dropped, which closes the
/// connection (the manager takes it out of the registry, then stops it).
pub(crate) struct Listen<S> {
    pub messages: S,
    pub closer: Closer,
}

impl<S> Message for Listen<S> {
    type Result = ();
}

/// What a listened-to stream yields: an app message, or why the stream failed.
pub type Received = Result<SubscribeActorEventsRequestAlpha1, String>;

impl<S> Handler<Listen<S>> for ConnectionActor
where
    S: futures::Stream<Item = Received> + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: Listen<S>, ctx: &mut Self::Context) {
        self.closer = Some(msg.closer);
        ctx.add_stream(msg.messages);
    }
}

impl StreamHandler<Received> for ConnectionActor {
    fn handle(&mut self, item: Received, _: &mut Self::Context) {
        match item {
            Ok(msg) => self.receive(msg),
            Err(cause) => {
                if let Some(closer) = &mut self.closer {
                    closer.set_cause(cause);
                }
            }
        }
    }

    /// Not `ctx.stop()` (the default): the manager must drop us from the
    /// registry first, or it would keep routing sends to a stopped actor.
    fn finished(&mut self, _: &mut Self::Context) {
        self.closer = None;
    }
}

impl ConnectionActor {
    /// One message from the app: a reply completes its caller's oneshot.
    fn receive(&mut self, msg: SubscribeActorEventsRequestAlpha1) {
        let conn = self.id;
        let Some(reply) = msg.request_type else {
            self.strays
                .warn(|| format!("{conn}: dropped a message with no request_type"));
            return;
        };
        let Some(id) = reply_id(&reply) else {
            self.strays
                .warn(|| format!("{conn}: dropped a repeated initial_request"));
            return;
        };
        // Only a request that actually went out can be answered; an id that
        // is still waiting for outbox room was guessed, not echoed.
        let waiter = parse_id(id).and_then(|n| match self.pending.get(&n) {
            Some(w) if w.unsent.is_none() => self.pending.remove(&n),
            _ => None,
        });
        match waiter {
            Some(w) => {
                // The caller may have just given up; then nobody needs the reply.
                let _ = w.reply.send(Ok(reply));
            }
            None if self.was_issued(id) => {
                debug!("{}: dropped a late reply for id {id:?}", self.id)
            }
            None => self
                .strays
                .warn(|| format!("{conn}: dropped a reply with unknown id {id:?}")),
        }
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
        if let Some(w) = self.pending.remove(&id)
            && w.unsent.is_some()
        {
            self.queued.retain(|&q| q != id);
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

/// Hands the app's messages to its connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Inbound(Addr<ConnectionActor>);

impl Inbound {
    pub(crate) fn new(connection: Addr<ConnectionActor>) -> Self {
        Inbound(connection)
    }

    /// Deliver one message from the app. Waits only when the connection's
    /// mailbox is full, which slows the reader instead of growing a queue.
    pub async fn deliver(&self, msg: SubscribeActorEventsRequestAlpha1) -> Result<(), Error> {
        match self.0.try_send(Deliver(msg)) {
            Ok(()) => Ok(()),
            Err(SendError::Full(msg)) => self.0.send(msg).await.map_err(|_| Error::disconnected()),
            Err(SendError::Closed(_)) => Err(Error::disconnected()),
        }
    }

    /// Hand the app's stream to the connection, which reads it from then on
    /// (see [`Listen`]). If the connection is gone already, `closer` is
    /// dropped here, which is harmless: closing is idempotent.
    pub(crate) fn listen<S>(&self, messages: S, closer: Closer)
    where
        S: futures::Stream<Item = Received> + std::marker::Send + 'static,
    {
        self.0.do_send(Listen { messages, closer });
    }

    /// How much the connection holds right now.
    pub async fn stats(&self) -> ConnectionStats {
        // A stopped connection holds nothing.
        self.0.send(Stats).await.unwrap_or_default()
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

fn reply_id(reply: &Reply) -> Option<&str> {
    match reply {
        RequestType::InitialRequest(_) => None,
        RequestType::InvokeResponse(r) => Some(&r.id),
        RequestType::ReminderResponse(r) | RequestType::TimerResponse(r) => Some(&r.id),
        RequestType::DeactivateResponse(r) => Some(&r.id),
        RequestType::RequestFailed(r) => Some(&r.id),
    }
}

/// Our ids are canonical decimals; anything else ("007", "+7", " 7") cannot
/// be one we issued, so it is rejected rather than normalised.
fn parse_id(id: &str) -> Option<u64> {
    let canonical = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (id == "0" || !id.starts_with('0'));
    if canonical { id.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn only_canonical_decimal_ids_parse() {
        assert_eq!(parse_id("17"), Some(17));
        for bad in [
            "",
            "017",
            "+17",
            " 17",
            "17 ",
            "1e3",
            "18446744073709551616",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
