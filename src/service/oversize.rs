//! One status for "message too large", whichever RPC it happens on.
//!
//! tonic refuses an over-limit *unary* request itself, before any handler
//! runs, with OUT_OF_RANGE. gRPC's status guide, grpc-go and SPEC H5 call it
//! RESOURCE_EXHAUSTED, so this layer rewrites that one status on its way
//! out. (On the actor stream our own reader sees the error and maps it with
//! [`is_oversize`].)

use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::Map;
use http::HeaderValue;
use tonic::Code;
use tower::{Layer, Service};

/// What tonic's decoder says, percent-encoded or not, when a message is too large.
const TOO_LARGE: [&str; 2] = [
    "decoded message length too large",
    "decoded%20message%20length%20too%20large",
];

/// Whether a status is tonic's "message too large" refusal.
pub fn is_oversize(code: Code, message: &str) -> bool {
    code == Code::OutOfRange && TOO_LARGE.iter().any(|m| message.contains(m))
}

/// Wraps a service so its oversize refusals say RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Oversize<S> {
        Oversize { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
}

type Rewrite<R, E> = fn(Result<R, E>) -> Result<R, E>;

impl<S, Req, B> Service<Req> for Oversize<S>
where
    S: Service<Req, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Map<S::Future, Rewrite<http::Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.inner.call(request).map(rewrite as Rewrite<_, _>)
    }
}

/// A refusal happens before any message is sent, so its status is in the
/// response headers ("trailers-only"); that is the only place to look.
fn rewrite<B, E>(result: Result<http::Response<B>, E>) -> Result<http::Response<B>, E> {
    result.map(|mut response| {
        let headers = response.headers_mut();
        let oversize = headers.get("grpc-status").and_then(|v| v.to_str().ok()) == Some("11")
            && headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|m| is_oversize(Code::OutOfRange, m));
        if oversize {
            let code = (Code::ResourceExhausted as i32).to_string();
            headers.insert("grpc-status", HeaderValue::from_str(&code).expect("digits"));
        }
        response
    })
}
