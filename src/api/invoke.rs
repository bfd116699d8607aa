//! Invoking an actor method (SPEC F2, F3, T1) and describing the gateway
//! (F4), for both front doors.

use std::future::Future;
use std::pin::Pin;

use tokio::time::Instant;

use crate::api::{ActorApi, ApiError, names};
use crate::error::Error;
use crate::manager::Describe;
use crate::runtime::Runtime;
use crate::transport::{InvokeReply, InvokeRequest, invoke_outcome};

/// What the gateway is and which actor types are served right now (F4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub app_id: String,
    pub runtime_version: String,
    /// At least one app stream is live.
    pub host_ready: bool,
    /// One per type listed by a live stream, sorted.
    pub active_actors: Vec<TypeCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCount {
    pub actor_type: String,
    /// Active instances (D1).
    pub count: usize,
}

impl ActorApi {
    /// Calls the actor method once the names pass F1. `Err(Call(AppError))`
    /// is the app's own error payload, which each front door hands back as
    /// daprd does.
    ///
    /// Boxed, all of it: the gRPC handler's future is boxed once per call by
    /// tonic, and with the call and the transport's future (or the turn)
    /// inline it was ~1.6 KiB, past glibc's per-thread cache of small blocks
    /// (1032 bytes), so every call took malloc's slow path. Two small blocks
    /// cost less than one large one.
    pub fn invoke(
        &self,
        call: InvokeRequest,
        deadline: Option<Instant>,
    ) -> Pin<Box<dyn Future<Output = Result<InvokeReply, ApiError>> + Send + '_>> {
        Box::pin(async move {
            names::check_invoke(&call.actor_type, &call.actor_id, &call.method)?;
            let outcome = match self.optional_runtime() {
                Some(runtime) => in_turn(runtime, call, deadline).await,
                None => self.transport.invoke(call, deadline).await,
            };
            Ok(outcome?)
        })
    }

    /// F4.
    pub async fn metadata(&self) -> Result<Metadata, ApiError> {
        let view = self
            .transport
            .manager()
            .send(Describe)
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let counts = match self.optional_runtime() {
            Some(runtime) => runtime.active_counts().await?,
            None => Default::default(),
        };
        let active_actors = view
            .actor_types
            .into_iter()
            .map(|actor_type| TypeCount {
                count: counts.get(&actor_type).copied().unwrap_or(0),
                actor_type,
            })
            .collect();
        Ok(Metadata {
            app_id: self.app_id.clone(),
            runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
            host_ready: !view.connections.is_empty(),
            active_actors,
        })
    }
}

/// The call in its actor's turn (T1), which it keeps until the app has
/// answered: `_turn` lives to the end.
async fn in_turn(
    runtime: &Runtime,
    call: InvokeRequest,
    deadline: Option<Instant>,
) -> Result<InvokeReply, Error> {
    let (_turn, pending) = runtime.invoke(call, deadline).await?;
    invoke_outcome(pending.await?)
}
