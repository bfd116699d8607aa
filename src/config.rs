//! The registration config: what an app said about itself in its
//! `initial_request`, as Rust types (durations as `std::time::Duration`).
//!
//! The manager keeps one per live connection; the newest connection's config
//! is the "current config" (SPEC R2), and `hosts` drives typed routing (R13).
//!
//! A registration comes from the network and is converted on an actor thread
//! that other apps' calls share, so its size is capped ([`RegistrationLimits`])
//! and the conversion is linear in it: one pass, a set for repeats. The caps
//! are checked on the counts before any name is looked at, so a registration
//! over a cap costs nothing but the refusal.

use std::collections::HashSet;
use std::time::Duration;

use crate::clip::Clipped;
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

/// How large a registration may be. Each cap bounds the work one
/// `initial_request` costs the actor thread it lands on (and the memory the
/// registry keeps for it); over any of them the app is refused with
/// INVALID_ARGUMENT before anything is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimits {
    /// Actor type names in `entities` and in every `entities_config`, counted
    /// with their repeats.
    pub max_actor_types: usize,
    /// Entries of `entities_config`.
    pub max_type_configs: usize,
    /// Bytes in one actor type name.
    pub max_type_name_bytes: usize,
}

impl Default for RegistrationLimits {
    /// 10,000 types, far more than any app hosts, converts and registers in
    /// about a millisecond (docs/performance.md); names as long as Dapr's
    /// own state keys allow in practice.
    fn default() -> Self {
        RegistrationLimits {
            max_actor_types: 10_000,
            max_type_configs: 1_000,
            max_type_name_bytes: 1_024,
        }
    }
}

impl RegistrationLimits {
    /// Refuses a registration whose counts exceed a cap, before its names are read.
    fn check_counts(
        &self,
        init: &proto::SubscribeActorEventsRequestInitialAlpha1,
    ) -> Result<(), Error> {
        let configs = init.entities_config.len();
        if configs > self.max_type_configs {
            return Err(Error::InvalidRegistration(format!(
                "{configs} entities_config entries, more than the limit of {}",
                self.max_type_configs
            )));
        }
        let types = init.entities.len()
            + init
                .entities_config
                .iter()
                .map(|c| c.entities.len())
                .sum::<usize>();
        if types > self.max_actor_types {
            return Err(Error::InvalidRegistration(format!(
                "{types} actor type names, more than the limit of {}",
                self.max_actor_types
            )));
        }
        Ok(())
    }
}

impl RegistrationConfig {
    /// A config hosting the given types with default settings.
    pub fn hosting<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RegistrationConfig {
            actor_types: unique(types.into_iter().map(Into::into).collect()),
            ..RegistrationConfig::default()
        }
    }

    /// The app's `initial_request` as a config, refused (INVALID_ARGUMENT)
    /// if it breaks a rule or exceeds one of `limits`.
    pub fn from_initial(
        init: proto::SubscribeActorEventsRequestInitialAlpha1,
        limits: &RegistrationLimits,
    ) -> Result<Self, Error> {
        limits.check_counts(&init)?;
        let names = |types: Vec<String>| -> Result<Vec<String>, Error> {
            types
                .into_iter()
                .map(|t| check_type_name(t, limits.max_type_name_bytes))
                .collect()
        };
        let actor_types = unique(names(init.entities)?);
        let defaults = settings(
            init.actor_idle_timeout,
            init.drain_ongoing_call_timeout,
            init.drain_rebalanced_actors,
            init.reentrancy,
        )?;
        let overrides = init
            .entities_config
            .into_iter()
            .map(|c| {
                Ok(TypeOverride {
                    actor_types: names(c.entities)?,
                    settings: settings(
                        c.actor_idle_timeout,
                        c.drain_ongoing_call_timeout,
                        c.drain_rebalanced_actors,
                        c.reentrancy,
                    )?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(RegistrationConfig {
            actor_types,
            settings: defaults,
            overrides,
        })
    }

    /// Whether the app listed `actor_type` in its registration.
    pub fn hosts(&self, actor_type: &str) -> bool {
        self.actor_types.iter().any(|t| t == actor_type)
    }

    /// The settings in force for every type the app hosts, in one pass over
    /// the overrides (the first override listing a type wins, as in
    /// [`settings_for`](Self::settings_for)): linear in the registration,
    /// where asking `settings_for` per type would be quadratic.
    pub fn settings_by_type(&self) -> std::collections::HashMap<&str, &ActorSettings> {
        let mut by_type: std::collections::HashMap<&str, &ActorSettings> = self
            .actor_types
            .iter()
            .map(|t| (t.as_str(), &self.settings))
            .collect();
        let mut overridden = HashSet::new();
        for o in &self.overrides {
            for t in &o.actor_types {
                if overridden.insert(t.as_str())
                    && let Some(slot) = by_type.get_mut(t.as_str())
                {
                    *slot = &o.settings;
                }
            }
        }
        by_type
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

    /// As [`RegistrationConfig::from_initial`] with the default limits.
    fn try_from(init: proto::SubscribeActorEventsRequestInitialAlpha1) -> Result<Self, Error> {
        RegistrationConfig::from_initial(init, &RegistrationLimits::default())
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

fn check_type_name(t: String, max_bytes: usize) -> Result<String, Error> {
    if t.len() > max_bytes {
        return Err(Error::InvalidRegistration(format!(
            "actor type {} is longer than the limit of {max_bytes} bytes",
            Clipped(&t)
        )));
    }
    if t.is_empty() || t.chars().any(char::is_control) {
        return Err(Error::InvalidRegistration(format!(
            "actor type {} must be non-empty and have no control characters",
            Clipped(&t)
        )));
    }
    Ok(t)
}

/// `types` in their first order, without repeats; linear, whatever the count.
fn unique(types: Vec<String>) -> Vec<String> {
    let first: Vec<bool> = {
        let mut seen = HashSet::with_capacity(types.len());
        types.iter().map(|t| seen.insert(t.as_str())).collect()
    };
    types
        .into_iter()
        .zip(first)
        .filter_map(|(t, first)| first.then_some(t))
        .collect()
}
