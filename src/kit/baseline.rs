//! The bench's unary-echo baseline: a plain tonic `Dapr` server whose
//! InvokeActor answers at once with the request's data. No stream hop, no
//! actors, no app: what gRPC itself costs for the same call on this machine,
//! so `callbackstream bench --baseline unary-echo` can report the gateway as
//! a ratio to it.
//!
//! It gets the transport settings the gateway gives every connection that
//! change the cost of a small call (TCP_NODELAY, the same message limits and
//! keepalive), and nothing else: no token check, health or reflection.
//! Its other RPCs answer UNIMPLEMENTED.

use std::future::Future;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::gateway::GatewaySettings;
use crate::proto::dapr_server::{Dapr, DaprServer};
use crate::proto::{
    ExecuteActorStateTransactionRequest, GetActorReminderRequest, GetActorReminderResponse,
    GetActorStateRequest, GetActorStateResponse, GetMetadataRequest, GetMetadataResponse,
    InvokeActorRequest, InvokeActorResponse, RegisterActorReminderRequest,
    RegisterActorTimerRequest, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsResponseAlpha1, UnregisterActorReminderRequest,
    UnregisterActorTimerRequest,
};

/// InvokeActor answers with the request's data.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnaryEcho;

#[tonic::async_trait]
impl Dapr for UnaryEcho {
    type SubscribeActorEventsAlpha1Stream =
        futures::stream::Empty<Result<SubscribeActorEventsResponseAlpha1, Status>>;

    async fn subscribe_actor_events_alpha1(
        &self,
        _: Request<Streaming<SubscribeActorEventsRequestAlpha1>>,
    ) -> Result<Response<Self::SubscribeActorEventsAlpha1Stream>, Status> {
        Err(not_served())
    }

    async fn invoke_actor(
        &self,
        request: Request<InvokeActorRequest>,
    ) -> Result<Response<InvokeActorResponse>, Status> {
        Ok(Response::new(InvokeActorResponse {
            data: request.into_inner().data,
        }))
    }

    async fn get_metadata(
        &self,
        _: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Err(not_served())
    }

    async fn register_actor_timer(
        &self,
        _: Request<RegisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_served())
    }

    async fn unregister_actor_timer(
        &self,
        _: Request<UnregisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_served())
    }

    async fn register_actor_reminder(
        &self,
        _: Request<RegisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_served())
    }

    async fn unregister_actor_reminder(
        &self,
        _: Request<UnregisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_served())
    }

    async fn get_actor_reminder(
        &self,
        _: Request<GetActorReminderRequest>,
    ) -> Result<Response<GetActorReminderResponse>, Status> {
        Err(not_served())
    }

    async fn get_actor_state(
        &self,
        _: Request<GetActorStateRequest>,
    ) -> Result<Response<GetActorStateResponse>, Status> {
        Err(not_served())
    }

    async fn execute_actor_state_transaction(
        &self,
        _: Request<ExecuteActorStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        Err(not_served())
    }
}

fn not_served() -> Status {
    Status::unimplemented("the unary-echo baseline serves InvokeActor only")
}

/// Serves [`UnaryEcho`] on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let settings = GatewaySettings::default();
    let limit = settings.max_message_bytes;
    let echo = DaprServer::new(UnaryEcho)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    Server::builder()
        .http2_keepalive_interval(Some(settings.keepalive_interval))
        .http2_keepalive_timeout(Some(settings.keepalive_timeout))
        .add_service(echo)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
