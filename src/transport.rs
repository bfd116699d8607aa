//! The typed transport: invoke / reminder / timer / deactivate calls on top of
//! the manager's raw `Send`.
//!
//! Each call builds its oneof variant, routes by the actor type it carries
//! (SPEC R13), and turns the app's answer into a Rust result: `request_failed`
//! becomes [`Error::AppFailed`], an `invoke_response` flagged `error` becomes
//! [`Error::AppError`], and an answer of the wrong kind becomes
//! [`Error::Protocol`].

use std::collections::HashMap;
use std::future::Future;

use actix::Addr;
use tokio::time::Instant;

use crate::connection::{PendingReply, Reply};
use crate::error::Error;
use crate::manager::{ManagerActor, Send};
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::proto::{self, SubscribeActorEventsRequestFailedAlpha1};

/// An actor method call for the app. Its `id` is stamped by the connection.
pub type InvokeRequest = proto::SubscribeActorEventsResponseInvokeRequestAlpha1;
/// A reminder firing for the app.
pub type ReminderRequest = proto::SubscribeActorEventsResponseReminderRequestAlpha1;
/// A timer firing for the app.
pub type TimerRequest = proto::SubscribeActorEventsResponseTimerRequestAlpha1;
/// A request to deactivate one actor instance.
pub type DeactivateRequest = proto::SubscribeActorEventsResponseDeactivateRequestAlpha1;

/// What an actor method returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeReply {
    pub data: Vec<u8>,
    pub metadata: HashMap<String, String>,
}

/// What the app wants after a reminder or timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// Keep the schedule.
    Continue,
    /// Do not fire again (`cancel: true`).
    Cancel,
}

/// gRPC's NOT_FOUND: the app does not know the actor type or method, and
/// asking again will not change that.
const NOT_FOUND: u32 = 5;

/// Typed calls to the apps registered with one manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    manager: Addr<ManagerActor>,
}

impl Transport {
    pub fn new(manager: Addr<ManagerActor>) -> Self {
        Transport { manager }
    }

    /// The manager this transport sends through.
    pub fn manager(&self) -> &Addr<ManagerActor> {
        &self.manager
    }

    /// A raw send (SPEC R2 routing unless `send` names a type): the app's answer
    /// as it came, whatever its kind.
    pub fn send(&self, send: Send) -> impl Future<Output = Result<Reply, Error>> + '_ {
        // Boxed to keep the callers' futures small (see front_door::invoke):
        // actix's request future holds the message for a retry when the
        // mailbox is full, ~450 bytes, and the deadline's timer sits beside
        // it. Built outside the `async` block so that `send` is not kept in
        // the caller's future as well.
        let routed = Box::pin(route(&self.manager, send));
        async move { routed.await?.await }
    }

    /// Call an actor method.
    pub async fn invoke(
        &self,
        request: InvokeRequest,
        deadline: Option<Instant>,
    ) -> Result<InvokeReply, Error> {
        let reply = self
            .typed(ResponseType::InvokeRequest(request), deadline)
            .await?;
        invoke_outcome(reply)
    }

    /// Fire a reminder.
    pub async fn reminder(
        &self,
        request: ReminderRequest,
        deadline: Option<Instant>,
    ) -> Result<FireOutcome, Error> {
        let reply = self
            .typed(ResponseType::ReminderRequest(request), deadline)
            .await?;
        match reply {
            RequestType::ReminderResponse(r) => Ok(outcome(r.cancel)),
            other => Err(app_failure_or_mismatch(other, "reminder_response")),
        }
    }

    /// Fire a timer.
    pub async fn timer(
        &self,
        request: TimerRequest,
        deadline: Option<Instant>,
    ) -> Result<FireOutcome, Error> {
        let reply = self
            .typed(ResponseType::TimerRequest(request), deadline)
            .await?;
        match reply {
            RequestType::TimerResponse(r) => Ok(outcome(r.cancel)),
            other => Err(app_failure_or_mismatch(other, "timer_response")),
        }
    }

    /// Ask the app to deactivate one actor instance.
    pub async fn deactivate(
        &self,
        request: DeactivateRequest,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let reply = self
            .typed(ResponseType::DeactivateRequest(request), deadline)
            .await?;
        match reply {
            RequestType::DeactivateResponse(_) => Ok(()),
            other => Err(app_failure_or_mismatch(other, "deactivate_response")),
        }
    }

    /// Sends `request` routed by the actor type it carries (SPEC R13).
    async fn typed(
        &self,
        request: ResponseType,
        deadline: Option<Instant>,
    ) -> Result<Reply, Error> {
        let mut send = Send::typed(request);
        if let Some(deadline) = deadline {
            send = send.deadline(deadline);
        }
        self.send(send).await
    }
}

/// Hands `send` to the manager and waits for its pending reply. The call's
/// deadline covers this wait too: the manager's mailbox can be full, or its
/// thread busy. Given up here, the request either never reached the manager
/// or its pending reply is dropped on the way back, which forgets it (R10).
async fn route(manager: &Addr<ManagerActor>, send: Send) -> Result<PendingReply, Error> {
    let deadline = send.deadline_at();
    let asked = manager.send(send);
    let answer = match deadline {
        Some(at) => tokio::time::timeout_at(at, asked)
            .await
            .map_err(|_| Error::DeadlineExceeded)?,
        None => asked.await,
    };
    answer.map_err(|_| Error::ShuttingDown)?
}

/// What the app's answer to an invoke means: its reply, its method's error,
/// or its failure.
pub fn invoke_outcome(reply: Reply) -> Result<InvokeReply, Error> {
    match reply {
        RequestType::InvokeResponse(r) if r.error => Err(Error::AppError {
            payload: r.data,
            metadata: r.metadata,
        }),
        RequestType::InvokeResponse(r) => Ok(InvokeReply {
            data: r.data,
            metadata: r.metadata,
        }),
        other => Err(app_failure_or_mismatch(other, "invoke_response")),
    }
}

fn outcome(cancel: bool) -> FireOutcome {
    if cancel {
        FireOutcome::Cancel
    } else {
        FireOutcome::Continue
    }
}

/// The error for any answer but the expected kind: the app's own failure
/// report, or a protocol error naming what came instead.
fn app_failure_or_mismatch(reply: Reply, expected: &str) -> Error {
    match reply {
        RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
            code,
            message,
            ..
        }) => Error::AppFailed {
            code,
            message,
            permanent: code == NOT_FOUND,
        },
        other => Error::Protocol(format!("expected {expected}, got {}", variant_name(&other))),
    }
}

fn variant_name(reply: &Reply) -> &'static str {
    match reply {
        RequestType::InitialRequest(_) => "initial_request",
        RequestType::InvokeResponse(_) => "invoke_response",
        RequestType::ReminderResponse(_) => "reminder_response",
        RequestType::TimerResponse(_) => "timer_response",
        RequestType::DeactivateResponse(_) => "deactivate_response",
        RequestType::RequestFailed(_) => "request_failed",
    }
}
