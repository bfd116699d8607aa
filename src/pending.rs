//! The caller's side of one request: a future for the app's answer that,
//! if the caller gives up first (drops it, or its deadline passes), tells the
//! connection to forget the request, so no entry outlives its caller (R10).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::WeakAddr;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::connection::{ConnectionActor, Forget, Reply};
use crate::error::Error;

/// The caller's side of one request: resolves to the app's reply, to
/// `Disconnected` when the connection closes first, or to `DeadlineExceeded`.
///
/// Dropping it before it resolves tells the connection to forget the request,
/// so a caller that gives up leaves nothing behind.
pub struct PendingReply {
    id: u64,
    rx: oneshot::Receiver<Result<Reply, Error>>,
    deadline: Option<Instant>,
    /// Created on first poll, on the caller's runtime rather than the actor's.
    timer: Option<Pin<Box<Sleep>>>,
    /// `Some` until the request is settled; then dropping is a no-op.
    connection: Option<WeakAddr<ConnectionActor>>,
}

impl PendingReply {
    pub(crate) fn new(
        id: u64,
        rx: oneshot::Receiver<Result<Reply, Error>>,
        deadline: Option<Instant>,
        connection: WeakAddr<ConnectionActor>,
    ) -> Self {
        PendingReply {
            id,
            rx,
            deadline,
            timer: None,
            connection: Some(connection),
        }
    }

    /// The id stamped on the request, as the app sees it.
    pub fn id(&self) -> String {
        self.id.to_string()
    }

    fn forget(&mut self) {
        if let Some(addr) = self.connection.take().and_then(|w| w.upgrade()) {
            // One message per abandoned request, and only while the
            // connection lives: bounded by the callers, so do_send is fine.
            addr.do_send(Forget { id: self.id });
        }
    }
}

impl Future for PendingReply {
    type Output = Result<Reply, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(res) = Pin::new(&mut this.rx).poll(cx) {
            this.connection = None;
            // The sender only vanishes without a word if the actor was torn
            // down with its whole system.
            return Poll::Ready(res.unwrap_or_else(|_| Err(Error::disconnected())));
        }
        if let Some(deadline) = this.deadline {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.as_mut().poll(cx).is_ready() {
                this.forget();
                return Poll::Ready(Err(Error::DeadlineExceeded));
            }
        }
        Poll::Pending
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        self.forget();
    }
}

impl std::fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReply")
            .field("id", &self.id)
            .finish()
    }
}

/// A deadline `timeout` from now, saturating instead of overflowing.
pub(crate) fn deadline_in(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
}
