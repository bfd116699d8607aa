//! The front door: `InvokeActor` (SPEC F1-F3) and `GetMetadata` (F4).
//!
//! Callers here are other services; what they send is checked before it goes
//! anywhere near an app, and every outcome is a definite gRPC status.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};

use crate::api::{ActorApi, ApiError, Metadata};
use crate::error::Error;
use crate::proto::actor_runtime::ActorRuntimeStatus;
use crate::proto::{
    ActiveActorsCount, ActorRuntime, GetMetadataResponse, InvokeActorRequest, InvokeActorResponse,
};
use crate::transport::InvokeRequest;

/// The response header Dapr sets when the actor method itself failed and the
/// body is its error payload (the call still ends OK).
pub const ERROR_RESPONSE_HEADER: &str = "x-daprerrorresponseheader";

/// Calls the actor method and maps the outcome (SPEC F2, F3).
pub async fn invoke(
    api: &ActorApi,
    metadata: &MetadataMap,
    request: InvokeActorRequest,
) -> Result<Response<InvokeActorResponse>, Status> {
    let deadline = caller_deadline(metadata);
    let call = InvokeRequest {
        id: String::new(),
        actor_type: request.actor_type,
        actor_id: request.actor_id,
        method: request.method,
        data: request.data,
        metadata: request.metadata,
    };
    match api.invoke(call, deadline).await {
        Ok(reply) => Ok(Response::new(InvokeActorResponse { data: reply.data })),
        Err(ApiError::Call(Error::AppError { payload, .. })) => {
            let mut response = Response::new(InvokeActorResponse { data: payload });
            response
                .metadata_mut()
                .insert(ERROR_RESPONSE_HEADER, MetadataValue::from_static("true"));
            Ok(response)
        }
        Err(e) => Err(e.into_status()),
    }
}

pub use crate::runtime::table::REENTRANCY_ID;

/// What this sidecar is and which actor types are served right now (SPEC F4).
pub async fn metadata(api: &ActorApi) -> Result<GetMetadataResponse, Status> {
    let Metadata {
        app_id,
        runtime_version,
        host_ready,
        active_actors,
    } = api.metadata().await.map_err(ApiError::into_status)?;
    let active_actors = active_actors
        .into_iter()
        .map(|t| ActiveActorsCount {
            r#type: t.actor_type,
            count: i32::try_from(t.count).unwrap_or(i32::MAX),
        })
        .collect();
    Ok(GetMetadataResponse {
        id: app_id,
        runtime_version,
        actor_runtime: Some(ActorRuntime {
            runtime_status: ActorRuntimeStatus::Running as i32,
            active_actors,
            host_ready,
            placement: String::new(),
        }),
    })
}

/// When the caller's own gRPC deadline (`grpc-timeout`) passes, minus a small
/// margin. The caller keeps its own timer too (tonic's client, for one, ends
/// the call with CANCELLED when it fires, as tonic's server would); giving up
/// slightly earlier means the caller hears a definite DEADLINE_EXCEEDED from
/// us instead (SPEC F3) and its entry is already gone.
fn caller_deadline(metadata: &MetadataMap) -> Option<Instant> {
    let timeout = parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)?;
    let margin = (timeout / 20).clamp(Duration::from_millis(1), Duration::from_millis(50));
    Some(crate::pending::deadline_in(timeout.saturating_sub(margin)))
}

/// `grpc-timeout` is at most 8 digits and a unit letter (gRPC over HTTP/2 spec).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See the comment in [`invoke`]: the futures a call allocates must each
    /// fit glibc's small-block cache (1032 bytes).
    #[actix_rt::test]
    async fn per_call_futures_fit_a_small_allocation() {
        use crate::manager::ManagerActor;
        use crate::transport::Transport;
        use actix::Actor;
        let transport = Transport::new(ManagerActor::default().start());
        let api = ActorApi::new(transport.clone(), "app");
        let metadata = MetadataMap::new();
        let handler = invoke(&api, &metadata, InvokeActorRequest::default());
        let call = transport.invoke(InvokeRequest::default(), None);
        // The handler's own state, plus tonic's request, is what tonic boxes.
        assert!(
            std::mem::size_of_val(&handler) <= 512,
            "{}",
            std::mem::size_of_val(&handler)
        );
        assert!(
            std::mem::size_of_val(&call) <= 1000,
            "{}",
            std::mem::size_of_val(&call)
        );
    }

    #[test]
    fn grpc_timeout_units_parse_and_junk_does_not() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for junk in ["", "m", "123456789m", "12x", "-1S", "1.5S"] {
            assert_eq!(parse_grpc_timeout(junk), None, "{junk:?}");
        }
    }
}
