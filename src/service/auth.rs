//! The API token check (SPEC S1): when a token is configured, every RPC but
//! gRPC health must carry it in `dapr-api-token`, streams included.
//!
//! It runs before any handler code, so a refused stream never reaches
//! registration: in the gateway's router (`router`), and as a tonic
//! interceptor for whoever mounts `DaprService` in a tonic server of their
//! own. The comparison is constant-time so the token cannot be guessed byte
//! by byte from response timings.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key Dapr uses for its API token.
pub const TOKEN_HEADER: &str = "dapr-api-token";

/// Checks `dapr-api-token` against the configured token, if there is one.
#[derive(Clone, Default)]
pub struct TokenCheck {
    token: Option<Arc<[u8]>>,
}

impl TokenCheck {
    /// `None` (or an empty token) lets every request through, as Dapr does.
    pub fn new(token: Option<&str>) -> Self {
        TokenCheck {
            token: token
                .filter(|t| !t.is_empty())
                .map(|t| Arc::from(t.as_bytes())),
        }
    }
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.debug_struct("TokenCheck")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl TokenCheck {
    /// Whether a request with these headers may go on.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        match headers.get(TOKEN_HEADER).map(|v| v.as_bytes()) {
            Some(given) if bool::from(given.ct_eq(expected)) => Ok(()),
            Some(_) => Err(Status::unauthenticated("invalid dapr-api-token")),
            None => Err(Status::unauthenticated("missing dapr-api-token")),
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata().as_ref()).map(|()| request)
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;
    use tonic::metadata::MetadataValue;

    use super::*;

    fn request(token: Option<&'static str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(token) = token {
            let value = MetadataValue::from_static(token);
            request.metadata_mut().insert(TOKEN_HEADER, value);
        }
        request
    }

    /// S1 for whoever mounts `DaprService` in a tonic server of their own,
    /// with this check as its interceptor (the gateway's router calls
    /// `check` itself; tests/security.rs covers that path end to end).
    #[test]
    fn as_an_interceptor_it_lets_in_only_the_configured_token() {
        let mut check = TokenCheck::new(Some("s3cret"));
        for wrong in [None, Some(""), Some("s3cre"), Some("s3cret!")] {
            let refused = check.call(request(wrong)).expect_err("let in");
            assert_eq!(refused.code(), Code::Unauthenticated, "{wrong:?}");
        }
        assert!(check.call(request(Some("s3cret"))).is_ok());
        let mut open = TokenCheck::new(None);
        assert!(open.call(request(None)).is_ok());
    }
}
