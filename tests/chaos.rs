//! Chaos (issue 5): echo apps that connect, serve for a random while, then
//! close cleanly, crash (abort) or stop answering, while gRPC and library
//! callers keep calling with deadlines. Nothing may hang, no caller may get
//! another's answer, and once the apps are gone nothing is left behind.
//!
//! The workload is `callbackstream::kit::chaos`, the same one `callbackstream
//! soak` runs for minutes. `CHAOS_SEED` and `CHAOS_SECS` override the seed
//! and the duration.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use callbackstream::kit::chaos::{self, ChaosCounters, ChaosSpec, ChaosTarget};
use harness::{TestGateway, promptly, server_panics, watch_panics};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_apps_come_and_go_badly_while_callers_call() {
    watch_panics();
    let gw = TestGateway::start().await;
    let mut spec = ChaosSpec::new(Duration::from_secs(env_or("CHAOS_SECS", 12)));
    spec.seed = env_or("CHAOS_SEED", spec.seed);
    let target = ChaosTarget {
        url: gw.url(),
        manager: Some(gw.manager()),
    };
    let counters = Arc::new(ChaosCounters::default());
    // The run ends by itself (duration, then every call's bound); this only
    // turns a hang of the workload itself into a failure instead of a stall.
    let limit = spec.duration + spec.serve_for.1 + spec.stall_for.1 + 4 * spec.hang_margin;
    let report = tokio::time::timeout(limit, chaos::run(target, spec.clone(), counters))
        .await
        .expect("the chaos run ended")
        .expect("the gateway's address is valid");
    println!(
        "chaos (seed {:#x}, {:?}): {report}",
        spec.seed, spec.duration
    );

    assert_eq!(report.hung, 0, "{report}");
    assert_eq!(report.wrong, 0, "{report}");
    assert!(report.violations().is_empty(), "{:?}", report.violations());
    assert!(report.ok > 0, "{report}");
    // The faults really happened (else the counts above prove little).
    assert!(
        report.closes > 0 && report.aborts > 0 && report.stalls > 0,
        "{report}"
    );
    assert!(
        report.unavailable > 0 && report.deadline_exceeded > 0,
        "{report}"
    );

    // Every session ended: nothing registered, nothing pending, no panic,
    // and the gateway still serves a newcomer.
    gw.wait_until_idle().await;
    assert_eq!(server_panics(), 0, "a gateway thread panicked");
    let app = gw.echo_app(&["After"]).await;
    let reply = promptly(gw.client().await.invoke_actor(harness::invoke(
        "After",
        "1",
        "m",
        b"still serving",
    )))
    .await
    .expect("a call after the chaos");
    assert_eq!(reply.into_inner().data, b"still serving");
    promptly(app.close()).await.expect("a clean close");
    promptly(gw.shutdown()).await.expect("a clean shutdown");
}
