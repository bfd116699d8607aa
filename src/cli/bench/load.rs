//! The load bench: echo apps registered with a gateway, C callers driving
//! InvokeActor through it for a while, and what each call cost.
//!
//! Where the gateway runs decides how its cost is read:
//! - in this process (the default), on a runtime of its own
//!   ([`HostedGateway`]). The process also runs the callers and the apps, so
//!   process-wide CPU would overstate the gateway: only its own threads count
//!   (its runtime's workers, the actor thread, any actix arbiter). Memory has
//!   no such split, so RSS is reported as the whole process's, and said so.
//! - at `--addr`: a running gateway; with `--pid`, the CPU time and RSS of
//!   that whole process.
//!
//! CPU is read just before and just after the measured run, so connecting,
//! warming up and shutting down are not counted.
//!
//! Callers each get their own HTTP/2 connection unless
//! `--caller-connections` pools them: the callers of a sidecar are
//! independent clients, and a single shared connection would turn the one
//! task serving it on each side into the bottleneck being measured. The
//! baseline gets the same number of connections, so a ratio compares servers
//! and not client setups. It runs first, in this process on a runtime of its
//! own, its threads counted the same way, then the gateway.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::baseline;
use callbackstream::kit::hosted::{HostedGateway, HostedServer};
use callbackstream::kit::load::{self, LoadSpec, LoadSummary, Progress};
use callbackstream::kit::procstat::{self, CpuScope};
use callbackstream::runtime::RuntimeOptions;
use serde::Serialize;

use super::{
    Baseline, BenchArgs, BoxError, Ticker, apps::AppStreams, apps::Connections, connect_pool,
};

/// The baseline's runtime threads are named this.
const BASELINE_THREADS: &str = "base-worker";

/// Where the load goes and how its cost is read.
struct Target {
    label: &'static str,
    url: String,
    cpu: Option<CpuScope>,
    rss: Option<Rss>,
}

/// Whose resident memory to read, and how a report names it.
struct Rss {
    pid: u32,
    scope: &'static str,
}

/// One target's figures.
#[derive(Debug, Serialize)]
struct Measurement {
    #[serde(flatten)]
    load: LoadSummary,
    /// Server CPU time (user + system) over the measured run, per call.
    cpu_us_per_call: Option<f64>,
    cpu_scope: Option<String>,
    rss_kib: Option<u64>,
    rss_scope: Option<&'static str>,
}

/// The gateway as a multiple of the baseline, from one run.
#[derive(Debug, Serialize)]
struct Ratios {
    throughput: f64,
    cpu_per_call: Option<f64>,
    p50_diff_us: i64,
}

#[derive(Debug, Serialize)]
struct Settings {
    gateway: String,
    /// Threads the in-process gateway serves on.
    gateway_threads: Option<usize>,
    /// Whether the in-process gateway runs the actor runtime (turns per actor).
    actor_runtime: Option<bool>,
    /// Whether the in-process gateway records metrics.
    metrics: Option<bool>,
    baseline_threads: Option<usize>,
    apps: usize,
    callers: usize,
    caller_connections: usize,
    payload_bytes: usize,
    actor_ids: usize,
    duration_s: f64,
    warmup_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    settings: Settings,
    gateway: Measurement,
    baseline: Option<Measurement>,
    ratios: Option<Ratios>,
}

pub(super) async fn run(args: &BenchArgs) -> Result<ExitCode, BoxError> {
    let settings = settings(args);
    if !args.json {
        eprintln!("{}", describe(&settings));
    }
    let baseline = match args.baseline {
        Some(Baseline::UnaryEcho) => Some(measure_baseline(args).await?),
        Some(Baseline::MemoryStore) => {
            return Err("--baseline memory-store goes with --state".into());
        }
        None => None,
    };
    let gateway = measure_gateway(args).await?;
    let ratios = baseline.as_ref().map(|b| ratios(&gateway, b));
    let clean = gateway.load.ok > 0 && gateway.load.wrong_replies == 0;
    let report = Report {
        mode: "load",
        settings,
        gateway,
        baseline,
        ratios,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn settings(args: &BenchArgs) -> Settings {
    Settings {
        gateway: args.addr.clone().unwrap_or_else(|| "in-process".into()),
        gateway_threads: args.addr.is_none().then_some(args.threads),
        actor_runtime: args.addr.is_none().then_some(!args.relay_only),
        metrics: args.addr.is_none().then_some(!args.no_metrics),
        baseline_threads: args.baseline.map(|_| baseline_threads(args)),
        apps: args.apps,
        callers: args.callers,
        caller_connections: caller_connections(args),
        payload_bytes: args.payload,
        actor_ids: args.actor_ids,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
    }
}

fn caller_connections(args: &BenchArgs) -> usize {
    args.caller_connections.unwrap_or(args.callers)
}

/// By default as many threads as the gateway serves on: the two servers get
/// the same share of the machine.
fn baseline_threads(args: &BenchArgs) -> usize {
    args.baseline_threads.unwrap_or(args.threads)
}

async fn measure_baseline(args: &BenchArgs) -> Result<Measurement, BoxError> {
    let threads = baseline_threads(args);
    let server = HostedServer::start(BASELINE_THREADS, threads, |listener, stop| async move {
        baseline::serve(listener, stop).await.map_err(Into::into)
    })?;
    let target = Target {
        label: "unary-echo",
        url: server.url(),
        cpu: Some(CpuScope::Threads(vec![BASELINE_THREADS.into()])),
        // Whatever the baseline holds stays in this process's RSS anyway.
        rss: None,
    };
    let measured = measure(&target, args).await;
    server.finished().await?;
    measured
}

async fn measure_gateway(args: &BenchArgs) -> Result<Measurement, BoxError> {
    let (hosted, target) = match &args.addr {
        Some(addr) => (None, external_target(addr, args.pid)),
        None => {
            // As `serve` runs: metrics recorded unless told otherwise.
            if !args.no_metrics {
                callbackstream::metrics::enable();
            }
            let settings = GatewaySettings {
                app_id: "bench".into(),
                // As `serve` runs: every call takes its actor's turn.
                runtime: (!args.relay_only).then(RuntimeOptions::default),
                ..GatewaySettings::default()
            };
            let gateway =
                HostedGateway::start(settings, ConnectionOptions::default(), args.threads)?;
            let target = in_process_target(&gateway);
            (Some(gateway), target)
        }
    };
    let apps = AppStreams::open(
        &target.url,
        args.apps,
        Connections::OnePerStream,
        app_type,
        Arc::default(),
    )
    .await?;
    let measured = measure(&target, args).await;
    apps.close().await;
    if let Some(gateway) = hosted {
        gateway.finished().await?;
    }
    measured
}

fn in_process_target(gateway: &HostedGateway) -> Target {
    Target {
        label: "gateway",
        url: gateway.server().url(),
        cpu: Some(gateway.cpu_scope()),
        rss: Some(Rss {
            pid: std::process::id(),
            scope: "the whole bench process: gateway, echo apps and callers",
        }),
    }
}

fn external_target(addr: &str, pid: Option<u32>) -> Target {
    Target {
        label: "gateway",
        url: addr.into(),
        cpu: pid.map(CpuScope::Process),
        rss: pid.map(|pid| Rss {
            pid,
            scope: "the gateway process",
        }),
    }
}

/// The actor type echo app `i` hosts. Each app hosts its own, because a type
/// is routed to the newest app listing it (SPEC R13): apps sharing one type
/// would leave all but one idle.
fn app_type(i: usize) -> String {
    format!("EchoActor-{i}")
}

/// Warms up, then runs the measured load against `target` with a progress
/// line, reading the server's CPU time on either side of it.
async fn measure(target: &Target, args: &BenchArgs) -> Result<Measurement, BoxError> {
    let pool = connect_pool(&target.url, caller_connections(args)).await?;
    // Read once up front, so a wrong --pid fails before the load rather than after.
    read_cpu(target)?;
    if !args.warmup.is_zero() {
        load::run_on(&pool, spec(args, args.warmup), &Arc::default()).await;
    }
    let progress = Arc::new(Progress::default());
    let ticker = Ticker::start(target.label, "calls", {
        let progress = progress.clone();
        move || progress.calls()
    });
    let cpu_before = read_cpu(target)?;
    let report = load::run_on(&pool, spec(args, args.duration), &progress).await;
    let cpu_after = read_cpu(target)?;
    drop(ticker);
    let calls = report.calls();
    let cpu_us_per_call = cpu_before
        .zip(cpu_after)
        .filter(|_| calls > 0)
        .map(|(before, after)| after.saturating_sub(before).as_secs_f64() * 1e6 / calls as f64);
    let rss_kib = match &target.rss {
        Some(rss) => Some(procstat::rss_kib(rss.pid)?),
        None => None,
    };
    Ok(Measurement {
        load: report.summary(),
        cpu_us_per_call,
        cpu_scope: target.cpu.as_ref().map(CpuScope::describe),
        rss_kib,
        rss_scope: target.rss.as_ref().map(|r| r.scope),
    })
}

fn read_cpu(target: &Target) -> Result<Option<Duration>, BoxError> {
    match &target.cpu {
        Some(scope) => scope
            .read()
            .map(Some)
            .map_err(|e| format!("cannot read the CPU time of {}: {e}", scope.describe()).into()),
        None => Ok(None),
    }
}

fn spec(args: &BenchArgs, duration: Duration) -> LoadSpec {
    LoadSpec {
        callers: args.callers,
        duration,
        max_calls: None,
        payload_bytes: args.payload,
        actor_types: (0..args.apps).map(app_type).collect(),
        actor_ids: args.actor_ids,
        call_timeout: args.call_timeout,
    }
}

fn ratios(gateway: &Measurement, baseline: &Measurement) -> Ratios {
    Ratios {
        throughput: gateway.load.calls_per_sec / baseline.load.calls_per_sec.max(1e-9),
        cpu_per_call: gateway
            .cpu_us_per_call
            .zip(baseline.cpu_us_per_call)
            .map(|(g, b)| g / b.max(1e-9)),
        p50_diff_us: gateway.load.latency_us.p50 as i64 - baseline.load.latency_us.p50 as i64,
    }
}

fn describe(s: &Settings) -> String {
    format!(
        "bench: gateway {}{}{}{}, {} echo app(s), {} callers on {} connection(s), {}-byte payloads over {} actor ids, {}s per run after {}s warm-up",
        s.gateway,
        s.gateway_threads
            .map_or_else(String::new, |n| format!(" on {n} thread(s)")),
        match s.actor_runtime {
            Some(false) => " (relay only)",
            _ => "",
        },
        s.baseline_threads
            .map_or_else(String::new, |n| format!(", baseline on {n}")),
        s.apps,
        s.callers,
        s.caller_connections,
        s.payload_bytes,
        s.actor_ids,
        s.duration_s,
        s.warmup_s
    )
}

fn print_text(report: &Report) {
    println!(
        "{:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>12} {:>8} {:>6}",
        "", "calls/s", "p50 µs", "p90 µs", "p99 µs", "max µs", "CPU µs/call", "errors", "wrong"
    );
    let rows = report
        .baseline
        .iter()
        .map(|b| ("unary-echo", b))
        .chain([("gateway", &report.gateway)]);
    for (name, m) in rows.clone() {
        let l = &m.load;
        println!(
            "{name:<12} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>12} {:>8} {:>6}",
            l.calls_per_sec,
            l.latency_us.p50,
            l.latency_us.p90,
            l.latency_us.p99,
            l.latency_us.max,
            m.cpu_us_per_call
                .map_or_else(|| "-".into(), |c| format!("{c:.1}")),
            l.calls - l.ok,
            l.wrong_replies
        );
    }
    if let Some(r) = &report.ratios {
        println!(
            "gateway / unary-echo: throughput {:.2}x, CPU per call {}, p50 {:+} µs",
            r.throughput,
            r.cpu_per_call
                .map_or_else(|| "unknown".into(), |c| format!("{c:.2}x")),
            r.p50_diff_us
        );
    }
    for (name, m) in rows {
        for (code, n) in &m.load.errors {
            println!("{name} errors: {n} {code}");
        }
        if let Some(scope) = &m.cpu_scope {
            println!("{name} CPU: {scope}");
        }
        if let (Some(kib), Some(scope)) = (m.rss_kib, m.rss_scope) {
            println!("{name} RSS: {:.1} MiB ({scope})", kib as f64 / 1024.0);
        }
    }
}
