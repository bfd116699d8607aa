//! How a refused or failed request answers over HTTP: daprd's error body
//! `{"errorCode","message"}` with its HTTP status (facts §0, the error
//! catalogue), from the [`ApiError`] both front doors share.
//!
//! One deviation, chosen in issue 14: an app's `request_failed` takes the
//! HTTP status of its gRPC code (gRPC's standard table, `http_status`),
//! where daprd always answers 500.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use tonic::Code;

use crate::api::ApiError;
use crate::error::Error;
use crate::http::json;
use crate::runtime::jobs::JobError;
use crate::service::status::{app_code, bounded};

/// What the request was, for the errorCode of a failure that is not
/// specific to one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Invoke,
    StateGet,
    StateTransaction,
    ReminderCreate,
    ReminderGet,
    ReminderDelete,
    TimerCreate,
    TimerDelete,
}

/// An error answer: status, daprd errorCode and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            // Messages can echo names and app text: bounded like gRPC's.
            message: bounded(message.into()),
        }
    }

    /// `ERR_BAD_REQUEST`: a name or field breaks the rules.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        let message = message.to_string();
        let message = if message.starts_with("invalid request: ") {
            message
        } else {
            format!("invalid request: {message}")
        };
        HttpError::new(StatusCode::BAD_REQUEST, "ERR_BAD_REQUEST", message)
    }

    /// `ERR_MALFORMED_REQUEST`: a JSON body that does not decode (or is too large).
    pub fn malformed(cause: impl std::fmt::Display) -> Self {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            "ERR_MALFORMED_REQUEST",
            format!("failed deserializing HTTP body: {cause}"),
        )
    }

    /// `ERR_ACTOR_TYPE_RESERVED`: Dapr's own actor types, on the routes
    /// other than invoke.
    pub fn reserved(actor_type: &str) -> Self {
        HttpError::new(
            StatusCode::FORBIDDEN,
            "ERR_ACTOR_TYPE_RESERVED",
            format!("actor type {actor_type} is reserved"),
        )
    }

    /// How `error` answers when it ended `op`.
    pub fn from_api(error: ApiError, op: Op) -> Self {
        match error {
            ApiError::Invalid(message) => HttpError::bad_request(message),
            ApiError::Call(e) => call_error(e, op),
            ApiError::State(e) => failed_as(op, e.code(), e),
            ApiError::Job(e) => job_error(e, op),
            ApiError::ActorNotActive => HttpError::new(
                StatusCode::BAD_REQUEST,
                "ERR_ACTOR_INSTANCE_MISSING",
                error.to_string(),
            ),
            ApiError::NoRuntime => HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ERR_ACTOR_RUNTIME_NOT_FOUND",
                "actor runtime is not configured",
            ),
        }
    }
}

/// The errorCode and message prefix of `op`'s generic failure (500).
fn op_failure(op: Op) -> (&'static str, &'static str) {
    match op {
        Op::Invoke => ("ERR_ACTOR_INVOKE_METHOD", "error invoke actor method"),
        Op::StateGet => ("ERR_ACTOR_STATE_GET", "error getting actor state"),
        Op::StateTransaction => (
            "ERR_ACTOR_STATE_TRANSACTION_SAVE",
            "error saving actor transaction state",
        ),
        Op::ReminderCreate => ("ERR_ACTOR_REMINDER_CREATE", "error creating actor reminder"),
        Op::ReminderGet => ("ERR_ACTOR_REMINDER_GET", "error getting actor reminder"),
        Op::ReminderDelete => ("ERR_ACTOR_REMINDER_DELETE", "error deleting actor reminder"),
        Op::TimerCreate => ("ERR_ACTOR_TIMER_CREATE", "error creating actor timer"),
        Op::TimerDelete => ("ERR_ACTOR_TIMER_DELETE", "error deleting actor timer"),
    }
}

/// 500 with `op`'s errorCode, the cause after its prefix (unless the cause
/// already says it, as the runtime's job errors do).
fn failed(op: Op, cause: impl std::fmt::Display) -> HttpError {
    failed_as(op, Code::Internal, cause)
}

/// As [`failed`], but a failure the caller can act on keeps its status: a
/// limit reached or a busy store (RESOURCE_EXHAUSTED) is 429, a closing
/// store (UNAVAILABLE) 503: retry later. daprd has neither limit, so it
/// has no status of its own for them.
fn failed_as(op: Op, grpc: Code, cause: impl std::fmt::Display) -> HttpError {
    let status = match grpc {
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let (code, prefix) = op_failure(op);
    let cause = cause.to_string();
    let message = if cause.starts_with(prefix) {
        cause
    } else {
        format!("{prefix}: {cause}")
    };
    HttpError::new(status, code, message)
}

fn call_error(e: Error, op: Op) -> HttpError {
    match e {
        Error::ShuttingDown => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ERR_ACTOR_RUNTIME_CLOSED",
            "actor runtime is closed",
        ),
        Error::MaxStackDepth => HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ERR_ACTOR_STACK_DEPTH",
            "maximum stack depth exceeded",
        ),
        Error::AppFailed { code, message, .. } => {
            let code = app_code(code);
            let cause = match code {
                Code::NotFound => format!("actor method not found: {message}"),
                _ => format!("error from actor service: {message}"),
            };
            let (error_code, prefix) = op_failure(op);
            HttpError::new(http_status(code), error_code, format!("{prefix}: {cause}"))
        }
        other => failed(op, other),
    }
}

fn job_error(e: JobError, op: Op) -> HttpError {
    let status =
        |s: StatusCode, code: &'static str, e: JobError| HttpError::new(s, code, e.to_string());
    match e {
        JobError::NotHosted => status(StatusCode::FORBIDDEN, "ERR_ACTOR_REMINDER_NON_HOSTED", e),
        JobError::ReminderExists(_) => {
            status(StatusCode::CONFLICT, "ERR_ACTOR_REMINDER_ALREADY_EXISTS", e)
        }
        JobError::ReminderNotFound(_) => {
            status(StatusCode::NOT_FOUND, "ERR_ACTOR_REMINDER_NOT_FOUND", e)
        }
        JobError::Invalid(message) => HttpError::bad_request(message),
        JobError::ShuttingDown => call_error(Error::ShuttingDown, op),
        other => failed_as(op, other.code(), other),
    }
}

/// gRPC's standard mapping of a status code to an HTTP status (daprd's
/// `HTTPStatusFromCode`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json::marshal(&json!({"errorCode": self.code, "message": self.message}));
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A plain-text answer, as daprd gives for a bad token or a bad path escape.
pub fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_codes_take_the_standard_http_status() {
        let failed = |code: Code| {
            let e = Error::AppFailed {
                code: code as u32,
                message: "boom".into(),
                permanent: false,
            };
            HttpError::from_api(ApiError::Call(e), Op::Invoke)
        };
        let not_found = failed(Code::NotFound);
        assert_eq!(not_found.status, StatusCode::NOT_FOUND);
        assert_eq!(not_found.code, "ERR_ACTOR_INVOKE_METHOD");
        assert_eq!(
            not_found.message,
            "error invoke actor method: actor method not found: boom"
        );
        assert_eq!(
            failed(Code::InvalidArgument).status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            failed(Code::Unavailable).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            failed(Code::Internal).message,
            "error invoke actor method: error from actor service: boom"
        );
    }

    /// A runtime whose actors are gone (shutting down) is 503
    /// ERR_ACTOR_RUNTIME_CLOSED on every route, whether the call or a job
    /// found it closed: the caller should retry elsewhere or later.
    #[test]
    fn a_closed_runtime_is_503_runtime_closed() {
        let call = HttpError::from_api(ApiError::Call(Error::ShuttingDown), Op::Invoke);
        let job = HttpError::from_api(
            ApiError::Job(crate::runtime::jobs::JobError::ShuttingDown),
            Op::ReminderCreate,
        );
        for e in [call, job] {
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code, "ERR_ACTOR_RUNTIME_CLOSED");
            assert_eq!(e.message, "actor runtime is closed");
        }
    }
}
