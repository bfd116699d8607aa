//! The routes of daprd's actor API (facts §1) and what their handlers
//! share: the context, reading the actor's names from the path, and reading
//! a body within the limit. Each handler turns its request into one
//! [`ActorApi`] call and the outcome into daprd's answer, nothing more.

mod health;
mod invoke;
mod jobs;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio_util::sync::CancellationToken;

use crate::api::{ActorApi, names};
use crate::http::error::{HttpError, plain};
use crate::http::path;

/// What the handlers share.
pub struct Ctx {
    pub api: ActorApi,
    /// Largest body read, in bytes.
    pub max_body_bytes: usize,
    /// A token is configured: it is then kept from the app's metadata.
    pub token_checked: bool,
    /// Cancelled when the gateway begins to stop: health says not ready.
    pub stopping: CancellationToken,
}

type Shared = Arc<Ctx>;

pub fn router(ctx: Shared) -> Router {
    let actor = "/v1.0/actors/{actor_type}/{actor_id}";
    Router::new()
        .route(
            &format!("{actor}/method/{{method}}"),
            get(invoke::invoke)
                .post(invoke::invoke)
                .put(invoke::invoke)
                .delete(invoke::invoke),
        )
        .route(
            &format!("{actor}/state"),
            MethodRouter::new()
                .post(state::transact)
                .put(state::transact),
        )
        .route(&format!("{actor}/state/{{key}}"), get(state::get))
        .route(
            &format!("{actor}/reminders/{{name}}"),
            get(jobs::get_reminder)
                .post(jobs::create_reminder)
                .put(jobs::create_reminder)
                .delete(jobs::delete_reminder),
        )
        .route(
            &format!("{actor}/timers/{{name}}"),
            MethodRouter::new()
                .post(jobs::create_timer)
                .put(jobs::create_timer)
                .delete(jobs::delete_timer),
        )
        .route("/v1.0/healthz", get(health::healthz))
        .route("/v1.0/healthz/outbound", get(health::outbound))
        .route("/v1.0/metadata", get(health::metadata))
        .fallback(not_routed)
        .method_not_allowed_fallback(not_routed)
        .with_state(ctx)
}

/// daprd hands whatever no actor route takes to service invocation, which,
/// with no app id to invoke, answers 404 (facts §0).
pub async fn not_routed() -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        "ERR_DIRECT_INVOKE",
        "failed getting app id either from the URL path or the header dapr-app-id",
    )
}

/// An actor route's names: type, id, and the segment after the route's
/// kind (method, key, or timer or reminder name), unescaped.
pub struct ActorPath {
    pub actor_type: String,
    pub actor_id: String,
    pub name: String,
}

impl ActorPath {
    /// Reads `/v1.0/actors/{type}/{id}/{kind}/{name}`; `name` is empty for
    /// `/v1.0/actors/{type}/{id}/state`.
    pub fn read(uri: &Uri) -> Result<Self, Refused> {
        let segment = |i| path::segment(uri.path(), i);
        let read = || -> Result<Self, path::BadEscape> {
            Ok(ActorPath {
                actor_type: segment(2)?,
                actor_id: segment(3)?,
                name: segment(5)?,
            })
        };
        read().map_err(|_| Refused::BadEscape)
    }

    /// As [`read`](Self::read), for the routes other than invoke: the actor's
    /// names must pass F1, and Dapr's own actor types are not for callers.
    pub fn read_checked(uri: &Uri) -> Result<Self, Refused> {
        let names = Self::read(uri)?;
        names::check_actor(&names.actor_type, &names.actor_id).map_err(HttpError::bad_request)?;
        if names.actor_type.starts_with("dapr.internal.") {
            return Err(HttpError::reserved(&names.actor_type).into());
        }
        Ok(names)
    }
}

/// A request refused before its handler's call.
#[derive(Debug)]
pub enum Refused {
    /// daprd answers a bad escape in the path in plain text.
    BadEscape,
    Http(HttpError),
}

impl From<HttpError> for Refused {
    fn from(e: HttpError) -> Self {
        Refused::Http(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::BadEscape => plain(StatusCode::BAD_REQUEST, "invalid URL escape"),
            Refused::Http(e) => e.into_response(),
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("stream too large")]
    TooLarge,
    #[error("{0}")]
    Read(String),
}

/// The whole body, unless it is longer than `limit` (daprd reads up to its
/// limit and fails; no 413) or the client fails to send it.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}

/// 204 with no body and no Content-Type (facts §0).
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
