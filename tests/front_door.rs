//! SPEC section 5, the front door (F1-F4), end to end: a real gateway on a
//! loopback port, real gRPC callers, and apps on real actor streams.

mod harness;

use std::collections::HashMap;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::proto::actor_runtime::ActorRuntimeStatus;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    ActiveActorsCount, GetMetadataRequest, InvokeActorRequest,
    SubscribeActorEventsRequestFailedAlpha1, SubscribeActorEventsRequestInvokeResponseAlpha1,
};
use callbackstream::transport::InvokeRequest;
use harness::{
    TestGateway, eventually, invoke, invoke_reply, next_invoke, promptly, recorded, spawn_invoke,
};
use tokio::sync::mpsc;
use tonic::{Code, Request};

/// The response header that marks an application error payload (SPEC F3).
const ERROR_HEADER: &str = "x-daprerrorresponseheader";

/// Values SPEC F1 forbids in `actor_type` and in `actor_id`.
const BAD_TYPE_OR_ID: &[&str] = &[
    "", ".", "..", "/", "a/b", "a\\b", "a#b", "a?b", "a\0b", "a\nb", "\tab", "ab\r", "a\u{1b}b",
    "a\u{7f}", "a\u{85}b",
];

/// Values SPEC F1 forbids in `method`.
const BAD_METHOD: &[&str] = &[
    "", "#", "?", "a#b", "a?b", "a\0b", "a\nb", "\tab", "a\u{7f}", "a\u{9f}b",
];

/// Unusual but valid (type, id, method) triples: F1 must let them through.
const VALID_EDGE_CASES: &[(&str, &str, &str)] = &[
    ("a.b", "c.d", "m"),
    ("...", ".a", "."),
    ("Zähler", "идентификатор-7", "方法"),
    ("Counter", "crab-🦀", ".."),
    ("Counter", "c1", "nested/path/method"),
    ("Counter", "c1", "back\\slash"),
    ("Counter", "with space", "m"),
];

#[derive(Clone, Copy, Debug)]
enum Field {
    ActorType,
    ActorId,
    Method,
}

/// A valid call to `Counter/c1.get` with one field replaced by `value`.
fn call_with(field: Field, value: &str) -> Request<InvokeActorRequest> {
    let mut request = invoke("Counter", "c1", "get", b"x");
    let slot = match field {
        Field::ActorType => &mut request.get_mut().actor_type,
        Field::ActorId => &mut request.get_mut().actor_id,
        Field::Method => &mut request.get_mut().method,
    };
    *slot = value.into();
    request
}

/// An app hosting `types` that answers every invoke with `answer(request)`.
async fn app_answering(
    gateway: &TestGateway,
    types: &[&str],
    answer: impl Fn(InvokeRequest) -> RequestType + Send + Sync + 'static,
) -> AppHost {
    let options = AppHostOptions::echo(types.iter().copied()).with_handler(move |req| match req {
        ResponseType::InvokeRequest(r) => Some(answer(r)),
        other => echo(other),
    });
    gateway.app(options).await
}

fn invoke_response(id: String, data: Vec<u8>, error: bool) -> RequestType {
    RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
        id,
        data,
        metadata: HashMap::new(),
        error,
    })
}

/// The app's message for a `request_failed` with `code`.
fn failure_message(code: u32) -> String {
    format!("app refused with code {code}")
}

/// Answers `request_failed` with the code the caller put in `data` (decimal).
fn fail_with_code_from_data(r: InvokeRequest) -> RequestType {
    let code: u32 = String::from_utf8_lossy(&r.data).parse().unwrap_or(2);
    RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
        id: r.id,
        code,
        message: failure_message(code),
    })
}

/// The app's callbacks received so far must be exactly one invoke for `method`.
async fn only_callback_is(seen: &mut mpsc::UnboundedReceiver<ResponseType>, method: &str) {
    let first = next_invoke(seen).await;
    assert_eq!(first.method, method, "the app received another call first");
    assert!(
        seen.try_recv().is_err(),
        "the app received an extra callback"
    );
}

/// F1: an empty or malformed actor_type, actor_id or method is INVALID_ARGUMENT and never reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_invalid_names_are_invalid_argument() {
    let gateway = TestGateway::start().await;
    let (options, mut seen) = recorded(AppHostOptions::echo(["Counter"]));
    let _app = gateway.app(options).await;
    let mut client = gateway.client().await;

    let cases = BAD_TYPE_OR_ID
        .iter()
        .flat_map(|v| [(Field::ActorType, *v), (Field::ActorId, *v)])
        .chain(BAD_METHOD.iter().map(|v| (Field::Method, *v)));
    for (field, value) in cases {
        let status = client
            .invoke_actor(call_with(field, value))
            .await
            .expect_err(&format!("{field:?} = {value:?} was accepted"));
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{field:?} = {value:?}: {status:?}"
        );
    }

    // The stream is FIFO: if the app's first callback is this valid call, none
    // of the refused ones was sent before it.
    let reply = client
        .invoke_actor(invoke("Counter", "c1", "sentinel", b"ok"))
        .await
        .expect("a valid call after the refused ones");
    assert_eq!(reply.into_inner().data, b"ok");
    only_callback_is(&mut seen, "sentinel").await;
}

/// F1: names with dots, unicode, spaces, and `/` or `\` in the method are valid and reach the app unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_edge_case_names_are_accepted() {
    let gateway = TestGateway::start().await;
    let (options, mut seen) = recorded(AppHostOptions::echo(["Counter"]));
    let _app = gateway.app(options).await;
    let mut client = gateway.client().await;

    for &(actor_type, actor_id, method) in VALID_EDGE_CASES {
        let reply = client
            .invoke_actor(invoke(actor_type, actor_id, method, method.as_bytes()))
            .await
            .unwrap_or_else(|s| {
                panic!("({actor_type:?}, {actor_id:?}, {method:?}) refused: {s:?}")
            });
        assert_eq!(reply.into_inner().data, method.as_bytes());
        let got = next_invoke(&mut seen).await;
        assert_eq!(
            (
                got.actor_type.as_str(),
                got.actor_id.as_str(),
                got.method.as_str()
            ),
            (actor_type, actor_id, method)
        );
    }
}

/// F2: a valid call reaches the app as an invoke_request with exactly its type, id, method, data and metadata, and a fresh request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_valid_call_reaches_app_as_invoke_request() {
    let gateway = TestGateway::start().await;
    let (app, mut calls) = gateway.holding_app(&["Counter"]).await;
    let client = gateway.client().await;

    let data = vec![0u8, 1, 0xfe, 0xff, b'{', b'}'];
    let metadata = HashMap::from([
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("x-trace".to_owned(), "abc 123".to_owned()),
        ("empty".to_owned(), String::new()),
    ]);
    let mut request = invoke("Counter", "c-42", "Add", &data);
    request.get_mut().metadata = metadata.clone();
    let call = spawn_invoke(&client, request);

    let got = next_invoke(&mut calls).await;
    assert!(!got.id.is_empty(), "the invoke_request carries no id");
    assert_eq!(
        got,
        InvokeRequest {
            id: got.id.clone(),
            actor_type: "Counter".into(),
            actor_id: "c-42".into(),
            method: "Add".into(),
            data,
            metadata,
        }
    );

    app.sender()
        .send(invoke_reply(&got.id, b"added", false))
        .await
        .unwrap();
    let reply = promptly(call).await.unwrap().expect("the app answered");
    assert_eq!(reply.into_inner().data, b"added");
}

/// F2 (R13): with two apps hosting different types, each type's calls go to its own app; unlisted types go to the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_typed_calls_reach_the_app_hosting_their_type() {
    let gateway = TestGateway::start().await;
    let signed = |app: &'static str| {
        move |r: InvokeRequest| {
            invoke_response(r.id, format!("{app}:{}", r.actor_type).into(), false)
        }
    };
    let _cats = app_answering(&gateway, &["Cat"], signed("cat-app")).await;
    let _dogs = app_answering(&gateway, &["Dog"], signed("dog-app")).await;
    let mut client = gateway.client().await;

    for (actor_type, expected) in [
        ("Cat", "cat-app:Cat"),
        ("Dog", "dog-app:Dog"),
        ("Cat", "cat-app:Cat"),
        ("Bird", "dog-app:Bird"),
    ] {
        let reply = client
            .invoke_actor(invoke(actor_type, "1", "speak", b""))
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply.into_inner().data),
            expected,
            "a {actor_type} call"
        );
    }
}

/// F3: an invoke_response is OK with the app's data, and without the error header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_echo_reply_is_ok_with_data() {
    let gateway = TestGateway::start().await;
    let _app = gateway.echo_app(&["Counter"]).await;
    let mut client = gateway.client().await;

    let reply = client
        .invoke_actor(invoke("Counter", "c1", "echo", b"hello \x00 world"))
        .await
        .unwrap();
    assert!(
        reply.metadata().get(ERROR_HEADER).is_none(),
        "a normal reply carries {ERROR_HEADER}"
    );
    assert_eq!(reply.into_inner().data, b"hello \x00 world");
}

/// F3: an invoke_response with `error: true` is still OK with the payload, plus the header `x-daprerrorresponseheader: true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_app_error_is_ok_with_payload_and_error_header() {
    let gateway = TestGateway::start().await;
    let payload = br#"{"message":"division by zero"}"#;
    let _app = app_answering(&gateway, &["Calc"], |r| {
        invoke_response(r.id, payload.to_vec(), true)
    })
    .await;
    let mut client = gateway.client().await;

    let reply = client
        .invoke_actor(invoke("Calc", "1", "Divide", b"1/0"))
        .await
        .expect("an application error is not a gRPC failure");
    assert_eq!(
        reply
            .metadata()
            .get(ERROR_HEADER)
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(reply.into_inner().data, payload);
}

/// F3: `request_failed` with code 5 is NOT_FOUND (not INTERNAL) with the app's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_request_failed_not_found_stays_not_found_with_app_message() {
    let gateway = TestGateway::start().await;
    let _app = app_answering(&gateway, &["Counter"], fail_with_code_from_data).await;
    let mut client = gateway.client().await;

    let status = client
        .invoke_actor(invoke("Counter", "c1", "Missing", b"5"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), failure_message(5));
}

/// F3: `request_failed` passes codes 1..16 through and turns 0 and codes above 16 into UNKNOWN, always with the app's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_request_failed_codes_pass_through_and_strangers_become_unknown() {
    let gateway = TestGateway::start().await;
    let _app = app_answering(&gateway, &["Counter"], fail_with_code_from_data).await;
    let mut client = gateway.client().await;

    for (code, expected) in [
        (1, Code::Cancelled),
        (3, Code::InvalidArgument),
        (9, Code::FailedPrecondition),
        (14, Code::Unavailable),
        (16, Code::Unauthenticated),
        (0, Code::Unknown),
        (17, Code::Unknown),
        (99, Code::Unknown),
        (u32::MAX, Code::Unknown),
    ] {
        let status = client
            .invoke_actor(invoke("Counter", "c1", "Fail", code.to_string().as_bytes()))
            .await
            .expect_err(&format!("code {code} became OK"));
        assert_eq!(status.code(), expected, "app code {code}");
        assert_eq!(status.message(), failure_message(code), "app code {code}");
    }
}

/// F3 (R1, R4): with no app connected, before any app or after the last one left, a call is UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_no_app_connected_is_unavailable() {
    let gateway = TestGateway::start().await;
    let mut client = gateway.client().await;
    let assert_unavailable = |result: Result<_, tonic::Status>, when: &str| {
        let status = result.expect_err(when);
        assert_eq!(status.code(), Code::Unavailable, "{when}: {status:?}");
        assert_eq!(status.message(), "actor host is not connected", "{when}");
    };

    let result = client
        .invoke_actor(invoke("Counter", "c1", "get", b""))
        .await;
    assert_unavailable(result, "before any app");

    let app = gateway.echo_app(&["Counter"]).await;
    client
        .invoke_actor(invoke("Counter", "c1", "get", b""))
        .await
        .expect("served while the app is connected");
    promptly(app.close()).await.unwrap();
    gateway.wait_for_connections(0).await;

    let result = client
        .invoke_actor(invoke("Counter", "c1", "get", b""))
        .await;
    assert_unavailable(result, "after the app left");
}

/// F3 (R5): a call in flight when its app's stream ends (abort or half-close) fails promptly with UNAVAILABLE and leaves nothing pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_app_stream_dropped_mid_call_is_unavailable_promptly() {
    let gateway = TestGateway::start().await;
    for abort in [true, false] {
        let (app, mut calls) = gateway.holding_app(&["Counter"]).await;
        let client = gateway.client().await;
        let call = spawn_invoke(&client, invoke("Counter", "c1", "slow", b""));
        next_invoke(&mut calls).await;

        if abort {
            app.abort();
        } else {
            let _ = promptly(app.close()).await;
        }
        let status = promptly(call)
            .await
            .unwrap()
            .expect_err("the app never answered");
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "abort: {abort}, {status:?}"
        );
        gateway.wait_for_connections(0).await;
        assert_eq!(gateway.pending().await, 0);
    }
}

/// F3 (R10): when the caller's gRPC deadline passes the call is DEADLINE_EXCEEDED, nothing stays pending, and a late reply is dropped while the stream keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_caller_deadline_is_deadline_exceeded_and_leaves_nothing_pending() {
    let gateway = TestGateway::start().await;
    let (app, mut calls) = gateway.holding_app(&["Counter"]).await;
    let client = gateway.client().await;

    let mut request = invoke("Counter", "c1", "slow", b"");
    request.set_timeout(Duration::from_secs(1));
    let expired = spawn_invoke(&client, request);
    let first = next_invoke(&mut calls).await;
    let status = promptly(expired)
        .await
        .unwrap()
        .expect_err("nobody answered");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    eventually("no pending entry after the deadline", || async {
        gateway.pending().await == 0
    })
    .await;

    // A second call is answered after the late reply to the first arrived: it
    // must get its own answer, not the late one.
    let second = spawn_invoke(&client, invoke("Counter", "c1", "fast", b""));
    let fresh = next_invoke(&mut calls).await;
    assert_ne!(fresh.id, first.id, "request ids are reused");
    let to_gateway = app.sender();
    to_gateway
        .send(invoke_reply(&first.id, b"late", false))
        .await
        .unwrap();
    to_gateway
        .send(invoke_reply(&fresh.id, b"fresh", false))
        .await
        .unwrap();
    let reply = promptly(second)
        .await
        .unwrap()
        .expect("the stream still serves");
    assert_eq!(reply.into_inner().data, b"fresh");
    assert_eq!(gateway.describe().await.connections.len(), 1);
    assert_eq!(gateway.pending().await, 0);
}

/// F3 (R10): a caller that hangs up before the app answers leaves no pending entry behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_caller_that_hangs_up_leaves_nothing_pending() {
    let gateway = TestGateway::start().await;
    let (_app, mut calls) = gateway.holding_app(&["Counter"]).await;
    let client = gateway.client().await;

    let call = spawn_invoke(&client, invoke("Counter", "c1", "slow", b""));
    next_invoke(&mut calls).await;
    assert_eq!(gateway.pending().await, 1);
    call.abort();
    eventually("no pending entry after the caller left", || async {
        gateway.pending().await == 0
    })
    .await;
}

/// F4: GetMetadata reports the app id, crate version, RUNNING, and host_ready / active_actors following the live streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_metadata_before_during_after_registrations() {
    let settings = GatewaySettings {
        app_id: "f4-app".into(),
        ..GatewaySettings::default()
    };
    let gateway = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let mut client = gateway.client().await;
    let mut runtime = async || {
        let metadata = client
            .get_metadata(GetMetadataRequest {})
            .await
            .expect("GetMetadata")
            .into_inner();
        assert_eq!(metadata.id, "f4-app");
        assert_eq!(metadata.runtime_version, env!("CARGO_PKG_VERSION"));
        let runtime = metadata.actor_runtime.expect("actor_runtime is set");
        assert_eq!(runtime.runtime_status, ActorRuntimeStatus::Running as i32);
        runtime
    };
    let counted = |types: &[&str]| -> Vec<ActiveActorsCount> {
        types
            .iter()
            .map(|t| ActiveActorsCount {
                r#type: (*t).into(),
                count: 0,
            })
            .collect()
    };

    let before = runtime().await;
    assert!(!before.host_ready, "ready before any app");
    assert_eq!(before.active_actors, []);

    let older = gateway.echo_app(&["Zebra", "Mid", "Alpha"]).await;
    let newer = gateway.echo_app(&["Mid", "Beta"]).await;
    let both = runtime().await;
    assert!(both.host_ready);
    assert_eq!(
        both.active_actors,
        counted(&["Alpha", "Beta", "Mid", "Zebra"])
    );

    promptly(older.close()).await.unwrap();
    gateway.wait_for_connections(1).await;
    let one = runtime().await;
    assert!(one.host_ready);
    assert_eq!(one.active_actors, counted(&["Beta", "Mid"]));

    promptly(newer.close()).await.unwrap();
    gateway.wait_for_connections(0).await;
    let after = runtime().await;
    assert!(!after.host_ready, "ready after every app left");
    assert_eq!(after.active_actors, []);
}
