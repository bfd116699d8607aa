//! The registration config: what an app said about itself in its
//! `initial_request`, as Rust types (durations as `std::time::Duration`).
//!
//! The manager keeps one per live connection; the newest connection's config
//! is the "current config" (SPEC R2), and `hosts` drives typed routing (R13).

use std::time::Duration;

use crate::error::Error;
use crate::proto;

/// How an app asked for its actors to be run. Values the app left out are `None`:
/// the runtime's defaults apply, and we do not invent them here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// The actor types the app hosts (`entities`), in the app's order, no repeats.
    pub actor_types: Vec<String>,
    pub settings: ActorSettings,
    /// Per-type overrides (`entities_config`), in the app's order.
    pub overrides: Vec<TypeOverride>,
}

/// The tunables an app can set for all its types or override per type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorSettings {
    pub idle_timeout: Option<Duration>,
    pub drain_ongoing_call_timeout: Option<Duration>,
    pub drain_rebalanced_actors: Option<bool>,
    pub reentrancy: Option<Reentrancy>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reentrancy {
    pub enabled: bool,
    pub max_stack_depth: Option<i32>,
}

/// Settings that replace the registration-wide ones for the listed types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeOverride {
    pub actor_types: Vec<String>,
    pub settings: ActorSettings,
}

impl RegistrationConfig {
    /// A config hosting the given types with default settings.
    pub fn hosting<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut config = RegistrationConfig::default();
        for t in types {
            push_unique(&mut config.actor_types, t.into());
        }
        config
    }

    /// Whether the app listed `actor_type` in its registration.
    pub fn hosts(&self, actor_type: &str) -> bool {
        self.actor_types.iter().any(|t| t == actor_type)
    }

    /// The settings in force for one type: its override if any, else the defaults.
    pub fn settings_for(&self, actor_type: &str) -> &ActorSettings {
        self.overrides
            .iter()
            .find(|o| o.actor_types.iter().any(|t| t == actor_type))
            .map_or(&self.settings, |o| &o.settings)
    }
}

impl TryFrom<proto::SubscribeActorEventsRequestInitialAlpha1> for RegistrationConfig {
    type Error = Error;

    fn try_from(init: proto::SubscribeActorEventsRequestInitialAlpha1) -> Result<Self, Error> {
        let mut actor_types = Vec::with_capacity(init.entities.len());
        for t in init.entities {
            push_unique(&mut actor_types, check_type_name(t)?);
        }
        let settings = settings(
            init.actor_idle_timeout,
            init.drain_ongoing_call_timeout,
            init.drain_rebalanced_actors,
            init.reentrancy,
        )?;
        let overrides = init
            .entities_config
            .into_iter()
            .map(TypeOverride::try_from)
            .collect::<Result<_, _>>()?;
        Ok(RegistrationConfig {
            actor_types,
            settings,
            overrides,
        })
    }
}

impl TryFrom<proto::ActorEntityConfig> for TypeOverride {
    type Error = Error;

    fn try_from(c: proto::ActorEntityConfig) -> Result<Self, Error> {
        let actor_types = c
            .entities
            .into_iter()
            .map(check_type_name)
            .collect::<Result<_, _>>()?;
        let settings = settings(
            c.actor_idle_timeout,
            c.drain_ongoing_call_timeout,
            c.drain_rebalanced_actors,
            c.reentrancy,
        )?;
        Ok(TypeOverride {
            actor_types,
            settings,
        })
    }
}

fn settings(
    idle: Option<prost_types::Duration>,
    drain: Option<prost_types::Duration>,
    drain_rebalanced: Option<bool>,
    reentrancy: Option<proto::ActorReentrancyConfig>,
) -> Result<ActorSettings, Error> {
    Ok(ActorSettings {
        idle_timeout: idle
            .map(|d| duration("actor_idle_timeout", d))
            .transpose()?,
        drain_ongoing_call_timeout: drain
            .map(|d| duration("drain_ongoing_call_timeout", d))
            .transpose()?,
        drain_rebalanced_actors: drain_rebalanced,
        reentrancy: reentrancy.map(|r| Reentrancy {
            enabled: r.enabled,
            max_stack_depth: r.max_stack_depth,
        }),
    })
}

/// A protobuf Duration as a `std` one; negative or malformed durations are the
/// app's mistake and are refused rather than clamped, so it hears about them.
fn duration(field: &str, d: prost_types::Duration) -> Result<Duration, Error> {
    Duration::try_from(d).map_err(|e| Error::InvalidRegistration(format!("{field}: {e}")))
}

fn check_type_name(t: String) -> Result<String, Error> {
    if t.is_empty() || t.chars().any(char::is_control) {
        return Err(Error::InvalidRegistration(format!(
            "actor type {t:?} must be non-empty and have no control characters"
        )));
    }
    Ok(t)
}

fn push_unique(types: &mut Vec<String>, t: String) {
    if !types.contains(&t) {
        types.push(t);
    }
}
