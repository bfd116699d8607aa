//! `callbackstream bench`: what a callback through the gateway costs, in
//! throughput, latency, CPU per call and memory per app stream.
//!
//! Six modes, one per file: `load` (the default: echo apps, C callers, a
//! timed run, optionally beside a unary-echo baseline), `idle` (`--idle
//! N`: N idle app streams and the gateway's memory), `actors` (`--actors
//! N`: N actors activated through the runtime, their rate and memory),
//! `timers` (`--timers N`: fire lateness, missed and duplicate fires),
//! `state` (`--state`: durable state transactions and the group commit) and
//! `reminders` (`--reminders N`: durable registration rate, fires, and a
//! restart: how soon it serves and the memory the reminders take); `fires`
//! judges the fires of timers and reminders; `apps` runs the echo
//! apps the modes open, on a thread of their own; `child` starts the
//! separate gateway process the idle and reminders modes measure. This file holds the
//! arguments and what the modes share: connecting, and the progress line.
//!
//! Every wait is bounded (connects, each call's deadline, shutdowns), and
//! Ctrl-C drops the run: in-process servers stop and a child gateway is
//! killed on the way out.

mod actors;
mod apps;
mod child;
mod fires;
mod idle;
mod load;
mod reminders;
mod state;
mod timers;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::{CliResult, at_least_one, duration};

/// An error a bench step can end with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long opening one connection or one app stream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections or streams being opened at once: enough to open thousands in
/// seconds, few enough not to overrun the gateway's accept backlog.
const OPENING_AT_ONCE: usize = 64;

/// How long closing the app streams may take before they are dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A running gateway to measure [default: start one in this process].
    #[arg(long)]
    addr: Option<String>,
    /// The pid of the gateway at --addr, to report its CPU time and memory.
    #[arg(long, requires = "addr")]
    pid: Option<u32>,
    /// Echo app streams, each on its own connection and hosting its own actor type.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    apps: usize,
    /// Concurrent callers.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    callers: usize,
    /// HTTP/2 connections the callers share, round robin [default: one per caller].
    #[arg(long, value_parser = at_least_one)]
    caller_connections: Option<usize>,
    /// How long each measured run lasts.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Load run before each measured run, not counted.
    #[arg(long, default_value = "1s", value_parser = duration)]
    warmup: Duration,
    /// Request payload size in bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Actor ids the calls are spread over.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    actor_ids: usize,
    /// Each call's gRPC deadline.
    #[arg(long, default_value = "5s", value_parser = duration)]
    call_timeout: Duration,
    /// Measure this baseline first, with the same callers, and report the ratios.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Instead of load: hold N idle registered app streams and report the gateway's memory.
    #[arg(long, value_name = "N", conflicts_with_all = [
        "baseline", "apps", "callers", "caller_connections", "duration", "warmup",
        "payload", "actor_ids", "call_timeout",
    ])]
    idle: Option<usize>,
    /// Instead of load: call N actor ids once each through an in-process
    /// gateway with the actor runtime, and report the activation rate and
    /// the memory per active actor.
    #[arg(long, value_name = "N", conflicts_with_all = [
        "baseline", "apps", "duration", "warmup", "payload", "actor_ids", "idle", "addr", "relay_only",
    ])]
    actors: Option<usize>,
    /// Instead of load: register N timers, one per actor, on an in-process
    /// gateway, and report their fire lateness, missed and duplicate fires
    /// over --duration, and the gateway's CPU.
    #[arg(long, value_name = "N", conflicts_with_all = [
        "baseline", "apps", "payload", "actor_ids", "idle", "addr", "relay_only", "actors",
    ])]
    timers: Option<usize>,
    /// With --timers: how long after registration each timer first fires.
    #[arg(long, default_value = "1s", value_parser = duration, requires = "timers")]
    timer_due: Duration,
    /// With --timers: the period between fires.
    #[arg(long, default_value = "1s", value_parser = duration, requires = "timers")]
    timer_period: Duration,
    /// Instead of load: register N durable reminders, one per actor, with
    /// --callers callers, on a gateway process over a scratch --data-dir;
    /// report the registration rate, the fires' lateness, missed and
    /// duplicate fires over --duration, then restart the gateway and report
    /// how soon it serves, how many reminders it restored, and the memory
    /// they take.
    #[arg(long, value_name = "N", conflicts_with_all = [
        "baseline", "apps", "payload", "actor_ids", "idle", "addr", "relay_only", "actors", "timers",
    ])]
    reminders: Option<usize>,
    /// With --reminders: how long after registration each reminder first fires.
    #[arg(long, default_value = "1s", value_parser = duration, requires = "reminders")]
    reminder_due: Duration,
    /// With --reminders: the period between fires.
    #[arg(long, default_value = "1s", value_parser = duration, requires = "reminders")]
    reminder_period: Duration,
    /// Instead of load: --callers callers run durable state transactions
    /// (ExecuteActorStateTransaction, one upsert of --payload bytes) on an
    /// in-process gateway with a durable store, and report tx/s, latency,
    /// and transactions per disk fsync beside the disk's own fsync rate.
    #[arg(long, conflicts_with_all = [
        "apps", "actor_ids", "idle", "addr", "relay_only", "actors", "timers",
        "reminders",
    ])]
    state: bool,
    /// With --state: the data directory (new, or empty) [default: a scratch
    /// directory under the system's temporary directory, removed afterwards].
    #[arg(long, requires = "state")]
    data_dir: Option<std::path::PathBuf>,
    /// With --idle: open every stream on one HTTP/2 connection.
    #[arg(long, requires = "idle")]
    shared_connection: bool,
    /// Threads the gateway serves on, when the bench starts it (in-process, or
    /// the --idle child) [default: as `callbackstream serve`, one per core].
    #[arg(long, default_value_t = callbackstream::threads::default_threads(), value_parser = at_least_one, conflicts_with = "addr")]
    threads: usize,
    /// Worker threads of the baseline's server [default: as many as --threads].
    #[arg(long, value_parser = at_least_one, requires = "baseline")]
    baseline_threads: Option<usize>,
    /// Run the in-process gateway without the actor runtime: calls are
    /// relayed without taking their actor's turn (the relay's own cost).
    #[arg(long, conflicts_with = "addr")]
    relay_only: bool,
    /// Record no metrics in the in-process gateway (`serve --no-metrics`),
    /// to measure what recording them costs.
    #[arg(long, conflicts_with = "addr")]
    no_metrics: bool,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    json: bool,
}

/// What the gateway is compared with.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Baseline {
    /// A plain tonic InvokeActor that answers with the request's data (no stream hop).
    UnaryEcho,
    /// With --state: the same transactions on an in-memory store (what
    /// durability costs).
    MemoryStore,
}

pub async fn run(args: BenchArgs) -> CliResult {
    quiet_logs();
    let bench = async {
        match (args.idle, args.actors, args.timers, args.reminders) {
            _ if args.state => state::run(&args).await,
            (Some(streams), ..) => idle::run(&args, streams).await,
            (None, Some(actors), ..) => actors::run(&args, actors).await,
            (None, None, Some(timers), _) => timers::run(&args, timers).await,
            (None, None, None, Some(reminders)) => reminders::run(&args, reminders).await,
            (None, None, None, None) => load::run(&args).await,
        }
    };
    tokio::select! {
        result = bench => result.map_err(|e| e as Box<dyn std::error::Error>),
        _ = tokio::signal::ctrl_c() => {
            // Dropping the bench stops in-process servers and kills a child gateway.
            eprintln!("\ninterrupted");
            Ok(ExitCode::from(130))
        }
    }
}

/// The gateway's info lines (serving, stopping) would interleave with the
/// progress line; warnings still show, and RUST_LOG still decides if set.
fn quiet_logs() {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// A new HTTP/2 connection to `url`.
async fn connect(url: &str) -> Result<Channel, BoxError> {
    let endpoint = Endpoint::from_shared(url.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {}", with_causes(&e)).into())
}

/// An error with its chain of causes: tonic's "transport error" alone does
/// not say that the descriptors ran out.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        // Some errors repeat their cause in their own text.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = e.source();
    }
    text
}

/// `count` new connections to `url`.
async fn connect_pool(url: &str, count: usize) -> Result<Vec<Channel>, BoxError> {
    futures::stream::iter(0..count)
        .map(|_| connect(url))
        .buffered(OPENING_AT_ONCE)
        .try_collect()
        .await
}

/// A once-a-second progress line on stderr: overwritten in place on a
/// terminal, one line per second otherwise (logs, CI). Stops when dropped.
struct Ticker {
    task: JoinHandle<()>,
    terminal: bool,
}

impl Ticker {
    /// Shows `label`, the time so far, `count()` `noun`s and their rate over the last second.
    fn start(
        label: impl Into<String>,
        noun: &'static str,
        count: impl Fn() -> u64 + Send + 'static,
    ) -> Self {
        let label = label.into();
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks = tokio::time::interval_at(
                (started + Duration::from_secs(1)).into(),
                Duration::from_secs(1),
            );
            let mut last = (started, 0);
            loop {
                ticks.tick().await;
                let (now, n) = (Instant::now(), count());
                let rate = n.saturating_sub(last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, n);
                let line = format!(
                    "{label}: {:>3.0}s  {n} {noun}  {rate:.0}/s",
                    (now - started).as_secs_f64()
                );
                if terminal {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
            }
        });
        Ticker { task, terminal }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
        if self.terminal {
            eprint!("\r\x1b[K");
        }
    }
}
