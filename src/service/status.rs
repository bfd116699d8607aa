//! How library errors become gRPC statuses at the front door (SPEC F3).
//!
//! The rule of thumb: a status tells the caller what to do next. Anything
//! that a retry against a (re)connected app could fix is UNAVAILABLE; the
//! app's own verdicts pass through unchanged.

use tonic::{Code, Status};

use crate::error::Error;

/// The gRPC status for an error. `AppError` is not a failure at the gRPC level
/// (Dapr returns it with OK), so callers handle it before asking for a status.
pub fn to_status(err: Error) -> Status {
    let message = err.to_string();
    match err {
        Error::NoConnection | Error::Disconnected { .. } | Error::ShuttingDown => {
            Status::unavailable(message)
        }
        Error::DeadlineExceeded => Status::deadline_exceeded(message),
        Error::TooManyPending { .. } | Error::MessageTooLarge { .. } => {
            Status::resource_exhausted(message)
        }
        Error::AppFailed { code, message, .. } => Status::new(app_code(code), message),
        Error::AppError { .. } => Status::unknown(message),
        Error::Protocol(_) => Status::internal(message),
        Error::InvalidRegistration(_) => Status::invalid_argument(message),
    }
}

/// The app's status code as it sent it; codes outside 1..=16 are not statuses
/// anyone could act on, so they become UNKNOWN. (0 would claim success for a
/// failure.)
fn app_code(code: u32) -> Code {
    match i32::try_from(code) {
        Ok(c @ 1..=16) => Code::from_i32(c),
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_codes_pass_through_and_strangers_become_unknown() {
        assert_eq!(app_code(5), Code::NotFound);
        assert_eq!(app_code(16), Code::Unauthenticated);
        for odd in [0, 17, 1000, u32::MAX] {
            assert_eq!(app_code(odd), Code::Unknown, "{odd}");
        }
    }
}
