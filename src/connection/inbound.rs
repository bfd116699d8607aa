//! The app's side of a connection: how its messages reach the
//! `ConnectionActor` and how a reply finds the caller waiting for it.
//!
//! Two ways in: the gRPC service hands the actor the stream itself
//! (`Listen`), and the actor polls it in its own task; a library user
//! without a stream sends messages one by one (`Deliver`, through
//! [`Inbound`]). Both end in `receive`, which matches a reply to its
//! request by the id the app echoes, and by nothing else.

use std::time::Duration;

use actix::prelude::*;
use log::debug;

use super::{ConnectionActor, ConnectionStats, Reply, Stats};
use crate::clip::Clipped;
use crate::error::Error;
use crate::log_throttle::LogThrottle;
use crate::manager::Closer;
use crate::metrics::CallOutcome;
use crate::proto::SubscribeActorEventsRequestAlpha1;
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;

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
pub(crate) type Received = Result<SubscribeActorEventsRequestAlpha1, String>;

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
            self.warn_stray(|| format!("{conn}: dropped a message with no request_type"));
            return;
        };
        let Some(id) = reply_id(&reply) else {
            self.warn_stray(|| format!("{conn}: dropped a repeated initial_request"));
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
                let outcome = match reply {
                    RequestType::RequestFailed(_) => CallOutcome::failed,
                    _ => CallOutcome::ok,
                };
                w.settle(Ok(reply), outcome);
            }
            None if self.was_issued(id) => {
                debug!("{}: dropped a late reply for id {}", self.id, Clipped(id))
            }
            None => self
                .warn_stray(|| format!("{conn}: dropped a reply with unknown id {}", Clipped(id))),
        }
    }

    /// At most one warning a second about strays, with the count of the rest.
    fn warn_stray(&mut self, message: impl FnOnce() -> String) {
        self.strays
            .get_or_insert_with(|| Box::new(LogThrottle::new(Duration::from_secs(1))))
            .warn(message);
    }

    /// Whether `id` is one we issued and is no longer waiting: a reply that
    /// comes after its caller gave up (or a duplicate), which is expected and
    /// not worth a warning.
    fn was_issued(&self, id: &str) -> bool {
        parse_id(id).is_some_and(|n| n <= self.last_id)
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
