//! SPEC section 6, security and limits (S1-S3), end to end: the API token on
//! every RPC but health, TLS on the listener, and hostile input from the
//! network.

mod harness;

use std::path::PathBuf;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::{GatewayError, GatewaySettings, TlsFiles};
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    GetMetadataRequest, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsRequestDeactivateResponseAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInitialAlpha1, SubscribeActorEventsRequestReminderResponseAlpha1,
    SubscribeActorEventsResponseAlpha1,
};
use futures::StreamExt;
use harness::{TestGateway, invoke, invoke_reply, next_invoke, promptly, recorded, watch_panics};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

const TOKEN: &str = "s3cret-token";

/// Tokens that are not [`TOKEN`]: absent, empty, a prefix, longer, other case, other value.
const WRONG_TOKENS: &[Option<&str>] = &[
    None,
    Some(""),
    Some("s3cret"),
    Some("s3cret-token-"),
    Some("S3CRET-TOKEN"),
    Some("wrong"),
];

const STREAM_PATH: &str = "/dapr.proto.runtime.v1.Dapr/SubscribeActorEventsAlpha1";

async fn gateway_with(settings: GatewaySettings) -> TestGateway {
    TestGateway::start_with(settings, ConnectionOptions::default()).await
}

async fn gateway_with_token() -> TestGateway {
    gateway_with(GatewaySettings {
        api_token: Some(TOKEN.into()),
        ..GatewaySettings::default()
    })
    .await
}

fn with_token<T>(mut request: Request<T>, token: Option<&str>) -> Request<T> {
    if let Some(token) = token {
        let value = MetadataValue::try_from(token).expect("ASCII token");
        request.metadata_mut().insert("dapr-api-token", value);
    }
    request
}

fn assert_unauthenticated<T>(result: Result<T, Status>, what: &str) {
    match result {
        Ok(_) => panic!("{what} was let in"),
        Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}"),
    }
}

fn echo_options(actor_type: &str, token: Option<&str>) -> AppHostOptions {
    let options = AppHostOptions::echo([actor_type]);
    match token {
        Some(token) => options.with_token(token),
        None => options,
    }
}

/// An echo round trip through a newly connected app: the gateway still serves.
async fn fresh_app_round_trip(gateway: &TestGateway, actor_type: &str) {
    let app = gateway.echo_app(&[actor_type]).await;
    assert_round_trip(gateway, actor_type).await;
    promptly(app.close())
        .await
        .expect("the fresh app closes cleanly");
}

/// A call to `actor_type` comes back with its own data.
async fn assert_round_trip(gateway: &TestGateway, actor_type: &str) {
    let data = format!("ping {actor_type}");
    let reply = promptly(gateway.client().await.invoke_actor(invoke(
        actor_type,
        "1",
        "ping",
        data.as_bytes(),
    )))
    .await
    .unwrap_or_else(|s| panic!("round trip to {actor_type}: {s:?}"));
    assert_eq!(reply.into_inner().data, data.as_bytes());
}

// ---------------------------------------------------------------- S1

/// S1: with a token configured, InvokeActor and GetMetadata need `dapr-api-token`; a missing or wrong one is UNAUTHENTICATED and nothing reaches the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_unary_rpcs_need_the_api_token() {
    let gateway = gateway_with_token().await;
    let (options, mut seen) = recorded(echo_options("Vault", Some(TOKEN)));
    let _app = gateway.app(options).await;
    let mut client = gateway.client().await;

    for &token in WRONG_TOKENS {
        let call = with_token(invoke("Vault", "v1", "open", b"x"), token);
        assert_unauthenticated(
            client.invoke_actor(call).await,
            &format!("InvokeActor with {token:?}"),
        );
        let ask = with_token(Request::new(GetMetadataRequest {}), token);
        assert_unauthenticated(
            client.get_metadata(ask).await,
            &format!("GetMetadata with {token:?}"),
        );
    }

    let reply = client
        .invoke_actor(with_token(
            invoke("Vault", "v1", "open", b"ok"),
            Some(TOKEN),
        ))
        .await
        .expect("InvokeActor with the token");
    assert_eq!(reply.into_inner().data, b"ok");
    let metadata = client
        .get_metadata(with_token(Request::new(GetMetadataRequest {}), Some(TOKEN)))
        .await
        .expect("GetMetadata with the token")
        .into_inner();
    assert!(metadata.actor_runtime.unwrap().host_ready);

    // Only the authenticated call ever reached the app.
    let first = next_invoke(&mut seen).await;
    assert_eq!(first.data, b"ok");
    assert!(seen.try_recv().is_err(), "a refused call reached the app");
}

/// S1: with a token configured, an actor stream without the right token is refused with UNAUTHENTICATED before registration; with it, it registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_actor_stream_needs_the_api_token() {
    let gateway = gateway_with_token().await;

    for &token in WRONG_TOKENS {
        let refused = AppHost::connect(gateway.channel().await, echo_options("Vault", token)).await;
        assert_unauthenticated(refused, &format!("the actor stream with {token:?}"));
        let view = gateway.describe().await;
        assert!(
            view.connections.is_empty(),
            "registered with {token:?}: {view:?}"
        );
        assert!(
            view.actor_types.is_empty(),
            "registered with {token:?}: {view:?}"
        );
    }

    let _app = gateway.app(echo_options("Vault", Some(TOKEN))).await;
    let view = gateway.describe().await;
    assert_eq!(view.connections.len(), 1);
    assert_eq!(view.actor_types, ["Vault"]);
}

/// S1: with a token configured, gRPC reflection needs it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_reflection_needs_the_api_token() {
    let gateway = gateway_with_token().await;
    let list_services = || {
        futures::stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let mut client = ServerReflectionClient::new(gateway.channel().await);

    for &token in WRONG_TOKENS {
        let result = client
            .server_reflection_info(with_token(Request::new(list_services()), token))
            .await;
        assert_unauthenticated(result, &format!("reflection with {token:?}"));
    }

    let mut answers = client
        .server_reflection_info(with_token(Request::new(list_services()), Some(TOKEN)))
        .await
        .expect("reflection with the token")
        .into_inner();
    let answer = promptly(answers.message())
        .await
        .expect("a reflection answer")
        .expect("one message");
    assert!(
        format!("{answer:?}").contains("dapr.proto.runtime.v1.Dapr"),
        "{answer:?}"
    );
}

/// S1: gRPC health answers SERVING without any token, for the server and for the Dapr service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_health_needs_no_token() {
    let gateway = gateway_with_token().await;
    let mut health = HealthClient::new(gateway.channel().await);

    for service in ["", "dapr.proto.runtime.v1.Dapr"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?} without a token: {s:?}"))
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
}

/// S1: with a token configured, a service the gateway does not serve needs the token too (a caller without it learns nothing, not even which services exist); with it, the answer is UNIMPLEMENTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_unknown_services_need_the_token_then_are_unimplemented() {
    let gateway = gateway_with_token().await;
    for path in ["/no.such.Service/Do", "/no-method"] {
        for &token in WRONG_TOKENS {
            let result = call_path(gateway.channel().await, path, token).await;
            assert_unauthenticated(result, &format!("{path} with {token:?}"));
        }
        let status = call_path(gateway.channel().await, path, Some(TOKEN))
            .await
            .expect_err("nobody serves it");
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
}

/// A unary call with an empty message to any path.
async fn call_path(
    channel: Channel,
    path: &'static str,
    token: Option<&str>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::from_static(path);
    grpc.unary(with_token(Request::new(()), token), path, codec)
        .await
        .map(drop)
}

// ---------------------------------------------------------------- S2

/// A certificate and key for "localhost" in a directory of their own, removed on drop.
struct SelfSigned {
    dir: PathBuf,
    files: TlsFiles,
    cert_pem: String,
}

impl SelfSigned {
    fn new() -> Self {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "callbackstream-s2-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir(&dir).unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, signing_key.serialize_pem()).unwrap();
        SelfSigned {
            dir,
            files,
            cert_pem: cert.pem(),
        }
    }
}

impl Drop for SelfSigned {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// S2: with TLS files configured the gateway serves gRPC over TLS: an app registers and a call round-trips; a plaintext client fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_tls_listener_serves_grpc_over_tls() {
    let tls = SelfSigned::new();
    let gateway = gateway_with(GatewaySettings {
        tls: Some(tls.files.clone()),
        ..GatewaySettings::default()
    })
    .await;
    let secure = || async {
        Endpoint::from_shared(format!("https://{}", gateway.addr))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&tls.cert_pem))
                    .domain_name("localhost"),
            )
            .unwrap()
            .connect()
            .await
            .expect("TLS connect")
    };

    let app = promptly(AppHost::connect(
        secure().await,
        AppHostOptions::echo(["Sealed"]),
    ))
    .await
    .expect("an app registers over TLS");
    assert_eq!(gateway.describe().await.actor_types, ["Sealed"]);
    let reply = DaprClient::new(secure().await)
        .invoke_actor(invoke("Sealed", "1", "echo", b"over tls"))
        .await
        .expect("a call over TLS");
    assert_eq!(reply.into_inner().data, b"over tls");

    let plaintext = promptly(async {
        let channel = Endpoint::from_shared(gateway.url())
            .unwrap()
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        DaprClient::new(channel)
            .get_metadata(GetMetadataRequest {})
            .await
    })
    .await;
    assert!(plaintext.is_err(), "a plaintext client was served");
    promptly(app.close()).await.unwrap();
}

/// S2: TLS files that cannot be read stop the gateway with a TLS error instead of serving plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_unreadable_tls_files_are_an_error() {
    let missing = std::env::temp_dir().join(format!(
        "callbackstream-s2-missing-{}",
        uuid::Uuid::new_v4()
    ));
    let gateway = gateway_with(GatewaySettings {
        tls: Some(TlsFiles {
            cert: missing.join("cert.pem"),
            key: missing.join("key.pem"),
        }),
        ..GatewaySettings::default()
    })
    .await;
    let result = promptly(gateway.server_result()).await;
    assert!(
        matches!(result, Err(GatewayError::TlsFiles(_))),
        "{result:?}"
    );
}

/// S2: TLS files that are readable but hold no usable certificate or key are an error, not a listener that fails every handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_unusable_tls_files_are_an_error() {
    let tls = SelfSigned::new();
    std::fs::write(&tls.files.key, "not a key").unwrap();
    let gateway = gateway_with(GatewaySettings {
        tls: Some(tls.files.clone()),
        ..GatewaySettings::default()
    })
    .await;
    let result = promptly(gateway.server_result()).await;
    assert!(matches!(result, Err(GatewayError::Tls(_))), "{result:?}");
}

/// S2 (S3): a client that starts a TLS handshake and never finishes it is dropped once the handshake timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_stalled_tls_handshake_is_dropped() {
    let tls = SelfSigned::new();
    let gateway = gateway_with(GatewaySettings {
        tls: Some(tls.files.clone()),
        handshake_timeout: Duration::from_millis(200),
        ..GatewaySettings::default()
    })
    .await;
    let mut stalled = TcpStream::connect(gateway.addr).await.unwrap();
    // A TLS handshake record header announcing 256 bytes that never come.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x01, 0x00])
        .await
        .unwrap();
    assert_closed_by_server(&mut stalled).await;
    assert_survived(gateway).await;
}

/// S2 (S3): a client that completes its TLS handshake and then sends nothing (no HTTP/2 preface) is closed once the handshake timeout passes; the timeout bounds the whole opening, not just the TLS part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_tls_connection_that_sends_nothing_after_its_handshake_is_closed() {
    let tls = SelfSigned::new();
    let gateway = gateway_with(GatewaySettings {
        tls: Some(tls.files.clone()),
        handshake_timeout: OPENING_TIMEOUT,
        ..GatewaySettings::default()
    })
    .await;
    let mut silent = tls_connect(&gateway, &tls).await;
    assert!(
        ends_within_the_opening_bound(&mut silent).await,
        "the server held a silent TLS connection"
    );
    // A TLS client that does speak is served as ever.
    let channel = Endpoint::from_shared(format!("https://{}", gateway.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.cert_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS connect");
    promptly(DaprClient::new(channel).get_metadata(GetMetadataRequest {}))
        .await
        .expect("a call over TLS");
    assert_survived(gateway).await;
}

/// A TLS session with the gateway (ALPN h2, trusting `tls`'s certificate)
/// over which nothing has been sent yet.
async fn tls_connect(
    gateway: &TestGateway,
    tls: &SelfSigned,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    use std::sync::Arc;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::crypto::ring;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(tls.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    promptly(
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .expect("the TLS handshake")
}

/// The handshake timeout of the tests that hold a connection's opening back.
const OPENING_TIMEOUT: Duration = Duration::from_millis(200);

/// Whether the server ends `stream` within ten times [`OPENING_TIMEOUT`],
/// well before the keepalive (10 s + 5 s by default) could have: what it
/// sends first (its SETTINGS) is read and dropped.
async fn ends_within_the_opening_bound(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    tokio::time::timeout(OPENING_TIMEOUT * 10, async {
        let mut buf = [0u8; 256];
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await
    .is_ok()
}

/// Each of `openings` (a name and the bytes a client sends before going
/// quiet) gets a connection of its own, and the server ends every one of
/// them within the opening bound; the panic names those it held.
async fn assert_openings_end(gateway: &TestGateway, openings: &[(&str, Vec<u8>)]) {
    let mut held = Vec::new();
    for (name, sent) in openings {
        let mut stalled = TcpStream::connect(gateway.addr).await.unwrap();
        stalled.write_all(sent).await.unwrap();
        if !ends_within_the_opening_bound(&mut stalled).await {
            held.push(*name);
        }
    }
    assert!(held.is_empty(), "the server held on to: {held:?}");
}

/// The server closes `stream` (promptly) without sending anything.
async fn assert_closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = promptly(stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the server sent {read:?} instead of closing"
    );
}

// ---------------------------------------------------------------- S3

/// S3: a connection that sends nothing at all (no HTTP/2 preface) is dropped once the handshake timeout passes, instead of holding a task and a socket for as long as the peer likes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_connection_that_sends_nothing_is_dropped() {
    let gateway = gateway_with(GatewaySettings {
        handshake_timeout: Duration::from_millis(200),
        ..GatewaySettings::default()
    })
    .await;
    let mut silent = TcpStream::connect(gateway.addr).await.unwrap();
    assert_closed_by_server(&mut silent).await;
    // Clients that do speak are served as ever.
    fresh_app_round_trip(&gateway, "Chatty").await;
    assert_survived(gateway).await;
}

/// S3: a plaintext client that sends part of its HTTP/2 preface (one byte, or most of it) and stalls is closed once the handshake timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_partial_preface_is_closed_within_the_handshake_timeout() {
    let gateway = gateway_with(GatewaySettings {
        handshake_timeout: OPENING_TIMEOUT,
        ..GatewaySettings::default()
    })
    .await;
    let openings = [
        ("one byte", H2_PREFACE[..1].to_vec()),
        (
            "all but the last byte",
            H2_PREFACE[..H2_PREFACE.len() - 1].to_vec(),
        ),
    ];
    assert_openings_end(&gateway, &openings).await;
    fresh_app_round_trip(&gateway, "Chatty").await;
    assert_survived(gateway).await;
}

/// S3: a plaintext client that sends the whole preface but not its SETTINGS frame (nothing more, a part of the frame, or another frame in its place, which h2 itself would take) is closed once the handshake timeout passes, not left to the keepalive (which a client that answers pings would pass forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_preface_without_settings_is_closed_within_the_handshake_timeout() {
    let gateway = gateway_with(GatewaySettings {
        handshake_timeout: OPENING_TIMEOUT,
        ..GatewaySettings::default()
    })
    .await;
    let settings = h2_frame(0x4, 0, 0, &[0, 0x3, 0, 0, 0x4, 0]);
    let after_preface = |bytes: &[u8]| [H2_PREFACE, bytes].concat();
    let openings = [
        ("the preface alone", after_preface(&[])),
        (
            "part of a SETTINGS frame",
            after_preface(&settings[..settings.len() - 1]),
        ),
        (
            "a PING in its place",
            after_preface(&h2_frame(0x6, 0, 0, &[0; 8])),
        ),
    ];
    assert_openings_end(&gateway, &openings).await;
    fresh_app_round_trip(&gateway, "Chatty").await;
    assert_survived(gateway).await;
}

/// The end of every S3 test: nothing panicked and the gateway stops cleanly.
async fn assert_survived(gateway: TestGateway) {
    assert_eq!(
        harness::server_panics(),
        0,
        "a server thread panicked (in this test or one running beside it: see the panic above)"
    );
    promptly(gateway.shutdown())
        .await
        .expect("the gateway stops cleanly");
}

/// Deterministic noise (xorshift), so a failure can be replayed.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK "literal header field without indexing, new name" (RFC 7541 6.2.2).
fn hpack_literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0u8];
    for s in [name, value] {
        assert!(
            s.len() < 127,
            "HPACK strings this long need a longer length prefix"
        );
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    out
}

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// A hand-written HTTP/2 connection opening the actor stream (stream 1) and
/// sending `body` as its request body, which is left open.
fn raw_actor_stream(body: &[u8]) -> Vec<u8> {
    let headers: Vec<u8> = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", STREAM_PATH),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .iter()
    .flat_map(|(n, v)| hpack_literal(n, v))
    .collect();
    [
        H2_PREFACE.to_vec(),
        h2_frame(SETTINGS, 0, 0, &[]),
        h2_frame(HEADERS, END_HEADERS, 1, &headers),
        h2_frame(DATA, 0, 1, body),
    ]
    .concat()
}

/// A gRPC length-prefixed message header (compression flag, length) and `tail`.
fn grpc_frame(flag: u8, declared_len: u32, tail: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&declared_len.to_be_bytes());
    out.extend_from_slice(tail);
    out
}

/// Writes `bytes` to a new TCP connection, half-closes it, and waits for the
/// server to hang up (EOF or reset): garbage must not hold a connection open.
async fn send_garbage(gateway: &TestGateway, bytes: &[u8]) {
    let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
    // The server may hang up before it has read everything.
    let _ = tcp.write_all(bytes).await;
    let _ = tcp.shutdown().await;
    let mut sink = Vec::new();
    let _ = promptly(tcp.read_to_end(&mut sink)).await;
}

/// Sends [`raw_actor_stream`] with `body` on a new TCP connection and reads
/// HTTP/2 frames until the server ends stream 1 (END_STREAM or RST_STREAM),
/// says GOAWAY, hangs up, or [`harness::PROMPTLY`] passes. Whether the server
/// ended stream 1.
async fn raw_stream_ended(gateway: &TestGateway, body: &[u8]) -> bool {
    let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let _ = tcp.write_all(&raw_actor_stream(body)).await;
    let read_frames = async {
        let mut header = [0u8; 9];
        loop {
            if tcp.read_exact(&mut header).await.is_err() {
                return false;
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let stream =
                u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            if tcp.read_exact(&mut payload).await.is_err() {
                return false;
            }
            match (kind, stream) {
                (RST_STREAM, 1) => return true,
                (HEADERS | DATA, 1) if flags & END_STREAM != 0 => return true,
                (GOAWAY, _) => return false,
                _ => {}
            }
        }
    };
    tokio::time::timeout(harness::PROMPTLY, read_frames)
        .await
        .unwrap_or(false)
}

/// S3: garbage on a TCP connection to the port (noise, HTTP/1, broken HTTP/2) never panics or stops the server, and a connected app keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_garbage_bytes_do_not_stop_the_server() {
    watch_panics();
    let gateway = TestGateway::start().await;
    let bystander = gateway.echo_app(&["Bystander"]).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing at all", Vec::new()),
        ("64 KiB of noise", noise(64 * 1024)),
        (
            "an HTTP/1.1 request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("half a preface", H2_PREFACE[..10].to_vec()),
        (
            "the preface, then noise",
            [H2_PREFACE, &noise(4096)].concat(),
        ),
        (
            "the preface, then a frame promising 16 MiB",
            [H2_PREFACE, &[0xff, 0xff, 0xff, DATA, 0, 0, 0, 0, 1]].concat(),
        ),
        (
            "the actor stream with a non-gRPC body",
            raw_actor_stream(b"this is not a gRPC message"),
        ),
    ];
    for (what, bytes) in cases {
        send_garbage(&gateway, &bytes).await;
        fresh_app_round_trip(&gateway, "Fresh").await;
        assert_round_trip(&gateway, "Bystander").await;
        assert_eq!(
            gateway.describe().await.actor_types,
            ["Bystander"],
            "after {what}"
        );
    }
    promptly(bystander.close()).await.unwrap();
    assert_survived(gateway).await;
}

/// S3: hostile gRPC framing on the actor stream (a 4 GiB length, a compressed flag with no encoding, an unknown flag) ends that stream and registers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_hostile_grpc_framing_ends_the_stream() {
    watch_panics();
    let gateway = TestGateway::start().await;

    for (what, body) in [
        ("a 4 GiB length prefix", grpc_frame(0, u32::MAX, &[0; 16])),
        (
            "the compressed flag without grpc-encoding",
            grpc_frame(1, 2, &[0x0a, 0x00]),
        ),
        ("an unknown flag", grpc_frame(7, 2, &[0x0a, 0x00])),
    ] {
        let ended = raw_stream_ended(&gateway, &body).await;
        assert!(ended, "{what}: the server did not end the stream");
        let view = gateway.describe().await;
        assert!(view.connections.is_empty(), "{what}: registered {view:?}");
        fresh_app_round_trip(&gateway, "Fresh").await;
    }
    assert_survived(gateway).await;
}

/// Field 1 of SubscribeActorEventsRequestAlpha1 is `initial_request`, a message
/// (length-delimited); this one sends it as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct WrongWireTypeInitial {
    #[prost(uint64, tag = "1")]
    initial_request: u64,
}

/// A valid `initial_request` (a message's bytes share its wire type), or an
/// `invoke_response` (field 2, a message) sent as a fixed32.
#[derive(Clone, PartialEq, prost::Message)]
struct RawRequest {
    #[prost(bytes = "vec", optional, tag = "1")]
    initial_request: Option<Vec<u8>>,
    #[prost(fixed32, optional, tag = "2")]
    invoke_response: Option<u32>,
}

/// Opens the actor stream with a hand-made message type and sends `messages`,
/// then keeps the request side open: only the server can end the stream.
async fn raw_message_stream<M>(
    gateway: &TestGateway,
    messages: Vec<M>,
) -> Result<Streaming<SubscribeActorEventsResponseAlpha1>, Status>
where
    M: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(gateway.channel().await);
    grpc.ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let body = futures::stream::iter(messages).chain(futures::stream::pending());
    let codec = tonic_prost::ProstCodec::<M, SubscribeActorEventsResponseAlpha1>::default();
    grpc.streaming(
        Request::new(body),
        PathAndQuery::from_static(STREAM_PATH),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// How the server ended a stream: its error status (an OK end is a test failure).
async fn stream_error(
    opened: Result<Streaming<SubscribeActorEventsResponseAlpha1>, Status>,
) -> Status {
    let mut stream = match opened {
        Ok(stream) => stream,
        Err(status) => return status,
    };
    loop {
        match promptly(stream.message()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended with OK"),
            Err(status) => return status,
        }
    }
}

fn assert_decode_error(status: &Status) {
    assert!(
        matches!(status.code(), Code::Internal | Code::InvalidArgument),
        "{status:?}"
    );
}

/// S3: a first message that is not a valid SubscribeActorEventsRequestAlpha1 ends the stream with an error status and registers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_undecodable_first_message_ends_the_stream() {
    watch_panics();
    let gateway = TestGateway::start().await;

    let opened =
        raw_message_stream(&gateway, vec![WrongWireTypeInitial { initial_request: 7 }]).await;
    assert_decode_error(&stream_error(opened).await);
    let view = gateway.describe().await;
    assert!(view.connections.is_empty(), "registered {view:?}");
    fresh_app_round_trip(&gateway, "Fresh").await;
    assert_survived(gateway).await;
}

/// S3: an undecodable message after a good handshake ends that stream with an error status and unregisters it; other apps keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_undecodable_message_after_handshake_ends_the_stream() {
    watch_panics();
    let gateway = TestGateway::start().await;
    let bystander = gateway.echo_app(&["Bystander"]).await;

    let init = SubscribeActorEventsRequestInitialAlpha1 {
        entities: vec!["Doomed".into()],
        ..Default::default()
    };
    let messages = vec![
        RawRequest {
            initial_request: Some(init.encode_to_vec()),
            invoke_response: None,
        },
        RawRequest {
            initial_request: None,
            invoke_response: Some(0xdead_beef),
        },
    ];
    let mut stream = raw_message_stream(&gateway, messages)
        .await
        .expect("handshake");
    let ack = promptly(stream.message())
        .await
        .expect("an ack")
        .expect("one message");
    assert!(
        matches!(ack.response_type, Some(ResponseType::InitialResponse(_))),
        "{ack:?}"
    );
    assert_decode_error(&stream_error(Ok(stream)).await);

    gateway.wait_for_connections(1).await;
    assert_eq!(gateway.describe().await.actor_types, ["Bystander"]);
    assert_round_trip(&gateway, "Bystander").await;
    fresh_app_round_trip(&gateway, "Fresh").await;
    promptly(bystander.close()).await.unwrap();
    assert_survived(gateway).await;
}

fn message(request_type: Option<RequestType>) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 { request_type }
}

/// S3 (R9): strays after a good handshake (unknown or malformed ids, an empty oneof, a repeated initial_request, answers to requests never sent) are dropped and the stream stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_strays_after_handshake_leave_the_stream_up() {
    watch_panics();
    let gateway = TestGateway::start().await;
    let app = gateway.echo_app(&["Stray"]).await;
    let to_gateway = app.sender();

    let failed = |id: &str| {
        message(Some(RequestType::RequestFailed(
            SubscribeActorEventsRequestFailedAlpha1 {
                id: id.into(),
                code: 5,
                message: "stray".into(),
            },
        )))
    };
    let strays = [
        (
            "a reply to an id never sent",
            invoke_reply("999999", b"x", false),
        ),
        ("a reply with an empty id", invoke_reply("", b"x", false)),
        (
            "a reply with a non-numeric id",
            invoke_reply("not-an-id", b"x", false),
        ),
        ("a reply with id 0", invoke_reply("0", b"x", false)),
        (
            "a reply with a huge id",
            invoke_reply(&"9".repeat(40), b"x", false),
        ),
        ("a repeated reply to id 1", invoke_reply("1", b"x", false)),
        ("an empty oneof", message(None)),
        (
            "a repeated initial_request",
            message(Some(RequestType::InitialRequest(
                SubscribeActorEventsRequestInitialAlpha1 {
                    entities: vec!["Hijack".into()],
                    ..Default::default()
                },
            ))),
        ),
        ("request_failed for an id never sent", failed("424242")),
        (
            "a reminder_response for an id never sent",
            message(Some(RequestType::ReminderResponse(
                SubscribeActorEventsRequestReminderResponseAlpha1 {
                    id: "777".into(),
                    cancel: true,
                },
            ))),
        ),
        (
            "a deactivate_response for an id never sent",
            message(Some(RequestType::DeactivateResponse(
                SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: "778".into() },
            ))),
        ),
    ];
    // Id 1 goes out (and is answered) first, so the repeat above is a duplicate.
    assert_round_trip(&gateway, "Stray").await;
    for (what, stray) in strays {
        to_gateway.send(stray).await.unwrap();
        // Same stream, so the gateway reads the stray before this call's reply.
        assert_round_trip(&gateway, "Stray").await;
        let view = gateway.describe().await;
        assert_eq!(view.connections.len(), 1, "after {what}");
        assert_eq!(view.actor_types, ["Stray"], "after {what}");
        assert_eq!(gateway.pending().await, 0, "after {what}");
    }
    fresh_app_round_trip(&gateway, "Fresh").await;
    drop(to_gateway);
    promptly(app.close())
        .await
        .expect("the stray app closes cleanly");
    assert_survived(gateway).await;
}

/// S3: an answer of the wrong kind to a pending invoke fails that call with INTERNAL; the stream stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_kind_of_answer_fails_only_that_call() {
    watch_panics();
    let gateway = TestGateway::start().await;
    let (app, mut calls) = gateway.holding_app(&["Mixed"]).await;
    let mut client = gateway.client().await;

    let call =
        tokio::spawn(async move { client.invoke_actor(invoke("Mixed", "1", "m", b"")).await });
    let request = next_invoke(&mut calls).await;
    let wrong = message(Some(RequestType::DeactivateResponse(
        SubscribeActorEventsRequestDeactivateResponseAlpha1 { id: request.id },
    )));
    app.sender().send(wrong).await.unwrap();
    let status = promptly(call)
        .await
        .unwrap()
        .expect_err("a deactivate_response is no reply");
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    let mut client = gateway.client().await;
    let next =
        tokio::spawn(async move { client.invoke_actor(invoke("Mixed", "1", "m", b"")).await });
    let request = next_invoke(&mut calls).await;
    app.sender()
        .send(invoke_reply(&request.id, b"right", false))
        .await
        .unwrap();
    let reply = promptly(next)
        .await
        .unwrap()
        .expect("the stream still serves");
    assert_eq!(reply.into_inner().data, b"right");
    assert_eq!(gateway.pending().await, 0);
    assert_survived(gateway).await;
}

/// The message limit of [`small_limit_gateway`].
const SMALL_LIMIT: usize = 64 * 1024;

/// A gateway with a [`SMALL_LIMIT`] message limit and an echo app for "Big".
async fn small_limit_gateway() -> (TestGateway, AppHost) {
    let gateway = gateway_with(GatewaySettings {
        max_message_bytes: SMALL_LIMIT,
        ..GatewaySettings::default()
    })
    .await;
    let app = gateway.echo_app(&["Big"]).await;
    (gateway, app)
}

/// An InvokeActor to "Big" whose encoded request is exactly `size` bytes,
/// sent by a client that itself has no message limit.
async fn invoke_of_size(gateway: &TestGateway, size: usize) -> Result<Vec<u8>, Status> {
    let mut request = invoke("Big", "1", "m", b"").into_inner();
    // The data field costs 1 tag byte and a 3-byte length for sizes this large.
    request.data = vec![7; size - request.encoded_len() - 4];
    assert_eq!(request.encoded_len(), size);
    let mut client = gateway.client().await.max_encoding_message_size(usize::MAX);
    promptly(client.invoke_actor(request))
        .await
        .map(|r| r.into_inner().data)
}

/// The app stream of a [`small_limit_gateway`] is still registered and serving.
async fn assert_big_app_still_serves(gateway: &TestGateway, after: &str) {
    let view = gateway.describe().await;
    assert_eq!(
        view.actor_types,
        ["Big"],
        "after {after} the app stream is gone"
    );
    assert_round_trip(gateway, "Big").await;
}

/// S3 (H5): an InvokeActor within the limit whose invoke_request would exceed it fails alone with RESOURCE_EXHAUSTED; the app's stream stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_invoke_too_large_to_forward_fails_alone() {
    let (gateway, _app) = small_limit_gateway().await;

    // The invoke_request adds the request id and the oneof wrapper, so a
    // request of exactly the limit cannot be forwarded within it.
    let status = invoke_of_size(&gateway, SMALL_LIMIT)
        .await
        .expect_err("forwarded a message over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_big_app_still_serves(&gateway, "a request too large to forward").await;
}

/// S3 (H5): an InvokeActor over the message limit is RESOURCE_EXHAUSTED, as gRPC specifies for oversized messages; apps are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_oversized_invoke_is_resource_exhausted() {
    let (gateway, _app) = small_limit_gateway().await;

    let status = invoke_of_size(&gateway, SMALL_LIMIT + 1)
        .await
        .expect_err("accepted a message over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_big_app_still_serves(&gateway, "an oversized request").await;
}

/// S3: odd `grpc-timeout` values (huge, too many digits, bad units, non-ASCII) are ignored or honoured, never fatal: the call is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_odd_grpc_timeout_headers_are_harmless() {
    watch_panics();
    let gateway = TestGateway::start().await;
    let _app = gateway.echo_app(&["Clock"]).await;
    let mut client = gateway.client().await;

    let odd: [&[u8]; 9] = [
        b"99999999H",
        b"123456789S",
        b"1.5S",
        b"-1S",
        b"S",
        b"",
        b"10x",
        b"1\xc3\xa9",
        b"\xff",
    ];
    for value in odd {
        let mut request = invoke("Clock", "1", "tick", b"tock");
        let header = MetadataValue::try_from(value).expect("a valid header value");
        request.metadata_mut().insert("grpc-timeout", header);
        let reply = promptly(client.invoke_actor(request))
            .await
            .unwrap_or_else(|s| panic!("grpc-timeout {value:?}: {s:?}"));
        assert_eq!(reply.into_inner().data, b"tock", "grpc-timeout {value:?}");
    }
    assert_survived(gateway).await;
}
