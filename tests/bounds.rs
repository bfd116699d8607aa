//! Bounded work for every network input (issue 15): one registration cannot
//! freeze an actor thread, a registration over a cap is refused before
//! anything is registered, a call's deadline covers its wait for a busy
//! manager, and shutdown fits in its grace whatever the actor threads do.
//! (The log's bounds and the refused flags are checked on the binary, in
//! tests/binary.rs.)

mod harness;

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use callbackstream::config::RegistrationLimits;
use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::{self, GatewaySettings};
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::manager::Send;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{GetMetadataRequest, SubscribeActorEventsResponseInvokeRequestAlpha1};
use callbackstream::runtime::RuntimeOptions;
use callbackstream::threads::{ActorSystem, ActorThreads};
use callbackstream::{Error, Transport};
use harness::TestGateway;
use tokio::time::Instant;
use tonic::{Code, Request};

/// Blocks actor thread 0 (the manager's) until the returned sender is
/// dropped or sends: a stand-in for a thread busy with someone's heavy work.
fn block_the_managers_thread(threads: &ActorThreads) -> std_mpsc::Sender<()> {
    let (release, blocked) = std_mpsc::channel::<()>();
    let (started, is_blocked) = std_mpsc::channel::<()>();
    let tasks = threads.run_on_each_with(
        vec![(blocked, started)],
        |_, (blocked, started)| async move {
            let _ = started.send(());
            let _ = blocked.recv();
        },
    );
    drop(tasks);
    is_blocked
        .recv_timeout(Duration::from_secs(5))
        .expect("the manager's thread picks up the blocking task");
    release
}

fn types(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("Type{i}")).collect()
}

/// A registration of 50,000 distinct types (the cap raised to allow it) is
/// converted and registered in linear time: it is acknowledged, and the
/// GetMetadata probes another client sends on the same actor thread
/// meanwhile all answer within a deadline far shorter than a quadratic
/// de-duplication took (10 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_at_the_cap_is_acked_while_get_metadata_keeps_answering() {
    let settings = GatewaySettings {
        registration_limits: RegistrationLimits {
            max_actor_types: 50_000,
            ..RegistrationLimits::default()
        },
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let mut probe = gw.client().await;
    let registering = {
        let channel = gw.channel().await;
        tokio::spawn(
            async move { AppHost::connect(channel, AppHostOptions::echo(types(50_000))).await },
        )
    };
    let mut answered = 0;
    while !registering.is_finished() {
        let mut ask = Request::new(GetMetadataRequest {});
        ask.set_timeout(Duration::from_secs(2));
        let reply = probe.get_metadata(ask).await;
        assert!(
            reply.is_ok(),
            "GetMetadata during the registration: {reply:?}"
        );
        answered += 1;
    }
    let app = registering
        .await
        .unwrap()
        .expect("the registration at the cap is acked");
    assert_eq!(gw.describe().await.actor_types.len(), 50_000);
    assert!(answered > 0);
    drop(app);
}

/// One name over any cap: INVALID_ARGUMENT, naming the cap, and the
/// registry stays empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_over_the_cap_is_refused_and_registers_nothing() {
    let limits = RegistrationLimits {
        max_actor_types: 10,
        max_type_configs: 2,
        max_type_name_bytes: 16,
    };
    let settings = GatewaySettings {
        registration_limits: limits,
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let over = [
        (types(11), "11 actor type names, more than the limit of 10"),
        (vec!["T".repeat(17)], "longer than the limit of 16 bytes"),
    ];
    for (names, why) in over {
        let refused = AppHost::connect(gw.channel().await, AppHostOptions::echo(names))
            .await
            .err()
            .expect("refused");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(why), "{}", refused.message());
    }
    let at_cap = AppHost::connect(gw.channel().await, AppHostOptions::echo(types(10)))
        .await
        .expect("exactly at the cap is fine");
    drop(at_cap);
    gw.wait_until_idle().await;
}

/// A call whose deadline passes while the manager's thread is busy gets
/// DEADLINE_EXCEEDED at its deadline, not whenever the thread comes back.
/// (The test's clock is paused: the deadline passes as soon as the test is
/// only waiting.)
#[tokio::test(start_paused = true)]
async fn a_calls_deadline_covers_its_wait_for_a_busy_manager() {
    let actors = ActorSystem::start(ConnectionOptions::default()).unwrap();
    let release = block_the_managers_thread(&actors.threads());
    let transport = Transport::new(actors.manager());

    let request = ResponseType::InvokeRequest(SubscribeActorEventsResponseInvokeRequestAlpha1 {
        actor_type: "A".into(),
        actor_id: "1".into(),
        method: "m".into(),
        ..Default::default()
    });
    let send = Send::new(request).deadline(Instant::now() + Duration::from_millis(100));
    let outcome = tokio::time::timeout(Duration::from_secs(30), transport.send(send)).await;
    assert!(
        matches!(outcome, Ok(Err(Error::DeadlineExceeded))),
        "{outcome:?}"
    );
    drop(release);
}

/// Shutdown's whole sequence, closing the app streams included, ends within
/// the grace period even while the manager's thread cannot answer; with the
/// actor runtime on, which needs the manager to start. The gateway must be
/// serving before the thread is blocked: blocking it earlier tests a stop
/// during start-up instead (the next test), and did so only by chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fits_in_its_grace_while_the_managers_thread_is_busy() {
    let actors = ActorSystem::start_threads(ConnectionOptions::default(), 2).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve_on(
        actors.threads(),
        settings_with_runtime(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    // An answer means the gateway is built (the actor table included) and
    // serving. This connection stays open on the manager's thread (the
    // first connection stays on the accepting thread), so the drain cannot
    // finish and only the grace can end the shutdown.
    let mut client = DaprClient::connect(format!("http://{addr}")).await.unwrap();
    let mut ask = Request::new(GetMetadataRequest {});
    ask.set_timeout(Duration::from_secs(5));
    client.get_metadata(ask).await.expect("the gateway serves");
    let release = block_the_managers_thread(&actors.threads());

    let _ = stop.send(());
    assert_stops_promptly(server).await;
    drop((client, release));
}

/// A stop asked for while the gateway is still starting, its manager's
/// thread busy, ends it as promptly: starting the actor runtime waits for
/// the manager, the stop does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_start_up_does_not_wait_for_a_busy_manager() {
    let actors = ActorSystem::start_threads(ConnectionOptions::default(), 2).unwrap();
    let release = block_the_managers_thread(&actors.threads());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve_on(
        actors.threads(),
        settings_with_runtime(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    let _ = stop.send(());
    assert_stops_promptly(server).await;
    drop(release);
}

fn settings_with_runtime() -> GatewaySettings {
    GatewaySettings {
        shutdown_grace: Duration::from_millis(300),
        runtime: Some(RuntimeOptions::default()),
        ..GatewaySettings::default()
    }
}

/// `server` ends, well within a few grace periods of 300 ms.
async fn assert_stops_promptly(server: tokio::task::JoinHandle<Result<(), gateway::GatewayError>>) {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(
        result.is_ok(),
        "serve_on still running 10 s after the signal"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    result.unwrap().unwrap().expect("serve_on stops cleanly");
}
