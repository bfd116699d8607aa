//! RegisterActorTimer, UnregisterActorTimer, RegisterActorReminder,
//! UnregisterActorReminder and GetActorReminder (SPEC TM1-TM3, RM1-RM4,
//! P4): the gRPC shapes in and out of [`crate::api`], which checks the
//! names for both front doors.
//!
//! Caps (P4): actor type and id as for actor state, timer and reminder
//! names and callbacks [`MAX_NAME_BYTES`]; due time, period and ttl are
//! capped by the schedule parser, data by the message limit.

use tonic::{Response, Status};

use crate::api::jobs::JobName;
use crate::api::{ActorApi, ApiError};
use crate::proto::{
    GetActorReminderRequest, GetActorReminderResponse, RegisterActorReminderRequest,
    RegisterActorTimerRequest, UnregisterActorReminderRequest, UnregisterActorTimerRequest,
};
use crate::runtime::jobs::{FailurePolicy, ReminderSpec, TimerSpec};

pub use crate::api::names::MAX_NAME_BYTES;

fn job<'a>(actor_type: &'a str, actor_id: &'a str, name: &'a str) -> JobName<'a> {
    JobName {
        actor_type,
        actor_id,
        name,
    }
}

pub async fn register_timer(
    api: &ActorApi,
    r: RegisterActorTimerRequest,
) -> Result<Response<()>, Status> {
    let spec = TimerSpec {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        callback: r.callback,
        data: r.data,
        data_is_json: false,
    };
    api.register_timer(job(&r.actor_type, &r.actor_id, &r.name), spec)
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(()))
}

pub async fn unregister_timer(
    api: &ActorApi,
    r: UnregisterActorTimerRequest,
) -> Result<Response<()>, Status> {
    api.unregister_timer(job(&r.actor_type, &r.actor_id, &r.name))
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(()))
}

pub async fn register_reminder(
    api: &ActorApi,
    r: RegisterActorReminderRequest,
) -> Result<Response<()>, Status> {
    let policy =
        FailurePolicy::from_proto(r.failure_policy).map_err(|e| ApiError::from(e).into_status())?;
    let spec = ReminderSpec {
        due_time: r.due_time,
        period: r.period,
        ttl: r.ttl,
        data: r.data,
        data_is_json: false,
        // RM2: unset means replace.
        overwrite: r.overwrite.unwrap_or(true),
        policy,
    };
    api.register_reminder(job(&r.actor_type, &r.actor_id, &r.name), spec)
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(()))
}

pub async fn unregister_reminder(
    api: &ActorApi,
    r: UnregisterActorReminderRequest,
) -> Result<Response<()>, Status> {
    api.unregister_reminder(job(&r.actor_type, &r.actor_id, &r.name))
        .await
        .map_err(ApiError::into_status)?;
    Ok(Response::new(()))
}

/// RM3: the strings as registered (unset when registered empty) and the
/// data as the same Any a fire carries.
pub async fn get_reminder(
    api: &ActorApi,
    r: GetActorReminderRequest,
) -> Result<Response<GetActorReminderResponse>, Status> {
    let reminder = api
        .get_reminder(job(&r.actor_type, &r.actor_id, &r.name))
        .await
        .map_err(ApiError::into_status)?;
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let schedule = &reminder.schedule;
    Ok(Response::new(GetActorReminderResponse {
        actor_type: r.actor_type,
        actor_id: r.actor_id,
        due_time: set(schedule.due_time()),
        period: set(schedule.period()),
        ttl: set(schedule.ttl()),
        data: reminder.data_any(),
    }))
}
