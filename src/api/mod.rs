//! The actor API behind both front doors: gRPC (`crate::service`) and
//! daprd's HTTP API (`crate::http`). One copy of the rules: the names are
//! checked here (`names`), calls take their actor's turn here (`invoke`),
//! and state, timers and reminders go to the runtime from here (`state`,
//! `jobs`). Each front door only turns its wire shapes into these calls, and
//! an [`ApiError`] into its own status (a gRPC code, or an HTTP status and
//! daprd errorCode).

pub mod jobs;
pub mod names;
pub mod state;

mod invoke;

use tonic::{Code, Status};

use crate::error::Error;
use crate::runtime::Runtime;
use crate::runtime::jobs::JobError;
use crate::runtime::state::StateError;
use crate::service::status::to_status;
use crate::transport::Transport;

pub use invoke::{Metadata, TypeCount};

/// The actor API of one gateway: cheap to clone, shared by both front doors.
#[derive(Clone)]
pub struct ActorApi {
    transport: Transport,
    runtime: Option<Runtime>,
    app_id: String,
}

/// Why an actor API request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A name or field breaks the rules (F1, P4).
    #[error("{0}")]
    Invalid(String),
    /// The call could not be made or the app did not answer it normally.
    #[error(transparent)]
    Call(#[from] Error),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Job(#[from] JobError),
    /// A state transaction on an actor not active here (ST2).
    #[error("actor instance is missing")]
    ActorNotActive,
    /// The gateway relays only: state, timers and reminders are not served.
    #[error("this gateway runs no actor runtime")]
    NoRuntime,
}

impl ApiError {
    /// The gRPC status this error answers with.
    pub fn into_status(self) -> Status {
        match self {
            ApiError::Invalid(message) => Status::invalid_argument(message),
            ApiError::Call(e) => to_status(e),
            ApiError::State(e) => Status::new(e.code(), e.to_string()),
            ApiError::Job(e) => Status::new(e.code(), e.to_string()),
            ApiError::ActorNotActive => Status::internal(self.to_string()),
            ApiError::NoRuntime => Status::unimplemented(self.to_string()),
        }
    }

    /// The gRPC code of [`into_status`](Self::into_status), without building it.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::Call(e) => to_status(e.clone()).code(),
            ApiError::State(e) => e.code(),
            ApiError::Job(e) => e.code(),
            ApiError::ActorNotActive => Code::Internal,
            ApiError::NoRuntime => Code::Unimplemented,
        }
    }
}

impl ActorApi {
    pub fn new(transport: Transport, app_id: impl Into<String>) -> Self {
        ActorApi {
            transport,
            runtime: None,
            app_id: app_id.into(),
        }
    }

    /// Run actors with `runtime` (SPEC §8); without one calls are relayed.
    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn runtime(&self) -> Result<&Runtime, ApiError> {
        self.runtime.as_ref().ok_or(ApiError::NoRuntime)
    }

    fn optional_runtime(&self) -> Option<&Runtime> {
        self.runtime.as_ref()
    }
}
