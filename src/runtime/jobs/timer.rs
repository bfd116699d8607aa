//! One timer (TM1-TM3): memory only, so it is just its schedule, its
//! callback and its data, already wrapped as the Any every fire carries.

use prost_types::Any;

use super::JobId;
use crate::runtime::schedule::Schedule;
use crate::transport::TimerRequest;

#[derive(Debug, Clone)]
pub struct Timer {
    pub schedule: Schedule,
    pub callback: String,
    /// `runtime::data::encode` of the registered bytes (facts §3).
    pub data: Option<Any>,
}

impl Timer {
    /// The fire message: the registered due time, period and callback, and
    /// the data (TM3). Its `id` is stamped by the connection.
    pub fn request(&self, id: &JobId) -> TimerRequest {
        TimerRequest {
            id: String::new(),
            actor_type: id.actor_type().to_owned(),
            actor_id: id.actor_id().to_owned(),
            name: id.name().to_owned(),
            due_time: self.schedule.due_time().to_owned(),
            period: self.schedule.period().to_owned(),
            callback: self.callback.clone(),
            data: self.data.clone(),
            metadata: Default::default(),
        }
    }
}
