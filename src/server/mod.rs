//! The gateway's HTTP/2 server: accepts connections on a listener, serves
//! each with hyper on one thread (the one that accepted it, or one it was
//! handed to: `spread`), and ends them when told.
//!
//! Why hyper directly rather than tonic's `Server`: the gateway serves only
//! gRPC over HTTP/2 and three services it knows, and tonic's server pays per
//! connection and per call for generality it does not use. Each connection
//! held an HTTP/1-or-2 connection type sized for both, every response got a
//! `Date` header that gRPC has no use for, and every call went through a
//! general router and several layers, boxing its request and response bodies.
//! With hyper's HTTP/2 connection and our own router (`service::router`) an
//! idle app stream costs less memory and a callback less CPU
//! (docs/performance.md has the figures).
//!
//! Every phase of a new connection's opening is bounded, with or without
//! TLS: its first bytes, its TLS handshake and its HTTP/2 preface and
//! SETTINGS must all have come within one handshake timeout of the
//! connection reaching its thread, or it is dropped. hyper bounds none of
//! them, so without this a client that connects and goes quiet, or stalls
//! anywhere in its opening, would hold a task and a socket forever. The
//! first two phases are waited for in `open`; the last is watched around
//! the connection's IO (`opening`, which says why it has to be).
//!
//! Shutdown is the caller's: when `stop` is cancelled the accept loop ends,
//! which closes the listener, every connection is asked to end gracefully
//! (GOAWAY, then it ends once its calls have), and [`serve`] returns when
//! all have. The gateway ends the app streams itself before that, and bounds
//! the wait (`crate::gateway`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use log::debug;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

use crate::log_throttle::LogThrottle;
use crate::service::router::Services;

use opening::Opening;

mod opening;
mod spread;
mod tls;

pub use spread::{Intake, Spread, spread};
pub use tls::{TlsSetupError, tls_acceptor};

/// How long to pause accepting after a failed accept (e.g. out of file
/// descriptors), so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How every connection is served: the HTTP/2 settings, and TLS if any.
pub struct Http2 {
    builder: http2::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    /// How long a new connection's opening may take, all of it (see the
    /// module doc).
    handshake_timeout: Duration,
}

/// The HTTP/2 settings a gateway connection gets.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// Concurrent calls (streams) one connection may carry.
    pub max_calls_per_connection: u32,
    /// HTTP/2 ping interval and how long to wait for the answer (SPEC H6).
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// See [`Http2`].
    pub handshake_timeout: Duration,
}

impl Http2 {
    pub fn new(settings: Http2Settings) -> Self {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_calls_per_connection)
            .keep_alive_interval(settings.keepalive_interval)
            .keep_alive_timeout(settings.keepalive_timeout)
            .auto_date_header(false);
        Http2 {
            builder,
            tls: None,
            handshake_timeout: settings.handshake_timeout,
        }
    }

    /// Serve TLS (ALPN h2) with `acceptor`.
    pub fn with_tls(mut self, acceptor: TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }
}

/// How a server serves the connections its accept loop takes: the gRPC
/// gateway's HTTP/2 ([`Grpc`]) or the HTTP API's HTTP/1.1-or-h2c
/// (`crate::http::server`). The accept loop, the spreading over threads and
/// the wait for every connection to end are the same for both.
pub trait ConnectionServer: Send + Sync + 'static {
    /// Starts serving `tcp` in task(s) on `tasks`; they end gracefully once
    /// `stop` is cancelled.
    fn open(self: &Arc<Self>, tcp: TcpStream, stop: &CancellationToken, tasks: &TaskTracker);
}

/// The gateway's gRPC server: its HTTP/2 settings and its services.
pub struct Grpc {
    http: Http2,
    services: Arc<Services>,
}

impl Grpc {
    pub fn new(http: Http2, services: Services) -> Self {
        Grpc {
            http,
            services: Arc::new(services),
        }
    }
}

impl ConnectionServer for Grpc {
    fn open(self: &Arc<Self>, tcp: TcpStream, stop: &CancellationToken, tasks: &TaskTracker) {
        tasks.spawn(open(tcp, self.clone(), stop.clone(), tasks.clone()));
    }
}

/// Accepts connections on `listener` and serves each with `server`, on the
/// current runtime, until `stop` is cancelled and every connection has ended.
pub async fn serve<S: ConnectionServer>(
    listener: TcpListener,
    server: Arc<S>,
    stop: CancellationToken,
) {
    serve_spreading(listener, Spread::none(), server, stop).await;
}

/// As [`serve`], but hands new connections to other threads as `spread`
/// says; those threads serve them with [`serve_handed`].
pub async fn serve_spreading<S: ConnectionServer>(
    listener: TcpListener,
    mut spread: Spread,
    server: Arc<S>,
    stop: CancellationToken,
) {
    let connections = Connections::new(server, stop.clone());
    let mut accept_failures = LogThrottle::new(Duration::from_secs(10));
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut stopped => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                accept_failures.warn(|| format!("cannot accept a connection: {e}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Small request/reply messages must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!("cannot set TCP_NODELAY: {e}");
        }
        if let Some(tcp) = spread.place(tcp) {
            connections.open(tcp);
        }
    }
    // Closing the listener and the hand-over channels ends the intakes too.
    drop((listener, spread));
    connections.wait().await;
}

/// Serves the connections another thread's [`serve_spreading`] hands to this
/// one, until that stops or `stop` is cancelled, and every connection has
/// ended.
pub async fn serve_handed<S: ConnectionServer>(
    mut intake: Intake,
    server: Arc<S>,
    stop: CancellationToken,
) {
    let connections = Connections::new(server, stop.clone());
    loop {
        let handed = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            handed = intake.next() => handed,
        };
        match handed {
            Some(tcp) => connections.open(tcp),
            None => break,
        }
    }
    connections.wait().await;
}

/// The connections one thread serves: each is opened in a task of its own,
/// and the thread's server ends once all have ended.
struct Connections<S> {
    server: Arc<S>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl<S: ConnectionServer> Connections<S> {
    fn new(server: Arc<S>, stop: CancellationToken) -> Self {
        Connections {
            server,
            stop,
            tasks: TaskTracker::new(),
        }
    }

    fn open(&self, tcp: TcpStream) {
        self.server.open(tcp, &self.stop, &self.tasks);
    }

    async fn wait(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Waits for a new connection's first bytes (and its TLS handshake), then
/// hands it to a task of its own that serves it. Two tasks rather than one,
/// so that what lives as long as the connection is only [`Drive`], not the
/// state of its opening. Waiting for the first bytes here, before hyper's
/// connection exists, also keeps a silent client from costing one.
async fn open(
    tcp: TcpStream,
    server: Arc<Grpc>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    let http = &server.http;
    // One deadline for every phase, so the opening as a whole is bounded,
    // not each phase on its own.
    let deadline = Instant::now() + http.handshake_timeout;
    if !first_bytes(&tcp, deadline, &stop).await {
        return;
    }
    let services = server.services.clone();
    match &http.tls {
        None => start_serving(tcp, deadline, http, services, stop, &connections),
        Some(tls) => {
            if let Some(io) = within(deadline, &stop, tls.accept(tcp), "TLS handshake").await {
                start_serving(io, deadline, http, services, stop, &connections);
            }
        }
    }
}

/// Whether `tcp` sent its first bytes by `deadline` (and before `stop`).
/// `peek`, not `readable`: readiness can be reported before any byte has
/// come (tokio documents false positives), and only data counts here.
pub async fn first_bytes(tcp: &TcpStream, deadline: Instant, stop: &CancellationToken) -> bool {
    let mut first = [0u8; 1];
    matches!(
        within(deadline, stop, tcp.peek(&mut first), "first bytes").await,
        Some(n) if n > 0
    )
}

/// Starts the task that serves a connection for its life, once it has sent
/// its preface and SETTINGS by `deadline`.
fn start_serving<I>(
    io: I,
    deadline: Instant,
    http: &Http2,
    services: Arc<Services>,
    stop: CancellationToken,
    connections: &TaskTracker,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = Opening::new(io, deadline);
    let connection = http.builder.serve_connection(TokioIo::new(io), services);
    connections.spawn(Drive::new(connection, stop));
}

/// `step`'s value, unless it fails, is not done by `deadline`, or the
/// server stops first.
async fn within<T>(
    deadline: Instant,
    stop: &CancellationToken,
    step: impl Future<Output = io::Result<T>>,
    what: &str,
) -> Option<T> {
    tokio::select! {
        _ = stop.cancelled() => None,
        done = tokio::time::timeout_at(deadline, step) => match done {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                debug!("dropping a new connection: {what} failed: {e}");
                None
            }
            Err(_) => {
                debug!("dropping a new connection: no {what} within the handshake timeout");
                None
            }
        },
    }
}

type Connection<I> = http2::Connection<TokioIo<Opening<I>>, Arc<Services>, TokioExecutor>;

pin_project! {
    /// Serves one connection until it ends; once `stop` is cancelled, asks
    /// it to end gracefully and waits for that.
    ///
    /// A hand-written future rather than an `async fn`: it is what every
    /// connection's task holds for the connection's whole life, and an
    /// `async fn` keeps the moved-in connection (~1.5 KiB) twice.
    struct Drive<I> {
        #[pin]
        connection: Connection<I>,
        #[pin]
        stopped: WaitForCancellationFutureOwned,
        stopping: bool,
    }
}

impl<I> Drive<I> {
    fn new(connection: Connection<I>, stop: CancellationToken) -> Self {
        Drive {
            connection,
            stopped: stop.cancelled_owned(),
            stopping: false,
        }
    }
}

impl<I> Future for Drive<I>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if !*this.stopping && this.stopped.poll(cx).is_ready() {
            *this.stopping = true;
            this.connection.as_mut().graceful_shutdown();
        }
        let ended = ready!(this.connection.poll(cx));
        if let Err(e) = ended {
            debug!("connection ended: {e}");
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a plain connection's task holds for the connection's life is
    /// hyper's connection (~1.5 KiB) and little else; every idle app stream
    /// pays it. An `async fn` in place of `Drive` doubled it (3.1 KiB).
    #[test]
    fn a_connection_task_holds_the_connection_once() {
        let drive = std::mem::size_of::<Drive<TcpStream>>();
        // hyper's connection on the bare socket: what the opening's watch
        // adds (a pointer, once the opening is done) counts against the margin.
        let connection = std::mem::size_of::<
            http2::Connection<TokioIo<TcpStream>, Arc<Services>, TokioExecutor>,
        >();
        assert!(
            drive <= connection + 128,
            "{drive} for a {connection}-byte connection"
        );
    }
}
