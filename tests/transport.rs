//! The typed transport: what each call writes to the app's stream, and how
//! each kind of answer maps to a Rust result.

mod common;

use std::collections::HashMap;
use std::future::Future;

use actix::{Actor, Arbiter};
use callbackstream::manager::Send;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    SubscribeActorEventsRequestDeactivateResponseAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInvokeResponseAlpha1, SubscribeActorEventsResponseInitialAlpha1,
};
use callbackstream::transport::{
    DeactivateRequest, FireOutcome, InvokeReply, InvokeRequest, ReminderRequest, TimerRequest,
};
use callbackstream::{ConnectionOptions, Error, ManagerActor, Transport};

use common::*;

/// A manager with one app (held by the test) and a transport over it.
async fn setup() -> (App, Transport) {
    let manager = start_manager();
    let app = App::register(&manager, &["cat"]).await;
    (app, Transport::new(manager))
}

/// Runs `call` while the app takes the request it writes and answers it with
/// `answer`; returns the request as written and the call's result.
async fn exchange<T>(
    app: &mut App,
    call: impl Future<Output = T>,
    answer: impl FnOnce(&ResponseType) -> RequestType,
) -> (ResponseType, T) {
    let app_side = async {
        let request = app.next().await;
        app.answer(answer(&request)).await;
        request
    };
    futures::join!(app_side, within("typed call", call))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Invoke,
    Reminder,
    Timer,
    Deactivate,
}

const KINDS: [Kind; 4] = [Kind::Invoke, Kind::Reminder, Kind::Timer, Kind::Deactivate];

/// A typed call of `kind` for actor type "cat", when only its error matters.
async fn call(transport: &Transport, kind: Kind) -> Result<(), Error> {
    let actor_type = "cat".to_owned();
    match kind {
        Kind::Invoke => transport
            .invoke(invoke_request(&actor_type, "x"), None)
            .await
            .map(drop),
        Kind::Reminder => {
            let request = ReminderRequest {
                actor_type,
                ..Default::default()
            };
            transport.reminder(request, None).await.map(drop)
        }
        Kind::Timer => {
            let request = TimerRequest {
                actor_type,
                ..Default::default()
            };
            transport.timer(request, None).await.map(drop)
        }
        Kind::Deactivate => {
            let request = DeactivateRequest {
                actor_type,
                ..Default::default()
            };
            transport.deactivate(request, None).await
        }
    }
}

fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn any(type_url: &str, value: &[u8]) -> Option<prost_types::Any> {
    Some(prost_types::Any {
        type_url: type_url.to_owned(),
        value: value.to_vec(),
    })
}

/// invoke writes an `invoke_request` with the caller's fields and a fresh
/// stamped id, and returns the app's data and metadata.
#[actix_rt::test]
async fn invoke_writes_invoke_request_with_its_fields_and_a_stamped_id() {
    let (mut app, transport) = setup().await;
    let request = InvokeRequest {
        id: "chosen-by-caller".into(),
        actor_type: "cat".into(),
        actor_id: "tom".into(),
        method: "meow".into(),
        data: b"hello".to_vec(),
        metadata: metadata(&[("traceparent", "00-abc-01")]),
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (written, reply) = exchange(
            &mut app,
            transport.invoke(request.clone(), None),
            |written| {
                RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                    id: request_id(written).to_owned(),
                    data: b"purr".to_vec(),
                    metadata: metadata(&[("k", "v")]),
                    error: false,
                })
            },
        )
        .await;
        let ResponseType::InvokeRequest(written) = written else {
            panic!("expected an invoke_request, got {written:?}");
        };
        assert!(
            !written.id.is_empty() && written.id != request.id,
            "id stamped"
        );
        assert_eq!(
            written,
            InvokeRequest {
                id: written.id.clone(),
                ..request.clone()
            }
        );
        assert_eq!(
            reply,
            Ok(InvokeReply {
                data: b"purr".to_vec(),
                metadata: metadata(&[("k", "v")]),
            })
        );
        ids.push(written.id);
    }
    assert_ne!(ids[0], ids[1], "each request gets its own id");
}

/// An `invoke_response` flagged `error` is `AppError` carrying the app's payload and metadata as they came.
#[actix_rt::test]
async fn invoke_response_flagged_error_is_app_error_with_payload() {
    let (mut app, transport) = setup().await;
    let payload = br#"{"message":"the actor method raised"}"#.to_vec();
    let (_, reply) = exchange(
        &mut app,
        transport.invoke(invoke_request("cat", "x"), None),
        |written| {
            RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id: request_id(written).to_owned(),
                data: payload.clone(),
                metadata: metadata(&[("content-type", "application/json")]),
                error: true,
            })
        },
    )
    .await;
    assert_eq!(
        reply,
        Err(Error::AppError {
            payload: payload.clone(),
            metadata: metadata(&[("content-type", "application/json")]),
        })
    );
}

/// `request_failed` is `AppFailed` with the app's code and message, for every
/// kind of call; only NotFound (5) is permanent.
#[actix_rt::test]
async fn request_failed_is_app_failed_with_code_and_message_not_found_permanent() {
    let (mut app, transport) = setup().await;
    for kind in KINDS {
        for (code, permanent) in [(5, true), (2, false), (13, false), (14, false)] {
            let message = format!("{kind:?} failed with {code}");
            let (_, reply) = exchange(&mut app, call(&transport, kind), |written| {
                RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
                    id: request_id(written).to_owned(),
                    code,
                    message: message.clone(),
                })
            })
            .await;
            let err = reply.expect_err("the app failed it");
            assert_eq!(
                err,
                Error::AppFailed {
                    code,
                    message: message.clone(),
                    permanent,
                },
                "{kind:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("actor host failed the request (code {code}): {message}")
            );
        }
    }
}

/// reminder writes a `reminder_request` with the caller's fields; `cancel` maps to Cancel, else Continue.
#[actix_rt::test]
async fn reminder_writes_reminder_request_and_cancel_maps_to_fire_outcome() {
    let (mut app, transport) = setup().await;
    let request = ReminderRequest {
        id: String::new(),
        actor_type: "cat".into(),
        actor_id: "tom".into(),
        name: "feed".into(),
        due_time: "5s".into(),
        period: "R3/PT10S".into(),
        data: any(
            "type.googleapis.com/google.protobuf.BytesValue",
            b"\x0a\x03fish",
        ),
        metadata: metadata(&[("k", "v")]),
    };
    for (cancel, outcome) in [(true, FireOutcome::Cancel), (false, FireOutcome::Continue)] {
        let (written, reply) = exchange(
            &mut app,
            transport.reminder(request.clone(), None),
            |written| {
                RequestType::ReminderResponse(fire_response(request_id(written).into(), cancel))
            },
        )
        .await;
        let ResponseType::ReminderRequest(written) = written else {
            panic!("expected a reminder_request, got {written:?}");
        };
        assert!(!written.id.is_empty(), "id stamped");
        assert_eq!(
            written,
            ReminderRequest {
                id: written.id.clone(),
                ..request.clone()
            }
        );
        assert_eq!(reply, Ok(outcome), "cancel: {cancel}");
    }
}

/// timer writes a `timer_request` with the caller's fields; `cancel` maps to Cancel, else Continue.
#[actix_rt::test]
async fn timer_writes_timer_request_and_cancel_maps_to_fire_outcome() {
    let (mut app, transport) = setup().await;
    let request = TimerRequest {
        id: String::new(),
        actor_type: "cat".into(),
        actor_id: "tom".into(),
        name: "tick".into(),
        due_time: "1s".into(),
        period: "1s".into(),
        callback: "on_tick".into(),
        data: any(
            "type.googleapis.com/google.protobuf.StringValue",
            b"\x0a\x01x",
        ),
        metadata: metadata(&[("k", "v")]),
    };
    for (cancel, outcome) in [(true, FireOutcome::Cancel), (false, FireOutcome::Continue)] {
        let (written, reply) = exchange(
            &mut app,
            transport.timer(request.clone(), None),
            |written| RequestType::TimerResponse(fire_response(request_id(written).into(), cancel)),
        )
        .await;
        let ResponseType::TimerRequest(written) = written else {
            panic!("expected a timer_request, got {written:?}");
        };
        assert!(!written.id.is_empty(), "id stamped");
        assert_eq!(
            written,
            TimerRequest {
                id: written.id.clone(),
                ..request.clone()
            }
        );
        assert_eq!(reply, Ok(outcome), "cancel: {cancel}");
    }
}

/// deactivate writes a `deactivate_request` with the caller's fields; its response is Ok.
#[actix_rt::test]
async fn deactivate_writes_deactivate_request_and_its_response_is_ok() {
    let (mut app, transport) = setup().await;
    let request = DeactivateRequest {
        id: String::new(),
        actor_type: "cat".into(),
        actor_id: "tom".into(),
    };
    let (written, reply) = exchange(
        &mut app,
        transport.deactivate(request.clone(), None),
        |written| {
            RequestType::DeactivateResponse(SubscribeActorEventsRequestDeactivateResponseAlpha1 {
                id: request_id(written).into(),
            })
        },
    )
    .await;
    let ResponseType::DeactivateRequest(written) = written else {
        panic!("expected a deactivate_request, got {written:?}");
    };
    assert!(!written.id.is_empty(), "id stamped");
    assert_eq!(
        written,
        DeactivateRequest {
            id: written.id.clone(),
            ..request
        }
    );
    assert_eq!(reply, Ok(()));
}

/// An answer of the wrong kind (even a timer_response to a reminder) is a protocol error naming both kinds.
#[actix_rt::test]
async fn reply_of_the_wrong_kind_is_a_protocol_error() {
    let (mut app, transport) = setup().await;
    let cases = [
        (Kind::Invoke, "invoke_response", "deactivate_response"),
        (Kind::Reminder, "reminder_response", "timer_response"),
        (Kind::Timer, "timer_response", "reminder_response"),
        (Kind::Deactivate, "deactivate_response", "invoke_response"),
    ];
    for (kind, expected, sent) in cases {
        let (_, reply) = exchange(&mut app, call(&transport, kind), |written| {
            let id = request_id(written).to_owned();
            match sent {
                "deactivate_response" => RequestType::DeactivateResponse(
                    SubscribeActorEventsRequestDeactivateResponseAlpha1 { id },
                ),
                "timer_response" => RequestType::TimerResponse(fire_response(id, false)),
                "reminder_response" => RequestType::ReminderResponse(fire_response(id, false)),
                _ => invoke_response(&id, "x"),
            }
        })
        .await;
        match reply {
            Err(Error::Protocol(message)) => assert!(
                message.contains(expected) && message.contains(sent),
                "{kind:?}: {message:?} should name {expected} and {sent}"
            ),
            other => {
                panic!("{kind:?} answered by {sent}: expected a protocol error, got {other:?}")
            }
        }
    }
}

/// The raw send hands back the app's answer as it came, without mapping it.
#[actix_rt::test]
async fn raw_send_returns_the_reply_as_it_came() {
    let (mut app, transport) = setup().await;
    let failed = |id: &str| {
        RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
            id: id.to_owned(),
            code: 5,
            message: "no such actor".into(),
        })
    };
    let (written, reply) = exchange(
        &mut app,
        transport.send(Send::new(invoke("cat", "x"))),
        |written| failed(request_id(written)),
    )
    .await;
    assert_eq!(reply, Ok(failed(request_id(&written))));
}

/// Sending the handshake message as a request is refused as a protocol error; nothing is written or kept.
#[actix_rt::test]
async fn raw_send_of_initial_response_is_a_protocol_error() {
    let (mut app, transport) = setup().await;
    let handshake = ResponseType::InitialResponse(SubscribeActorEventsResponseInitialAlpha1 {});
    let reply = within("refusal", transport.send(Send::new(handshake))).await;
    assert!(matches!(reply, Err(Error::Protocol(_))), "{reply:?}");
    assert_eq!(app.stats().await.pending, 0);
    app.assert_no_request();
}

/// Every typed call fails with NoConnection when no app is registered.
#[actix_rt::test]
async fn typed_calls_without_connection_fail_with_no_connection() {
    let transport = Transport::new(start_manager());
    for kind in KINDS {
        assert_eq!(
            within("typed call", call(&transport, kind)).await,
            Err(Error::NoConnection),
            "{kind:?}"
        );
    }
}

/// Once the manager is gone, every call fails with ShuttingDown.
#[actix_rt::test]
async fn calls_after_the_manager_stopped_fail_with_shutting_down() {
    let arbiter = Arbiter::new();
    let options = ConnectionOptions::default();
    let manager =
        ManagerActor::start_in_arbiter(&arbiter.handle(), move |_| ManagerActor::new(options));
    let transport = Transport::new(manager);
    assert_eq!(
        call(&transport, Kind::Invoke).await,
        Err(Error::NoConnection)
    );
    arbiter.stop();
    arbiter.join().expect("arbiter thread ends");
    for kind in KINDS {
        assert_eq!(
            within("typed call", call(&transport, kind)).await,
            Err(Error::ShuttingDown),
            "{kind:?}"
        );
    }
    let raw = transport.send(Send::new(invoke("cat", "x"))).await;
    assert_eq!(raw, Err(Error::ShuttingDown));
}
