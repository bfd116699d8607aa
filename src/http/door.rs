//! What every HTTP request passes before the router: its path cleaned up as
//! daprd's (`//` collapsed, one trailing `/` dropped), and the API token
//! (SPEC S1, facts §6) checked on every route, matched or not, except
//! `GET /v1.0/healthz` and `GET /v1.0/healthz/outbound`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode, Uri};
use hyper::body::Incoming;
use tower::ServiceExt;

use crate::http::error::plain;
use crate::http::path;
use crate::http::routes::{self, Ctx};
use crate::service::TokenCheck;

/// The paths an orchestrator probes without a token.
const HEALTH_PATHS: [&str; 2] = ["/v1.0/healthz", "/v1.0/healthz/outbound"];

/// The HTTP front door as a hyper service: cheap to clone, one per connection.
#[derive(Clone)]
pub struct FrontDoor {
    router: Router,
    token: TokenCheck,
}

impl FrontDoor {
    pub fn new(ctx: Ctx, token: TokenCheck) -> Self {
        FrontDoor {
            router: routes::router(Arc::new(ctx)),
            token,
        }
    }

    async fn answer(self, request: Request<Incoming>) -> Response {
        let mut request = request.map(Body::new);
        if let Some(uri) = cleaned(request.uri()) {
            *request.uri_mut() = uri;
        }
        let exempt =
            request.method() == Method::GET && HEALTH_PATHS.contains(&request.uri().path());
        if !exempt && self.token.check(request.headers()).is_err() {
            return plain(StatusCode::UNAUTHORIZED, "invalid api token");
        }
        // No route takes HEAD (axum's `get` would answer it): daprd's
        // fallback does.
        if request.method() == Method::HEAD {
            return routes::not_routed().await.into_response();
        }
        match self.router.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The URI with its path cleaned, when cleaning changes it.
fn cleaned(uri: &Uri) -> Option<Uri> {
    let clean = path::normalize(uri.path());
    if clean == uri.path() {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{clean}?{query}"),
        None => clean.into_owned(),
    };
    path_and_query.parse().ok()
}

impl hyper::service::Service<Request<Incoming>> for FrontDoor {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let door = self.clone();
        Box::pin(async move { Ok(door.answer(request).await) })
    }
}
