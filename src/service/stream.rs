//! The `SubscribeActorEventsAlpha1` handler: one app stream from handshake to
//! close (SPEC H1-H5).
//!
//! After the handshake two halves run side by side: the reader (a stream the
//! connection actor polls itself) feeds it every inbound message, and the
//! writer (the response stream tonic polls) drains the connection's outbox.
//! They are tied so that whichever ends first ends the other:
//! - reader ends (half-close, error) -> the connection closes -> the outbox
//!   closes -> the writer finishes, with the reader's error status if any;
//! - writer ends (the connection was closed, or tonic dropped the stream on
//!   cancel) -> the writer's liveness token drops -> the reader ends and
//!   the connection closes (a no-op if it is closed already).
//!
//! Either way the connection is closed exactly when the stream ends, which
//! fails its in-flight requests (R5) and leaves nothing behind.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix::Addr;
use futures::{Stream, ready};
use log::{debug, info, warn};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, Streaming};

use crate::clip::Clipped;
use crate::config::{RegistrationConfig, RegistrationLimits};
use crate::connection::{ConnectionId, Outbox, Outgoing, Received};
use crate::manager::{Connection, ManagerActor, Register};
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::proto::{
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestInitialAlpha1,
    SubscribeActorEventsResponseInitialAlpha1,
};
use crate::service::oversize::is_oversize;

/// SPEC H1's message for a stream that opens with anything else.
pub const FIRST_MESSAGE: &str = "first message must be SubscribeActorEventsRequestInitialAlpha1";

/// What every stream handler shares.
#[derive(Clone)]
pub struct StreamContext {
    pub manager: Addr<ManagerActor>,
    /// How long an app may take to send its `initial_request`.
    pub handshake_timeout: Duration,
    /// The largest message a stream carries either way.
    pub max_message_bytes: usize,
    pub stream_slots: StreamSlots,
    /// How large a registration may be.
    pub registration_limits: RegistrationLimits,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
}

/// Serve one app stream: handshake, register, then run until either side ends.
pub async fn serve(
    ctx: &StreamContext,
    mut inbound: Streaming<SubscribeActorEventsRequestAlpha1>,
) -> Result<Outbound, Status> {
    // Taken before the handshake, so streams that never register count too.
    let slot = ctx.stream_slots.take()?;
    let init = handshake(&mut inbound, ctx.handshake_timeout).await?;
    let config = RegistrationConfig::from_initial(init, &ctx.registration_limits)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let connection = register(ctx, config).await?;
    let Connection {
        id,
        inbound: feed,
        outbox,
        closer,
    } = connection;

    let (end_tx, end_rx) = oneshot::channel();
    feed.listen(
        Reader {
            id,
            live: Some((inbound, end_tx)),
            _slot: slot,
        },
        closer,
    );
    Ok(Outbound {
        acked: false,
        outbox,
        end: end_rx,
    })
}

/// SPEC H1: the first message must be the registration.
async fn handshake(
    inbound: &mut Streaming<SubscribeActorEventsRequestAlpha1>,
    timeout: Duration,
) -> Result<SubscribeActorEventsRequestInitialAlpha1, Status> {
    let first = tokio::time::timeout(timeout, inbound.message())
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "no SubscribeActorEventsRequestInitialAlpha1 within {timeout:?}"
            ))
        })?
        .map_err(inbound_error)?;
    match first.and_then(|m| m.request_type) {
        Some(RequestType::InitialRequest(init)) => Ok(init),
        _ => Err(Status::invalid_argument(FIRST_MESSAGE)),
    }
}

async fn register(ctx: &StreamContext, config: RegistrationConfig) -> Result<Connection, Status> {
    let unavailable = || Status::unavailable("gateway is shutting down");
    if ctx.shutdown.is_cancelled() {
        return Err(unavailable());
    }
    let connection = ctx
        .manager
        .send(Register {
            config,
            max_message_bytes: Some(ctx.max_message_bytes),
            // Served on an actor thread? Then the connection actor runs here too.
            arbiter: actix::Arbiter::try_current(),
        })
        .await
        .map_err(|_| unavailable())?;
    // Shutdown closes every connection it can see; one registered just after
    // that sweep would be missed, so it closes itself here instead.
    if ctx.shutdown.is_cancelled() {
        return Err(unavailable()); // dropping `connection` closes it
    }
    Ok(connection)
}

/// The places for app streams: one is held for each stream from its first
/// byte until its reader ends.
#[derive(Clone)]
pub struct StreamSlots {
    limit: usize,
    free: Arc<Semaphore>,
}

impl StreamSlots {
    pub fn new(limit: usize) -> Self {
        StreamSlots {
            limit,
            free: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
        }
    }

    fn take(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.free.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("too many actor streams (limit {})", self.limit))
        })
    }
}

fn ack() -> Outgoing {
    Outgoing {
        response_type: Some(ResponseType::InitialResponse(
            SubscribeActorEventsResponseInitialAlpha1 {},
        )),
    }
}

/// The app's side of the stream, as its connection actor reads it. Ends
/// when the app half-closes, when the stream fails (after one `Err` with the
/// cause) or when the writer is gone, and never yields again after that.
struct Reader {
    id: ConnectionId,
    /// The inbound stream, and the channel that carries the status the
    /// writer should end the stream with, if not OK. The writer holds the
    /// other half, so the channel also says when the writer is gone (one
    /// channel for both: a stream keeps it for life). `None` once ended.
    live: Option<(
        Streaming<SubscribeActorEventsRequestAlpha1>,
        oneshot::Sender<Box<Status>>,
    )>,
    /// Frees this stream's place when the reader is dropped.
    _slot: OwnedSemaphorePermit,
}

impl Stream for Reader {
    type Item = Received;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let this = self.get_mut();
        let Some((stream, end)) = this.live.as_mut() else {
            return Poll::Ready(None);
        };
        let failure = if end.poll_closed(cx).is_ready() {
            None // the writer is gone
        } else {
            match ready!(Pin::new(stream).poll_next(cx)) {
                Some(Ok(msg)) => return Poll::Ready(Some(Ok(msg))),
                Some(Err(status)) => Some(inbound_error(status)),
                None => None,
            }
        };
        let (_, end) = this.live.take().expect("matched above");
        debug!("{}: reader done", this.id);
        Poll::Ready(failure.map(|status| Err(this.failed(status, end))))
    }
}

impl Reader {
    /// Logs the failure and hands its status to the writer; returns the cause
    /// callers still waiting are told.
    fn failed(&self, status: Status, end: oneshot::Sender<Box<Status>>) -> String {
        // An app that stops or crashes resets its stream: routine, not alarming.
        if matches!(status.code(), Code::Cancelled | Code::Unknown) {
            info!(
                "{}: stream ended by the app: {}",
                self.id,
                Clipped(status.message())
            );
        } else {
            warn!("{}: stream failed: {}", self.id, Clipped(status.message()));
        }
        let cause = format!("actor host stream failed: {}", status.message());
        // In place before the connection closes, which is what ends the writer.
        let _ = end.send(Box::new(status));
        cause
    }
}

/// tonic reports an over-limit message as OUT_OF_RANGE; SPEC H5 (like
/// grpc-go) calls it RESOURCE_EXHAUSTED.
fn inbound_error(status: Status) -> Status {
    if is_oversize(status.code(), status.message()) {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}

/// The writer (the response stream tonic writes to the app): the ack, then
/// the outbox until the connection closes, then the reader's failure status
/// if it had one.
pub struct Outbound {
    /// Whether the ack went out. (A flag, not an `Option<Outgoing>`: every
    /// stream keeps its writer for life, and the message is 264 bytes.)
    acked: bool,
    outbox: Outbox,
    /// The reader's failure status, if any. Dropped with the writer, which
    /// tells the reader to stop.
    end: oneshot::Receiver<Box<Status>>,
}

impl Stream for Outbound {
    type Item = Result<Outgoing, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.acked {
            self.acked = true;
            return Poll::Ready(Some(Ok(ack())));
        }
        match self.outbox.poll_recv(cx) {
            Poll::Ready(Some(msg)) => Poll::Ready(Some(Ok(*msg))),
            Poll::Ready(None) => Poll::Ready(self.end.try_recv().ok().map(|s| Err(*s))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use tonic::codec::Codec;
    use tonic::codegen::Bytes;

    use super::*;
    use crate::codec::LeanCodec;

    /// An app that keeps its side of the stream open and sends nothing.
    struct Silent;

    impl http_body::Body for Silent {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
            Poll::Pending
        }
    }

    /// The writer can go while the app's side stays open (tonic ends the
    /// response on an encoding error, say). The reader must end then too,
    /// or the connection would stay registered, newest, with nobody to
    /// write its requests: every send would fail.
    #[tokio::test]
    async fn the_reader_ends_once_the_writer_is_gone() {
        let mut codec = LeanCodec::<Outgoing, SubscribeActorEventsRequestAlpha1>::default();
        let inbound = Streaming::new_request(codec.decoder(), Silent, None, None);
        let (end, writer_end) = oneshot::channel();
        let slots = StreamSlots::new(1);
        let mut reader = Reader {
            id: ConnectionId(1),
            live: Some((inbound, end)),
            _slot: slots.take().unwrap(),
        };
        assert!(futures::poll!(reader.next()).is_pending());

        drop(writer_end);
        let next = tokio::time::timeout(Duration::from_secs(5), reader.next()).await;
        assert!(matches!(next, Ok(None)), "the reader ends");
        drop(reader);
        assert!(slots.take().is_ok(), "and gives its stream's place back");
    }
}
