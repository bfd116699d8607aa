//! The idle bench: N registered app streams that carry no calls, and what
//! holding them costs the gateway in memory.
//!
//! The gateway is a separate process (started here as a child, or a running
//! one at `--addr` whose `--pid` is given), because RSS is only known per
//! process and this process holds the app side of every stream: measured
//! in-process, the apps' memory would be booked to the gateway. Its RSS is
//! read once it listens and has answered a call, and again once every stream
//! is registered (each stream's registration is acknowledged by the gateway
//! only after its connection is visible to routing, SPEC R8, and GetMetadata
//! must then report `host_ready`) and a moment has passed for the
//! allocator to settle.
//!
//! Each stream has its own HTTP/2 connection, like separate app processes,
//! unless `--shared-connection`. Thousands of connections need as many file
//! descriptors on both sides, so the open-file limit is raised first (the
//! child inherits it); when it cannot be raised far enough the report says so.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callbackstream::kit::procstat;
use callbackstream::proto::GetMetadataRequest;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::service::DEFAULT_MAX_STREAMS;
use serde::Serialize;

use super::apps::{AppStreams, Connections};
use super::child::ChildGateway;
use super::{BenchArgs, BoxError, Ticker, connect};

/// The type every idle stream registers: replicas of one app.
const IDLE_TYPE: &str = "IdleActor";

/// The app id the child gateway is started with, and recognised by.
const CHILD_APP_ID: &str = "callbackstream-bench";

/// How long memory may settle after the last stream registered.
const SETTLE: Duration = Duration::from_secs(1);

/// Descriptors the bench needs besides one per connection.
const SPARE_FDS: u64 = 256;

#[derive(Debug, Serialize)]
struct IdleReport {
    mode: &'static str,
    gateway: String,
    gateway_pid: Option<u32>,
    streams: usize,
    connections: usize,
    open_s: f64,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    per_stream_kib: Option<f64>,
    fd_limit: FdLimit,
}

pub(super) async fn run(args: &BenchArgs, streams: usize) -> Result<ExitCode, BoxError> {
    let connections = if args.shared_connection {
        Connections::Shared
    } else {
        Connections::OnePerStream
    };
    let connection_count = match connections {
        Connections::Shared => streams.min(1),
        Connections::OnePerStream => streams,
    };
    let fd_limit = raise_fd_limit(connection_count as u64 + SPARE_FDS);
    if let Some(warning) = &fd_limit.warning {
        eprintln!("warning: {warning}");
    }
    let (child, url, pid) = match &args.addr {
        Some(addr) => (None, addr.clone(), args.pid),
        None => {
            // The gateway's own stream limit must not be what the run measures.
            let max_streams = streams.max(DEFAULT_MAX_STREAMS);
            let child = ChildGateway::start(CHILD_APP_ID, max_streams, args.threads).await?;
            let (url, pid) = (child.url(), child.pid());
            (Some(child), url, Some(pid))
        }
    };
    check_gateway(&url, child.is_some()).await?;
    let rss_before = read_rss(pid)?;

    let opened = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start("opening streams", "streams", {
        let opened = opened.clone();
        move || opened.load(Ordering::Relaxed)
    });
    let started = Instant::now();
    let apps = AppStreams::open(
        &url,
        streams,
        connections,
        |_| IDLE_TYPE.into(),
        opened.clone(),
    )
    .await?;
    let open_s = started.elapsed().as_secs_f64();
    drop(ticker);
    if streams > 0 && !host_ready(&url).await? {
        return Err("every stream was acknowledged, yet the gateway reports no host ready".into());
    }
    tokio::time::sleep(SETTLE).await;
    let rss_after = read_rss(pid)?;

    let report = IdleReport {
        mode: "idle",
        gateway: url,
        gateway_pid: pid,
        streams,
        connections: connection_count,
        open_s,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        per_stream_kib: per_stream(rss_before, rss_after, streams),
        fd_limit,
    };
    apps.close().await;
    if let Some(child) = child {
        child.stop().await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The gateway answers GetMetadata; a child we started also has our app id
/// (anything else listening on its port is not our gateway).
async fn check_gateway(url: &str, ours: bool) -> Result<(), BoxError> {
    let meta = DaprClient::new(connect(url).await?)
        .get_metadata(GetMetadataRequest {})
        .await?
        .into_inner();
    if ours && meta.id != CHILD_APP_ID {
        return Err(format!("{url} is not the gateway we started (app id {:?})", meta.id).into());
    }
    Ok(())
}

async fn host_ready(url: &str) -> Result<bool, BoxError> {
    let meta = DaprClient::new(connect(url).await?)
        .get_metadata(GetMetadataRequest {})
        .await?
        .into_inner();
    Ok(meta.actor_runtime.is_some_and(|r| r.host_ready))
}

fn read_rss(pid: Option<u32>) -> Result<Option<u64>, BoxError> {
    pid.map(|pid| {
        procstat::rss_kib(pid).map_err(|e| format!("cannot read the RSS of process {pid}: {e}"))
    })
    .transpose()
    .map_err(Into::into)
}

fn per_stream(before: Option<u64>, after: Option<u64>, streams: usize) -> Option<f64> {
    let (before, after) = before.zip(after)?;
    (streams > 0).then(|| (after as f64 - before as f64) / streams as f64)
}

/// The open-file limit after trying to make room for `needed` descriptors.
#[derive(Debug, Serialize)]
struct FdLimit {
    needed: u64,
    soft: u64,
    hard: u64,
    /// The soft limit before the bench raised it.
    was: u64,
    warning: Option<String>,
}

/// Raises the soft limit to the hard one, and both to `needed` when the hard
/// one is lower (which only a privileged process may do).
fn raise_fd_limit(needed: u64) -> FdLimit {
    let Some(was) = nofile_limit() else {
        return FdLimit {
            needed,
            soft: 0,
            hard: 0,
            was: 0,
            warning: Some("cannot read the open-file limit".into()),
        };
    };
    let target = libc::rlimit {
        rlim_cur: was.rlim_max.max(needed),
        rlim_max: was.rlim_max.max(needed),
    };
    if !set_nofile_limit(&target) && was.rlim_cur < was.rlim_max {
        set_nofile_limit(&libc::rlimit {
            rlim_cur: was.rlim_max,
            rlim_max: was.rlim_max,
        });
    }
    let now = nofile_limit().unwrap_or(was);
    let warning = (now.rlim_cur < needed).then(|| {
        format!(
            "the open-file limit is {} (hard {}), below the {needed} this run needs; \
             opening streams will fail once it is reached (raise it with `ulimit -n`, as root if need be)",
            now.rlim_cur, now.rlim_max
        )
    });
    FdLimit {
        needed,
        soft: now.rlim_cur,
        hard: now.rlim_max,
        was: was.rlim_cur,
        warning,
    }
}

fn nofile_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

fn set_nofile_limit(limit: &libc::rlimit) -> bool {
    // SAFETY: setrlimit only reads the struct it is given.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) == 0 }
}

fn print_text(r: &IdleReport) {
    let mib = |kib: Option<u64>| {
        kib.map_or_else(
            || "unknown".into(),
            |k| format!("{:.1} MiB", k as f64 / 1024.0),
        )
    };
    println!(
        "{} idle app streams on {} connection(s) opened in {:.1}s",
        r.streams, r.connections, r.open_s
    );
    match r.gateway_pid {
        Some(pid) => println!(
            "gateway (pid {pid}) RSS: {} before, {} with the streams",
            mib(r.rss_before_kib),
            mib(r.rss_after_kib)
        ),
        None => println!("gateway RSS: unknown (give --pid to read it)"),
    }
    if let Some(kib) = r.per_stream_kib {
        println!("per stream: {kib:.1} KiB");
    }
    println!(
        "open-file limit: {} (hard {}, was {}; this run needs about {})",
        r.fd_limit.soft, r.fd_limit.hard, r.fd_limit.was, r.fd_limit.needed
    );
}
