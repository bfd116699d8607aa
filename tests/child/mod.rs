//! `callbackstream serve` as a child process on a data directory, for the
//! tests of what survives the process: started and waited for until it
//! listens, stopped with SIGTERM or killed with SIGKILL, and killed anyway
//! if the test ends first.
#![allow(dead_code)] // each test file uses its own subset

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_callbackstream");

/// How long a gateway may take to listen or to exit.
pub const BOUND: Duration = Duration::from_secs(20);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve --listen 127.0.0.1:PORT --data-dir DIR`, logging warnings only.
pub fn serve(dir: &Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        // Tests run side by side: metrics on a port of each one's own.
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env_remove("DAPR_API_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// A running gateway process.
pub struct ChildGateway {
    child: Child,
    port: u16,
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildGateway {
    /// Starts `serve` on `dir` and returns once it accepts connections.
    pub fn start(dir: &Path) -> ChildGateway {
        // The port may be taken between the probe and the child's bind.
        for _ in 0..3 {
            let port = free_port();
            let child = serve(dir, port).stderr(Stdio::inherit()).spawn().unwrap();
            let mut gateway = ChildGateway { child, port };
            if gateway.wait_listening() {
                return gateway;
            }
        }
        panic!("serve on {} did not start", dir.display());
    }

    /// Whether it listens; `false` if it exited first.
    fn wait_listening(&mut self) -> bool {
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(start.elapsed() < BOUND, "serve did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the process ends at once, whatever it was doing.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and its exit status once it has stopped.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < BOUND, "serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
