//! A connection's outbox: the bounded FIFO between its actor, which puts
//! requests in, and the stream's writer, which takes them out to the app.
//!
//! Why not a tokio mpsc channel: a bounded one costs about 0.8 KiB before
//! its first message (its halves are padded to cache lines for the sake of
//! many producers, and it allocates a 32-slot block up front), and every
//! app stream keeps one for life, mostly idle. This queue has exactly one
//! producer and one consumer, usually on the same thread, so a mutex over a
//! `VecDeque` is as fast, and it costs about 0.1 KiB until it is used
//! (docs/performance.md, "Memory").
//!
//! Closing works from either end: when the sender (the actor) goes, the
//! writer drains what is left and then sees the end; when the receiver (the
//! writer) goes, what is left is dropped and every later send is refused.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::Outgoing;

/// What the outbox carries: boxed, so an idle queue's slots are a pointer
/// each, not the size of the largest request variant.
pub type Message = Box<Outgoing>;

/// An outbox of `capacity` messages (at least one).
pub(crate) fn outbox(capacity: usize) -> (OutboxSender, Outbox) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State::default()),
    });
    (
        OutboxSender {
            shared: shared.clone(),
        },
        Outbox { shared },
    )
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    sender_gone: bool,
    receiver_gone: bool,
    /// The writer, waiting for a message.
    reader: Option<Waker>,
    /// The actor, waiting for a free slot (it waits with at most one future).
    room: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under this lock but an allocation,
        // and a failed allocation aborts; a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a message did not go in.
#[derive(Debug)]
pub(crate) enum TrySendError {
    /// The queue is full; the message comes back, to wait for room.
    Full(Message),
    /// The writer is gone; the message is dropped.
    Closed,
}

/// The actor's end. Dropping it ends the outbox for the writer.
pub(crate) struct OutboxSender {
    shared: Arc<Shared>,
}

impl OutboxSender {
    /// Puts `msg` at the back of the queue, unless it is full or the writer
    /// is gone.
    pub(crate) fn try_send(&self, msg: Message) -> Result<(), TrySendError> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(TrySendError::Closed);
        }
        if state.queue.len() >= self.shared.capacity {
            return Err(TrySendError::Full(msg));
        }
        state.queue.push_back(msg);
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
        Ok(())
    }

    /// Resolves once the queue has a free slot (`true`) or the writer is
    /// gone (`false`). It does not hold the slot: the caller, being the only
    /// sender, fills it right after.
    pub(crate) fn room(&self) -> impl Future<Output = bool> + 'static {
        let shared = self.shared.clone();
        poll_fn(move |cx: &mut Context<'_>| {
            let mut state = shared.lock();
            if state.receiver_gone {
                Poll::Ready(false)
            } else if state.queue.len() < shared.capacity {
                Poll::Ready(true)
            } else {
                set_waker(&mut state.room, cx);
                Poll::Pending
            }
        })
    }
}

impl Drop for OutboxSender {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.sender_gone = true;
        let reader = state.reader.take();
        drop(state);
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// The writer's end: the requests on their way to the app, oldest first.
/// Ends (`None`) once the connection has closed and the queue is drained.
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// The next message, waiting for one if the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let mut state = self.shared.lock();
        if let Some(msg) = state.queue.pop_front() {
            return Poll::Ready(Some(freed_a_slot(state, msg)));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        set_waker(&mut state.reader, cx);
        Poll::Pending
    }

    /// The next message; `None` once the outbox has ended.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        let mut state = self.shared.lock();
        let msg = state.queue.pop_front()?;
        Some(freed_a_slot(state, msg))
    }

    /// [`Outbox::recv`] for a thread that is not running async code.
    pub fn blocking_recv(&mut self) -> Option<Message> {
        futures::executor::block_on(self.recv())
    }
}

/// A message was just taken out: wake the actor if it waits for room
/// (after letting go of the lock), and pass the message on.
fn freed_a_slot(mut state: MutexGuard<'_, State>, msg: Message) -> Message {
    let room = state.room.take();
    drop(state);
    if let Some(room) = room {
        room.wake();
    }
    msg
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        let unsent = std::mem::take(&mut state.queue);
        let room = state.room.take();
        drop(state);
        if let Some(room) = room {
            room.wake();
        }
        drop(unsent);
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Outbox")
            .field("queued", &state.queue.len())
            .field("capacity", &self.shared.capacity)
            .field("ended", &state.sender_gone)
            .finish()
    }
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::SubscribeActorEventsResponseDeactivateRequestAlpha1 as Deactivate;
    use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
    use std::time::Duration;

    fn msg(id: &str) -> Message {
        Box::new(Outgoing {
            response_type: Some(ResponseType::DeactivateRequest(Deactivate {
                id: id.into(),
                ..Default::default()
            })),
        })
    }

    fn id_of(m: &Message) -> &str {
        match &m.response_type {
            Some(ResponseType::DeactivateRequest(d)) => &d.id,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn holds_capacity_messages_in_order_then_refuses_with_the_message() {
        let (tx, mut rx) = outbox(2);
        tx.try_send(msg("1")).unwrap();
        tx.try_send(msg("2")).unwrap();
        match tx.try_send(msg("3")) {
            Err(TrySendError::Full(m)) => assert_eq!(id_of(&m), "3"),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(id_of(&rx.try_recv().unwrap()), "1");
        tx.try_send(msg("3")).unwrap();
        assert_eq!(id_of(&rx.try_recv().unwrap()), "2");
        assert_eq!(id_of(&rx.try_recv().unwrap()), "3");
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn a_dropped_sender_ends_the_outbox_after_what_it_holds() {
        let (tx, mut rx) = outbox(4);
        tx.try_send(msg("1")).unwrap();
        drop(tx);
        assert_eq!(id_of(&rx.blocking_recv().unwrap()), "1");
        assert!(rx.blocking_recv().is_none());
    }

    #[tokio::test]
    async fn a_dropped_receiver_refuses_sends_and_ends_the_wait_for_room() {
        let (tx, rx) = outbox(1);
        tx.try_send(msg("1")).unwrap();
        let room = tokio::spawn(tx.room());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!room.is_finished(), "a full outbox has no room");
        drop(rx);
        assert!(!room.await.unwrap(), "no room once the writer is gone");
        assert!(matches!(tx.try_send(msg("2")), Err(TrySendError::Closed)));
    }

    #[tokio::test]
    async fn a_send_wakes_the_waiting_reader_and_a_read_wakes_the_waiting_sender() {
        let (tx, mut rx) = outbox(1);
        let reader = tokio::spawn(async move {
            let first = rx.recv().await.map(|m| id_of(&m).to_owned());
            (first, rx)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.try_send(msg("1")).unwrap();
        let (first, mut rx) = reader.await.unwrap();
        assert_eq!(first.as_deref(), Some("1"));

        tx.try_send(msg("2")).unwrap();
        let room = tokio::spawn(tx.room());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!room.is_finished(), "a full outbox has no room");
        assert_eq!(id_of(&rx.recv().await.unwrap()), "2");
        assert!(room.await.unwrap(), "reading frees a slot");
    }
}
