//! `GET /v1.0/healthz`, `GET /v1.0/healthz/outbound` and `GET
//! /v1.0/metadata` (facts §1).
//!
//! Ready means listening with the runtime (and its store) started: the HTTP
//! listener only serves once the gateway is built, so a request that gets
//! here is served by a started gateway, and readiness ends when shutdown
//! begins.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::{Shared, no_content};
use crate::api::Metadata;
use crate::http::error::HttpError;
use crate::http::path;

pub async fn healthz(State(ctx): State<Shared>, request: Request) -> Response {
    if let Some(asked) = query_value(request.uri().query(), "appid")
        && asked != ctx.api.app_id()
    {
        return HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_APPID_NOT_MATCH",
            "dapr app-id does not match",
        )
        .into_response();
    }
    if ctx.stopping.is_cancelled() {
        return HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_HEALTH_NOT_READY",
            "dapr is not ready: [gateway]",
        )
        .into_response();
    }
    no_content()
}

pub async fn outbound(State(ctx): State<Shared>) -> Response {
    if ctx.stopping.is_cancelled() {
        return HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_OUTBOUND_HEALTH_NOT_READY",
            "dapr outbound is not ready",
        )
        .into_response();
    }
    no_content()
}

/// The first value of `key` in a query string, unescaped.
fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| path::unescape(v).ok())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataBody {
    id: String,
    runtime_version: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actors: Vec<ActiveActors>,
    actor_runtime: ActorRuntimeBody,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActorRuntimeBody {
    runtime_status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    active_actors: Vec<ActiveActors>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    host_ready: bool,
}

#[derive(Serialize, Clone)]
struct ActiveActors {
    r#type: String,
    #[serde(skip_serializing_if = "is_zero")]
    count: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// daprd's metadata document, with what we have: id, version, and the
/// actor runtime (F4). Empty fields are left out, as daprd does.
pub async fn metadata(State(ctx): State<Shared>) -> Response {
    let Metadata {
        app_id,
        runtime_version,
        host_ready,
        active_actors,
    } = match ctx.api.metadata().await {
        Ok(metadata) => metadata,
        Err(e) => {
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return HttpError::new(status, "ERROR", e.to_string()).into_response();
        }
    };
    let actors: Vec<ActiveActors> = active_actors
        .into_iter()
        .map(|t| ActiveActors {
            r#type: t.actor_type,
            count: t.count,
        })
        .collect();
    let body = MetadataBody {
        id: app_id,
        runtime_version,
        actors: actors.clone(),
        actor_runtime: ActorRuntimeBody {
            runtime_status: "RUNNING",
            active_actors: actors,
            host_ready,
        },
    };
    let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
    bytes.push(b'\n');
    let mut response = Response::new(bytes.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix::Actor;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tokio_util::sync::CancellationToken;
    use tower::ServiceExt;

    use crate::api::ActorApi;
    use crate::http::routes::{Ctx, router};
    use crate::manager::ManagerActor;
    use crate::transport::Transport;

    /// Readiness ends when shutdown begins: both health routes say so with
    /// daprd's errorCodes, while the listener still answers.
    #[actix_rt::test]
    async fn health_is_not_ready_once_shutdown_begins() {
        let stopping = CancellationToken::new();
        let ctx = Ctx {
            api: ActorApi::new(Transport::new(ManagerActor::default().start()), "app"),
            max_body_bytes: 1024,
            token_checked: false,
            stopping: stopping.clone(),
        };
        let routes = router(Arc::new(ctx));
        let get = |path: &'static str| {
            let routes = routes.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).unwrap();
                let response = routes.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        assert_eq!(get("/v1.0/healthz").await.0, 204);
        assert_eq!(get("/v1.0/healthz/outbound").await.0, 204);
        stopping.cancel();
        let (status, body) = get("/v1.0/healthz").await;
        assert_eq!(status, 500);
        assert!(body.contains("ERR_HEALTH_NOT_READY"), "{body}");
        let (status, body) = get("/v1.0/healthz/outbound").await;
        assert_eq!(status, 500);
        assert!(body.contains("ERR_OUTBOUND_HEALTH_NOT_READY"), "{body}");
    }
}
