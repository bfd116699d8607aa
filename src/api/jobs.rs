//! Timers and reminders for both front doors (SPEC TM1-TM3, RM1-RM4): the
//! names checked here, the rules in [`crate::runtime::jobs`].

use crate::api::names::{self, MAX_NAME_BYTES};
use crate::api::{ActorApi, ApiError};
use crate::runtime::jobs::reminder::Reminder;
use crate::runtime::jobs::{ReminderSpec, TimerSpec};

/// Which actor, and the timer's or reminder's name.
#[derive(Debug, Clone, Copy)]
pub struct JobName<'a> {
    pub actor_type: &'a str,
    pub actor_id: &'a str,
    pub name: &'a str,
}

impl ActorApi {
    pub async fn register_timer(&self, job: JobName<'_>, spec: TimerSpec) -> Result<(), ApiError> {
        let id = names::timer_id(job.actor_type, job.actor_id, job.name)?;
        names::check_length("callback", &spec.callback, MAX_NAME_BYTES)?;
        Ok(self.runtime()?.jobs().register_timer(id, spec).await?)
    }

    /// Idempotent: a missing timer is not an error.
    pub async fn unregister_timer(&self, job: JobName<'_>) -> Result<(), ApiError> {
        let id = names::timer_id(job.actor_type, job.actor_id, job.name)?;
        Ok(self.runtime()?.jobs().unregister_timer(id).await?)
    }

    pub async fn register_reminder(
        &self,
        job: JobName<'_>,
        spec: ReminderSpec,
    ) -> Result<(), ApiError> {
        let id = names::reminder_id(job.actor_type, job.actor_id, job.name)?;
        Ok(self.runtime()?.jobs().register_reminder(id, spec).await?)
    }

    pub async fn unregister_reminder(&self, job: JobName<'_>) -> Result<(), ApiError> {
        let id = names::reminder_id(job.actor_type, job.actor_id, job.name)?;
        Ok(self.runtime()?.jobs().unregister_reminder(id).await?)
    }

    pub async fn get_reminder(&self, job: JobName<'_>) -> Result<Reminder, ApiError> {
        let id = names::reminder_id(job.actor_type, job.actor_id, job.name)?;
        Ok(self.runtime()?.jobs().get_reminder(id).await?)
    }
}
