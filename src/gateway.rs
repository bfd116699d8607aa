//! The gateway: a tonic server carrying the `Dapr` service, gRPC health and
//! reflection, with the transport settings of SPEC H4-H6, S1 and S2.
//!
//! Shutdown is threaded through explicitly. tonic's graceful shutdown waits
//! for open streams to end, and an app's stream never ends by itself, so the
//! gateway ends them: refuse new streams, close every connection (their
//! in-flight requests fail as UNAVAILABLE and each stream finishes with OK),
//! then let tonic drain, but never for longer than the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix::Addr;
use log::{info, warn};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::manager::{CloseAll, ManagerActor};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::service::oversize::OversizeLayer;
use crate::service::{DaprService, TokenCheck};

/// The service name gRPC health reports on, besides the server as a whole ("").
const SERVICE_NAME: &str = "dapr.proto.runtime.v1.Dapr";

/// Concurrent gRPC calls (streams) one HTTP/2 connection may carry.
const MAX_CALLS_PER_CONNECTION: u32 = 1024;

/// Why in-flight requests fail when the gateway stops.
pub const SHUTDOWN_CAUSE: &str = "gateway is shutting down";

/// How the gateway serves.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub app_id: String,
    /// Largest message accepted or sent, in bytes (SPEC H5; Dapr's default 4 MiB).
    pub max_message_bytes: usize,
    /// HTTP/2 ping interval and how long to wait for the answer (SPEC H6).
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// `dapr-api-token` every RPC but health must carry (SPEC S1).
    pub api_token: Option<String>,
    /// Serve TLS with this certificate chain and key (PEM files; SPEC S2).
    pub tls: Option<TlsFiles>,
    /// How long shutdown may take before open connections are dropped.
    pub shutdown_grace: Duration,
    /// How long an app may take to send its `initial_request`.
    pub handshake_timeout: Duration,
    /// App streams served at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            app_id: "callbackstream".into(),
            max_message_bytes: crate::service::DEFAULT_MAX_MESSAGE_BYTES,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
            api_token: None,
            tls: None,
            shutdown_grace: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(30),
            max_streams: crate::service::DEFAULT_MAX_STREAMS,
        }
    }
}

/// Why the gateway could not serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot read TLS files: {0}")]
    TlsFiles(#[from] std::io::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot build reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serve on `listener` until `shutdown` resolves, then stop within the grace.
pub async fn serve(
    settings: GatewaySettings,
    manager: Addr<ManagerActor>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let stopping = CancellationToken::new();
    let token = TokenCheck::new(settings.api_token.as_deref());
    let dapr = DaprService::new(manager.clone(), settings.app_id.clone())
        .with_shutdown(stopping.clone())
        .with_handshake_timeout(settings.handshake_timeout)
        .with_max_message_bytes(settings.max_message_bytes)
        .with_max_streams(settings.max_streams)
        .into_server();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;
    health.set_service_status("", ServingStatus::Serving).await;

    let mut server = Server::builder()
        .layer(OversizeLayer)
        // tonic would otherwise lift hyper's per-connection default (200) to
        // unlimited; every open call holds memory, so keep a ceiling.
        .max_concurrent_streams(Some(MAX_CALLS_PER_CONNECTION))
        .http2_keepalive_interval(Some(settings.keepalive_interval))
        .http2_keepalive_timeout(Some(settings.keepalive_timeout));
    if let Some(tls) = &settings.tls {
        server = server.tls_config(tls_config(tls)?)?;
    }
    let local = listener.local_addr().ok();
    // Small request/reply messages must not wait for Nagle's algorithm; the
    // builder's own nodelay setting only covers listeners tonic binds itself.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let router = server
        .add_service(health_service)
        .add_service(InterceptedService::new(dapr, token.clone()))
        .add_service(InterceptedService::new(reflection, token));

    let begin_shutdown = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            info!("shutting down: closing app streams");
            health
                .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
                .await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            stopping.cancel();
            let closed = manager
                .send(CloseAll {
                    cause: SHUTDOWN_CAUSE.into(),
                })
                .await
                .unwrap_or(0);
            info!("closed {closed} app stream(s)");
        }
    };
    info!("serving on {}", describe(local, settings.tls.is_some()));
    let serving = router.serve_with_incoming_shutdown(incoming, begin_shutdown);
    tokio::pin!(serving);
    let grace_over = async {
        stopping.cancelled().await;
        tokio::time::sleep(settings.shutdown_grace).await;
    };
    tokio::select! {
        result = &mut serving => result?,
        _ = grace_over => warn!("shutdown grace of {:?} over: dropping open connections", settings.shutdown_grace),
    }
    info!("stopped");
    Ok(())
}

fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, std::io::Error> {
    let cert = std::fs::read(&files.cert)?;
    let key = std::fs::read(&files.key)?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}

fn describe(addr: Option<SocketAddr>, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    addr.map_or_else(
        || "an unknown address".into(),
        |a| format!("{scheme}://{a}"),
    )
}
