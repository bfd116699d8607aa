//! What one app's registration costs the actor thread it lands on, at the
//! default cap (issue 15's target: at most 5 ms for 10,000 types).
//!
//! Two steps run on that thread: turning the `initial_request` into a
//! `RegistrationConfig` (checks, de-duplication), and the manager's
//! `Register` (indexing every type for routing). Each is measured alone, and
//! both together as one registration, with its connection closed again so
//! every iteration starts from an empty registry.

use actix::{Actor, Addr, System, SystemRunner};
use callbackstream::RegistrationConfig;
use callbackstream::config::RegistrationLimits;
use callbackstream::manager::{Close, ManagerActor, Register};
use callbackstream::proto::SubscribeActorEventsRequestInitialAlpha1;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// A registration listing `n` distinct types, names as long as real ones.
fn initial_request(n: usize) -> SubscribeActorEventsRequestInitialAlpha1 {
    SubscribeActorEventsRequestInitialAlpha1 {
        entities: (0..n).map(|i| format!("ActorTypeNumber{i:06}")).collect(),
        ..Default::default()
    }
}

fn registration(c: &mut Criterion) {
    let limits = RegistrationLimits::default();
    let at_cap = initial_request(limits.max_actor_types);
    let mut group = c.benchmark_group("registration_at_default_cap");
    group.sample_size(30);

    group.bench_function("convert", |b| {
        b.iter_batched(
            || at_cap.clone(),
            |init| RegistrationConfig::from_initial(init, &limits).expect("valid"),
            BatchSize::LargeInput,
        )
    });

    let system = System::new();
    let manager = system.block_on(async { ManagerActor::default().start() });
    let config = RegistrationConfig::from_initial(at_cap.clone(), &limits).expect("valid");
    group.bench_function("register_and_close", |b| {
        b.iter_batched(
            || config.clone(),
            |config| register_and_close(&system, &manager, config),
            BatchSize::LargeInput,
        )
    });

    group.bench_function("convert_register_and_close", |b| {
        b.iter_batched(
            || at_cap.clone(),
            |init| {
                let config = RegistrationConfig::from_initial(init, &limits).expect("valid");
                register_and_close(&system, &manager, config)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Registers `config` and closes its connection again.
fn register_and_close(
    system: &SystemRunner,
    manager: &Addr<ManagerActor>,
    config: RegistrationConfig,
) {
    system.block_on(async {
        let connection = manager.send(Register::new(config)).await.expect("alive");
        let id = connection.id;
        manager
            .send(Close { id, cause: None })
            .await
            .expect("alive");
        drop(connection);
    })
}

criterion_group!(benches, registration);
criterion_main!(benches);
