//! Which service answers a request, in the gateway's own HTTP/2 server
//! (`crate::server`): `Dapr`, gRPC health, or gRPC reflection.
//!
//! gRPC routes by `/<package.Service>/<Method>`, and each generated server
//! answers its own unknown methods with UNIMPLEMENTED, so the service's name
//! is all there is to match: no general-purpose router, and no boxing of the
//! `Dapr` calls beyond the one future tonic's generated server makes.
//!
//! Two rules are kept here, for every service at once: the API token
//! (SPEC S1) is checked before any handler runs, on everything but health;
//! and tonic's oversize refusal leaves as RESOURCE_EXHAUSTED (`oversize`).

use std::convert::Infallible;

use futures::FutureExt;
use futures::future::{Either, Map, Ready, ready};
use http::{Request, Response};
use hyper::body::Incoming;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::proto::dapr_server::DaprServer;
use crate::service::{DaprService, TokenCheck, oversize};

/// A rarely called service (health, reflection), its calls boxed.
type Boxed = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

type Answer = Result<Response<Body>, Infallible>;

/// A call handed to a service, or answered on the spot.
type Call = Either<BoxFuture<Response<Body>, Infallible>, Ready<Answer>>;

/// What a routed call resolves to.
pub type Routed = Map<Call, fn(Answer) -> Answer>;

/// The services one gateway serves, shared by all its connections.
pub struct Services {
    dapr: DaprServer<DaprService>,
    health: Named,
    reflection: Named,
    token: TokenCheck,
}

/// A rarely called service, boxed, and the gRPC service name it answers to.
pub struct Named {
    name: &'static str,
    service: Boxed,
}

impl Named {
    pub fn new<S>(service: S) -> Self
    where
        S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Named {
            name: S::NAME,
            service: BoxCloneSyncService::new(service),
        }
    }
}

impl Services {
    pub fn new(
        dapr: DaprServer<DaprService>,
        health: Named,
        reflection: Named,
        token: TokenCheck,
    ) -> Self {
        Services {
            dapr,
            health,
            reflection,
            token,
        }
    }

    fn route(&self, request: Request<Incoming>) -> Call {
        let name = service_name(request.uri().path());
        // Health answers without a token: orchestrators probe it unauthenticated.
        if name == Some(self.health.name) {
            return Either::Left(Box::pin(self.health.service.clone().oneshot(request)));
        }
        // Everything else needs it, unknown services too: a caller without
        // the token learns nothing, not even which services exist.
        if let Err(status) = self.token.check(request.headers()) {
            return refuse(status);
        }
        match name {
            // tonic's generated servers are always ready: `call` needs no `poll_ready`.
            Some(DaprServer::<DaprService>::NAME) => Either::Left(self.dapr.clone().call(request)),
            Some(n) if n == self.reflection.name => {
                Either::Left(Box::pin(self.reflection.service.clone().oneshot(request)))
            }
            _ => refuse(Status::unimplemented(format!(
                "no service {} here",
                name.unwrap_or(request.uri().path())
            ))),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for Services {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Routed;

    fn call(&self, request: Request<Incoming>) -> Routed {
        self.route(request)
            .map(oversize::rewrite as fn(Answer) -> Answer)
    }
}

/// `package.Service` of a gRPC path `/package.Service/Method`.
fn service_name(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .split_once('/')
        .map(|(service, _)| service)
}

fn refuse(status: Status) -> Call {
    Either::Right(ready(Ok(status.into_http())))
}

#[cfg(test)]
mod tests {
    use super::service_name;

    #[test]
    fn the_service_name_is_the_first_path_segment() {
        assert_eq!(
            service_name("/dapr.proto.runtime.v1.Dapr/InvokeActor"),
            Some("dapr.proto.runtime.v1.Dapr")
        );
        assert_eq!(
            service_name("/grpc.health.v1.Health/Check"),
            Some("grpc.health.v1.Health")
        );
        assert_eq!(service_name("/no-method"), None);
        assert_eq!(service_name("relative/Method"), None);
    }
}
