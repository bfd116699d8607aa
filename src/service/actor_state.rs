//! GetActorState and ExecuteActorStateTransaction (SPEC ST1-ST3, P4): the
//! wire shapes in and out of [`crate::runtime::state`], which owns the rules.

use tonic::{Response, Status};

use crate::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest, GetActorStateResponse,
};
use crate::runtime::Runtime;
use crate::runtime::state::{Operation, StateError};
use crate::runtime::table::ActorKey;
use crate::service::status::to_status;

/// daprd's message for a transaction on an actor not active here (ST2).
pub const ACTOR_INSTANCE_MISSING: &str = "actor instance is missing";

/// ST1: the bytes last stored, empty when none; no active actor needed.
pub async fn get(
    runtime: &Runtime,
    request: GetActorStateRequest,
) -> Result<Response<GetActorStateResponse>, Status> {
    let value = runtime
        .state()
        .get(&request.actor_type, &request.actor_id, &request.key)
        .await
        .map_err(state_status)?;
    Ok(Response::new(GetActorStateResponse {
        data: value.data,
        metadata: value.metadata,
    }))
}

/// ST2, ST3: all or nothing, on an active actor only (as daprd).
pub async fn transact(
    runtime: &Runtime,
    request: ExecuteActorStateTransactionRequest,
) -> Result<Response<()>, Status> {
    let key = ActorKey::new(request.actor_type, request.actor_id);
    if !runtime.is_active(key.clone()).await.map_err(to_status)? {
        return Err(Status::internal(ACTOR_INSTANCE_MISSING));
    }
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
    runtime
        .state()
        .transact(&key.actor_type, &key.actor_id, operations)
        .await
        .map_err(state_status)?;
    Ok(Response::new(()))
}

fn state_status(e: StateError) -> Status {
    Status::new(e.code(), e.to_string())
}
