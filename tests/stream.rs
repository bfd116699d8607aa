//! The stream handler, end to end over loopback gRPC: SPEC H1-H6.

mod harness;

use std::time::Duration;

use callbackstream::config::RegistrationConfig;
use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::AppHostOptions;
use callbackstream::manager::{Close, CurrentConfig};

use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    ActorEntityConfig, ActorReentrancyConfig, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsRequestInitialAlpha1, SubscribeActorEventsRequestReminderResponseAlpha1,
};
use harness::{
    FreezableProxy, TestGateway, invoke, invoke_reply, next_invoke, promptly, spawn_invoke,
};
use tonic::transport::Endpoint;
use tonic::{Code, Status};

/// Opens a stream that sends exactly `messages` and then half-closes.
async fn open_with(gw: &TestGateway, messages: Vec<SubscribeActorEventsRequestAlpha1>) -> Status {
    let mut client = gw.client().await;
    match client
        .subscribe_actor_events_alpha1(futures::stream::iter(messages))
        .await
    {
        Ok(_) => panic!("the stream was accepted"),
        Err(status) => status,
    }
}

fn msg(request_type: RequestType) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(request_type),
    }
}

/// H1: a stream that does not open with `initial_request` is refused with
/// INVALID_ARGUMENT and registers nothing; neither does one that ends first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_first_message_must_be_initial_request() {
    let gw = TestGateway::start().await;
    let wrong_first = [
        msg(RequestType::ReminderResponse(
            SubscribeActorEventsRequestReminderResponseAlpha1 {
                id: "1".into(),
                cancel: false,
            },
        )),
        invoke_reply("1", b"x", false),
        SubscribeActorEventsRequestAlpha1 { request_type: None },
    ];
    for first in wrong_first {
        let status = promptly(open_with(&gw, vec![first])).await;
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "first message must be SubscribeActorEventsRequestInitialAlpha1"
        );
    }
    let ended_early = promptly(open_with(&gw, vec![])).await;
    assert_eq!(ended_early.code(), Code::InvalidArgument);
    assert!(gw.describe().await.connections.is_empty());
    assert!(gw.manager().send(CurrentConfig).await.unwrap().is_none());
}

/// H2: a valid `initial_request` becomes the registration config, and the
/// gateway acknowledges with `initial_response` before anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_registration_becomes_config_then_ack() {
    let gw = TestGateway::start().await;
    let init = SubscribeActorEventsRequestInitialAlpha1 {
        entities: vec!["Cart".into(), "Order".into()],
        actor_idle_timeout: Some(prost_types::Duration {
            seconds: 60,
            nanos: 0,
        }),
        drain_ongoing_call_timeout: Some(prost_types::Duration {
            seconds: 0,
            nanos: 500_000_000,
        }),
        drain_rebalanced_actors: Some(true),
        reentrancy: Some(ActorReentrancyConfig {
            enabled: true,
            max_stack_depth: Some(8),
        }),
        entities_config: vec![ActorEntityConfig {
            entities: vec!["Order".into()],
            actor_idle_timeout: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            ..Default::default()
        }],
    };
    let expected = RegistrationConfig::try_from(init.clone()).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(msg(RequestType::InitialRequest(init)))
        .await
        .unwrap();
    let mut inbound = gw
        .client()
        .await
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = promptly(inbound.message()).await.unwrap().unwrap();
    assert!(matches!(
        first.response_type,
        Some(ResponseType::InitialResponse(_))
    ));
    let config = gw.manager().send(CurrentConfig).await.unwrap().unwrap();
    assert_eq!(*config, expected);
    assert_eq!(
        config.settings_for("Order").idle_timeout,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        config.settings.drain_ongoing_call_timeout,
        Some(Duration::from_millis(500))
    );
    drop(tx);
}

/// H3: the app half-closing ends the stream (OK), closes the connection and
/// fails its in-flight calls as UNAVAILABLE; nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_app_half_close_ends_stream_and_fails_in_flight() {
    let gw = TestGateway::start().await;
    let (app, mut requests) = gw.holding_app(&["Held"]).await;
    let client = gw.client().await;
    let call = spawn_invoke(&client, invoke("Held", "1", "m", b"x"));
    next_invoke(&mut requests).await;
    assert_eq!(gw.pending().await, 1);

    promptly(app.close()).await.expect("stream ends with OK");
    let status = promptly(call).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    gw.wait_for_connections(0).await;
    assert_eq!(gw.pending().await, 0);
}

/// H3: an app that vanishes abruptly (its stream is reset) is unregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_app_cancel_closes_connection() {
    let gw = TestGateway::start().await;
    let app = gw.echo_app(&["Gone"]).await;
    gw.wait_for_connections(1).await;
    app.abort();
    gw.wait_for_connections(0).await;
}

/// H3: closing the connection from the sidecar side ends the app's stream
/// with OK, and the reader goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h3_closing_connection_ends_stream() {
    let gw = TestGateway::start().await;
    let app = gw.echo_app(&["Closed"]).await;
    let id = gw.describe().await.connections[0];
    gw.manager().send(Close { id, cause: None }).await.unwrap();
    promptly(app.finished()).await.expect("stream ends with OK");
    gw.wait_for_connections(0).await;
}

/// H4: shutdown ends every open stream itself (OK, never CANCELLED), fails
/// in-flight calls with UNAVAILABLE, and the server returns within the grace
/// even though the app never closes its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h4_shutdown_ends_open_streams_and_fails_in_flight() {
    let settings = GatewaySettings {
        shutdown_grace: Duration::from_secs(3),
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let (app, mut requests) = gw.holding_app(&["Busy"]).await;
    let client = gw.client().await;
    let call = spawn_invoke(&client, invoke("Busy", "1", "m", b"x"));
    next_invoke(&mut requests).await;

    let started = std::time::Instant::now();
    gw.begin_shutdown();
    let status = promptly(call).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "gateway is shutting down");
    promptly(app.finished())
        .await
        .expect("the app's stream ends with OK, not CANCELLED");
    promptly(gw.server_result())
        .await
        .expect("server stops cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "needed the whole grace"
    );
}

/// H5: an oversized inbound message ends that stream with RESOURCE_EXHAUSTED;
/// the server and the other streams keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h5_oversized_message_ends_only_that_stream() {
    let settings = GatewaySettings {
        max_message_bytes: 64 * 1024,
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let _good = gw.echo_app(&["Good"]).await;
    let (bad, mut requests) = gw.holding_app(&["Bad"]).await;
    let mut client = gw.client().await;
    let call = spawn_invoke(&client, invoke("Bad", "1", "m", b"x"));
    let request = next_invoke(&mut requests).await;

    let huge = vec![7u8; 100 * 1024];
    bad.sender()
        .send(invoke_reply(&request.id, &huge, false))
        .await
        .unwrap();
    let ended = promptly(bad.finished()).await.unwrap_err();
    assert_eq!(ended.code(), Code::ResourceExhausted);
    assert_eq!(
        promptly(call).await.unwrap().unwrap_err().code(),
        Code::Unavailable
    );

    let reply = client
        .invoke_actor(invoke("Good", "1", "m", b"still here"))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().data, b"still here");
    gw.wait_for_connections(1).await;
}

/// H6: keepalive pings find an app whose network went silent without a
/// close; its in-flight calls fail, and new calls go to a live app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h6_keepalive_detects_vanished_app() {
    let settings = GatewaySettings {
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(300),
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let proxy = FreezableProxy::start(gw.addr).await;
    let via_proxy = Endpoint::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let options = AppHostOptions::echo(["Far"]).with_handler(move |req| {
        let _ = tx.send(req);
        None
    });
    let _far = callbackstream::kit::apphost::AppHost::connect(via_proxy, options)
        .await
        .unwrap();
    let mut client = gw.client().await;
    let call = spawn_invoke(&client, invoke("Far", "1", "m", b"x"));
    next_invoke(&mut requests).await;

    proxy.freeze();
    let status = promptly(call).await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    gw.wait_for_connections(0).await;

    let _near = gw.echo_app(&["Far"]).await;
    let reply = client
        .invoke_actor(invoke("Far", "2", "m", b"near"))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().data, b"near");
}
