//! The Prometheus metrics (issue 14): what a scrape shows after streams,
//! calls, actors, timers and state transactions, and the scrape endpoint's
//! own rules (routes, formats, a slow client cut off).
//!
//! Metrics are process-wide, and this file is its own process: the one test
//! that reads values is the only one that records any (the endpoint tests
//! check formats, not values).

mod harness;

use callbackstream::metrics::{self, endpoint};
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, InvokeActorRequest, RegisterActorReminderRequest,
    RegisterActorTimerRequest, TransactionalActorStateOperation,
};
use harness::{TestGateway, eventually, invoke_reply, next_invoke, spawn_invoke};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves this process's metrics on a loopback port; returns its address.
async fn scrape_endpoint() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(endpoint::serve(listener, metrics::enable()));
    addr
}

/// One HTTP/1.1 exchange: the raw response (head and body).
async fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    http(
        addr,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
}

/// The value of the sample whose line starts with `series` (name and labels).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{scrape}"))
        .parse()
        .unwrap()
}

fn invoke(actor_id: &str) -> InvokeActorRequest {
    InvokeActorRequest {
        actor_type: "Metered".into(),
        actor_id: actor_id.into(),
        method: "m".into(),
        data: b"x".to_vec(),
        metadata: Default::default(),
    }
}

/// Streams, calls by kind and outcome, active actors, timers and their
/// fires, and state transactions each move their series; closing the app
/// brings the live ones back to zero and counts the deactivations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_follows_streams_calls_actors_timers_and_state() {
    let addr = scrape_endpoint().await;
    let gateway = TestGateway::start().await;
    let app = gateway.echo_app(&["Metered"]).await;
    let mut client = gateway.client().await;
    for id in ["1", "2", "1", "2", "1"] {
        client.invoke_actor(invoke(id)).await.unwrap();
    }
    let timer = RegisterActorTimerRequest {
        actor_type: "Metered".into(),
        actor_id: "1".into(),
        name: "tick".into(),
        due_time: "0s".into(),
        period: "1h".into(),
        callback: "cb".into(),
        ..Default::default()
    };
    client.register_actor_timer(timer).await.unwrap();
    let reminder = RegisterActorReminderRequest {
        actor_type: "Metered".into(),
        actor_id: "2".into(),
        name: "nudge".into(),
        due_time: "0s".into(),
        period: "1h".into(),
        ..Default::default()
    };
    client.register_actor_reminder(reminder).await.unwrap();
    let operation = TransactionalActorStateOperation {
        operation_type: "upsert".into(),
        key: "k".into(),
        value: Some(prost_types::Any {
            type_url: String::new(),
            value: b"v".to_vec(),
        }),
        metadata: Default::default(),
    };
    let transaction = ExecuteActorStateTransactionRequest {
        actor_type: "Metered".into(),
        actor_id: "2".into(),
        operations: vec![operation],
    };
    client
        .execute_actor_state_transaction(transaction)
        .await
        .unwrap();

    let fired = "dapr_runtime_actor_timers_fired_total{actor_type=\"Metered\",success=\"true\"}";
    let reminded =
        "dapr_runtime_actor_reminders_fired_total{actor_type=\"Metered\",success=\"true\"}";
    eventually(
        "the timer's and the reminder's fires to be counted",
        || async {
            let s = scrape(addr).await;
            s.contains(&format!("{fired} 1")) && s.contains(&format!("{reminded} 1"))
        },
    )
    .await;
    let s = scrape(addr).await;
    assert_eq!(value(&s, "callbackstream_app_streams"), 1.0);
    assert_eq!(
        value(&s, "callbackstream_app_streams_registered_total"),
        1.0
    );
    let invokes = "callbackstream_calls_duration_seconds_count{kind=\"invoke\",outcome=\"ok\"}";
    assert_eq!(value(&s, invokes), 5.0);
    let timers = "callbackstream_calls_duration_seconds_count{kind=\"timer\",outcome=\"ok\"}";
    assert_eq!(value(&s, timers), 1.0);
    assert_eq!(value(&s, "callbackstream_pending_requests"), 0.0);
    let active = "callbackstream_actors_active{actor_type=\"Metered\"}";
    assert_eq!(value(&s, active), 2.0);
    let registered = "dapr_runtime_actor_timers{actor_type=\"Metered\"}";
    assert_eq!(value(&s, registered), 1.0);
    let reminders = "dapr_runtime_actor_reminders{actor_type=\"Metered\"}";
    assert_eq!(value(&s, reminders), 1.0);
    let late = "callbackstream_reminder_fire_lateness_seconds_count";
    assert_eq!(value(&s, late), 1.0);
    assert_eq!(
        value(&s, "callbackstream_timer_fire_lateness_seconds_count"),
        1.0
    );
    let committed = "callbackstream_actor_state_transactions_duration_seconds_count";
    assert_eq!(value(&s, committed), 1.0);

    // A call waiting for its actor's turn counts until it gets the turn.
    let (held, mut calls) = gateway.holding_app(&["Held"]).await;
    let first = spawn_invoke(&client, harness::invoke("Held", "1", "m", b"1"));
    let first_request = next_invoke(&mut calls).await;
    let second = spawn_invoke(&client, harness::invoke("Held", "1", "m", b"2"));
    let waiting = "dapr_runtime_actor_pending_actor_calls{actor_type=\"Held\"}";
    eventually("the second call to wait for the turn", || async {
        scrape(addr).await.contains(&format!("{waiting} 1"))
    })
    .await;
    let replies = held.sender();
    let answer = |id: &str| replies.send(invoke_reply(id, b"ok", false));
    answer(&first_request.id).await.unwrap();
    let second_request = next_invoke(&mut calls).await;
    assert_eq!(value(&scrape(addr).await, waiting), 0.0);
    answer(&second_request.id).await.unwrap();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    drop(replies); // the app's stream ends once every sender is gone
    held.close().await.unwrap();

    app.close().await.unwrap();
    eventually("the app's actors to leave", || async {
        scrape(addr).await.contains(&format!("{active} 0"))
    })
    .await;
    let s = scrape(addr).await;
    assert_eq!(value(&s, "callbackstream_app_streams"), 0.0);
    let gone = "dapr_runtime_actor_deactivated_total{actor_type=\"Metered\"}";
    assert_eq!(value(&s, gone), 2.0);
    assert_eq!(value(&s, registered), 0.0, "the timer went with its actor");
    assert_eq!(value(&s, reminders), 1.0, "the reminder stays, stored");
    gateway.shutdown().await.unwrap();
}

/// Prometheus asks for OpenMetrics and gets it; any other client gets the
/// classic text format, whose counters are named by their samples.
#[tokio::test]
async fn the_scrape_format_follows_the_accept_header() {
    let addr = scrape_endpoint().await;
    let classic = scrape(addr).await;
    assert!(classic.starts_with("HTTP/1.1 200 OK"), "{classic}");
    assert!(classic.contains("content-type: text/plain; version=0.0.4"));
    assert!(classic.contains("# TYPE callbackstream_app_streams_registered_total counter"));
    assert!(!classic.contains("# EOF"));

    let open = http(
        addr,
        "GET /metrics HTTP/1.1\r\nhost: x\r\naccept: application/openmetrics-text;version=1.0.0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(open.contains("content-type: application/openmetrics-text; version=1.0.0"));
    assert!(open.contains("# TYPE callbackstream_app_streams_registered counter"));
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let addr = scrape_endpoint().await;
    let other = http(
        addr,
        "GET /x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let post =
        "POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let post = http(addr, post).await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

/// A client that never finishes its request head is cut off after
/// `HEADER_TIMEOUT` (on the paused clock), so it cannot hold a connection.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let addr = scrape_endpoint().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost:")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let read =
        tokio::time::timeout(endpoint::HEADER_TIMEOUT * 2, stream.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the connection was still open after twice the timeout"
    );
    assert!(started.elapsed() >= endpoint::HEADER_TIMEOUT);
    let answer = String::from_utf8_lossy(&rest);
    assert!(!answer.contains("200 OK"), "{answer}");
}
