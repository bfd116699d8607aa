//! GetActorState and ExecuteActorStateTransaction (SPEC ST1-ST3, P4): the
//! gRPC shapes in and out of [`crate::api`], which both front doors share.

use tonic::{Response, Status};

use crate::api::{ActorApi, ApiError};
use crate::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest, GetActorStateResponse,
};
use crate::runtime::state::Operation;

/// daprd's message for a transaction on an actor not active here (ST2).
pub const ACTOR_INSTANCE_MISSING: &str = "actor instance is missing";

/// ST1: the bytes last stored, empty when none; no active actor needed.
pub async fn get(
    api: &ActorApi,
    request: GetActorStateRequest,
) -> Result<Response<GetActorStateResponse>, Status> {
    let value = api
        .get_state(&request.actor_type, &request.actor_id, &request.key)
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(GetActorStateResponse {
        data: value.data,
        metadata: value.metadata,
    }))
}

/// ST2, ST3: all or nothing, on an active actor only (as daprd).
pub async fn transact(
    api: &ActorApi,
    request: ExecuteActorStateTransactionRequest,
) -> Result<Response<()>, Status> {
    let operations = request
        .operations
        .into_iter()
        .map(|op| Operation {
            operation_type: op.operation_type,
            key: op.key,
            // The Any's bytes; its type_url is not ours to judge (ST2).
            value: op.value.map(|any| any.value).unwrap_or_default(),
            metadata: op.metadata,
        })
        .collect();
    api.transact_state(request.actor_type, request.actor_id, operations)
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(()))
}
