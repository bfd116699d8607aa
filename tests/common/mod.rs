//! Helpers shared by the integration tests: a manager, a fake app on the other
//! end of one connection (held by the test, or echoing on its own), and
//! builders for the messages on both sides of the stream.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_rt::task::JoinHandle;
use callbackstream::connection::{ConnectionStats, Outbox, Outgoing};
use callbackstream::manager::{Close, Closer, Connection, Inbound, Register, Send};
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestDeactivateResponseAlpha1,
    SubscribeActorEventsRequestInvokeResponseAlpha1,
    SubscribeActorEventsRequestReminderResponseAlpha1,
    SubscribeActorEventsResponseInvokeRequestAlpha1,
};
use callbackstream::{
    ConnectionId, ConnectionOptions, Error, ManagerActor, PendingReply, RegistrationConfig, Reply,
};
use tokio::time::Instant;

/// How long a liveness assertion ("promptly", "no hang") waits. Generous on
/// purpose: it bounds a hang, it does not measure speed.
pub const BOUND: Duration = Duration::from_secs(5);

/// The metadata key under which the echo policy names the connection that answered.
pub const SERVED_BY: &str = "served-by";

/// Lets every actor and task run until nothing moves, without moving the
/// clock.
pub async fn settle() {
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
}

/// Moves the paused clock on, and lets what falls due run.
pub async fn pass(d: Duration) {
    tokio::time::advance(d).await;
    settle().await;
}

/// Awaits `fut`, failing the test if it takes longer than [`BOUND`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: not done within {BOUND:?}"),
    }
}

pub fn start_manager() -> Addr<ManagerActor> {
    ManagerActor::default().start()
}

pub fn start_manager_with(options: ConnectionOptions) -> Addr<ManagerActor> {
    ManagerActor::new(options).start()
}

/// Registers a connection hosting `types`.
pub async fn register(manager: &Addr<ManagerActor>, types: &[&str]) -> Connection {
    let config = RegistrationConfig::hosting(types.iter().copied());
    manager
        .send(Register::new(config))
        .await
        .expect("manager alive")
}

/// Closes one connection with the default cause.
pub async fn close(manager: &Addr<ManagerActor>, id: ConnectionId) {
    let close = Close { id, cause: None };
    manager.send(close).await.expect("manager alive");
}

/// Sends `send` and returns the manager's answer (a `PendingReply` or why not).
pub async fn try_send(manager: &Addr<ManagerActor>, send: Send) -> Result<PendingReply, Error> {
    manager.send(send).await.expect("manager alive")
}

/// A raw send (R2 routing) of an invoke request carrying `data`; must be accepted.
pub async fn send_raw(manager: &Addr<ManagerActor>, data: &str) -> PendingReply {
    try_send(manager, Send::new(invoke("any-type", data)))
        .await
        .expect("send accepted")
}

/// The fake app on the other end of one connection, in "hold" mode: the test
/// takes each request from the outbox itself and answers it through `inbound`.
pub struct App {
    pub id: ConnectionId,
    pub inbound: Inbound,
    outbox: Outbox,
    /// Held so the connection lives as long as its fake app.
    _closer: Closer,
}

impl From<Connection> for App {
    fn from(c: Connection) -> Self {
        App {
            id: c.id,
            inbound: c.inbound,
            outbox: c.outbox,
            _closer: c.closer,
        }
    }
}

impl App {
    /// Registers a connection hosting `types` and plays its app.
    pub async fn register(manager: &Addr<ManagerActor>, types: &[&str]) -> App {
        register(manager, types).await.into()
    }

    /// The next request the sidecar wrote to this app; fails the test if none
    /// comes within [`BOUND`] or the outbox ended.
    pub async fn next(&mut self) -> ResponseType {
        let what = format!("a request on {}", self.id);
        match within(&what, self.outbox.recv()).await.map(|m| *m) {
            Some(Outgoing {
                response_type: Some(request),
            }) => request,
            Some(other) => panic!("{}: message with no response_type: {other:?}", self.id),
            None => panic!("{}: outbox ended while waiting for a request", self.id),
        }
    }

    /// The next request, or `None` once the outbox has ended. Waits as long
    /// as it takes (for apps that run beside a test for its whole length).
    pub async fn next_or_end(&mut self) -> Option<ResponseType> {
        let msg = self.outbox.recv().await?;
        Some(msg.response_type.expect("response_type set"))
    }

    /// The request already waiting in the outbox, if any (does not wait).
    pub fn try_next(&mut self) -> Option<ResponseType> {
        self.outbox
            .try_recv()
            .map(|msg| msg.response_type.expect("response_type set"))
    }

    /// Fails the test if a request is waiting in this app's outbox.
    pub fn assert_no_request(&mut self) {
        if let Some(request) = self.try_next() {
            panic!("{}: unexpected request {request:?}", self.id);
        }
    }

    /// Waits until the outbox ends (the connection closed), returning what was
    /// still in it.
    pub async fn until_outbox_ends(&mut self) -> Vec<ResponseType> {
        let what = format!("outbox of {} to end", self.id);
        within(&what, async {
            let mut left = Vec::new();
            while let Some(msg) = self.outbox.recv().await {
                left.extend(msg.response_type);
            }
            left
        })
        .await
    }

    /// The next request, which must be a reminder fire.
    pub async fn next_reminder(&mut self) -> callbackstream::transport::ReminderRequest {
        match self.next().await {
            ResponseType::ReminderRequest(r) => r,
            other => panic!("{}: expected a reminder_request, got {other:?}", self.id),
        }
    }

    /// Answers a reminder fire, cancelling the reminder or not.
    pub async fn answer_reminder(&self, id: &str, cancel: bool) {
        let reply = RequestType::ReminderResponse(fire_response(id.into(), cancel));
        self.answer(reply).await;
    }

    /// Hands `reply` to the connection as if the app had written it.
    pub async fn answer(&self, reply: RequestType) {
        self.deliver(from_app(reply)).await;
    }

    /// Hands a raw stream message to the connection; it must be accepted.
    pub async fn deliver(&self, msg: SubscribeActorEventsRequestAlpha1) {
        let delivered = self.inbound.deliver(msg).await;
        assert_eq!(delivered, Ok(()), "{}: deliver refused", self.id);
    }

    /// Answers `request` with the echo policy.
    pub async fn echo(&self, request: &ResponseType) {
        self.answer(echo_reply(request, self.id)).await;
    }

    pub async fn stats(&self) -> ConnectionStats {
        self.inbound.stats().await
    }

    /// Polls the connection's stats until `holds` is true of them.
    pub async fn stats_until(
        &self,
        what: &str,
        holds: impl Fn(ConnectionStats) -> bool,
    ) -> ConnectionStats {
        let give_up = Instant::now() + BOUND;
        loop {
            let stats = self.stats().await;
            if holds(stats) {
                return stats;
            }
            assert!(
                Instant::now() < give_up,
                "{}: {what}: stats still {stats:?} after {BOUND:?}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reads `count` requests on a blocking thread, the way a stream writer on
    /// another worker thread would, pausing now and then; returns them in order.
    /// The app comes back with them, its connection still open.
    pub fn read_on_other_thread(self, count: usize) -> JoinHandle<(Vec<ResponseType>, App)> {
        tokio::task::spawn_blocking(move || {
            // Moved whole (not field by field) so its closer lives as long.
            let mut app = self;
            let mut read = Vec::with_capacity(count);
            while read.len() < count {
                let msg = app.outbox.blocking_recv().expect("outbox open");
                read.push(msg.response_type.expect("response_type set"));
                if read.len() % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            (read, app)
        })
    }

    /// Lets the app answer every request on its own with the echo policy, until
    /// its outbox ends.
    pub fn spawn_echo(self) -> JoinHandle<()> {
        actix_rt::spawn(async move {
            // Moved whole (not field by field) so its closer lives as long.
            let mut app = self;
            while let Some(msg) = app.outbox.recv().await {
                let request = msg.response_type.expect("response_type set");
                // The connection may close between the request and the answer.
                let _ = app
                    .inbound
                    .deliver(from_app(echo_reply(&request, app.id)))
                    .await;
            }
        })
    }
}

/// Waits for a request to land on one of `apps` and checks it landed on
/// exactly one; returns which one and the request.
pub async fn landing(apps: &mut [&mut App]) -> (ConnectionId, ResponseType) {
    let (index, request) = within("a request to land on some app", async {
        loop {
            for (i, app) in apps.iter_mut().enumerate() {
                if let Some(request) = app.try_next() {
                    return (i, request);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    for app in apps.iter_mut() {
        app.assert_no_request();
    }
    (apps[index].id, request)
}

/// The echo policy: an invoke is answered with its own data (and metadata
/// naming `served_by`), a reminder or timer with "keep firing", a deactivate
/// with an ack.
pub fn echo_reply(request: &ResponseType, served_by: ConnectionId) -> RequestType {
    let id = request_id(request).to_owned();
    match request {
        ResponseType::InvokeRequest(r) => {
            RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id,
                data: r.data.clone(),
                metadata: HashMap::from([(SERVED_BY.to_owned(), served_by.to_string())]),
                error: false,
            })
        }
        ResponseType::ReminderRequest(_) => RequestType::ReminderResponse(fire_response(id, false)),
        ResponseType::TimerRequest(_) => RequestType::TimerResponse(fire_response(id, false)),
        ResponseType::DeactivateRequest(_) => {
            RequestType::DeactivateResponse(SubscribeActorEventsRequestDeactivateResponseAlpha1 {
                id,
            })
        }
        ResponseType::InitialResponse(_) => panic!("initial_response is not a request"),
    }
}

/// An invoke request for `actor_type` carrying `data`, as a raw oneof variant.
pub fn invoke(actor_type: &str, data: &str) -> ResponseType {
    ResponseType::InvokeRequest(invoke_request(actor_type, data))
}

pub fn invoke_request(
    actor_type: &str,
    data: &str,
) -> SubscribeActorEventsResponseInvokeRequestAlpha1 {
    SubscribeActorEventsResponseInvokeRequestAlpha1 {
        actor_type: actor_type.to_owned(),
        actor_id: "actor-1".to_owned(),
        method: "echo".to_owned(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The app's successful answer to request `id`, carrying `data`.
pub fn invoke_response(id: &str, data: &str) -> RequestType {
    RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
        id: id.to_owned(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    })
}

pub fn fire_response(
    id: String,
    cancel: bool,
) -> SubscribeActorEventsRequestReminderResponseAlpha1 {
    SubscribeActorEventsRequestReminderResponseAlpha1 { id, cancel }
}

/// Wraps a reply as the stream message the app writes.
pub fn from_app(reply: RequestType) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(reply),
    }
}

/// The id the connection stamped on a request.
pub fn request_id(request: &ResponseType) -> &str {
    match request {
        ResponseType::InvokeRequest(r) => &r.id,
        ResponseType::ReminderRequest(r) => &r.id,
        ResponseType::TimerRequest(r) => &r.id,
        ResponseType::DeactivateRequest(r) => &r.id,
        ResponseType::InitialResponse(_) => panic!("initial_response is not a request"),
    }
}

/// The data of an invoke request, as text.
pub fn request_data(request: &ResponseType) -> String {
    match request {
        ResponseType::InvokeRequest(r) => String::from_utf8(r.data.clone()).expect("utf-8 data"),
        other => panic!("expected an invoke_request, got {other:?}"),
    }
}

/// The data of an `invoke_response` reply, as text.
pub fn reply_data(reply: Result<Reply, Error>) -> String {
    match reply {
        Ok(RequestType::InvokeResponse(r)) => String::from_utf8(r.data).expect("utf-8 data"),
        other => panic!("expected an invoke_response, got {other:?}"),
    }
}
