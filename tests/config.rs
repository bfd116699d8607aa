//! The registration config: how an app's `initial_request` becomes a
//! `RegistrationConfig`, and what is refused.

use std::time::Duration;

use callbackstream::config::{ActorSettings, Reentrancy, TypeOverride};
use callbackstream::proto::{
    ActorEntityConfig, ActorReentrancyConfig, SubscribeActorEventsRequestInitialAlpha1,
};
use callbackstream::{Error, RegistrationConfig};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn proto_duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

fn init(entities: &[&str]) -> SubscribeActorEventsRequestInitialAlpha1 {
    SubscribeActorEventsRequestInitialAlpha1 {
        entities: strings(entities),
        ..Default::default()
    }
}

fn convert(init: SubscribeActorEventsRequestInitialAlpha1) -> Result<RegistrationConfig, Error> {
    RegistrationConfig::try_from(init)
}

/// Every field of the initial request lands in the config, durations as `std::time::Duration`.
#[test]
fn maps_types_durations_drain_settings_reentrancy_and_overrides() {
    let config = convert(SubscribeActorEventsRequestInitialAlpha1 {
        entities: strings(&["cat", "dog"]),
        actor_idle_timeout: proto_duration(3600, 0),
        drain_ongoing_call_timeout: proto_duration(1, 500_000_000),
        drain_rebalanced_actors: Some(true),
        reentrancy: Some(ActorReentrancyConfig {
            enabled: true,
            max_stack_depth: Some(32),
        }),
        entities_config: vec![ActorEntityConfig {
            entities: strings(&["dog"]),
            actor_idle_timeout: proto_duration(60, 0),
            drain_ongoing_call_timeout: None,
            drain_rebalanced_actors: Some(false),
            reentrancy: Some(ActorReentrancyConfig {
                enabled: false,
                max_stack_depth: None,
            }),
        }],
    })
    .expect("valid registration");

    assert_eq!(
        config,
        RegistrationConfig {
            actor_types: strings(&["cat", "dog"]),
            settings: ActorSettings {
                idle_timeout: Some(Duration::from_secs(3600)),
                drain_ongoing_call_timeout: Some(Duration::from_millis(1500)),
                drain_rebalanced_actors: Some(true),
                reentrancy: Some(Reentrancy {
                    enabled: true,
                    max_stack_depth: Some(32),
                }),
            },
            overrides: vec![TypeOverride {
                actor_types: strings(&["dog"]),
                settings: ActorSettings {
                    idle_timeout: Some(Duration::from_secs(60)),
                    drain_ongoing_call_timeout: None,
                    drain_rebalanced_actors: Some(false),
                    reentrancy: Some(Reentrancy {
                        enabled: false,
                        max_stack_depth: None,
                    }),
                },
            }],
        }
    );
}

/// Settings the app left out stay `None`: the runtime's defaults apply, none are invented.
#[test]
fn left_out_settings_stay_unset() {
    let config = convert(init(&["cat"])).expect("valid registration");
    assert_eq!(config, RegistrationConfig::hosting(["cat"]));
    assert_eq!(config.settings, ActorSettings::default());
    assert!(config.overrides.is_empty());

    let nothing = convert(init(&[])).expect("an app may host no types");
    assert_eq!(nothing, RegistrationConfig::default());
}

/// `settings_for` gives a type its override's settings, else the registration-wide ones.
#[test]
fn per_type_overrides_apply_to_their_types_only() {
    let override_for = |types: &[&str], idle: i64| ActorEntityConfig {
        entities: strings(types),
        actor_idle_timeout: proto_duration(idle, 0),
        ..Default::default()
    };
    let config = convert(SubscribeActorEventsRequestInitialAlpha1 {
        entities: strings(&["cat", "dog", "bird", "fish"]),
        actor_idle_timeout: proto_duration(600, 0),
        entities_config: vec![
            override_for(&["dog", "bird"], 10),
            override_for(&["fish"], 20),
        ],
        ..Default::default()
    })
    .expect("valid registration");

    let idle = |t: &str| config.settings_for(t).idle_timeout;
    assert_eq!(idle("cat"), Some(Duration::from_secs(600)));
    assert_eq!(idle("dog"), Some(Duration::from_secs(10)));
    assert_eq!(idle("bird"), Some(Duration::from_secs(10)));
    assert_eq!(idle("fish"), Some(Duration::from_secs(20)));
    assert_eq!(idle("not-hosted"), Some(Duration::from_secs(600)));
    let override_types: Vec<_> = config.overrides.iter().map(|o| &o.actor_types).collect();
    assert_eq!(
        override_types,
        [&strings(&["dog", "bird"]), &strings(&["fish"])]
    );
}

/// Repeated types are listed once, in the order the app first named them.
#[test]
fn repeated_types_are_listed_once_in_first_seen_order() {
    let config = convert(init(&["b", "a", "b", "c", "a"])).expect("valid registration");
    assert_eq!(config.actor_types, strings(&["b", "a", "c"]));
    assert!(config.hosts("a") && config.hosts("b") && config.hosts("c"));
    assert!(!config.hosts("d") && !config.hosts(""));

    assert_eq!(
        RegistrationConfig::hosting(["x", "y", "x"]).actor_types,
        strings(&["x", "y"])
    );
}

/// A negative duration anywhere is refused as an invalid registration naming the field.
#[test]
fn negative_durations_are_refused() {
    let negative = proto_duration(-1, 0);
    let cases = [
        (
            "actor_idle_timeout",
            SubscribeActorEventsRequestInitialAlpha1 {
                actor_idle_timeout: negative,
                ..init(&["cat"])
            },
        ),
        (
            "drain_ongoing_call_timeout",
            SubscribeActorEventsRequestInitialAlpha1 {
                drain_ongoing_call_timeout: proto_duration(0, -1),
                ..init(&["cat"])
            },
        ),
        (
            "actor_idle_timeout",
            SubscribeActorEventsRequestInitialAlpha1 {
                entities_config: vec![ActorEntityConfig {
                    entities: strings(&["cat"]),
                    actor_idle_timeout: negative,
                    ..Default::default()
                }],
                ..init(&["cat"])
            },
        ),
        (
            "drain_ongoing_call_timeout",
            SubscribeActorEventsRequestInitialAlpha1 {
                entities_config: vec![ActorEntityConfig {
                    entities: strings(&["cat"]),
                    drain_ongoing_call_timeout: negative,
                    ..Default::default()
                }],
                ..init(&["cat"])
            },
        ),
    ];
    for (field, request) in cases {
        match convert(request) {
            Err(Error::InvalidRegistration(message)) => {
                assert!(message.contains(field), "{message:?} should name {field}")
            }
            other => panic!("negative {field}: expected InvalidRegistration, got {other:?}"),
        }
    }
}

/// Empty type names (or ones with control characters) are refused, in `entities` and in overrides.
#[test]
fn empty_or_control_character_type_names_are_refused() {
    let in_override = |name: &str| SubscribeActorEventsRequestInitialAlpha1 {
        entities_config: vec![ActorEntityConfig {
            entities: strings(&[name]),
            ..Default::default()
        }],
        ..init(&["cat"])
    };
    let cases = [
        init(&[""]),
        init(&["cat", ""]),
        init(&["ca\nt"]),
        init(&["\0"]),
        in_override(""),
        in_override("do\tg"),
    ];
    for request in cases {
        let shown = format!("{request:?}");
        assert!(
            matches!(convert(request), Err(Error::InvalidRegistration(_))),
            "{shown} should be refused"
        );
    }
}
