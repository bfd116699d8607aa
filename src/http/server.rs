//! The HTTP front door's connections: HTTP/1.1 and h2c on one listener
//! (hyper-util's auto connection), accepted and spread over the threads by
//! the same loop as the gRPC server's (`crate::server`).
//!
//! Limits, each bounding what one client can make us hold:
//! - connections: at most `max_connections` at once; more are closed as
//!   soon as they are accepted;
//! - a new connection must send its first bytes within the handshake
//!   timeout, and each request's head within `header_read_timeout` (which
//!   also closes an HTTP/1.1 connection idle that long between requests, as
//!   Go's server does with daprd's settings);
//! - a request head is at most `max_header_bytes` (431 beyond), an h2c
//!   connection carries at most `max_calls_per_connection` requests at once,
//!   and bodies are read up to the body limit (`routes::read_body`).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use log::debug;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::{FrontDoor, HttpSettings};
use crate::log_throttle::LogThrottle;
use crate::server::{ConnectionServer, first_bytes};

/// HTTP/2 keepalive for h2c connections, as the gRPC side's default.
const H2_KEEPALIVE: Duration = Duration::from_secs(10);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct HttpServer {
    builder: auto::Builder<TokioExecutor>,
    door: FrontDoor,
    handshake_timeout: Duration,
    slots: Arc<Semaphore>,
    refusals: std::sync::Mutex<LogThrottle>,
}

impl HttpServer {
    pub fn new(door: FrontDoor, settings: &HttpSettings) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            // hyper's floor for its read buffer is 8 KiB.
            .max_buf_size(settings.max_header_bytes.max(8192))
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_calls_per_connection)
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(H2_KEEPALIVE)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        HttpServer {
            builder,
            door,
            handshake_timeout: settings.handshake_timeout,
            slots: Arc::new(Semaphore::new(settings.max_connections)),
            refusals: std::sync::Mutex::new(LogThrottle::new(Duration::from_secs(10))),
        }
    }
}

impl ConnectionServer for HttpServer {
    fn open(self: &Arc<Self>, tcp: TcpStream, stop: &CancellationToken, tasks: &TaskTracker) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            if let Ok(mut refusals) = self.refusals.lock() {
                refusals.warn(|| "HTTP connection limit reached: closing new connections".into());
            }
            return;
        };
        tasks.spawn(serve(self.clone(), tcp, stop.clone(), slot));
    }
}

/// Serves one connection until it ends, or ends it gracefully once `stop`
/// is cancelled; its slot is free again when this returns.
async fn serve(
    server: Arc<HttpServer>,
    tcp: TcpStream,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let deadline = Instant::now() + server.handshake_timeout;
    if !first_bytes(&tcp, deadline, &stop).await {
        return;
    }
    let connection = server
        .builder
        .serve_connection(TokioIo::new(tcp), server.door.clone());
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        debug!("HTTP connection ended: {e}");
    }
}
