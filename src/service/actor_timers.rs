//! RegisterActorTimer, UnregisterActorTimer, RegisterActorReminder,
//! UnregisterActorReminder and GetActorReminder (SPEC TM1-TM3, RM1-RM4,
//! P4): the names checked, and the wire shapes in and out of
//! [`crate::runtime::jobs`], which owns the rules.
//!
//! Caps (P4): actor type and id as for actor state
//! ([`MAX_ACTOR_NAME_BYTES`]), timer and reminder names and callbacks
//! [`MAX_NAME_BYTES`]; due time, period and ttl are capped by the schedule
//! parser, data by the message limit.

use tonic::{Response, Status};

use crate::proto::{
    GetActorReminderRequest, GetActorReminderResponse, RegisterActorReminderRequest,
    RegisterActorTimerRequest, UnregisterActorReminderRequest, UnregisterActorTimerRequest,
};
use crate::runtime::Runtime;
use crate::runtime::data;
use crate::runtime::jobs::{FailurePolicy, JobError, JobId, ReminderSpec, TimerSpec};
use crate::runtime::state::MAX_ACTOR_NAME_BYTES;
use crate::service::front_door::{check_actor, check_name};

/// Longest timer or reminder name, or timer callback, accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

pub async fn register_timer(
    runtime: &Runtime,
    r: RegisterActorTimerRequest,
) -> Result<Response<()>, Status> {
    let id = job_id(&r.actor_type, &r.actor_id, &r.name, "timer")?;
    check_length("callback", &r.callback, MAX_NAME_BYTES)?;
    let spec = TimerSpec {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        callback: r.callback,
        data: r.data,
    };
    runtime
        .jobs()
        .register_timer(id, spec)
        .await
        .map_err(status)?;
    Ok(Response::new(()))
}

pub async fn unregister_timer(
    runtime: &Runtime,
    r: UnregisterActorTimerRequest,
) -> Result<Response<()>, Status> {
    let id = job_id(&r.actor_type, &r.actor_id, &r.name, "timer")?;
    runtime.jobs().unregister_timer(id).await.map_err(status)?;
    Ok(Response::new(()))
}

pub async fn register_reminder(
    runtime: &Runtime,
    r: RegisterActorReminderRequest,
) -> Result<Response<()>, Status> {
    let id = reminder_id(&r.actor_type, &r.actor_id, &r.name)?;
    let spec = ReminderSpec {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        data: r.data,
        // RM2: unset means replace.
        overwrite: r.overwrite.unwrap_or(true),
        policy: FailurePolicy::from_proto(r.failure_policy).map_err(status)?,
    };
    let jobs = runtime.jobs();
    jobs.register_reminder(id, spec).await.map_err(status)?;
    Ok(Response::new(()))
}

pub async fn unregister_reminder(
    runtime: &Runtime,
    r: UnregisterActorReminderRequest,
) -> Result<Response<()>, Status> {
    let id = reminder_id(&r.actor_type, &r.actor_id, &r.name)?;
    runtime
        .jobs()
        .unregister_reminder(id)
        .await
        .map_err(status)?;
    Ok(Response::new(()))
}

/// RM3: the strings as registered (unset when registered empty) and the
/// data as the same Any a fire carries.
pub async fn get_reminder(
    runtime: &Runtime,
    r: GetActorReminderRequest,
) -> Result<Response<GetActorReminderResponse>, Status> {
    let id = reminder_id(&r.actor_type, &r.actor_id, &r.name)?;
    let reminder = runtime.jobs().get_reminder(id).await.map_err(status)?;
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let schedule = &reminder.schedule;
    Ok(Response::new(GetActorReminderResponse {
        actor_type: r.actor_type,
        actor_id: r.actor_id,
        due_time: set(schedule.due_time()),
        period: set(schedule.period()),
        ttl: set(schedule.ttl()),
        data: data::encode(&reminder.data),
    }))
}

/// A reminder's names; its name may not be empty (facts §2).
fn reminder_id(actor_type: &str, actor_id: &str, name: &str) -> Result<JobId, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument(
            "invalid request: reminder name cannot be empty",
        ));
    }
    job_id(actor_type, actor_id, name, "reminder")
}

/// F1 for the actor; daprd's ValidateName for the job's name (facts §2),
/// where an empty name passes.
fn job_id(actor_type: &str, actor_id: &str, name: &str, kind: &str) -> Result<JobId, Status> {
    check_actor(actor_type, actor_id)?;
    check_length("actor_type", actor_type, MAX_ACTOR_NAME_BYTES)?;
    check_length("actor_id", actor_id, MAX_ACTOR_NAME_BYTES)?;
    let field = format!("{kind} name");
    check_length(&field, name, MAX_NAME_BYTES)?;
    if !name.is_empty() {
        check_name(&field, name, &['/', '\\', '#', '?'])?;
    }
    if name == "." || name == ".." {
        return Err(Status::invalid_argument(format!(
            "{field} must not be \".\" or \"..\""
        )));
    }
    Ok(JobId::new(actor_type, actor_id, name))
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} of {} bytes exceeds the limit of {max} bytes",
            value.len()
        )));
    }
    Ok(())
}

fn status(e: JobError) -> Status {
    Status::new(e.code(), e.to_string())
}
