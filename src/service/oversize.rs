//! One status for "message too large", whichever RPC it happens on.
//!
//! tonic refuses an over-limit *unary* request itself, before any handler
//! runs, with OUT_OF_RANGE. gRPC's status guide, grpc-go and SPEC H5 call it
//! RESOURCE_EXHAUSTED, so the gateway's router passes every response through
//! [`rewrite`], which changes that one status on its way out. (On the actor
//! stream our own reader sees the error and maps it with [`is_oversize`].)

use http::HeaderValue;
use tonic::Code;

/// What tonic's decoder says, percent-encoded or not, when a message is too large.
const TOO_LARGE: [&str; 2] = [
    "decoded message length too large",
    "decoded%20message%20length%20too%20large",
];

/// Whether a status is tonic's "message too large" refusal.
pub fn is_oversize(code: Code, message: &str) -> bool {
    code == Code::OutOfRange && TOO_LARGE.iter().any(|m| message.contains(m))
}

/// Makes tonic's oversize refusal say RESOURCE_EXHAUSTED; any other
/// response passes unchanged.
///
/// A refusal happens before any message is sent, so its status is in the
/// response headers ("trailers-only"); that is the only place to look.
pub fn rewrite<B, E>(result: Result<http::Response<B>, E>) -> Result<http::Response<B>, E> {
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
