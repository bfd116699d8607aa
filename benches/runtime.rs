//! The actor runtime in process: what taking an actor's turn costs, for a
//! new actor (activation, SPEC D1) and for one already active, with no gRPC
//! and no app in between (issue 12's target: activations at ≥ 100,000/s).
//! Everything runs on one actix system, as the table does in the gateway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, System};
use callbackstream::ManagerActor;
use callbackstream::runtime::table::ActorKey;
use callbackstream::runtime::{Runtime, RuntimeOptions};
use callbackstream::store::MemoryStore;
use criterion::{Criterion, criterion_group, criterion_main};

fn turns(c: &mut Criterion) {
    let system = System::new();
    let runtime = system.block_on(async {
        let manager = ManagerActor::default().start();
        Runtime::start(
            &manager,
            Arc::new(MemoryStore::new()),
            RuntimeOptions::default(),
        )
        .await
        .expect("runtime starts")
    });
    let mut group = c.benchmark_group("runtime_turn");
    let mut next_id = 0u64;
    group.bench_function("activate_a_new_actor", |b| {
        b.iter_custom(|iters| {
            let first = next_id;
            next_id += iters;
            system.block_on(take_turns(
                &runtime,
                (first..first + iters).map(|i| i.to_string()),
            ))
        })
    });
    group.bench_function("turn_of_an_active_actor", |b| {
        b.iter_custom(|iters| {
            system.block_on(take_turns(&runtime, (0..iters).map(|_| "0".to_owned())))
        })
    });
    group.finish();
}

/// Takes and ends the turn of each actor id in turn; the time it took.
async fn take_turns(runtime: &Runtime, ids: impl Iterator<Item = String>) -> Duration {
    let start = Instant::now();
    for id in ids {
        let turn = runtime
            .turn(ActorKey::new("Bench", id), None, None)
            .await
            .expect("turn");
        drop(turn);
    }
    start.elapsed()
}

criterion_group!(benches, turns);
criterion_main!(benches);
