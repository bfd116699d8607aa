//! The built `callbackstream` binary as a process: `serve` (SPEC §7, H4),
//! `invoke`, and the bounds a process shows (its log, its exit, its flags).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::{
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInitialAlpha1,
};
use tonic::transport::Endpoint;

const BIN: &str = env!("CARGO_BIN_EXE_callbackstream");

/// Tests run side by side: each `serve` puts its metrics on a port of its
/// own unless the test names one.
const METRICS_ANYWHERE: [&str; 2] = ["--metrics-listen", "127.0.0.1:0"];

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The process is killed if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(BIN);
        // In memory: these tests are about the process, and parallel
        // gateways must not share (or leave behind) a data directory. An
        // HTTP port of its own, so that tests never collide on 3500.
        cmd.arg("serve")
            .arg("--in-memory")
            .args(["--http-listen", "127.0.0.1:0"])
            .args(args);
        if !args.contains(&"--metrics-listen") {
            cmd.args(METRICS_ANYWHERE);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server(cmd.spawn().unwrap())
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The exit code, once the process exits within `limit`.
    fn exit_code_within(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not exit within {limit:?}");
    }
}

async fn wait_until_listening(addr: SocketAddr) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server never listened on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An echo app hosting `Echo`, registered with the gateway at `addr`.
async fn echo_app(addr: SocketAddr) -> AppHost {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AppHost::connect(channel, AppHostOptions::echo(["Echo"]))
        .await
        .unwrap()
}

fn invoke_cli(addr: SocketAddr, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("invoke")
        .arg("--addr")
        .arg(format!("http://{addr}"))
        .args(args)
        .output()
        .unwrap()
}

/// `serve` runs the gateway; an app registers, `invoke` calls it and prints
/// the reply; SIGTERM while the app's stream is still open exits 0 within
/// the grace period, and the app sees its stream end with OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_invoke_and_sigterm_with_open_stream_exits_zero() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = Server::spawn(
        &["--listen", &addr.to_string(), "--shutdown-grace", "3s"],
        &[],
    );
    wait_until_listening(addr).await;
    let app = echo_app(addr).await;

    let ok = invoke_cli(addr, &["Echo", "7", "say", "--data", "{\"hi\":1}"]);
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "{\"hi\":1}");
    let refused = invoke_cli(addr, &["Echo", "a/b", "say"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("InvalidArgument"));

    server.terminate();
    assert_eq!(server.exit_code_within(Duration::from_secs(3)), Some(0));
    let ended = tokio::time::timeout(Duration::from_secs(3), app.finished())
        .await
        .unwrap();
    assert!(ended.is_ok(), "app stream ended with {ended:?}");
}

/// Without `--listen`, `serve` listens on DAPR_GRPC_PORT, as daprd does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_honours_dapr_grpc_port() {
    let port = free_port();
    let mut server = Server::spawn(&[], &[("DAPR_GRPC_PORT", port.to_string())]);
    wait_until_listening(SocketAddr::from(([127, 0, 0, 1], port))).await;
    server.terminate();
    assert_eq!(server.exit_code_within(Duration::from_secs(5)), Some(0));
}

/// A `serve` whose log (stderr) is counted as it is written.
struct LoggedServer {
    server: Server,
    log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LoggedServer {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--in-memory")
            .args(METRICS_ANYWHERE)
            .args(["--http-listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 64 * 1024];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        LoggedServer {
            server: Server(child),
            log,
            reader: Some(reader),
        }
    }

    fn log_bytes(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The whole log of a process that has exited: waits for the reader to
    /// reach the end of it (the exit can be seen before the last bytes are
    /// read).
    fn final_log_text(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log_text()
    }
}

/// Opens an app stream that registers `types`, and returns its sender and
/// the gateway's replies.
async fn raw_stream(
    addr: SocketAddr,
    types: Vec<String>,
) -> (
    tokio::sync::mpsc::Sender<SubscribeActorEventsRequestAlpha1>,
    tonic::Streaming<callbackstream::proto::SubscribeActorEventsResponseAlpha1>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(SubscribeActorEventsRequestAlpha1 {
        request_type: Some(RequestType::InitialRequest(
            SubscribeActorEventsRequestInitialAlpha1 {
                entities: types,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut client = DaprClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_encoding_message_size(8 << 20);
    let replies = client
        .subscribe_actor_events_alpha1(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, replies)
}

/// An app that floods its stream with `request_failed` replies whose ids are
/// 1 MB of control bytes makes the gateway log a few short lines, not the
/// ids: the log grows by a bounded number of bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_stray_ids_grows_the_log_by_a_bounded_amount() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = LoggedServer::spawn(&["--listen", &addr.to_string()]);
    wait_until_listening(addr).await;
    let (app, mut replies) = raw_stream(addr, vec!["Flood".into()]).await;
    assert!(
        replies.message().await.unwrap().is_some(),
        "registration acked"
    );
    let before = server.log_bytes();

    let huge_id = "\u{1}".repeat(1 << 20);
    for _ in 0..20 {
        let stray = SubscribeActorEventsRequestAlpha1 {
            request_type: Some(RequestType::RequestFailed(
                SubscribeActorEventsRequestFailedAlpha1 {
                    id: huge_id.clone(),
                    code: 5,
                    message: huge_id.clone(),
                },
            )),
        };
        app.send(stray).await.unwrap();
    }
    // Half-close: the gateway ends the stream once it has read everything.
    drop(app);
    while let Ok(Some(_)) = replies.message().await {}
    server.server.terminate();
    assert_eq!(
        server.server.exit_code_within(Duration::from_secs(5)),
        Some(0)
    );

    let grown = server.log_bytes() - before;
    assert!(
        server
            .log_text()
            .contains("dropped a reply with unknown id"),
        "the strays are reported"
    );
    assert!(grown < 8 * 1024, "the log grew by {grown} bytes");
}

/// SIGTERM while an app's registration of 450,000 types (3.9 MB, the cap
/// raised to allow it) keeps the gateway's one actor thread busy: the
/// gateway still exits 0 within its grace. The signal goes out once a
/// metadata probe on that thread stops answering (or, should the
/// registration finish first, once it is acknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_heavy_registration_exits_zero_within_the_grace() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut server = Server::spawn(
        &[
            "--listen",
            &addr.to_string(),
            "--threads",
            "1",
            "--shutdown-grace",
            "1s",
            "--max-actor-types",
            "450000",
        ],
        &[],
    );
    wait_until_listening(addr).await;
    let mut probe = DaprClient::connect(format!("http://{addr}")).await.unwrap();
    let types = (0..450_000).map(|i| format!("T{i}")).collect();
    let registering = tokio::spawn(async move {
        let (app, mut replies) = raw_stream(addr, types).await;
        let _ = replies.message().await;
        app
    });
    while !registering.is_finished() {
        let mut ask = tonic::Request::new(callbackstream::proto::GetMetadataRequest {});
        ask.set_timeout(Duration::from_millis(200));
        if probe.get_metadata(ask).await.is_err() {
            break; // the actor thread is busy with the registration
        }
    }

    server.terminate();
    assert_eq!(server.exit_code_within(Duration::from_secs(3)), Some(0));
    registering.abort();
}

/// Durations and limits of zero make no sense and are refused at start,
/// with a message naming the flag, instead of spinning or refusing all.
#[test]
fn zero_durations_and_limits_are_refused_at_start() {
    for flag in [
        "--keepalive-interval=0s",
        "--keepalive-timeout=0s",
        "--outbox=0",
        "--max-pending=0",
        "--max-streams=0",
        "--max-message-bytes=0",
        "--max-actor-types=0",
        "--max-type-name-bytes=0",
    ] {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut server = LoggedServer::spawn(&["--listen", &listen, flag]);
        let code = server.server.exit_code_within(Duration::from_secs(10));
        assert_eq!(code, Some(2), "{flag} is refused");
        let name = flag.split('=').next().unwrap();
        let said = server.final_log_text();
        assert!(
            said.contains(name) && said.contains("must be"),
            "{flag}: {said}"
        );
    }
}

/// `serve` serves its metrics on `--metrics-listen`, counting the app that
/// connected; a metrics port already taken is refused at start (exit 1, the
/// listener named), rather than a gateway running without its metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_metrics_and_refuses_a_taken_metrics_port() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--listen",
        &addr.to_string(),
        "--metrics-listen",
        &metrics.to_string(),
    ];
    let _server = Server::spawn(&args, &[]);
    wait_until_listening(addr).await;
    let _app = echo_app(addr).await;
    let scrape = scrape_metrics(metrics).await;
    assert!(
        scrape.contains("\ncallbackstream_app_streams 1\n"),
        "{scrape}"
    );

    let taken = Command::new(BIN)
        .args([
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &metrics.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(taken.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(
        stderr.contains(&format!("metrics listener on {metrics}")),
        "{stderr}"
    );
}

/// GET /metrics over a plain TCP stream.
async fn scrape_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// A taken HTTP port is a start-up error that names the HTTP listener (3500
/// is often a daprd's), not a gateway without its HTTP API.
#[test]
fn a_taken_http_port_is_a_startup_error_naming_the_http_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(BIN)
        .args(["serve", "--in-memory", "--listen", "127.0.0.1:0"])
        .args(["--http-listen", &addr])
        .args(METRICS_ANYWHERE)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("HTTP listener on {addr}")),
        "{stderr}"
    );
}
