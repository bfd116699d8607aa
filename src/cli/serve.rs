//! `callbackstream serve`: the gateway as a process.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use callbackstream::config::RegistrationLimits;
use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::{self, GatewaySettings, TlsFiles};
use callbackstream::runtime::{JobLimits, RuntimeOptions};
use callbackstream::store::durable::{FORMAT_VERSION, OpenError};
use callbackstream::store::{DurableStore, MemoryStore, Store};
use callbackstream::threads::ActorSystem;
use clap::Args;
use log::{info, warn};
use tokio::time::Instant;

use super::{CliResult, at_least_one, duration, positive_duration};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:$DAPR_GRPC_PORT, else 127.0.0.1:50001]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The app id GetMetadata reports.
    #[arg(long, default_value = "callbackstream")]
    app_id: String,
    /// Messages each app stream's outbox holds before senders wait.
    #[arg(long, default_value_t = 128, value_parser = at_least_one)]
    outbox: usize,
    /// Unanswered requests one app stream may hold.
    #[arg(long, default_value_t = 16_384, value_parser = at_least_one)]
    max_pending: usize,
    /// Threads serving gRPC and running the actors [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// App streams served at once.
    #[arg(long, default_value_t = callbackstream::service::DEFAULT_MAX_STREAMS, value_parser = at_least_one)]
    max_streams: usize,
    /// Largest gRPC message accepted or sent.
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = at_least_one)]
    max_message_bytes: usize,
    /// Actor type names one registration may list (entities and entities_config together).
    #[arg(long, default_value_t = RegistrationLimits::default().max_actor_types, value_parser = at_least_one)]
    max_actor_types: usize,
    /// entities_config entries one registration may carry.
    #[arg(long, default_value_t = RegistrationLimits::default().max_type_configs, value_parser = at_least_one)]
    max_type_configs: usize,
    /// Bytes in one actor type name.
    #[arg(long, default_value_t = RegistrationLimits::default().max_type_name_bytes, value_parser = at_least_one)]
    max_type_name_bytes: usize,
    /// HTTP/2 keepalive ping interval.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the peer is dead.
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    keepalive_timeout: Duration,
    /// How long shutdown may take, from the signal to the exit, whatever is still open.
    #[arg(long, default_value = "5s", value_parser = duration)]
    shutdown_grace: Duration,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How often idle actors are looked for and deactivated.
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    idle_scan_interval: Duration,
    /// Timers the gateway keeps at most, all actors together; more are refused
    /// (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = JobLimits::default().max_timers, value_parser = at_least_one)]
    max_timers: usize,
    /// Reminders the gateway keeps at most, all actors together; more are
    /// refused (RESOURCE_EXHAUSTED). Those restored at start are all kept.
    #[arg(long, default_value_t = JobLimits::default().max_reminders, value_parser = at_least_one)]
    max_reminders: usize,
    /// Directory of the durable store: actor state and reminders, kept across
    /// restarts. Created if missing; refused if another gateway holds it, if
    /// it is of an unknown format version, or if its database is corrupt.
    #[arg(
        long,
        default_value = "callbackstream-data",
        conflicts_with = "in_memory"
    )]
    data_dir: PathBuf,
    /// Keep actor state and reminders in memory only: they last as long as
    /// the process, and no directory is used.
    #[arg(long)]
    in_memory: bool,
    /// Address the Prometheus scrape endpoint (`GET /metrics`) listens on.
    #[arg(long, default_value = "127.0.0.1:9090", conflicts_with = "no_metrics")]
    metrics_listen: SocketAddr,
    /// Record no metrics and open no metrics port.
    #[arg(long)]
    no_metrics: bool,
    /// Token every RPC but health must carry as `dapr-api-token`.
    #[arg(long, env = "DAPR_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

pub async fn run(args: ServeArgs) -> CliResult {
    let grace = args.shutdown_grace;
    let stopped_by = Arc::new(OnceLock::new());
    let stop = {
        let signal = stop_signal()?;
        let stopped_by = stopped_by.clone();
        async move {
            signal.await;
            let _ = stopped_by.set(Instant::now() + grace);
        }
    };
    // Before listening: a refused directory must not look like a gateway
    // that started, even for a moment.
    let store = open_store(&args)?;
    let listen = args.listen.unwrap_or_else(default_listen);
    let listener = TcpListener::bind(listen)?;
    let metrics = match args.no_metrics {
        true => None,
        false => Some(serve_metrics(args.metrics_listen).await?),
    };
    let options = ConnectionOptions {
        outbox_capacity: args.outbox,
        max_pending: args.max_pending,
    };
    let threads = args
        .threads
        .map_or_else(callbackstream::threads::default_threads, usize::from);
    let actors = ActorSystem::start_threads(options, threads)?;
    let settings = GatewaySettings {
        app_id: args.app_id,
        max_message_bytes: args.max_message_bytes,
        keepalive_interval: args.keepalive_interval,
        keepalive_timeout: args.keepalive_timeout,
        api_token: args.api_token,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        shutdown_grace: args.shutdown_grace,
        max_streams: args.max_streams,
        registration_limits: RegistrationLimits {
            max_actor_types: args.max_actor_types,
            max_type_configs: args.max_type_configs,
            max_type_name_bytes: args.max_type_name_bytes,
        },
        runtime: Some(RuntimeOptions {
            idle_scan_interval: args.idle_scan_interval,
            job_limits: JobLimits {
                max_timers: args.max_timers,
                max_reminders: args.max_reminders,
            },
        }),
        store,
        ..GatewaySettings::default()
    };
    let served = gateway::serve_on(actors.threads(), settings, listener, stop).await;
    if let Some(scrapes) = metrics {
        scrapes.abort();
    }
    // Stopping the actor threads ends whatever the grace period left open.
    // A thread still busy when the grace is over is not waited for: the
    // process exits without it (main does not wait for blocking tasks).
    let until = stopped_by.get().copied().unwrap_or_else(Instant::now);
    let stopping = tokio::task::spawn_blocking(move || actors.stop());
    let floor = Instant::now() + THREADS_STOP_FLOOR;
    if tokio::time::timeout_at(until.max(floor), stopping)
        .await
        .is_err()
    {
        warn!("an actor thread is still busy after the shutdown grace: exiting without it");
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Switches metrics on and serves them on `addr`, until the handle is
/// aborted. Bound here, before the gateway starts, so a taken port is a
/// start-up error rather than a gateway without its metrics.
async fn serve_metrics(addr: SocketAddr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics listener on {addr}: {e}")))?;
    info!("metrics on http://{}/metrics", listener.local_addr()?);
    let metrics = callbackstream::metrics::enable();
    Ok(tokio::spawn(callbackstream::metrics::endpoint::serve(
        listener, metrics,
    )))
}

/// The store `--in-memory` or `--data-dir` asks for.
fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, OpenError> {
    if args.in_memory {
        info!("store: in memory (--in-memory): nothing is kept across restarts");
        return Ok(Arc::new(MemoryStore::new()));
    }
    let store = DurableStore::open(&args.data_dir)?;
    info!(
        "store: {} (format version {FORMAT_VERSION})",
        args.data_dir.display()
    );
    Ok(Arc::new(store))
}

/// What stopping idle actor threads is always given, even when draining
/// used up the grace: they stop in well under this when not busy.
const THREADS_STOP_FLOOR: Duration = Duration::from_millis(100);

/// Dapr's convention: the sidecar's gRPC port comes from DAPR_GRPC_PORT.
fn default_listen() -> SocketAddr {
    let port = std::env::var("DAPR_GRPC_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(50001);
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed here,
/// before the listener binds: a signal that arrives as soon as the port
/// answers must already mean "stop cleanly", not the default "die".
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => info!("SIGINT received"),
            _ = term.recv() => info!("SIGTERM received"),
        }
    })
}
