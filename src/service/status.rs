//! How library errors become gRPC statuses at the front door (SPEC F3).
//!
//! The rule of thumb: a status tells the caller what to do next. Anything
//! that a retry against a (re)connected app could fix is UNAVAILABLE; the
//! app's own verdicts pass through unchanged.

use tonic::{Code, Status};

use crate::clip::cut_to;
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
        Error::TooManyPending { .. } | Error::MessageTooLarge { .. } | Error::MaxStackDepth => {
            Status::resource_exhausted(message)
        }
        Error::AppFailed { code, message, .. } => Status::new(app_code(code), bounded(message)),
        Error::AppError { .. } => Status::unknown(message),
        Error::Protocol(_) => Status::internal(message),
        Error::InvalidRegistration(_) => Status::invalid_argument(message),
    }
}

/// The longest app failure message passed on, in bytes. It travels in the
/// caller's `grpc-message` header, and HTTP/2 clients refuse header lists
/// beyond ~16 KiB by tearing down the whole connection, failing the
/// caller's other calls too. An app's message is for humans: 1 KiB is plenty.
pub const MAX_APP_MESSAGE_BYTES: usize = 1024;

pub(crate) fn bounded(message: String) -> String {
    const CUT: &str = "... (truncated)";
    cut_to(message, MAX_APP_MESSAGE_BYTES, CUT)
}

/// The app's status code as it sent it; codes outside 1..=16 are not statuses
/// anyone could act on, so they become UNKNOWN. (0 would claim success for a
/// failure.)
pub(crate) fn app_code(code: u32) -> Code {
    match i32::try_from(code) {
        Ok(c @ 1..=16) => Code::from_i32(c),
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_app_messages_are_cut_at_a_char_boundary() {
        assert_eq!(bounded("short".into()), "short");
        let long = bounded("é".repeat(5000));
        assert!(long.len() <= MAX_APP_MESSAGE_BYTES, "{}", long.len());
        assert!(long.ends_with("... (truncated)"));
    }

    #[test]
    fn app_codes_pass_through_and_strangers_become_unknown() {
        assert_eq!(app_code(5), Code::NotFound);
        assert_eq!(app_code(16), Code::Unauthenticated);
        for odd in [0, 17, 1000, u32::MAX] {
            assert_eq!(app_code(odd), Code::Unknown, "{odd}");
        }
    }
}
