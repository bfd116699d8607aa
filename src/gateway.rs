//! The gateway: the `Dapr` service, gRPC health and reflection on our HTTP/2
//! server (`crate::server`), with the transport settings of SPEC H4-H6, S1
//! and S2.
//!
//! It runs either on the actor threads (`serve_on`, what the binary does:
//! each connection's work stays on one thread) or on the caller's tokio
//! runtime (`serve`, for embedding); both share the services and the
//! shutdown sequence below.
//!
//! Shutdown is threaded through explicitly. A graceful HTTP/2 shutdown waits
//! for open streams to end, and an app's stream never ends by itself, so the
//! gateway ends them: refuse new streams, close every connection (their
//! in-flight requests fail as UNAVAILABLE and each stream finishes with OK),
//! then let the server drain, but never for longer than the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use log::{info, warn};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::RegistrationLimits;
use crate::http::{FrontDoor, HttpServer, HttpSettings};
use crate::manager::{CloseAll, ManagerActor};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::runtime::{Runtime, RuntimeOptions};
use crate::server::{self, ConnectionServer, Grpc, Http2, Http2Settings, TlsSetupError};
use crate::service::router::{Named, Services};
use crate::service::{DaprService, TokenCheck};
use crate::store::{MemoryStore, Store};
use crate::threads::ActorThreads;

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
    /// How long an app may take to send its `initial_request`, and a new
    /// connection to open: its first bytes, its TLS handshake, its HTTP/2
    /// preface and SETTINGS.
    pub handshake_timeout: Duration,
    /// App streams served at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_streams: usize,
    /// How large one app's registration may be.
    pub registration_limits: RegistrationLimits,
    /// The actor runtime (SPEC §8); `None` relays only (calls do not take
    /// turns, and the runtime's RPCs answer UNIMPLEMENTED).
    pub runtime: Option<RuntimeOptions>,
    /// The HTTP front door's limits, when it has a listener.
    pub http: HttpSettings,
    /// Where the runtime keeps actor state and reminders (SPEC P1): the
    /// binary opens a `DurableStore` unless `--in-memory`; the default is a
    /// fresh `MemoryStore`, for embedding and tests.
    pub store: Arc<dyn Store>,
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
            registration_limits: RegistrationLimits::default(),
            runtime: Some(RuntimeOptions::default()),
            http: HttpSettings::default(),
            store: Arc::new(MemoryStore::new()),
        }
    }
}

/// Why the gateway could not serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot read TLS files: {0}")]
    TlsFiles(std::io::Error),
    #[error("cannot use the TLS files: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("cannot serve on the listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error("cannot start the actor runtime: {0}")]
    Runtime(String),
    #[error("cannot build reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serve on `listener` from every thread of `actors` until `shutdown`
/// resolves, then stop within the grace period. This is how the binary runs:
/// each HTTP/2 connection, with its streams, calls and connection actors,
/// lives on one actor thread (see `crate::threads` and `server::spread`).
pub async fn serve_on(
    actors: ActorThreads,
    settings: GatewaySettings,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    serve_both_on(actors, settings, listener, None, shutdown).await
}

/// As [`serve_on`], with daprd's HTTP API on `http` too: its connections
/// are spread over the same threads, by the same accepting thread's loop.
pub async fn serve_both_on(
    actors: ActorThreads,
    settings: GatewaySettings,
    listener: std::net::TcpListener,
    http: Option<std::net::TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    tokio::pin!(shutdown);
    let Some((gateway, grpc, http_server)) =
        Gateway::build_unless(&settings, actors.manager(), http.is_some(), &mut shutdown).await?
    else {
        return Ok(());
    };
    info!(
        "serving gRPC on {}",
        describe(listener.local_addr(), &settings)
    );
    listener.set_nonblocking(true)?;
    let mut roles = thread_roles(listener, actors.count());
    let http_roles: Vec<Option<ThreadRole>> = match &http {
        Some(listener) => {
            info!("serving HTTP on {}", describe_http(listener.local_addr()));
            listener.set_nonblocking(true)?;
            thread_roles(listener.try_clone()?, actors.count())
                .into_iter()
                .map(Some)
                .collect()
        }
        None => roles.iter().map(|_| None).collect(),
    };
    // The listener's clone above serves; this handle only has to go.
    drop(http);
    let roles: Vec<_> = roles.drain(..).zip(http_roles).collect();
    let drained = gateway.drained.clone();
    let servers = actors.run_on_each_with(roles, move |_, (grpc_role, http_role)| {
        let (grpc, http_server, drained) = (grpc.clone(), http_server.clone(), drained.clone());
        async move {
            let grpc_side = grpc_role.run(grpc, drained.clone());
            let http_side = async {
                match (http_role, http_server) {
                    (Some(role), Some(server)) => role.run(server, drained).await,
                    _ => Ok(()),
                }
            };
            let (grpc_done, http_done) = tokio::join!(grpc_side, http_side);
            grpc_done.and(http_done)
        }
    });
    // Ends at the first server that fails, else when all have finished. A
    // thread that stopped before its server finished has nothing to report.
    let servers = futures::future::try_join_all(
        servers
            .into_iter()
            .map(|server| async { server.await.unwrap_or(Ok(())) }),
    );
    let servers = async { servers.await.map(drop) };
    gateway.run(&settings, shutdown, servers).await
}

/// One role per thread: the first accepts and hands connections to the
/// others in turn (see `server::spread`). The manager's thread is the first.
fn thread_roles(listener: std::net::TcpListener, threads: usize) -> Vec<ThreadRole> {
    let (spread, intakes) = server::spread(threads);
    std::iter::once(ThreadRole::Accept(listener, spread))
        .chain(intakes.into_iter().map(ThreadRole::Take))
        .collect()
}

/// What one actor thread does for one listener in [`serve_both_on`].
enum ThreadRole {
    /// Accept, and hand connections to the other threads.
    Accept(std::net::TcpListener, server::Spread),
    /// Serve the connections handed to this thread.
    Take(server::Intake),
}

impl ThreadRole {
    async fn run<S: ConnectionServer>(
        self,
        server: Arc<S>,
        stop: CancellationToken,
    ) -> Result<(), GatewayError> {
        match self {
            ThreadRole::Accept(listener, spread) => {
                let listener = TcpListener::from_std(listener)?;
                server::serve_spreading(listener, spread, server, stop).await;
            }
            ThreadRole::Take(intake) => server::serve_handed(intake, server, stop).await,
        }
        Ok(())
    }
}

/// Serve on `listener` on the calling tokio runtime until `shutdown`
/// resolves, then stop within the grace period: for embedding the gateway in
/// a tokio application. Streams and calls then hand their work to the actor
/// thread(s) across threads, which costs more per call than [`serve_on`].
pub async fn serve(
    settings: GatewaySettings,
    manager: Addr<ManagerActor>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    serve_both(settings, manager, listener, None, shutdown).await
}

/// As [`serve`], with daprd's HTTP API on `http` too.
pub async fn serve_both(
    settings: GatewaySettings,
    manager: Addr<ManagerActor>,
    listener: TcpListener,
    http: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    tokio::pin!(shutdown);
    let Some((gateway, grpc, http_server)) =
        Gateway::build_unless(&settings, manager, http.is_some(), &mut shutdown).await?
    else {
        return Ok(());
    };
    info!(
        "serving gRPC on {}",
        describe(listener.local_addr(), &settings)
    );
    let drained = gateway.drained.clone();
    let grpc_side = server::serve(listener, grpc, drained.clone());
    let http_side = async {
        if let (Some(listener), Some(server)) = (http, http_server) {
            info!("serving HTTP on {}", describe_http(listener.local_addr()));
            server::serve(listener, server, drained).await;
        }
    };
    gateway
        .run(&settings, shutdown, async {
            tokio::join!(grpc_side, http_side);
            Ok(())
        })
        .await
}

/// What the server threads share, and the shutdown sequence.
struct Gateway {
    manager: Addr<ManagerActor>,
    health: HealthReporter,
    /// Cancelled when shutdown begins: new app streams are refused.
    stopping: CancellationToken,
    /// Cancelled once every app stream was told to close: tonic stops
    /// accepting and drains.
    drained: CancellationToken,
}

/// What [`Gateway::build`] makes: the gateway, its gRPC server and, when
/// asked for, its HTTP one.
type Built = (Gateway, Arc<Grpc>, Option<Arc<HttpServer>>);

impl Gateway {
    /// Builds the gateway, unless `shutdown` resolves first (`None`). With
    /// the actor runtime on, building waits for the manager to start the
    /// actor table (`Runtime::start`), and the manager's thread may be busy
    /// or stuck: a stop asked for meanwhile must not wait for it. Nothing is
    /// served yet, so there is nothing to close; a `StartTable` still queued
    /// only starts a table that the manager keeps for the next start.
    async fn build_unless(
        settings: &GatewaySettings,
        manager: Addr<ManagerActor>,
        with_http: bool,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Option<Built>, GatewayError> {
        tokio::select! {
            built = Self::build(settings, manager, with_http) => built.map(Some),
            () = shutdown => {
                info!("stopped before serving");
                Ok(None)
            }
        }
    }

    async fn build(
        settings: &GatewaySettings,
        manager: Addr<ManagerActor>,
        with_http: bool,
    ) -> Result<Built, GatewayError> {
        let stopping = CancellationToken::new();
        let mut dapr = DaprService::new(manager.clone(), settings.app_id.clone());
        if let Some(options) = settings.runtime {
            let runtime = Runtime::start(&manager, settings.store.clone(), options)
                .await
                .map_err(|e| GatewayError::Runtime(e.to_string()))?;
            dapr = dapr.with_runtime(runtime);
        }
        let token = TokenCheck::new(settings.api_token.as_deref());
        // The HTTP front door shares the gRPC one's API: one runtime, one
        // set of actors, the same token.
        let http = with_http.then(|| {
            let ctx = crate::http::routes::Ctx {
                api: dapr.api().clone(),
                max_body_bytes: settings.http.max_body_bytes,
                token_checked: settings.api_token.as_deref().is_some_and(|t| !t.is_empty()),
                stopping: stopping.clone(),
            };
            let door = FrontDoor::new(ctx, token.clone());
            Arc::new(HttpServer::new(door, &settings.http))
        });
        let dapr = dapr
            .with_shutdown(stopping.clone())
            .with_handshake_timeout(settings.handshake_timeout)
            .with_max_message_bytes(settings.max_message_bytes)
            .with_max_streams(settings.max_streams)
            .with_registration_limits(settings.registration_limits)
            .into_server();
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        let services = Services::new(
            dapr,
            Named::new(health_service),
            Named::new(reflection),
            token,
        );

        let mut http2 = Http2::new(Http2Settings {
            max_calls_per_connection: MAX_CALLS_PER_CONNECTION,
            keepalive_interval: settings.keepalive_interval,
            keepalive_timeout: settings.keepalive_timeout,
            handshake_timeout: settings.handshake_timeout,
        });
        if let Some(tls) = &settings.tls {
            let acceptor = tls_acceptor(tls)?;
            http2 = http2.with_tls(acceptor);
        }
        let gateway = Gateway {
            manager,
            health,
            stopping,
            drained: CancellationToken::new(),
        };
        Ok((gateway, Arc::new(Grpc::new(http2, services)), http))
    }

    /// Runs `servers` until `shutdown`, then ends every app stream and lets
    /// the servers drain. The whole of that, closing the streams included,
    /// gets the grace period and no more: the manager's thread may be busy
    /// (or stuck), and a stop that waits on it would not be bounded.
    async fn run(
        self,
        settings: &GatewaySettings,
        shutdown: impl Future<Output = ()>,
        servers: impl Future<Output = Result<(), GatewayError>>,
    ) -> Result<(), GatewayError> {
        tokio::pin!(servers);
        tokio::select! {
            result = &mut servers => return result,
            _ = shutdown => {}
        }
        let stop = async {
            self.close_app_streams().await;
            servers.await
        };
        match tokio::time::timeout(settings.shutdown_grace, stop).await {
            Ok(result) => result?,
            Err(_) => warn!(
                "shutdown grace of {:?} over: dropping open connections",
                settings.shutdown_grace
            ),
        }
        info!("stopped");
        Ok(())
    }

    async fn close_app_streams(&self) {
        info!("shutting down: closing app streams");
        set_health(&self.health, ServingStatus::NotServing).await;
        self.stopping.cancel();
        let closed = self
            .manager
            .send(CloseAll {
                cause: SHUTDOWN_CAUSE.into(),
            })
            .await
            .unwrap_or(0);
        info!("closed {closed} app stream(s)");
        self.drained.cancel();
    }
}

async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status(SERVICE_NAME, status).await;
    health.set_service_status("", status).await;
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, GatewayError> {
    let cert = std::fs::read(&files.cert).map_err(GatewayError::TlsFiles)?;
    let key = std::fs::read(&files.key).map_err(GatewayError::TlsFiles)?;
    Ok(server::tls_acceptor(&cert, &key)?)
}

fn describe_http(addr: std::io::Result<SocketAddr>) -> String {
    addr.map_or_else(|_| "an unknown address".into(), |a| format!("http://{a}"))
}

fn describe(addr: std::io::Result<SocketAddr>, settings: &GatewaySettings) -> String {
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    addr.map_or_else(
        |_| "an unknown address".into(),
        |a| format!("{scheme}://{a}"),
    )
}
