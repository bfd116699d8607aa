//! The tonic service for `dapr.proto.runtime.v1.Dapr`: the actor stream and
//! the front door, mountable in any tonic server.
//!
//! The impl here is deliberately thin: each RPC hands over to the module that
//! owns its behaviour (`stream`, `front_door`, `actor_state`,
//! `actor_timers`); RPCs we do not serve answer
//! UNIMPLEMENTED through tonic's generated router.

pub mod actor_state;
pub mod actor_timers;
pub mod auth;
pub mod front_door;
pub mod oversize;
pub mod router;
pub mod status;
pub mod stream;

use std::time::Duration;

use actix::Addr;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::api::ActorApi;
use crate::config::RegistrationLimits;
use crate::manager::ManagerActor;
use crate::proto::dapr_server::{Dapr, DaprServer};
use crate::proto::{
    ExecuteActorStateTransactionRequest, GetActorReminderRequest, GetActorReminderResponse,
    GetActorStateRequest, GetActorStateResponse, GetMetadataRequest, GetMetadataResponse,
    InvokeActorRequest, InvokeActorResponse, RegisterActorReminderRequest,
    RegisterActorTimerRequest, SubscribeActorEventsRequestAlpha1, UnregisterActorReminderRequest,
    UnregisterActorTimerRequest,
};
use crate::runtime::Runtime;
use crate::transport::Transport;

pub use auth::TokenCheck;

/// gRPC's customary message limit, which Dapr uses too.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// App streams served at once unless configured otherwise: far more apps
/// than one sidecar normally serves, yet a ceiling on what a runaway client
/// can make us hold (each stream costs a connection actor and two tasks).
pub const DEFAULT_MAX_STREAMS: usize = 10_000;

/// The `Dapr` service over one manager.
#[derive(Clone)]
pub struct DaprService {
    api: ActorApi,
    stream: stream::StreamContext,
}

impl DaprService {
    /// A service routing to `manager`'s apps, with default limits and no
    /// shutdown signal of its own (see the `with_*` methods).
    pub fn new(manager: Addr<ManagerActor>, app_id: impl Into<String>) -> Self {
        DaprService {
            api: ActorApi::new(Transport::new(manager.clone()), app_id),
            stream: stream::StreamContext {
                manager,
                handshake_timeout: Duration::from_secs(30),
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                stream_slots: stream::StreamSlots::new(DEFAULT_MAX_STREAMS),
                registration_limits: RegistrationLimits::default(),
                shutdown: CancellationToken::new(),
            },
        }
    }

    /// Refuse new streams once `token` is cancelled.
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.stream.shutdown = token;
        self
    }

    /// How long an app may take to send its `initial_request` (default 30 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.stream.handshake_timeout = timeout;
        self
    }

    /// Serve at most `streams` app streams at once (default 10,000); more are
    /// refused with RESOURCE_EXHAUSTED.
    pub fn with_max_streams(mut self, streams: usize) -> Self {
        self.stream.stream_slots = stream::StreamSlots::new(streams);
        self
    }

    /// Cap what one app's registration may list (see [`RegistrationLimits`]).
    pub fn with_registration_limits(mut self, limits: RegistrationLimits) -> Self {
        self.stream.registration_limits = limits;
        self
    }

    /// Limit every message received or sent to `bytes` (SPEC H5; default 4 MiB).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.stream.max_message_bytes = bytes;
        self
    }

    /// Run actors with `runtime`: turns per actor, state, and what else SPEC
    /// §8 serves. Without one the service only relays (and the runtime's
    /// RPCs answer UNIMPLEMENTED).
    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.api = self.api.with_runtime(runtime);
        self
    }

    /// The actor API this service serves, for another front door (HTTP) to
    /// share.
    pub fn api(&self) -> &ActorApi {
        &self.api
    }

    /// The tonic server type, with the message limit applied both ways.
    pub fn into_server(self) -> DaprServer<Self> {
        let limit = self.stream.max_message_bytes;
        DaprServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl Dapr for DaprService {
    type SubscribeActorEventsAlpha1Stream = stream::Outbound;

    async fn subscribe_actor_events_alpha1(
        &self,
        request: Request<Streaming<SubscribeActorEventsRequestAlpha1>>,
    ) -> Result<Response<Self::SubscribeActorEventsAlpha1Stream>, Status> {
        stream::serve(&self.stream, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn invoke_actor(
        &self,
        request: Request<InvokeActorRequest>,
    ) -> Result<Response<InvokeActorResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        front_door::invoke(&self.api, &metadata, message).await
    }

    async fn get_metadata(
        &self,
        _: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        front_door::metadata(&self.api).await.map(Response::new)
    }

    async fn register_actor_timer(
        &self,
        request: Request<RegisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        actor_timers::register_timer(&self.api, request.into_inner()).await
    }

    async fn unregister_actor_timer(
        &self,
        request: Request<UnregisterActorTimerRequest>,
    ) -> Result<Response<()>, Status> {
        actor_timers::unregister_timer(&self.api, request.into_inner()).await
    }

    async fn register_actor_reminder(
        &self,
        request: Request<RegisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        actor_timers::register_reminder(&self.api, request.into_inner()).await
    }

    async fn unregister_actor_reminder(
        &self,
        request: Request<UnregisterActorReminderRequest>,
    ) -> Result<Response<()>, Status> {
        actor_timers::unregister_reminder(&self.api, request.into_inner()).await
    }

    async fn get_actor_reminder(
        &self,
        request: Request<GetActorReminderRequest>,
    ) -> Result<Response<GetActorReminderResponse>, Status> {
        actor_timers::get_reminder(&self.api, request.into_inner()).await
    }

    async fn get_actor_state(
        &self,
        request: Request<GetActorStateRequest>,
    ) -> Result<Response<GetActorStateResponse>, Status> {
        actor_state::get(&self.api, request.into_inner()).await
    }

    async fn execute_actor_state_transaction(
        &self,
        request: Request<ExecuteActorStateTransactionRequest>,
    ) -> Result<Response<()>, Status> {
        actor_state::transact(&self.api, request.into_inner()).await
    }
}
