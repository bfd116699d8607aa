//! The rules for the names a request carries (SPEC F1, P4), whichever front
//! door it came through: actor type and id, method, timer and reminder names.

use crate::api::ApiError;
use crate::runtime::jobs::JobId;
use crate::runtime::state::MAX_ACTOR_NAME_BYTES;

/// Longest timer or reminder name, or timer callback, accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// Characters that would change an actor type's or id's meaning in the URLs
/// and state keys the app builds from them.
const ACTOR_FORBIDDEN: &[char] = &['/', '\\', '#', '?'];

/// F1 for an invoke: the actor, and a method with no `# ?`.
pub fn check_invoke(actor_type: &str, actor_id: &str, method: &str) -> Result<(), ApiError> {
    check_actor(actor_type, actor_id)?;
    check_name("method", method, &['#', '?'])
}

/// F1's rules for an actor's type and id, which every request naming an
/// actor applies too.
pub fn check_actor(actor_type: &str, actor_id: &str) -> Result<(), ApiError> {
    check_name("actor_type", actor_type, ACTOR_FORBIDDEN)?;
    check_name("actor_id", actor_id, ACTOR_FORBIDDEN)?;
    if actor_type == "." || actor_type == ".." || actor_id == "." || actor_id == ".." {
        return Err(ApiError::Invalid(
            "actor_type and actor_id must not be \".\" or \"..\"".into(),
        ));
    }
    Ok(())
}

/// Refuses an empty `value`, and one holding a control character or one of
/// `forbidden`.
pub fn check_name(field: &str, value: &str, forbidden: &[char]) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::Invalid(format!("{field} must not be empty")));
    }
    // `char::is_control` covers NUL and the other C0/C1 control characters.
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || forbidden.contains(c))
    {
        return Err(ApiError::Invalid(format!("{field} must not contain {c:?}")));
    }
    Ok(())
}

/// A reminder's names; its name may not be empty (facts §2).
pub fn reminder_id(actor_type: &str, actor_id: &str, name: &str) -> Result<JobId, ApiError> {
    if name.is_empty() {
        return Err(ApiError::Invalid(
            "invalid request: reminder name cannot be empty".into(),
        ));
    }
    job_id(actor_type, actor_id, name, "reminder")
}

/// A timer's names: F1 for the actor; daprd's ValidateName for the timer's
/// name (facts §2), where an empty name passes.
pub fn timer_id(actor_type: &str, actor_id: &str, name: &str) -> Result<JobId, ApiError> {
    job_id(actor_type, actor_id, name, "timer")
}

fn job_id(actor_type: &str, actor_id: &str, name: &str, kind: &str) -> Result<JobId, ApiError> {
    check_actor(actor_type, actor_id)?;
    check_length("actor_type", actor_type, MAX_ACTOR_NAME_BYTES)?;
    check_length("actor_id", actor_id, MAX_ACTOR_NAME_BYTES)?;
    let field = format!("{kind} name");
    check_length(&field, name, MAX_NAME_BYTES)?;
    if !name.is_empty() {
        check_name(&field, name, ACTOR_FORBIDDEN)?;
    }
    if name == "." || name == ".." {
        return Err(ApiError::Invalid(format!(
            "{field} must not be \".\" or \"..\""
        )));
    }
    Ok(JobId::new(actor_type, actor_id, name))
}

pub fn check_length(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::Invalid(format!(
            "{field} of {} bytes exceeds the limit of {max} bytes",
            value.len()
        )));
    }
    Ok(())
}
