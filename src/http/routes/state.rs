//! `GET /v1.0/actors/{type}/{id}/state/{key}` and `POST|PUT
//! /v1.0/actors/{type}/{id}/state` (facts §1, §3). The store is the one the
//! gRPC RPCs use, under the same keys: an HTTP upsert stores the value as
//! Go re-serialises it (`json::marshal`), so it reads back over gRPC as
//! those JSON bytes, and a gRPC value reads back here byte for byte.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use super::{ActorPath, Shared, no_content, read_body};
use crate::http::error::{HttpError, Op};
use crate::http::json;
use crate::runtime::state::Operation;

pub async fn get(State(ctx): State<Shared>, request: Request) -> Response {
    let names = match ActorPath::read_checked(request.uri()) {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    let value = match ctx
        .api
        .get_state(&names.actor_type, &names.actor_id, &names.name)
        .await
    {
        Ok(value) => value,
        Err(e) => return HttpError::from_api(e, Op::StateGet).into_response(),
    };
    // Missing and empty are the same answer (facts §3).
    if value.data.is_empty() {
        return no_content();
    }
    let mut response = Response::new(Body::from(value.data));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (key, value) in value.metadata {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("metadata.{key}").as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// One element of the transaction body.
#[derive(Deserialize)]
struct TransactionOperation {
    operation: String,
    #[serde(default)]
    request: OperationRequest,
}

#[derive(Deserialize, Default)]
struct OperationRequest {
    #[serde(default)]
    key: String,
    /// Any JSON; absent is `null`, as Go's `any` would be.
    #[serde(default)]
    value: Value,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

pub async fn transact(State(ctx): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let names = match ActorPath::read_checked(&parts.uri) {
        Ok(names) => names,
        Err(refused) => return refused.into_response(),
    };
    let operations = match read_body(body, ctx.max_body_bytes).await {
        Ok(bytes) => match serde_json::from_slice::<Vec<TransactionOperation>>(&bytes) {
            Ok(operations) => operations,
            Err(e) => return HttpError::malformed(e).into_response(),
        },
        Err(e) => return HttpError::malformed(e).into_response(),
    };
    let operations = operations
        .into_iter()
        .map(|op| Operation {
            // A delete's value is not stored: nothing to serialise.
            value: match op.operation.as_str() {
                "upsert" => json::marshal(&op.request.value),
                _ => Vec::new(),
            },
            operation_type: op.operation,
            key: op.request.key,
            metadata: op.request.metadata,
        })
        .collect();
    match ctx
        .api
        .transact_state(names.actor_type, names.actor_id, operations)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => HttpError::from_api(e, Op::StateTransaction).into_response(),
    }
}
