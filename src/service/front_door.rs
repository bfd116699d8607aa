//! The front door: `InvokeActor` (SPEC F1-F3) and `GetMetadata` (F4).
//!
//! Callers here are other services; what they send is checked before it goes
//! anywhere near an app, and every outcome is a definite gRPC status.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};

use crate::error::Error;
use crate::manager::{Describe, ManagerActor};
use crate::proto::actor_runtime::ActorRuntimeStatus;
use crate::proto::{
    ActiveActorsCount, ActorRuntime, GetMetadataResponse, InvokeActorRequest, InvokeActorResponse,
};
use crate::runtime::Runtime;
use crate::service::status::to_status;
use crate::transport::{InvokeReply, InvokeRequest, Transport, invoke_outcome};

/// The response header Dapr sets when the actor method itself failed and the
/// body is its error payload (the call still ends OK).
pub const ERROR_RESPONSE_HEADER: &str = "x-daprerrorresponseheader";

/// Calls the actor method and maps the outcome (SPEC F2, F3).
pub async fn invoke(
    transport: &Transport,
    runtime: Option<&Runtime>,
    metadata: &MetadataMap,
    request: InvokeActorRequest,
) -> Result<Response<InvokeActorResponse>, Status> {
    check_request(&request)?;
    let deadline = caller_deadline(metadata);
    let call = InvokeRequest {
        id: String::new(),
        actor_type: request.actor_type,
        actor_id: request.actor_id,
        method: request.method,
        data: request.data,
        metadata: request.metadata,
    };
    // Boxed: tonic boxes this handler's future once per call, and with the
    // transport's future (or the turn) inline it was ~1.6 KiB, past glibc's
    // per-thread cache of small blocks (1032 bytes), so every call took
    // malloc's slow path. Two small blocks cost less than one large one.
    let outcome = match runtime {
        Some(runtime) => Box::pin(in_turn(runtime, call, deadline)).await,
        None => Box::pin(transport.invoke(call, deadline)).await,
    };
    match outcome {
        Ok(reply) => Ok(Response::new(InvokeActorResponse { data: reply.data })),
        Err(Error::AppError { payload, .. }) => {
            let mut response = Response::new(InvokeActorResponse { data: payload });
            response
                .metadata_mut()
                .insert(ERROR_RESPONSE_HEADER, MetadataValue::from_static("true"));
            Ok(response)
        }
        Err(e) => Err(to_status(e)),
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

pub use crate::runtime::table::REENTRANCY_ID;

/// What this sidecar is and which actor types are served right now (SPEC F4).
pub async fn metadata(
    manager: &actix::Addr<ManagerActor>,
    runtime: Option<&Runtime>,
    app_id: &str,
) -> Result<GetMetadataResponse, Status> {
    let view = manager
        .send(Describe)
        .await
        .map_err(|_| to_status(Error::ShuttingDown))?;
    let counts = match runtime {
        Some(runtime) => runtime.active_counts().await.map_err(to_status)?,
        None => Default::default(),
    };
    let active_actors = view
        .actor_types
        .into_iter()
        .map(|r#type| {
            let count = counts.get(&r#type).copied().unwrap_or(0);
            ActiveActorsCount {
                r#type,
                count: i32::try_from(count).unwrap_or(i32::MAX),
            }
        })
        .collect();
    Ok(GetMetadataResponse {
        id: app_id.to_owned(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        actor_runtime: Some(ActorRuntime {
            runtime_status: ActorRuntimeStatus::Running as i32,
            active_actors,
            host_ready: !view.connections.is_empty(),
            placement: String::new(),
        }),
    })
}

/// SPEC F1. Type and id end up in URLs and state keys on the app side, so the
/// characters that would change their meaning there are refused.
fn check_request(r: &InvokeActorRequest) -> Result<(), Status> {
    check_actor(&r.actor_type, &r.actor_id)?;
    check_name("method", &r.method, &['#', '?'])
}

/// F1's rules for an actor's type and id, which every runtime RPC naming an
/// actor applies too.
pub(crate) fn check_actor(actor_type: &str, actor_id: &str) -> Result<(), Status> {
    check_name("actor_type", actor_type, &['/', '\\', '#', '?'])?;
    check_name("actor_id", actor_id, &['/', '\\', '#', '?'])?;
    if actor_type == "." || actor_type == ".." || actor_id == "." || actor_id == ".." {
        return Err(Status::invalid_argument(
            "actor_type and actor_id must not be \".\" or \"..\"",
        ));
    }
    Ok(())
}

/// Refuses an empty `value`, and one holding a control character or one of
/// `forbidden`.
pub(crate) fn check_name(field: &str, value: &str, forbidden: &[char]) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} must not be empty"
        )));
    }
    // `char::is_control` covers NUL and the other C0/C1 control characters.
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || forbidden.contains(c))
    {
        return Err(Status::invalid_argument(format!(
            "{field} must not contain {c:?}"
        )));
    }
    Ok(())
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
        use actix::Actor;
        let transport = Transport::new(ManagerActor::default().start());
        let metadata = MetadataMap::new();
        let handler = invoke(&transport, None, &metadata, InvokeActorRequest::default());
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
