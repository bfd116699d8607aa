//! The one error type of the library: everything a caller of `Send` or of the
//! typed transport can be told instead of a reply.
//!
//! Each variant maps to exactly one gRPC status at the front door (see
//! `service::status`), so the variants are chosen by what a caller should do
//! next: retry elsewhere (`NoConnection`, `Disconnected`), give up
//! (`DeadlineExceeded`), or report the app's own answer (`AppFailed`, `AppError`).

use std::sync::Arc;

/// What a caller is told when a callback does not yield a normal reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No app stream is registered (SPEC R1).
    #[error("actor host is not connected")]
    NoConnection,

    /// The stream that carried the request closed before the app answered (SPEC R5).
    #[error("{cause}")]
    Disconnected { cause: Arc<str> },

    /// The caller's deadline passed before the reply came (SPEC R10, R11).
    #[error("deadline exceeded before the actor host replied")]
    DeadlineExceeded,

    /// The connection already holds as many unanswered requests as it may.
    #[error("too many requests pending on this actor host connection (limit {limit})")]
    TooManyPending { limit: usize },

    /// The request is larger than the app's stream may carry.
    #[error("request of {size} bytes exceeds the stream's message limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },

    /// The app answered `request_failed` with a gRPC status code.
    #[error("actor host failed the request (code {code}): {message}")]
    AppFailed {
        code: u32,
        message: String,
        /// The app says retrying elsewhere will not help (NotFound).
        permanent: bool,
    },

    /// The actor method itself raised: `invoke_response` with `error: true`.
    /// The payload is the app's error document and is handed back as it is.
    #[error("actor method returned an application error ({} bytes)", payload.len())]
    AppError {
        payload: Vec<u8>,
        metadata: std::collections::HashMap<String, String>,
    },

    /// The app answered with a message of the wrong kind for the request.
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The app's registration could not be turned into a config.
    #[error("invalid registration: {0}")]
    InvalidRegistration(String),

    /// A reentrant call chain went deeper than its type allows (SPEC T3).
    #[error("maximum stack depth exceeded")]
    MaxStackDepth,

    /// The actor system is gone (shutting down): nobody can route the request.
    #[error("actor system is shutting down")]
    ShuttingDown,
}

/// The cause reported for requests that were still pending when their stream
/// closed and no more specific cause was given to `Close`.
pub const DISCONNECTED: &str = "actor host disconnected before responding";

impl Error {
    /// `Disconnected` with the default cause.
    pub fn disconnected() -> Self {
        Error::Disconnected {
            cause: Arc::from(DISCONNECTED),
        }
    }
}
