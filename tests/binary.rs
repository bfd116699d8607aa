//! The built `callbackstream` binary as a process: `serve` (SPEC §7, H4) and
//! `invoke`.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use tonic::transport::Endpoint;

const BIN: &str = env!("CARGO_BIN_EXE_callbackstream");

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
        cmd.arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
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
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let app = AppHost::connect(channel, AppHostOptions::echo(["Echo"]))
        .await
        .unwrap();

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
