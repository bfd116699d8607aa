//! Limits a production user needs (issue 5): concurrent app streams and
//! unanswered requests per stream, each refused with RESOURCE_EXHAUSTED
//! beyond its limit, and freed again when the load goes away.

mod harness;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use harness::{TestGateway, eventually, invoke, next_invoke, promptly, spawn_invoke};
use tonic::Code;

/// More app streams than `max_streams` are refused with RESOURCE_EXHAUSTED
/// before registering; a place frees up when a stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_resource_exhausted() {
    let settings = GatewaySettings {
        max_streams: 2,
        ..GatewaySettings::default()
    };
    let gw = TestGateway::start_with(settings, ConnectionOptions::default()).await;
    let first = gw.echo_app(&["A"]).await;
    let _second = gw.echo_app(&["B"]).await;

    let refused = AppHost::connect(gw.channel().await, AppHostOptions::echo(["C"]))
        .await
        .err()
        .expect("a third stream is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(refused.message(), "too many actor streams (limit 2)");
    assert_eq!(gw.describe().await.actor_types, ["A", "B"]);

    promptly(first.close()).await.unwrap();
    // The place is freed as the closed stream's reader finishes: retry briefly.
    let mut third = None;
    for _ in 0..100 {
        match AppHost::connect(gw.channel().await, AppHostOptions::echo(["C"])).await {
            Ok(app) => {
                third = Some(app);
                break;
            }
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(third.is_some(), "the closed stream's place was never freed");
    assert_eq!(gw.describe().await.actor_types, ["B", "C"]);
}

/// A stream holding `max_pending` unanswered requests refuses the next with
/// RESOURCE_EXHAUSTED; answering one makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_pending_are_resource_exhausted() {
    let options = ConnectionOptions {
        max_pending: 2,
        ..ConnectionOptions::default()
    };
    let gw = TestGateway::start_with(GatewaySettings::default(), options).await;
    let (app, mut requests) = gw.holding_app(&["Slow"]).await;
    let client = gw.client().await;
    let mut held = Vec::new();
    for n in 0..2 {
        held.push(spawn_invoke(
            &client,
            invoke("Slow", &n.to_string(), "m", b"held"),
        ));
        next_invoke(&mut requests).await;
    }

    let refused = client
        .clone()
        .invoke_actor(invoke("Slow", "x", "m", b"one too many"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("limit 2"),
        "{}",
        refused.message()
    );
    assert_eq!(gw.pending().await, 2, "the refused request left no entry");

    // Answering the first held request (id "1") makes room for one more.
    app.sender()
        .send(harness::invoke_reply("1", b"done", false))
        .await
        .unwrap();
    eventually("the answer to be delivered", || async {
        gw.pending().await == 1
    })
    .await;
    let again = spawn_invoke(&client, invoke("Slow", "y", "m", b"room"));
    let request = next_invoke(&mut requests).await;
    app.sender()
        .send(harness::invoke_reply(&request.id, b"room", false))
        .await
        .unwrap();
    assert_eq!(
        promptly(again).await.unwrap().unwrap().into_inner().data,
        b"room"
    );
    drop(held);
}

/// One HTTP/2 connection may carry at most 1024 calls at once: the gateway
/// announces it in its SETTINGS (MAX_CONCURRENT_STREAMS), so a single client
/// cannot make it hold unbounded open calls (docs/reliability.md, "HTTP/2").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_at_most_1024_calls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let gw = TestGateway::start().await;
    let mut tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // The client preface, then an empty SETTINGS frame.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]).await.unwrap();
    // The server's first frame is its SETTINGS: 9-byte header, then 6-byte
    // entries of (16-bit id, 32-bit value).
    let mut header = [0u8; 9];
    promptly(tcp.read_exact(&mut header)).await.unwrap();
    assert_eq!(header[3], 0x4, "first frame is not SETTINGS: {header:?}");
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; len];
    promptly(tcp.read_exact(&mut payload)).await.unwrap();
    let max_streams = payload
        .chunks_exact(6)
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) == 0x3)
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
    assert_eq!(max_streams, Some(1024), "SETTINGS payload {payload:?}");
}
