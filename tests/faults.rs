//! Faults one at a time (issue 5): a slow consumer, a stray flood, a silent
//! network partition, a cut TCP connection, an app that never says hello,
//! and an app whose failure report is huge. Each test names the fault and
//! what the gateway must do about it; docs/reliability.md has the figures.

mod harness;

use std::sync::Mutex;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::error::Error;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    InvokeActorResponse, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsRequestFailedAlpha1, SubscribeActorEventsRequestInitialAlpha1,
    SubscribeActorEventsResponseAlpha1,
};
use callbackstream::transport::{
    DeactivateRequest, InvokeRequest, ReminderRequest, TimerRequest, Transport,
};
use harness::{
    FreezableProxy, TestGateway, eventually, invoke, invoke_reply, next_invoke, promptly,
    server_panics, watch_panics,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

fn message(request_type: RequestType) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(request_type),
    }
}

fn registration(types: &[&str]) -> SubscribeActorEventsRequestAlpha1 {
    message(RequestType::InitialRequest(
        SubscribeActorEventsRequestInitialAlpha1 {
            entities: types.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        },
    ))
}

/// A call to `actor_type` through `client` comes back with its own data.
async fn round_trip(client: &mut DaprClient<Channel>, actor_type: &str, n: usize) {
    let data = format!("{actor_type} round trip {n}");
    let reply = promptly(client.invoke_actor(invoke(actor_type, "1", "m", data.as_bytes())))
        .await
        .unwrap_or_else(|s| panic!("round trip {n} to {actor_type}: {s:?}"));
    assert_eq!(reply.into_inner().data, data.as_bytes());
}

// ---------------------------------------------------------------- slow consumer

/// An app that registers, reads the ack, and then stops reading its stream.
/// Its HTTP/2 windows are the protocol's minimum (64 KiB), so the gateway's
/// writer is blocked after a few large requests.
struct StalledApp {
    to_gateway: mpsc::Sender<SubscribeActorEventsRequestAlpha1>,
    from_gateway: Streaming<SubscribeActorEventsResponseAlpha1>,
}

impl StalledApp {
    async fn connect(gw: &TestGateway, actor_type: &str) -> StalledApp {
        let channel = Endpoint::from_shared(gw.url())
            .unwrap()
            .initial_stream_window_size(Some(65_535))
            .initial_connection_window_size(Some(65_535))
            .connect()
            .await
            .unwrap();
        let (to_gateway, rx) = mpsc::channel(64);
        to_gateway.send(registration(&[actor_type])).await.unwrap();
        let mut from_gateway = promptly(
            DaprClient::new(channel).subscribe_actor_events_alpha1(ReceiverStream::new(rx)),
        )
        .await
        .expect("registered")
        .into_inner();
        let ack = promptly(from_gateway.message()).await.unwrap().unwrap();
        assert!(matches!(
            ack.response_type,
            Some(ResponseType::InitialResponse(_))
        ));
        StalledApp {
            to_gateway,
            from_gateway,
        }
    }

    /// Starts reading again, echoing every invoke; each request's data is
    /// also handed to the returned channel, in the order it arrived.
    fn resume(self) -> (mpsc::UnboundedReceiver<(u64, Vec<u8>)>, JoinHandle<()>) {
        let StalledApp {
            to_gateway,
            mut from_gateway,
        } = self;
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(Some(msg)) = from_gateway.message().await {
                if let Some(ResponseType::InvokeRequest(r)) = msg.response_type {
                    let id = r.id.parse().unwrap_or(0);
                    let _ = seen_tx.send((id, r.data.clone()));
                    if to_gateway
                        .send(invoke_reply(&r.id, &r.data, false))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        (seen, task)
    }
}

/// A call's payload and how it ended.
type CallTask = JoinHandle<(Vec<u8>, Result<Vec<u8>, Status>)>;

/// Starts `n` concurrent calls to `actor_type`, each with a unique payload of
/// `size` bytes and a `timeout`; each task yields its payload and result.
fn start_calls(
    client: &DaprClient<Channel>,
    actor_type: &str,
    n: usize,
    size: usize,
    timeout: Duration,
) -> Vec<CallTask> {
    (0..n)
        .map(|i| {
            let mut client = client.clone();
            let mut data = format!("call {i}|").into_bytes();
            data.resize(size, b'.');
            let mut request = invoke(actor_type, &i.to_string(), "m", &data);
            request.set_timeout(timeout);
            tokio::spawn(async move {
                let result = client
                    .invoke_actor(request)
                    .await
                    .map(|r| r.into_inner().data);
                (data, result)
            })
        })
        .collect()
}

/// Slow consumer: an app stops reading. Its outbox fills and senders wait
/// (backpressure); the connection holds at most `max_pending` requests and
/// refuses more with RESOURCE_EXHAUSTED; waiting callers' deadlines fire
/// (DEADLINE_EXCEEDED) and take their entries, and their still-queued
/// messages, with them; other streams keep serving throughout; and when the
/// app reads again it gets only what had gone out before, then serves anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_backpressure_deadlines_and_a_bounded_queue() {
    watch_panics();
    const MAX_PENDING: usize = 16;
    const CALLS: usize = 40;
    let options = ConnectionOptions {
        outbox_capacity: 4,
        max_pending: MAX_PENDING,
    };
    let gw = TestGateway::start_with(GatewaySettings::default(), options).await;
    let _fast = gw.echo_app(&["Fast"]).await;
    let slow = StalledApp::connect(&gw, "Slow").await;
    let mut client = gw.client().await;

    let calls = start_calls(&client, "Slow", CALLS, 128 * 1024, Duration::from_secs(3));
    // The stalled stream fills up to its limit, and no further...
    eventually(
        "the stalled stream to hold max_pending requests",
        || async { gw.pending().await == MAX_PENDING },
    )
    .await;
    // ...while the other stream serves as usual.
    for n in 0..5 {
        round_trip(&mut client, "Fast", n).await;
    }
    assert!(gw.pending().await <= MAX_PENDING);
    let (mut exhausted, mut expired) = (0, 0);
    for call in calls {
        let (_, result) = promptly(call).await.unwrap();
        match result {
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(s.message().contains("limit 16"), "{s:?}");
                exhausted += 1;
            }
            Err(s) if s.code() == Code::DeadlineExceeded => expired += 1,
            other => panic!("a call to the stalled app ended with {other:?}"),
        }
    }
    println!(
        "slow consumer: {CALLS} calls, {exhausted} RESOURCE_EXHAUSTED, {expired} DEADLINE_EXCEEDED \
         (max_pending {MAX_PENDING})"
    );
    assert!(exhausted >= CALLS - MAX_PENDING, "{exhausted}");
    assert!(expired >= MAX_PENDING, "{expired}");

    // The callers are gone and so are their entries, though the app's stream
    // is still up and still not reading.
    eventually("the expired callers' entries to go", || async {
        gw.pending().await == 0
    })
    .await;
    assert_eq!(gw.describe().await.actor_types, ["Fast", "Slow"]);
    round_trip(&mut client, "Fast", 5).await;

    // Reading again, the app finds only what was already on its way; the
    // requests still waiting for room were dropped with their callers.
    let (mut seen, _reader) = slow.resume();
    round_trip(&mut client, "Slow", 0).await;
    let mut delivered = 0;
    while let Ok((_, data)) = seen.try_recv() {
        if data.starts_with(b"call ") {
            delivered += 1;
        }
    }
    println!("slow consumer: {delivered} abandoned requests had gone out before the app stalled");
    assert!(
        delivered < expired,
        "{delivered} of {expired} expired requests reached the app: none waited for room"
    );
    assert_eq!(server_panics(), 0);
}

/// Slow consumer, patient callers: requests wait for outbox room and none
/// is dropped (SPEC R11); once the app reads again every caller gets its own
/// answer, and the app sees the requests in the order they were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_waiting_requests_all_get_through_in_order() {
    watch_panics();
    const CALLS: usize = 30;
    let options = ConnectionOptions {
        outbox_capacity: 2,
        max_pending: 64,
    };
    let gw = TestGateway::start_with(GatewaySettings::default(), options).await;
    let slow = StalledApp::connect(&gw, "Slow").await;
    let client = gw.client().await;
    let calls = start_calls(&client, "Slow", CALLS, 128 * 1024, Duration::from_secs(60));
    eventually("every call to be waiting", || async {
        gw.pending().await == CALLS
    })
    .await;

    let (mut seen, _reader) = slow.resume();
    for call in calls {
        let (data, result) = promptly(call).await.unwrap();
        assert_eq!(result.expect("answered once the app reads"), data);
    }
    let mut ids = Vec::new();
    while let Ok((id, _)) = seen.try_recv() {
        ids.push(id);
    }
    assert_eq!(ids.len(), CALLS);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    assert_eq!(gw.pending().await, 0);
    assert_eq!(server_panics(), 0);
}

// ---------------------------------------------------------------- floods

/// The warn-level lines logged in this test binary.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct CountingLogger;

impl log::Log for CountingLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let mut lines = WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
            lines.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn count_warnings() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_boxed_logger(Box::new(CountingLogger)).expect("the only logger");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The warnings logged so far that start with `prefix`.
fn warnings_from(prefix: &str) -> Vec<String> {
    let lines = WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
    lines
        .iter()
        .filter(|l| l.starts_with(prefix))
        .cloned()
        .collect()
}

/// How many warnings a line says it stands for: itself and those it reports
/// suppressed.
fn stands_for(line: &str) -> u64 {
    let suppressed = line
        .rsplit_once(" (")
        .and_then(|(_, tail)| tail.strip_suffix(" similar warnings suppressed)"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    1 + suppressed
}

/// Flood: an app sends tens of thousands of strays (unknown ids, empty
/// oneofs, repeated registrations) as fast as its stream carries them. The
/// log gets about one line per second for it, which still accounts for every
/// stray; another app's calls all succeed meanwhile; the flooder's own
/// stream stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_flood_is_one_log_line_a_second_and_slows_no_one() {
    watch_panics();
    count_warnings();
    const STRAYS: u64 = 30_000;
    let gw = TestGateway::start().await;
    let _bystander = gw.echo_app(&["Bystander"]).await;
    let flooder = gw.echo_app(&["Flood"]).await;
    let conn = *gw.describe().await.connections.last().unwrap();
    let prefix = format!("{conn}: dropped");
    let mut client = gw.client().await;

    let started = std::time::Instant::now();
    let to_gateway = flooder.sender();
    let flood = tokio::spawn(async move {
        for n in 0..STRAYS {
            let stray = match n % 10 {
                0 => SubscribeActorEventsRequestAlpha1 { request_type: None },
                1 => registration(&["Hijack"]),
                2 => message(RequestType::RequestFailed(
                    SubscribeActorEventsRequestFailedAlpha1 {
                        id: format!("x{n}"),
                        code: 5,
                        message: "stray".into(),
                    },
                )),
                _ => invoke_reply(&(1_000_000 + n).to_string(), b"stray", false),
            };
            to_gateway.send(stray).await.unwrap();
        }
    });
    let mut bystander_calls = 0;
    while !flood.is_finished() || bystander_calls < 20 {
        round_trip(&mut client, "Bystander", bystander_calls).await;
        bystander_calls += 1;
    }
    promptly(flood).await.unwrap();
    // Same stream, so this answer comes after the gateway read every stray.
    round_trip(&mut client, "Flood", 0).await;
    let flood_took = started.elapsed();

    // One more stray once the interval has passed: its line reports the rest.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    flooder
        .sender()
        .send(invoke_reply("424242424", b"last", false))
        .await
        .unwrap();
    round_trip(&mut client, "Flood", 1).await;

    let lines = warnings_from(&prefix);
    let accounted: u64 = lines.iter().map(|l| stands_for(l)).sum();
    println!(
        "flood: {STRAYS} strays in {flood_took:.2?} ({:.0}/s), {} warning line(s) for them, \
         {bystander_calls} bystander round trips all OK",
        STRAYS as f64 / flood_took.as_secs_f64(),
        lines.len()
    );
    let most = flood_took.as_secs() + 3;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= most,
        "{} lines for a flood of {flood_took:?}: {:?}",
        lines.len(),
        &lines[..lines.len().min(5)]
    );
    assert_eq!(accounted, STRAYS + 1, "{lines:?}");
    assert_eq!(gw.describe().await.actor_types, ["Bystander", "Flood"]);
    assert_eq!(gw.pending().await, 0);
    assert_eq!(server_panics(), 0);
}

// ---------------------------------------------------------------- dead peers

/// The app's end of every typed call kind, in flight on the newest app.
fn typed_calls(transport: &Transport, actor_type: &str) -> Vec<JoinHandle<Result<(), Error>>> {
    let t = actor_type.to_owned();
    let invoke = {
        let (transport, t) = (transport.clone(), t.clone());
        tokio::spawn(async move {
            let request = InvokeRequest {
                actor_type: t,
                actor_id: "1".into(),
                method: "m".into(),
                ..Default::default()
            };
            transport.invoke(request, None).await.map(drop)
        })
    };
    let reminder = {
        let (transport, t) = (transport.clone(), t.clone());
        tokio::spawn(async move {
            let request = ReminderRequest {
                actor_type: t,
                actor_id: "1".into(),
                name: "r".into(),
                ..Default::default()
            };
            transport.reminder(request, None).await.map(drop)
        })
    };
    let timer = {
        let (transport, t) = (transport.clone(), t.clone());
        tokio::spawn(async move {
            let request = TimerRequest {
                actor_type: t,
                actor_id: "1".into(),
                name: "t".into(),
                ..Default::default()
            };
            transport.timer(request, None).await.map(drop)
        })
    };
    let deactivate = {
        let transport = transport.clone();
        tokio::spawn(async move {
            let request = DeactivateRequest {
                actor_type: t,
                actor_id: "1".into(),
                ..Default::default()
            };
            transport.deactivate(request, None).await
        })
    };
    vec![invoke, reminder, timer, deactivate]
}

/// An app behind `proxy` that holds every callback (answers none).
async fn holding_app_via(
    proxy: &FreezableProxy,
    actor_type: &str,
) -> (AppHost, mpsc::UnboundedReceiver<ResponseType>) {
    let channel = Endpoint::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let options = AppHostOptions::echo([actor_type]).with_handler(move |r| {
        let _ = tx.send(r);
        None
    });
    (AppHost::connect(channel, options).await.unwrap(), rx)
}

/// Library calls and gRPC calls in flight.
type InFlight = (
    Vec<JoinHandle<Result<(), Error>>>,
    Vec<JoinHandle<Result<tonic::Response<InvokeActorResponse>, Status>>>,
);

/// Starts every typed call kind (no deadline) and two gRPC calls (long
/// deadlines) to `actor_type`, and waits until the app behind `requests`
/// holds all six.
async fn six_calls_in_flight(
    gw: &TestGateway,
    actor_type: &str,
    requests: &mut mpsc::UnboundedReceiver<ResponseType>,
) -> InFlight {
    let library = typed_calls(&Transport::new(gw.manager()), actor_type);
    let client = gw.client().await;
    let grpc = (0..2)
        .map(|n| {
            let mut client = client.clone();
            let mut request = invoke(actor_type, &n.to_string(), "m", b"far");
            request.set_timeout(Duration::from_secs(60));
            tokio::spawn(async move { client.invoke_actor(request).await })
        })
        .collect();
    for _ in 0..6 {
        promptly(requests.recv()).await.expect("a held request");
    }
    (library, grpc)
}

/// Every one of the six calls fails promptly as "the app went away".
async fn all_fail_as_disconnected((library, grpc): InFlight) {
    for call in library {
        let result = promptly(call).await.unwrap();
        assert!(
            matches!(result, Err(Error::Disconnected { .. })),
            "{result:?}"
        );
    }
    for call in grpc {
        let status = promptly(call).await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
}

/// Dead peer, silent partition: the newest app's network goes silent
/// without a close while it holds calls of every kind. Keepalive finds it;
/// all its calls fail at once; routing falls back to the older app still
/// live (SPEC R3), so new calls succeed without anyone reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_fails_every_call_in_flight_and_falls_back_to_the_live_app() {
    watch_panics();
    let settings = GatewaySettings {
        keepalive_interval: Duration::from_millis(200),
        keepalive_timeout: Duration::from_millis(300),
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let _near = gw.echo_app(&["Far"]).await;
    let proxy = FreezableProxy::start(gw.addr).await;
    let (_far, mut requests) = holding_app_via(&proxy, "Far").await;
    let in_flight = six_calls_in_flight(&gw, "Far", &mut requests).await;
    assert_eq!(gw.pending().await, 6);

    let frozen_at = std::time::Instant::now();
    proxy.freeze();
    all_fail_as_disconnected(in_flight).await;
    println!(
        "partition: found and its calls failed {:?} after the freeze (keepalive 200 ms + 300 ms)",
        frozen_at.elapsed()
    );
    gw.wait_for_connections(1).await;
    assert_eq!(gw.pending().await, 0);
    let mut client = gw.client().await;
    for n in 0..3 {
        round_trip(&mut client, "Far", n).await;
    }
    assert_eq!(server_panics(), 0);
}

/// Dead peer, cut connection: the app's TCP connection closes under it (its
/// host died, a middlebox dropped it). The gateway sees the connection end
/// and fails the app's calls promptly, long before keepalive (10 s + 5 s
/// here) would have noticed anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_fails_every_call_in_flight_promptly() {
    watch_panics();
    let gw = TestGateway::start().await;
    let proxy = FreezableProxy::start(gw.addr).await;
    let (_far, mut requests) = holding_app_via(&proxy, "Far").await;
    let in_flight = six_calls_in_flight(&gw, "Far", &mut requests).await;

    drop(proxy); // both sockets close
    all_fail_as_disconnected(in_flight).await;
    gw.wait_until_idle().await;
    let _near = gw.echo_app(&["Far"]).await;
    round_trip(&mut gw.client().await, "Far", 0).await;
    assert_eq!(server_panics(), 0);
}

// ---------------------------------------------------------------- handshake

/// An app that opens the stream and never registers holds its stream slot
/// only until the handshake timeout: then DEADLINE_EXCEEDED, nothing
/// registered, and the slot (the only one here) serves the next app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_opener_times_out_and_frees_its_stream_slot() {
    watch_panics();
    let settings = GatewaySettings {
        handshake_timeout: Duration::from_millis(300),
        max_streams: 1,
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let (keep_open, rx) = mpsc::channel::<SubscribeActorEventsRequestAlpha1>(1);
    let opened = promptly(
        gw.client()
            .await
            .subscribe_actor_events_alpha1(ReceiverStream::new(rx)),
    )
    .await;
    let status = opened.expect_err("a silent stream is refused");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(gw.describe().await.connections.is_empty());
    drop(keep_open);

    let app = gw.echo_app(&["Next"]).await;
    round_trip(&mut gw.client().await, "Next", 0).await;
    promptly(app.close()).await.unwrap();
    assert_eq!(server_panics(), 0);
}

// ---------------------------------------------------------------- big answers

/// An app fails a call with a huge message (the app's stream carries it:
/// it is well under the 4 MiB limit). The caller gets the app's status, and
/// another call in flight on the same HTTP/2 connection is unaffected: one
/// app's verbose failure must not break other callers.
///
/// Fails today: the front door copies the app's message whole into the
/// caller's `grpc-message` trailer; 64 KiB of it exceeds the caller's HTTP/2
/// header-list limit (hyper's default is 16 KiB), so the client tears down
/// the whole connection (GOAWAY ENHANCE_YOUR_CALM "header_list_way_too_large"):
/// this caller sees RESOURCE_EXHAUSTED and every other call on that
/// connection fails too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_failure_message_fails_only_its_own_call() {
    watch_panics();
    let gw = TestGateway::start().await;
    let (app, mut requests) = gw.holding_app(&["Verbose"]).await;
    let (patient, mut patient_requests) = gw.holding_app(&["Patient"]).await;
    let client = gw.client().await;

    let mut caller = client.clone();
    let verbose =
        tokio::spawn(async move { caller.invoke_actor(invoke("Verbose", "1", "m", b"x")).await });
    let mut neighbour = client.clone();
    let bystander = tokio::spawn(async move {
        neighbour
            .invoke_actor(invoke("Patient", "1", "m", b"still here"))
            .await
    });
    let request = next_invoke(&mut requests).await;
    let waiting = next_invoke(&mut patient_requests).await;
    app.sender()
        .send(message(RequestType::RequestFailed(
            SubscribeActorEventsRequestFailedAlpha1 {
                id: request.id,
                code: 9,
                message: "e".repeat(64 * 1024),
            },
        )))
        .await
        .unwrap();
    let status = promptly(verbose).await.unwrap().unwrap_err();
    println!(
        "huge failure message: the caller got {:?}: {:?}",
        status.code(),
        &status.message()[..status.message().len().min(80)]
    );
    // The other call, on the same connection, is answered as if nothing happened.
    patient
        .sender()
        .send(invoke_reply(&waiting.id, &waiting.data, false))
        .await
        .unwrap();
    let other = promptly(bystander).await.unwrap();
    println!(
        "huge failure message: the neighbouring call got {:?}",
        other
            .as_ref()
            .map(|_| Code::Ok)
            .unwrap_or_else(|s| s.code())
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        other
            .expect("the neighbouring call is unaffected")
            .into_inner()
            .data,
        b"still here"
    );
    assert_eq!(gw.pending().await, 0);
    assert_eq!(server_panics(), 0);
}
