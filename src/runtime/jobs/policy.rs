//! What happens when a reminder's fire fails (RM4): retry how often, and how
//! many times, before the reminder moves on to its next due time.
//!
//! Kept with the reminder in the store, so a restart keeps the policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::JobError;
use crate::proto::common::v1::{JobFailurePolicy, job_failure_policy::Policy};

/// daprd's default (the Scheduler's): a second apart, three times, so up
/// to four deliveries per tick (facts §4).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_RETRIES: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// No retry: the fire is lost, the next one still comes.
    Drop,
    /// Retry every `interval`; `max_retries` None: without end.
    Constant {
        interval: Duration,
        max_retries: Option<u32>,
    },
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy::Constant {
            interval: DEFAULT_INTERVAL,
            max_retries: Some(DEFAULT_MAX_RETRIES),
        }
    }
}

impl FailurePolicy {
    /// The registration's `failure_policy`; unset (or a oneof left empty)
    /// is the default. An unset interval is zero: retries then follow each
    /// other as fast as the app answers.
    pub fn from_proto(policy: Option<JobFailurePolicy>) -> Result<Self, JobError> {
        match policy.and_then(|p| p.policy) {
            None => Ok(FailurePolicy::default()),
            Some(Policy::Drop(_)) => Ok(FailurePolicy::Drop),
            Some(Policy::Constant(c)) => {
                let interval = match c.interval {
                    None => Duration::ZERO,
                    Some(d) => Duration::try_from(d).map_err(|_| {
                        JobError::Invalid("failure policy interval must not be negative".into())
                    })?,
                };
                Ok(FailurePolicy::Constant {
                    interval,
                    max_retries: c.max_retries,
                })
            }
        }
    }

    /// How long to wait before retrying a fire that has failed
    /// `failures_before` times already; None: give up on this fire.
    pub fn retry_after(&self, failures_before: u32) -> Option<Duration> {
        match *self {
            FailurePolicy::Drop => None,
            FailurePolicy::Constant {
                interval,
                max_retries,
            } => max_retries
                .is_none_or(|max| failures_before < max)
                .then_some(interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::v1::{JobFailurePolicyConstant, JobFailurePolicyDrop};

    #[test]
    fn the_default_retries_three_times_a_second_apart() {
        let p = FailurePolicy::from_proto(None).unwrap();
        let waits: Vec<_> = (0..5).map(|n| p.retry_after(n)).collect();
        let second = Some(Duration::from_secs(1));
        assert_eq!(waits, [second, second, second, None, None]);
    }

    #[test]
    fn drop_never_retries_and_unset_max_retries_never_stops() {
        let drop = JobFailurePolicy {
            policy: Some(Policy::Drop(JobFailurePolicyDrop {})),
        };
        assert_eq!(
            FailurePolicy::from_proto(Some(drop))
                .unwrap()
                .retry_after(0),
            None
        );
        let forever = JobFailurePolicy {
            policy: Some(Policy::Constant(JobFailurePolicyConstant {
                interval: Some(prost_types::Duration {
                    seconds: 2,
                    nanos: 0,
                }),
                max_retries: None,
            })),
        };
        let p = FailurePolicy::from_proto(Some(forever)).unwrap();
        assert_eq!(p.retry_after(u32::MAX - 1), Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_negative_interval_is_refused() {
        let negative = JobFailurePolicy {
            policy: Some(Policy::Constant(JobFailurePolicyConstant {
                interval: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0,
                }),
                max_retries: Some(1),
            })),
        };
        let e = FailurePolicy::from_proto(Some(negative)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
