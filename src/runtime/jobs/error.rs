//! Why a timer or reminder request was refused, worded as daprd words it
//! (facts §2), with the gRPC code each one answers with.

use tonic::Code;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A bad schedule, or a type no live stream hosts (TM1, TM2).
    #[error("error creating actor timer: {0}")]
    TimerCreate(String),

    /// A bad schedule (TM2 via RM1).
    #[error("error creating actor reminder: {0}")]
    ReminderCreate(String),

    /// RM2: register, unregister and get alike.
    #[error("operations on actor reminders are only possible on hosted actor types")]
    NotHosted,

    /// RM2: `overwrite: false` and the name is taken.
    #[error("actor reminder already exists: {0}")]
    ReminderExists(String),

    /// RM3.
    #[error("actor reminder not found: {0}")]
    ReminderNotFound(String),

    /// A failure policy we cannot follow (a negative interval).
    #[error("invalid request: {0}")]
    Invalid(String),

    /// P4: the gateway holds as many as it keeps.
    #[error("too many {what}: this gateway keeps at most {limit}")]
    TooMany { what: &'static str, limit: usize },

    #[error("actor reminder store: {0}")]
    Store(#[from] StoreError),

    #[error("actor runtime is shutting down")]
    ShuttingDown,
}

impl JobError {
    /// The gRPC status code the RPC answers with.
    pub fn code(&self) -> Code {
        match self {
            JobError::TimerCreate(_) | JobError::ReminderCreate(_) => Code::Internal,
            JobError::NotHosted => Code::PermissionDenied,
            JobError::ReminderExists(_) => Code::AlreadyExists,
            JobError::ReminderNotFound(_) => Code::NotFound,
            JobError::Invalid(_) => Code::InvalidArgument,
            JobError::TooMany { .. } => Code::ResourceExhausted,
            JobError::Store(StoreError::Closed) | JobError::ShuttingDown => Code::Unavailable,
            JobError::Store(StoreError::Busy) => Code::ResourceExhausted,
            JobError::Store(_) => Code::Internal,
        }
    }
}
