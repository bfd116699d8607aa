//! `callbackstream soak`: the chaos workload (see `callbackstream::kit::chaos`)
//! against a gateway in this process for a long while, watching memory.
//!
//! Apps connect, serve, close, crash and stall; callers keep calling with
//! deadlines. A progress line every `--progress` shows the calls and the
//! process's resident memory; at the end the tally, RSS after warm-up and at
//! the end of the load, and the growth. Exits non-zero if any invariant broke
//! (a hung call, a wrong reply, an unexpected status, a close the gateway
//! never ended), if anything was left registered or pending, or if RSS grew
//! by `--max-growth` percent or more.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::chaos::{self, ChaosCounters, ChaosReport, ChaosSpec, ChaosTarget};
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::kit::procstat;
use callbackstream::manager::{CountPending, Describe};
use clap::Args;

use super::{CliResult, duration};

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long the load runs after the warm-up.
    #[arg(long, default_value = "10m", value_parser = duration)]
    duration: Duration,
    /// Load before the starting RSS is taken (allocator pools, buffers and
    /// connection tables reach their working size).
    #[arg(long, default_value = "30s", value_parser = duration)]
    warmup: Duration,
    /// How often to print a progress line.
    #[arg(long, default_value = "10s", value_parser = duration)]
    progress: Duration,
    /// App slots, each connecting, serving and failing over and over.
    #[arg(long, default_value_t = 4)]
    apps: usize,
    /// Callers through the front door (gRPC InvokeActor).
    #[arg(long, default_value_t = 8)]
    grpc_callers: usize,
    /// Callers through the library's typed transport (in process).
    #[arg(long, default_value_t = 4)]
    library_callers: usize,
    /// Each call's deadline.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    call_timeout: Duration,
    /// Seed of the workload's random choices.
    #[arg(long, default_value_t = 0x5eed_cafe)]
    seed: u64,
    /// Fail if RSS grew by this many percent or more after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    max_growth: f64,
}

pub async fn run(args: SoakArgs) -> CliResult {
    let gateway = HostedGateway::start(
        GatewaySettings {
            app_id: "soak".into(),
            ..GatewaySettings::default()
        },
        ConnectionOptions::default(),
        1,
    )?;
    let mut spec = ChaosSpec::new(args.warmup + args.duration);
    spec.apps = args.apps;
    spec.grpc_callers = args.grpc_callers;
    spec.library_callers = args.library_callers;
    spec.call_timeout = args.call_timeout;
    spec.seed = args.seed;
    println!(
        "soak: gateway on {}, {} app slots, {} gRPC + {} library callers, {:?} deadline, \
         {:?} warm-up then {:?}, seed {:#x}",
        gateway.server().addr(),
        spec.apps,
        spec.grpc_callers,
        spec.library_callers,
        spec.call_timeout,
        args.warmup,
        args.duration,
        spec.seed
    );

    let target = ChaosTarget {
        url: gateway.server().url(),
        manager: Some(gateway.manager()),
    };
    let counters = Arc::new(ChaosCounters::default());
    let mut load = tokio::spawn(chaos::run(target, spec, counters.clone()));
    let started = Instant::now();
    let mut memory = Memory::default();
    let mut ticks = tokio::time::interval(args.progress);
    ticks.tick().await;
    let report = loop {
        tokio::select! {
            done = &mut load => break done??,
            _ = ticks.tick() => {
                let elapsed = started.elapsed();
                let rss = rss_kib()?;
                if elapsed >= args.warmup {
                    memory.sample(rss);
                }
                print_progress(elapsed, &counters.snapshot(), rss, &memory);
            }
        }
    };
    // The end figure is taken under load, like the start one, so the two
    // compare like with like.
    let end = memory.last.or(memory.start);
    let after_load = rss_kib()?;

    let view = gateway.manager().send(Describe).await?;
    let pending = gateway.manager().send(CountPending).await?;
    gateway
        .finished()
        .await
        .map_err(|e| e as Box<dyn std::error::Error>)?;

    println!("soak done after {:.0?}: {report}", started.elapsed());
    let mut failures = report.violations();
    if !view.connections.is_empty() || pending != 0 {
        failures.push(format!(
            "left behind: {} connection(s), {pending} pending",
            view.connections.len()
        ));
    }
    match (memory.start, end) {
        (Some(start), Some(end)) => {
            let growth = growth_percent(start, end);
            println!(
                "RSS: {} after the warm-up, {} at the end of the load ({growth:+.1}%), \
                 peak {}, {} once the apps were gone",
                mib(start),
                mib(end),
                mib(memory.peak),
                mib(after_load)
            );
            if growth >= args.max_growth {
                failures.push(format!(
                    "RSS grew {growth:.1}% (limit {}%)",
                    args.max_growth
                ));
            }
        }
        _ => failures.push("the run ended before the warm-up did: no RSS figures".into()),
    }
    if failures.is_empty() {
        println!("soak: OK");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("soak: FAILED: {}", failures.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

/// RSS samples taken after the warm-up, in KiB.
#[derive(Debug, Default)]
struct Memory {
    start: Option<u64>,
    last: Option<u64>,
    peak: u64,
}

impl Memory {
    fn sample(&mut self, rss: u64) {
        self.start.get_or_insert(rss);
        self.last = Some(rss);
        self.peak = self.peak.max(rss);
    }
}

fn rss_kib() -> std::io::Result<u64> {
    procstat::rss_kib(std::process::id())
}

fn print_progress(elapsed: Duration, report: &ChaosReport, rss: u64, memory: &Memory) {
    let growth = memory
        .start
        .map(|start| format!(" ({:+.1}% since warm-up)", growth_percent(start, rss)))
        .unwrap_or_else(|| " (warming up)".into());
    println!(
        "[{:>5.0}s] calls {} (OK {}, errors {}: UNAVAILABLE {}, DEADLINE_EXCEEDED {}), \
         hung {}, wrong {}, app sessions {}, RSS {}{growth}",
        elapsed.as_secs_f64(),
        report.calls,
        report.ok,
        report.errors(),
        report.unavailable,
        report.deadline_exceeded,
        report.hung,
        report.wrong,
        report.sessions,
        mib(rss)
    );
}

fn growth_percent(start: u64, end: u64) -> f64 {
    (end as f64 - start as f64) * 100.0 / (start.max(1) as f64)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
