//! A gateway in a child process: this very binary's `serve` on a free
//! loopback port. The idle bench measures it, because memory is only known
//! per process and the bench's own process holds the app side of every
//! stream.
//!
//! The child must not outlive the bench: dropping the handle kills it, and
//! the kernel sends it SIGTERM if the bench dies without dropping anything
//! (killed, or a second Ctrl-C).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::BoxError;

/// How long the child may take to listen, and to stop after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Another process may take the port between our probe and the child's
/// bind; a child that exits at once is retried on a new port this often.
const START_ATTEMPTS: usize = 3;

// Short: the reminders bench times a restart up to the moment it listens.
const POLL: Duration = Duration::from_millis(5);

/// Where the child keeps actor state and reminders.
#[derive(Debug, Clone)]
pub(super) enum ChildStore {
    /// `--in-memory`: the modes that measure the relay and the turns.
    InMemory,
    /// `--data-dir DIR`: the durable store.
    DataDir(PathBuf),
}

pub(super) struct ChildGateway {
    child: Child,
    addr: SocketAddr,
}

impl ChildGateway {
    /// Starts `callbackstream serve --app-id APP_ID --max-streams N
    /// --threads T` and returns once it listens.
    pub(super) async fn start(
        app_id: &str,
        max_streams: usize,
        threads: usize,
    ) -> Result<Self, BoxError> {
        ChildGateway::start_with(app_id, max_streams, threads, &ChildStore::InMemory).await
    }

    /// [`start`](Self::start), keeping its data in `store`.
    pub(super) async fn start_with(
        app_id: &str,
        max_streams: usize,
        threads: usize,
        store: &ChildStore,
    ) -> Result<Self, BoxError> {
        let mut last_exit = None;
        for _ in 0..START_ATTEMPTS {
            let addr = free_loopback_port()?;
            let mut child = command(addr, app_id, max_streams, threads, store)?.spawn()?;
            match wait_listening(&mut child, addr).await? {
                None => return Ok(ChildGateway { child, addr }),
                Some(status) => last_exit = Some(status),
            }
        }
        Err(format!(
            "the gateway process exited at start ({}); see its messages above",
            last_exit.map_or_else(|| "no status".into(), |s| s.to_string())
        )
        .into())
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, then waits for a clean exit, killing the child if it takes too long.
    pub(super) async fn stop(mut self) -> Result<ExitStatus, BoxError> {
        signal(&self.child, libc::SIGTERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("the gateway process did not stop within {STOP_TIMEOUT:?}; killed").into())
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn command(
    addr: SocketAddr,
    app_id: &str,
    max_streams: usize,
    threads: usize,
    store: &ChildStore,
) -> std::io::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["serve", "--listen", &addr.to_string(), "--app-id", app_id]);
    match store {
        ChildStore::InMemory => command.arg("--in-memory"),
        ChildStore::DataDir(dir) => command.arg("--data-dir").arg(dir),
    };
    command
        // Metrics on, as a user runs it, on a port nothing else wants.
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--max-streams", &max_streams.to_string()])
        .args(["--threads", &threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Its warnings and errors are worth seeing; its info lines are not.
        .stderr(Stdio::inherit())
        // The bench's apps carry no token.
        .env_remove("DAPR_API_TOKEN")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        );
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

/// A scratch data directory for a child gateway, removed when dropped.
pub(super) struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new, empty directory under the system's temporary directory.
    pub(super) fn create(label: &str) -> std::io::Result<Self> {
        let name = format!("callbackstream-bench-{label}-{}", std::process::id());
        let path = std::env::temp_dir().join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(ScratchDir(path))
    }

    /// The data directory inside it: not there until a gateway creates it
    /// (`serve` refuses an existing directory that is not one of its own).
    pub(super) fn data_dir(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// `None` once the child accepts connections at `addr`; its exit status if
/// it exits first.
async fn wait_listening(
    child: &mut Child,
    addr: SocketAddr,
) -> Result<Option<ExitStatus>, BoxError> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("the gateway process did not listen on {addr} within {START_TIMEOUT:?}").into())
}

fn signal(child: &Child, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: kill only sends a signal, to a child we have not reaped yet (so its pid is still ours).
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
