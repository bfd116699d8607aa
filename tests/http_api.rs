//! daprd's HTTP actor API over real HTTP against a real gateway (issue 14,
//! http-api-facts.md): one test per route and per error row that applies,
//! the token, and hostile input. Apps are real gRPC app streams.

mod harness;
mod httpc;

use std::sync::Arc;
use std::time::Duration;

use ::http::Method;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest,
    SubscribeActorEventsRequestFailedAlpha1, SubscribeActorEventsRequestInvokeResponseAlpha1,
    TransactionalActorStateOperation,
};
use callbackstream::store::{Batch, KeyValue, MemoryStore, Store, StoreError, StoreFuture};
use harness::{Hosting, TestGateway, server_panics, watch_panics};
use httpc::{Client, json, raw};
use hyper::body::Bytes;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with its HTTP port, on one actor thread (as the binary).
async fn gateway(settings: GatewaySettings) -> (TestGateway, Client) {
    watch_panics();
    let gw = TestGateway::start_with_http(settings, Hosting::ActorThreads(1)).await;
    let client = Client::new(gw.http_addr.unwrap());
    (gw, client)
}

/// An app for `types` whose methods do what they are named: `echo` echoes
/// with reply metadata, `headers` answers with the request's metadata as
/// JSON, `fail` raises (error=true), `missing` and `invalid` answer
/// `request_failed` NOT_FOUND and INVALID_ARGUMENT.
async fn scripted_app(gw: &TestGateway, types: &[&str]) -> AppHost {
    let options = AppHostOptions::echo(types.iter().copied()).with_handler(|request| {
        let ResponseType::InvokeRequest(r) = request else {
            return echo(request);
        };
        let reply = |data: Vec<u8>, metadata, error| {
            RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id: r.id.clone(),
                data,
                metadata,
                error,
            })
        };
        let failed = |code: u32, message: &str| {
            RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
                id: r.id.clone(),
                code,
                message: message.into(),
            })
        };
        Some(match r.method.as_str() {
            "echo" => reply(
                r.data.clone(),
                httpc::map(&[
                    ("content-type", "text/plain"),
                    ("x-app", "yes"),
                    ("grpc-thing", "g"),
                ]),
                false,
            ),
            "headers" => reply(
                serde_json::to_vec(&r.metadata).unwrap(),
                Default::default(),
                false,
            ),
            "fail" => reply(b"{\"message\":\"boom\"}".to_vec(), Default::default(), true),
            "missing" => failed(5, "no such method"),
            "invalid" => failed(3, "bad argument"),
            _ => reply(r.method.clone().into_bytes(), Default::default(), false),
        })
    });
    gw.app(options).await
}

const ACTOR: &str = "/v1.0/actors/Counter/1";

// ---- invoke ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_answers_with_the_app_data_content_type_and_headers() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let reply = client
        .post(&format!("{ACTOR}/method/echo"), "payload")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "payload");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("x-app"), Some("yes"));
    assert_eq!(reply.header("dapr-grpc-thing"), Some("g"));
    assert_eq!(reply.header("x-daprerrorresponseheader"), None);
    // Without a content-type from the app, JSON.
    let plain = client.post(&format!("{ACTOR}/method/other"), "").await;
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert_eq!(plain.body, "other");
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_serves_get_post_put_and_delete() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
        let reply = client
            .send(
                method.clone(),
                &format!("{ACTOR}/method/echo"),
                &[],
                Bytes::from("x"),
            )
            .await;
        assert_eq!(reply.status, 200, "{method}");
        assert_eq!(reply.body, "x", "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_headers_reach_the_app_as_canonical_metadata() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let reply = client
        .send(
            Method::POST,
            &format!("{ACTOR}/method/headers"),
            &[
                ("x-custom-thing", "v1"),
                ("content-type", "application/json; charset=utf-8"),
            ],
            Bytes::new(),
        )
        .await;
    let metadata: std::collections::HashMap<String, String> =
        serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        metadata.get("X-Custom-Thing").map(String::as_str),
        Some("v1")
    );
    assert_eq!(
        metadata.get("Content-Type").map(String::as_str),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        metadata.get("Dapr-Api-Call").map(String::as_str),
        Some("true")
    );
    assert!(!metadata.contains_key("Host"), "{metadata:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_app_error_is_200_with_the_error_header() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let reply = client.post(&format!("{ACTOR}/method/fail"), "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "{\"message\":\"boom\"}");
    assert_eq!(reply.header("x-daprerrorresponseheader"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_request_failed_takes_the_http_status_of_its_grpc_code() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let missing = client.post(&format!("{ACTOR}/method/missing"), "").await;
    let message = missing.assert_error(404, "ERR_ACTOR_INVOKE_METHOD");
    assert_eq!(
        message,
        "error invoke actor method: actor method not found: missing"
    );
    let invalid = client.post(&format!("{ACTOR}/method/invalid"), "").await;
    let message = invalid.assert_error(400, "ERR_ACTOR_INVOKE_METHOD");
    assert_eq!(
        message,
        "error invoke actor method: error from actor service: bad argument"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_without_a_host_is_500_err_actor_invoke_method() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    let reply = client.post(&format!("{ACTOR}/method/echo"), "").await;
    let message = reply.assert_error(500, "ERR_ACTOR_INVOKE_METHOD");
    assert!(
        message.starts_with("error invoke actor method: "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_invoke_method_path_is_cleaned_as_daprd_does() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let reply = client
        .post(&format!("{ACTOR}/method/admin%2F..%2Flegit"), "")
        .await;
    assert_eq!(reply.status, 200);
    // The scripted app answers an unknown method with its name.
    assert_eq!(reply.body, "legit");
}

// ---- state ----------------------------------------------------------------------------

/// Activates Counter/1 (a transaction needs an active actor).
async fn activate(client: &Client) {
    let reply = client.post(&format!("{ACTOR}/method/echo"), "").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_written_over_http_reads_back_over_both_as_go_json() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    activate(&client).await;
    let body = r#"[{"operation":"upsert","request":{"key":"k","value":{ "b": 1.0, "a": "<x>" }}},
                  {"operation":"upsert","request":{"key":"s","value":"value1"}}]"#;
    let written = client.put(&format!("{ACTOR}/state"), body).await;
    assert_eq!(written.status, 204, "{}", written.text());
    assert!(written.body.is_empty() && written.header("content-type").is_none());
    let read = client.get(&format!("{ACTOR}/state/k")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("content-type"), Some("application/json"));
    assert_eq!(read.body, r#"{"a":"\u003cx\u003e","b":1}"#);
    assert_eq!(
        client.get(&format!("{ACTOR}/state/s")).await.body,
        "\"value1\""
    );
    // The same key over gRPC: its JSON bytes.
    let mut grpc = gw.client().await;
    let over_grpc = grpc
        .get_actor_state(GetActorStateRequest {
            actor_type: "Counter".into(),
            actor_id: "1".into(),
            key: "s".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over_grpc.data, b"\"value1\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_written_over_grpc_reads_back_over_http_byte_for_byte() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    activate(&client).await;
    let mut grpc = gw.client().await;
    grpc.execute_actor_state_transaction(ExecuteActorStateTransactionRequest {
        actor_type: "Counter".into(),
        actor_id: "1".into(),
        operations: vec![TransactionalActorStateOperation {
            operation_type: "upsert".into(),
            key: "raw".into(),
            value: Some(prost_types::Any {
                type_url: String::new(),
                value: b"not json \x01".to_vec(),
            }),
            metadata: Default::default(),
        }],
    })
    .await
    .unwrap();
    let read = client.get(&format!("{ACTOR}/state/raw")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, &b"not json \x01"[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_get_of_a_missing_key_is_204() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    let read = client.get(&format!("{ACTOR}/state/nothing")).await;
    assert_eq!(read.status, 204);
    assert!(read.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_get_that_fails_is_500_state_get() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    // A key past the store's key limit (4 KiB) is refused by the store.
    let key = "k".repeat(5000);
    let reply = client.get(&format!("{ACTOR}/state/{key}")).await;
    let message = reply.assert_error(500, "ERR_ACTOR_STATE_GET");
    assert!(
        message.starts_with("error getting actor state: "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_transaction_on_an_inactive_actor_is_400_instance_missing() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let body = r#"[{"operation":"upsert","request":{"key":"k","value":1}}]"#;
    let reply = client.post(&format!("{ACTOR}/state"), body).await;
    let message = reply.assert_error(400, "ERR_ACTOR_INSTANCE_MISSING");
    assert_eq!(message, "actor instance is missing");
    assert_eq!(client.get(&format!("{ACTOR}/state/k")).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_transaction_with_malformed_json_is_400_malformed() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    activate(&client).await;
    for body in ["", "[{", "{\"not\":\"a list\"}"] {
        let reply = client.post(&format!("{ACTOR}/state"), body).await;
        let message = reply.assert_error(400, "ERR_MALFORMED_REQUEST");
        assert!(
            message.starts_with("failed deserializing HTTP body: "),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_state_transaction_with_a_bad_operation_is_500_and_changes_nothing() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    activate(&client).await;
    let body = r#"[{"operation":"upsert","request":{"key":"k","value":1}},
                  {"operation":"merge","request":{"key":"j","value":2}}]"#;
    let reply = client.post(&format!("{ACTOR}/state"), body).await;
    reply.assert_error(500, "ERR_ACTOR_STATE_TRANSACTION_SAVE");
    let missing_key = r#"[{"operation":"upsert","request":{"value":2}}]"#;
    let reply = client.post(&format!("{ACTOR}/state"), missing_key).await;
    reply.assert_error(500, "ERR_ACTOR_STATE_TRANSACTION_SAVE");
    assert_eq!(client.get(&format!("{ACTOR}/state/k")).await.status, 204);
}

// ---- reminders and timers -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_create_get_and_delete() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let path = format!("{ACTOR}/reminders/r1");
    // What the Python SDK sends, failurePolicy included.
    let body = json!({"reminderName": "r1", "dueTime": "0h0m9s0ms0μs", "period": "0h0m10s0ms0μs",
        "data": "cnN0YXRl", "failurePolicy": {"drop": {}}});
    let created = client.put(&path, json(body)).await;
    assert_eq!(created.status, 204, "{}", created.text());
    let got = client.get(&path).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(
        got.text(),
        "{\"actorID\":\"1\",\"actorType\":\"Counter\",\"data\":\"cnN0YXRl\",\
         \"dueTime\":\"0h0m9s0ms0μs\",\"period\":\"0h0m10s0ms0μs\"}\n"
    );
    assert_eq!(client.delete(&path).await.status, 204);
    let gone = client.get(&path).await;
    let message = gone.assert_error(404, "ERR_ACTOR_REMINDER_NOT_FOUND");
    assert_eq!(message, "actor reminder not found: r1");
    // Deleting what is not there is not an error.
    assert_eq!(client.delete(&path).await.status, 204);
}

/// A store whose disk has failed: it reads, but every commit fails.
struct FailedDisk(MemoryStore);

impl Store for FailedDisk {
    fn commit(&self, _: Batch) -> StoreFuture<()> {
        Box::pin(async { Err(StoreError::Backend("disk failed".into())) })
    }

    fn get(&self, key: Vec<u8>) -> StoreFuture<Option<Vec<u8>>> {
        self.0.get(key)
    }

    fn scan(
        &self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> StoreFuture<Vec<KeyValue>> {
        self.0.scan(prefix, after, limit)
    }
}

/// A reminder whose create or delete cannot be stored is 500
/// ERR_ACTOR_REMINDER_CREATE / ERR_ACTOR_REMINDER_DELETE, the store's cause
/// after daprd's prefix; nothing is registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_create_and_delete_that_the_store_refuses_are_500() {
    let settings = GatewaySettings {
        store: Arc::new(FailedDisk(MemoryStore::new())),
        ..GatewaySettings::default()
    };
    let (gw, client) = gateway(settings).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let path = format!("{ACTOR}/reminders/r");
    let created = client.put(&path, json(json!({"dueTime": "1h"}))).await;
    let message = created.assert_error(500, "ERR_ACTOR_REMINDER_CREATE");
    assert!(
        message.starts_with("error creating actor reminder: "),
        "{message}"
    );
    assert!(message.contains("disk failed"), "{message}");
    client
        .get(&path)
        .await
        .assert_error(404, "ERR_ACTOR_REMINDER_NOT_FOUND");
    let deleted = client.delete(&path).await;
    let message = deleted.assert_error(500, "ERR_ACTOR_REMINDER_DELETE");
    assert!(
        message.starts_with("error deleting actor reminder: "),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_overwrite_false_on_an_existing_one_is_409() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let path = format!("{ACTOR}/reminders/r");
    let body = json!({"dueTime": "1h"});
    assert_eq!(client.post(&path, json(body)).await.status, 204);
    let again = client
        .post(&path, json(json!({"dueTime": "2h", "overwrite": false})))
        .await;
    again.assert_error(409, "ERR_ACTOR_REMINDER_ALREADY_EXISTS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_for_a_type_not_hosted_is_403() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let path = "/v1.0/actors/Elsewhere/1/reminders/r";
    let reply = client.post(path, json(json!({"dueTime": "1h"}))).await;
    reply.assert_error(403, "ERR_ACTOR_REMINDER_NON_HOSTED");
    client
        .get(path)
        .await
        .assert_error(403, "ERR_ACTOR_REMINDER_NON_HOSTED");
    client
        .delete(path)
        .await
        .assert_error(403, "ERR_ACTOR_REMINDER_NON_HOSTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_with_a_bad_schedule_is_500_reminder_create() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let reply = client
        .post(
            &format!("{ACTOR}/reminders/r"),
            json(json!({"dueTime": "soon", "period": "1s"})),
        )
        .await;
    reply.assert_error(500, "ERR_ACTOR_REMINDER_CREATE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reminder_and_timer_bodies_that_do_not_decode_are_400_malformed() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    for kind in ["reminders", "timers"] {
        let path = format!("{ACTOR}/{kind}/r");
        client
            .post(&path, "{")
            .await
            .assert_error(400, "ERR_MALFORMED_REQUEST");
        client
            .post(&path, "")
            .await
            .assert_error(400, "ERR_MALFORMED_REQUEST");
        let bad_field = json(json!({"dueTime": 5}));
        client
            .post(&path, bad_field)
            .await
            .assert_error(400, "ERR_MALFORMED_REQUEST");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_timer_create_fires_down_the_stream_and_delete_stops_it() {
    watch_panics();
    let gw =
        TestGateway::start_with_http(GatewaySettings::default(), Hosting::ActorThreads(1)).await;
    let client = Client::new(gw.http_addr.unwrap());
    let (_app, mut fired) = gw.holding_app(&["Counter"]).await;
    let path = format!("{ACTOR}/timers/t1");
    let body = json!({"dueTime": "0s", "period": "1h", "callback": "tick", "data": "eyJuIjo3fQ=="});
    let created = client.put(&path, json(body)).await;
    assert_eq!(created.status, 204, "{}", created.text());
    let request = harness::promptly(fired.recv()).await.unwrap();
    let ResponseType::TimerRequest(timer) = request else {
        panic!("expected a timer fire, got {request:?}");
    };
    assert_eq!(
        (timer.name.as_str(), timer.callback.as_str()),
        ("t1", "tick")
    );
    assert_eq!(client.delete(&path).await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_json_data_reaches_the_app_as_its_text_and_reads_back_as_json() {
    watch_panics();
    let gw =
        TestGateway::start_with_http(GatewaySettings::default(), Hosting::ActorThreads(1)).await;
    let client = Client::new(gw.http_addr.unwrap());
    let (_app, mut fired) = gw.holding_app(&["Counter"]).await;
    let body =
        json!({"dueTime": "0s", "period": "1h", "callback": "tick", "data": {"n": 7, "a": "x"}});
    assert_eq!(
        client
            .put(&format!("{ACTOR}/timers/t"), json(body))
            .await
            .status,
        204
    );
    let ResponseType::TimerRequest(timer) = harness::promptly(fired.recv()).await.unwrap() else {
        panic!("expected a timer fire");
    };
    // daprd's BytesValue of the JSON text (Go's form: keys sorted).
    let text = br#"{"a":"x","n":7}"#;
    let mut expected = vec![0x0a, text.len() as u8];
    expected.extend_from_slice(text);
    assert_eq!(timer.data.unwrap().value, expected);
    // A reminder's JSON data reads back as JSON.
    let path = format!("{ACTOR}/reminders/r");
    let body = json!({"dueTime": "1h", "data": ["a", 1]});
    assert_eq!(client.put(&path, json(body)).await.status, 204);
    let got: serde_json::Value = serde_json::from_slice(&client.get(&path).await.body).unwrap();
    assert_eq!(got["data"], json!(["a", 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_timer_for_a_type_no_stream_hosts_is_500_timer_create() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    let reply = client
        .post(&format!("{ACTOR}/timers/t"), json(json!({"dueTime": "1s"})))
        .await;
    let message = reply.assert_error(500, "ERR_ACTOR_TIMER_CREATE");
    assert!(message.contains("not registered"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_reserved_actor_types_are_403_on_state_reminder_and_timer_routes() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    let actor = "/v1.0/actors/dapr.internal.wf/1";
    client
        .get(&format!("{actor}/state/k"))
        .await
        .assert_error(403, "ERR_ACTOR_TYPE_RESERVED");
    client
        .post(&format!("{actor}/reminders/r"), json(json!({})))
        .await
        .assert_error(403, "ERR_ACTOR_TYPE_RESERVED");
    client
        .delete(&format!("{actor}/timers/t"))
        .await
        .assert_error(403, "ERR_ACTOR_TYPE_RESERVED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_a_reentrant_call_past_the_stack_depth_is_500_stack_depth() {
    watch_panics();
    let gw =
        TestGateway::start_with_http(GatewaySettings::default(), Hosting::ActorThreads(1)).await;
    let client = Client::new(gw.http_addr.unwrap());
    let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    let mut options = AppHostOptions::echo(["Counter"]).with_handler(move |request| {
        let _ = tx.send(request);
        None
    });
    options.registration.reentrancy = Some(callbackstream::proto::ActorReentrancyConfig {
        enabled: true,
        max_stack_depth: Some(1),
    });
    let _app = gw.app(options).await;
    let outer = {
        let client = client.clone();
        tokio::spawn(async move { client.post(&format!("{ACTOR}/method/m"), "").await })
    };
    let ResponseType::InvokeRequest(held) = harness::promptly(requests.recv()).await.unwrap()
    else {
        panic!("expected the outer call");
    };
    let chain = held
        .metadata
        .get("Dapr-Reentrancy-Id")
        .expect("a chain id")
        .clone();
    // The same chain calls back into the actor: depth 2, past the registration's 1.
    let inner = client
        .send(
            Method::POST,
            &format!("{ACTOR}/method/m"),
            &[("dapr-reentrancy-id", &chain)],
            Bytes::new(),
        )
        .await;
    inner.assert_error(500, "ERR_ACTOR_STACK_DEPTH");
    drop(outer);
}

// ---- health, metadata, fallbacks ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_healthz_and_outbound_are_204_when_ready() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound", "/v1.0/healthz/"] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 204, "{path}");
        assert!(reply.body.is_empty() && reply.header("content-type").is_none());
    }
    assert_eq!(
        client
            .get("/v1.0/healthz?appid=callbackstream")
            .await
            .status,
        204
    );
    client
        .get("/v1.0/healthz?appid=other")
        .await
        .assert_error(500, "ERR_HEALTH_APPID_NOT_MATCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_metadata_lists_the_app_id_and_the_hosted_types_with_their_counts() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter", "Other"]).await;
    activate(&client).await;
    let reply = client.get("/v1.0/metadata").await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.ends_with(b"\n"));
    let doc: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(doc["id"], "callbackstream");
    assert_eq!(doc["runtimeVersion"], env!("CARGO_PKG_VERSION"));
    let runtime = &doc["actorRuntime"];
    assert_eq!(runtime["runtimeStatus"], "RUNNING");
    assert_eq!(runtime["hostReady"], true);
    assert_eq!(
        runtime["activeActors"],
        json!([{"type": "Counter", "count": 1}, {"type": "Other"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_unknown_routes_and_verbs_are_404_err_direct_invoke() {
    let (_gw, client) = gateway(GatewaySettings::default()).await;
    let patch = client
        .send(
            Method::PATCH,
            &format!("{ACTOR}/method/m"),
            &[],
            Bytes::new(),
        )
        .await;
    patch.assert_error(404, "ERR_DIRECT_INVOKE");
    client
        .get(&format!("{ACTOR}/reminders"))
        .await
        .assert_error(404, "ERR_DIRECT_INVOKE");
    client
        .get("/v1.0-alpha1/actors/T/1/state/k")
        .await
        .assert_error(404, "ERR_DIRECT_INVOKE");
    let head = client
        .send(Method::HEAD, "/v1.0/healthz", &[], Bytes::new())
        .await;
    assert_eq!(head.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_without_the_runtime_state_routes_are_500_runtime_not_found() {
    let settings = GatewaySettings {
        runtime: None,
        ..GatewaySettings::default()
    };
    let (_gw, client) = gateway(settings).await;
    client
        .get(&format!("{ACTOR}/state/k"))
        .await
        .assert_error(500, "ERR_ACTOR_RUNTIME_NOT_FOUND");
}

// ---- the token ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_every_route_but_healthz_refuses_a_missing_or_wrong_token_with_401() {
    let settings = GatewaySettings {
        api_token: Some("s3cret".into()),
        ..GatewaySettings::default()
    };
    let (gw, anonymous) = gateway(settings).await;
    let _app = gw
        .app(AppHostOptions::echo(["Counter"]).with_token("s3cret"))
        .await;
    let wrong = anonymous.clone().with_header("dapr-api-token", "s3cre");
    let right = anonymous.clone().with_header("dapr-api-token", "s3cret");
    let routes: Vec<(Method, String)> = vec![
        (Method::POST, format!("{ACTOR}/method/m")),
        (Method::GET, format!("{ACTOR}/method/m")),
        (Method::PUT, format!("{ACTOR}/state")),
        (Method::GET, format!("{ACTOR}/state/k")),
        (Method::PUT, format!("{ACTOR}/reminders/r")),
        (Method::GET, format!("{ACTOR}/reminders/r")),
        (Method::DELETE, format!("{ACTOR}/reminders/r")),
        (Method::PUT, format!("{ACTOR}/timers/t")),
        (Method::DELETE, format!("{ACTOR}/timers/t")),
        (Method::GET, "/v1.0/metadata".into()),
        (Method::GET, "/v1.0/nothing-here".into()),
    ];
    for (method, path) in &routes {
        for client in [&anonymous, &wrong] {
            let reply = client.send(method.clone(), path, &[], Bytes::new()).await;
            assert_eq!(reply.status, 401, "{method} {path}");
            assert_eq!(reply.text(), "invalid api token");
            assert!(
                reply
                    .header("content-type")
                    .unwrap()
                    .starts_with("text/plain")
            );
        }
        let allowed = right.send(method.clone(), path, &[], Bytes::new()).await;
        assert_ne!(allowed.status, 401, "{method} {path} with the token");
    }
    for path in ["/v1.0/healthz", "/v1.0/healthz/outbound"] {
        assert_eq!(anonymous.get(path).await.status, 204, "{path}");
    }
    // The token the gateway checked is not passed on to the app.
    let echoed = right.post(&format!("{ACTOR}/method/m"), "x").await;
    assert_eq!(echoed.status, 200);
}

// ---- hostile input --------------------------------------------------------------------

fn small_body_limit() -> GatewaySettings {
    let mut settings = GatewaySettings::default();
    settings.http.max_body_bytes = 1024;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_an_over_size_body_is_400_not_413() {
    let (gw, client) = gateway(small_body_limit()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let big = Bytes::from(vec![b'x'; 2048]);
    let invoke = client
        .post(&format!("{ACTOR}/method/echo"), big.clone())
        .await;
    let message = invoke.assert_error(400, "ERR_BAD_REQUEST");
    assert!(message.contains("stream too large"), "{message}");
    let state = client.post(&format!("{ACTOR}/state"), big.clone()).await;
    state.assert_error(400, "ERR_MALFORMED_REQUEST");
    let reminder = client
        .post(&format!("{ACTOR}/reminders/r"), big.clone())
        .await;
    reminder.assert_error(400, "ERR_MALFORMED_REQUEST");
    // A DELETE's body, which daprd reads and ignores: ERR_BODY_READ.
    let delete = client
        .send(Method::DELETE, &format!("{ACTOR}/timers/t"), &[], big)
        .await;
    delete.assert_error(400, "ERR_BODY_READ");
    // Just within the limit is fine.
    let fits = client
        .post(&format!("{ACTOR}/method/echo"), vec![b'y'; 1024])
        .await;
    assert_eq!(fits.status, 200);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_bad_percent_escapes_in_the_path_are_400() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    for path in [
        "/v1.0/actors/Counter/%zz/method/m",
        "/v1.0/actors/Counter/1/method/%4",
        "/v1.0/actors/Counter/1/state/%ff",
        "/v1.0/actors/Counter/1/reminders/a%",
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
    }
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_names_with_slash_hash_question_or_control_characters_are_400() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    for bad in ["a%2Fb", "a%23b", "a%3Fb", "a%00b", "a%01b", "..", "a%5Cb"] {
        let as_id = client
            .post(&format!("/v1.0/actors/Counter/{bad}/method/m"), "")
            .await;
        as_id.assert_error(400, "ERR_BAD_REQUEST");
        let as_type = client.get(&format!("/v1.0/actors/{bad}/1/state/k")).await;
        as_type.assert_error(400, "ERR_BAD_REQUEST");
        let as_reminder = client
            .post(
                &format!("{ACTOR}/reminders/{bad}"),
                json(json!({"dueTime": "1h"})),
            )
            .await;
        // `..` as a name collapses into another route: daprd's fallback.
        if bad != ".." {
            as_reminder.assert_error(400, "ERR_BAD_REQUEST");
        }
    }
    for bad in ["a%23b", "a%3Fb", "a%00b", "a%7Fb"] {
        let method = client.post(&format!("{ACTOR}/method/{bad}"), "").await;
        method.assert_error(400, "ERR_BAD_REQUEST");
    }
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_a_client_that_never_finishes_its_headers_is_cut_off() {
    let mut settings = GatewaySettings::default();
    settings.http.header_read_timeout = Duration::from_millis(300);
    let (gw, _client) = gateway(settings).await;
    let addr = gw.http_addr.unwrap();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The server closes (or answers 408 and closes) on its own: the read
    // ends well within the bound, never with a 204.
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    assert!(!String::from_utf8_lossy(&out).contains(" 204 "));
    // A well-behaved client is still served.
    let served = raw(
        addr,
        b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(served.starts_with("HTTP/1.1 204"), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_a_connection_that_sends_nothing_is_dropped() {
    let mut settings = GatewaySettings::default();
    settings.http.handshake_timeout = Duration::from_millis(300);
    let (gw, _client) = gateway(settings).await;
    let mut tcp = TcpStream::connect(gw.http_addr.unwrap()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_connections_past_the_limit_are_closed() {
    let mut settings = GatewaySettings::default();
    settings.http.max_connections = 2;
    let (gw, client) = gateway(settings).await;
    let addr = gw.http_addr.unwrap();
    // Two connections hold the slots (a partial request keeps each busy).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /v1.0/healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    harness::eventually("the third connection to be refused", || async {
        raw(addr, b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_empty()
    })
    .await;
    drop(held);
    harness::eventually("a slot to come free", || async {
        let probe = b"GET /v1.0/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        raw(addr, probe).await.starts_with("HTTP/1.1 204")
    })
    .await;
    assert_eq!(client.get("/v1.0/healthz").await.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_h2c_with_prior_knowledge_is_served() {
    let (gw, _client) = gateway(GatewaySettings::default()).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let tcp = TcpStream::connect(gw.http_addr.unwrap()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = ::http::Request::post(format!("http://x{ACTOR}/method/echo"))
        .body(http_body_util::Full::new(Bytes::from("h2")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), ::http::Version::HTTP_2);
    use http_body_util::BodyExt;
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "h2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_shutdown_ends_http_connections_within_the_grace() {
    let (gw, client) = gateway(GatewaySettings::default()).await;
    // A kept-alive connection, idle.
    let tcp = TcpStream::connect(gw.http_addr.unwrap()).await.unwrap();
    assert_eq!(client.get("/v1.0/healthz").await.status, 204);
    harness::promptly(gw.shutdown()).await.unwrap();
    drop(tcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_a_caller_that_hangs_up_mid_call_leaves_nothing_pending() {
    watch_panics();
    let gw =
        TestGateway::start_with_http(GatewaySettings::default(), Hosting::ActorThreads(1)).await;
    let (_app, mut requests) = gw.holding_app(&["Counter"]).await;
    let mut tcp = TcpStream::connect(gw.http_addr.unwrap()).await.unwrap();
    let request =
        format!("POST {ACTOR}/method/m HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The call reached the app, which holds it unanswered.
    let held = harness::promptly(requests.recv()).await.unwrap();
    assert!(matches!(held, ResponseType::InvokeRequest(_)), "{held:?}");
    assert_eq!(gw.pending().await, 1);
    drop(tcp);
    // The hang-up drops the call: its pending entry goes (R10), and the
    // actor's turn with it, so the next call is served.
    harness::eventually("the pending entry to go", || async {
        gw.pending().await == 0
    })
    .await;
    let client = Client::new(gw.http_addr.unwrap());
    let next =
        tokio::spawn(async move { client.post(&format!("{ACTOR}/method/m"), "again").await });
    let ResponseType::InvokeRequest(second) = harness::promptly(requests.recv()).await.unwrap()
    else {
        panic!("expected the second call to reach the app");
    };
    assert_eq!(second.data, b"again");
    drop(next);
    assert_eq!(server_panics(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h_a_timer_past_the_gateway_cap_is_429_and_changes_nothing() {
    let mut settings = GatewaySettings::default();
    let mut runtime = callbackstream::runtime::RuntimeOptions::default();
    runtime.job_limits.max_timers = 1;
    settings.runtime = Some(runtime);
    let (gw, client) = gateway(settings).await;
    let _app = scripted_app(&gw, &["Counter"]).await;
    let body = || json(json!({"dueTime": "1h"}));
    assert_eq!(
        client
            .put(&format!("{ACTOR}/timers/a"), body())
            .await
            .status,
        204
    );
    let refused = client.put(&format!("{ACTOR}/timers/b"), body()).await;
    refused.assert_error(429, "ERR_ACTOR_TIMER_CREATE");
    // Replacing the one kept is not one more.
    assert_eq!(
        client
            .put(&format!("{ACTOR}/timers/a"), body())
            .await
            .status,
        204
    );
}
