//! Servers on a tokio runtime of their own, with named threads: how the demo
//! and the bench run a gateway (and the bench its baseline) inside their own
//! process, reached over loopback gRPC like a separate one.
//!
//! A runtime of its own keeps the server's work off the threads of the
//! callers and apps that talk to it, and its thread names let the bench count
//! the server's CPU time alone (see [`crate::kit::procstat`]). A hosted gateway
//! serves on actor threads, as `callbackstream serve` does; its runtime here
//! only binds the port and runs the shutdown sequence.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix::Addr;
use tokio::net::TcpListener;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::connection::ConnectionOptions;
use crate::gateway::{self, GatewaySettings};
use crate::kit::procstat::CpuScope;
use crate::manager::ManagerActor;
use crate::threads::{self, ActorSystem};

/// What a hosted server's task ends with.
pub type ServeResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The gateway's runtime threads are named this.
pub const GATEWAY_THREADS: &str = "gw-worker";

/// actix names the thread of every arbiter it starts like this; in a process
/// hosting a gateway, any arbiter is the gateway's.
const ACTIX_ARBITER_THREADS: &str = "actix-rt|";

/// Idle blocking-pool threads normally exit after 10 s, taking their CPU time
/// out of the per-thread sums: keep them for the runtime's life instead.
const KEEP_THREADS: Duration = Duration::from_secs(24 * 3600);

/// A server task on its own runtime, listening on a loopback port.
/// Dropping it stops the server at once; [`HostedServer::finished`] stops
/// it gracefully.
pub struct HostedServer {
    addr: SocketAddr,
    thread_name: String,
    stop: CancellationToken,
    task: Option<JoinHandle<ServeResult>>,
    runtime: Option<Runtime>,
}

impl HostedServer {
    /// Starts a runtime of `workers` threads named `thread_name`, binds a
    /// free loopback port, and runs `serve(listener, stop)` on it, where
    /// `stop` resolves when the server should shut down.
    pub fn start<F, Fut>(thread_name: &str, workers: usize, serve: F) -> io::Result<Self>
    where
        F: FnOnce(TcpListener, WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = ServeResult> + Send + 'static,
    {
        let runtime = Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name(thread_name)
            .thread_keep_alive(KEEP_THREADS)
            .enable_all()
            .build()?;
        wait_until_running(&runtime)?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = {
            // The listener must register with this runtime's reactor, not the caller's.
            let _inside = runtime.enter();
            let listener = TcpListener::from_std(listener)?;
            runtime.spawn(serve(listener, stop.clone().cancelled_owned()))
        };
        Ok(HostedServer {
            addr,
            thread_name: thread_name.into(),
            stop,
            task: Some(task),
            runtime: Some(runtime),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as a gRPC endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The name of the server's threads.
    pub fn thread_name(&self) -> &str {
        &self.thread_name
    }

    /// Tells the server to shut down, without waiting.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Shuts the server down and waits until it has stopped.
    pub async fn finished(mut self) -> ServeResult {
        self.stop();
        let result = match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| Err(e.into())),
            None => Ok(()),
        };
        self.release_runtime();
        result
    }

    fn release_runtime(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for HostedServer {
    fn drop(&mut self) {
        self.stop();
        self.release_runtime();
    }
}

/// A whole gateway in this process: actor threads serving gRPC (as
/// `callbackstream serve` does), plus a hosted server runtime that only
/// binds the port and runs the shutdown sequence.
pub struct HostedGateway {
    server: HostedServer,
    actors: ActorSystem,
    /// daprd's HTTP API, when started with it.
    http_addr: Option<SocketAddr>,
}

impl HostedGateway {
    /// A gateway serving on `threads` actor threads.
    pub fn start(
        settings: GatewaySettings,
        options: ConnectionOptions,
        threads: usize,
    ) -> io::Result<Self> {
        Self::start_serving(settings, options, threads, false)
    }

    /// As [`start`](Self::start), with daprd's HTTP API on a loopback port too.
    pub fn start_with_http(
        settings: GatewaySettings,
        options: ConnectionOptions,
        threads: usize,
    ) -> io::Result<Self> {
        Self::start_serving(settings, options, threads, true)
    }

    fn start_serving(
        settings: GatewaySettings,
        options: ConnectionOptions,
        threads: usize,
        with_http: bool,
    ) -> io::Result<Self> {
        let http = match with_http {
            true => Some(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?),
            false => None,
        };
        let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
        let actors = ActorSystem::start_threads(options, threads)?;
        let threads = actors.threads();
        // One worker: it only binds the port and runs the shutdown sequence.
        let server = HostedServer::start(GATEWAY_THREADS, 1, move |listener, stop| async move {
            gateway::serve_both_on(threads, settings, listener.into_std()?, http, stop)
                .await
                .map_err(Into::into)
        })?;
        Ok(HostedGateway {
            server,
            actors,
            http_addr,
        })
    }

    /// Where daprd's HTTP API listens, when started with it.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    pub fn server(&self) -> &HostedServer {
        &self.server
    }

    pub fn manager(&self) -> Addr<ManagerActor> {
        self.actors.manager()
    }

    /// The threads doing the gateway's work: its runtime and the actors'.
    pub fn cpu_scope(&self) -> CpuScope {
        CpuScope::Threads(vec![
            self.server.thread_name().into(),
            threads::THREAD_NAME.into(),
            ACTIX_ARBITER_THREADS.into(),
        ])
    }

    /// Tells the gateway to shut down (its app streams end), without waiting.
    pub fn stop(&self) {
        self.server.stop();
    }

    /// Shuts the gateway down and waits until the server and the actors stopped.
    pub async fn finished(self) -> ServeResult {
        let HostedGateway { server, actors, .. } = self;
        let served = server.finished().await;
        // Stopping the actor system joins its thread: not on an async worker.
        tokio::task::spawn_blocking(move || actors.stop()).await?;
        served
    }
}

/// Returns once a worker of `runtime` has run a task. Workers start (and
/// name themselves) asynchronously, while a client's connect can complete on
/// the kernel's backlog alone; a bench reading the CPU time of the threads by
/// name right after connecting could otherwise find none of them yet.
fn wait_until_running(runtime: &Runtime) -> io::Result<()> {
    let (ran, running) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = ran.send(());
    });
    running
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| io::Error::other("the server's runtime did not start within 10 s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench reads a hosted server's CPU time by thread name straight
    /// after start: its threads must be there to be found by then.
    #[test]
    fn threads_are_measurable_as_soon_as_start_returns() {
        for i in 0..20 {
            let name = format!("probe-{i}");
            let server = HostedServer::start(&name, 1, |_listener, stop| async move {
                stop.await;
                Ok(())
            })
            .unwrap();
            CpuScope::Threads(vec![name.clone()])
                .read()
                .unwrap_or_else(|e| panic!("start {i}: {e}"));
            drop(server);
        }
    }
}
