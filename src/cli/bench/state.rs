//! The durable state bench (`--state`): C callers, each with an actor of its
//! own, run ExecuteActorStateTransaction back to back through the front door
//! of an in-process gateway whose store is a `DurableStore` (SPEC P2: each
//! OK means the transaction is on disk). It reports transactions per second,
//! their latency, and what the group commit did: the store's commits, the
//! transactions per commit, and the disk's own fsync rate measured in the
//! same data directory just before the load, so that the transactions per
//! fsync show what sharing commits buys over one fsync per transaction.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, InvokeActorRequest, TransactionalActorStateOperation,
};
use callbackstream::runtime::RuntimeOptions;
use callbackstream::store::{CommitStats, DurableStore, MemoryStore, Store};
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::Request;
use tonic::transport::Channel;

use super::apps::{AppStreams, Connections};
use super::child::ScratchDir;
use super::{Baseline, BenchArgs, BoxError, Ticker, connect_pool};

const ACTOR_TYPE: &str = "StateActor";

/// How long the disk's fsync rate is measured, before the load and again
/// after it: on a shared disk it moves, and the mean of both is closer to
/// what the store saw than either.
const FSYNC_PROBE: Duration = Duration::from_secs(1);

/// What the probe writes before each fsync: one page, as a small commit does.
const PROBE_BYTES: usize = 4096;

/// Pages the probe's file holds, written in turn (16 MiB).
const PROBE_PAGES: u64 = 4096;

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    data_dir: PathBuf,
    callers: usize,
    payload_bytes: usize,
    /// The durable store's run.
    #[serde(flatten)]
    durable: Run,
    /// Durable commits the store made during the measured run.
    store_commits: u64,
    tx_per_commit: f64,
    /// The disk's own rate of write + fsync, in the same directory: the mean
    /// of the probes before and after the load, and each.
    disk_fsyncs_per_sec: f64,
    disk_fsyncs_per_sec_before: f64,
    disk_fsyncs_per_sec_after: f64,
    /// tx/s over the disk's fsync/s: what the group commit buys.
    tx_per_disk_fsync: f64,
    /// With `--baseline memory-store`: the same load on an in-memory store,
    /// measured first.
    baseline_memory_store: Option<Run>,
}

/// What one measured run of the load gave.
#[derive(Debug, Serialize)]
struct Run {
    elapsed_s: f64,
    transactions: u64,
    errors: BTreeMap<String, u64>,
    tx_per_sec: f64,
    latency_us: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

/// What one caller measured.
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            ok: 0,
            errors: BTreeMap::new(),
            // 1 µs to 60 s at 3 significant digits; later values saturate.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    fn run(self, elapsed: Duration) -> Run {
        Run {
            elapsed_s: elapsed.as_secs_f64(),
            transactions: self.ok,
            tx_per_sec: self.ok as f64 / elapsed.as_secs_f64().max(1e-9),
            latency_us: Latency {
                p50: self.latency_us.value_at_quantile(0.50),
                p90: self.latency_us.value_at_quantile(0.90),
                p99: self.latency_us.value_at_quantile(0.99),
                max: self.latency_us.max(),
            },
            errors: self.errors,
        }
    }
}

pub(super) async fn run(args: &BenchArgs) -> Result<ExitCode, BoxError> {
    let baseline_memory_store = match args.baseline {
        None => None,
        Some(Baseline::MemoryStore) => {
            let store = Arc::new(MemoryStore::new());
            let (run, _) = measure(args, store, CommitStats::default).await?;
            Some(run)
        }
        Some(other) => return Err(format!("--state has no {other:?} baseline").into()),
    };
    // The directory given is kept; a scratch one is removed at the end.
    let (path, _scratch) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let scratch = ScratchDir::create("state")?;
            (scratch.data_dir(), Some(scratch))
        }
    };
    let store = Arc::new(DurableStore::open(&path)?);
    let fsyncs_before = probe_disk(&path).await?;
    let stats = {
        let store = store.clone();
        move || store.commit_stats()
    };
    let (durable, (before, after)) = measure(args, store, stats).await?;
    let fsyncs_after = probe_disk(&path).await?;
    let disk_fsyncs_per_sec = (fsyncs_before + fsyncs_after) / 2.0;

    let store_commits = after.commits - before.commits;
    let report = Report {
        mode: "state",
        data_dir: path.clone(),
        callers: args.callers,
        payload_bytes: args.payload,
        store_commits,
        tx_per_commit: (after.batches - before.batches) as f64 / store_commits.max(1) as f64,
        disk_fsyncs_per_sec,
        disk_fsyncs_per_sec_before: fsyncs_before,
        disk_fsyncs_per_sec_after: fsyncs_after,
        tx_per_disk_fsync: durable.tx_per_sec / disk_fsyncs_per_sec.max(1e-9),
        durable,
        baseline_memory_store,
    };
    print(&report, args.json)?;
    let clean = |run: &Run| run.errors.is_empty() && run.transactions > 0;
    let baseline_clean = report.baseline_memory_store.as_ref().is_none_or(clean);
    Ok(if clean(&report.durable) && baseline_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the load on a gateway over `store`: warmup, then the measured run.
/// `stats` is read when the first caller starts measuring and at the end.
async fn measure(
    args: &BenchArgs,
    store: Arc<dyn Store>,
    stats: impl Fn() -> CommitStats + Send + Sync + 'static,
) -> Result<(Run, (CommitStats, CommitStats)), BoxError> {
    let settings = GatewaySettings {
        app_id: "bench".into(),
        runtime: Some(RuntimeOptions::default()),
        store,
        ..GatewaySettings::default()
    };
    let gateway = HostedGateway::start(settings, ConnectionOptions::default(), args.threads)?;
    let url = gateway.server().url();
    let apps = AppStreams::open(
        &url,
        1,
        Connections::OnePerStream,
        |_| ACTOR_TYPE.into(),
        Arc::default(),
    )
    .await?;
    let pool = connect_pool(&url, args.callers).await?;

    let done = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start("state transactions", "tx", {
        let done = done.clone();
        move || done.load(Ordering::Relaxed)
    });
    let started = Instant::now() + args.warmup;
    let until = started + args.duration;
    let stats = Arc::new(stats);
    let before = Arc::new(OnceLock::new());
    let callers = pool.iter().enumerate().map(|(i, channel)| {
        let caller = Caller {
            channel: channel.clone(),
            actor_id: format!("caller-{i}"),
            payload: vec![b'x'; args.payload],
            timeout: args.call_timeout,
        };
        let (done, stats, before) = (done.clone(), stats.clone(), before.clone());
        tokio::spawn(async move {
            caller
                .run(started, until, &done, || {
                    // The first caller past the warmup reads the counters.
                    before.get_or_init(|| stats());
                })
                .await
        })
    });
    let mut tally = Tally::new();
    for caller in futures::future::join_all(callers).await {
        tally.merge(caller?);
    }
    let after = stats();
    let elapsed = Instant::now().saturating_duration_since(started);
    drop(ticker);
    apps.close().await;
    gateway.finished().await?;
    let before = before.get().copied().unwrap_or(after);
    Ok((tally.run(elapsed), (before, after)))
}

fn print(report: &Report, json: bool) -> Result<(), BoxError> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(baseline) = &report.baseline_memory_store {
        print_run("in-memory store (baseline)", baseline, report.callers);
    }
    print_run("durable store", &report.durable, report.callers);
    println!(
        "store: {} commits, {:.1} tx per commit; disk: {:.0} fsync/s (write + fsync in {}: {:.0} before the load, {:.0} after), {:.1} tx per disk fsync",
        report.store_commits,
        report.tx_per_commit,
        report.disk_fsyncs_per_sec,
        report.data_dir.display(),
        report.disk_fsyncs_per_sec_before,
        report.disk_fsyncs_per_sec_after,
        report.tx_per_disk_fsync
    );
    Ok(())
}

fn print_run(label: &str, run: &Run, callers: usize) {
    let l = &run.latency_us;
    println!(
        "{label}: {} state transactions in {:.1}s from {callers} callers: {:.0} tx/s; latency p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
        run.transactions, run.elapsed_s, run.tx_per_sec, l.p50, l.p90, l.p99, l.max
    );
    if !run.errors.is_empty() {
        println!("{label}: errors {:?}", run.errors);
    }
}

/// One caller: activates its actor, then runs transactions until `until`,
/// counting those that end after `started`.
struct Caller {
    channel: Channel,
    actor_id: String,
    payload: Vec<u8>,
    timeout: Duration,
}

impl Caller {
    async fn run(
        self,
        started: Instant,
        until: Instant,
        done: &AtomicU64,
        on_measuring: impl Fn(),
    ) -> Tally {
        let mut tally = Tally::new();
        let mut client = DaprClient::new(self.channel.clone());
        if let Err(status) = client.invoke_actor(self.activation()).await {
            *tally
                .errors
                .entry(format!("activate: {:?}", status.code()))
                .or_default() += 1;
            return tally;
        }
        let mut measuring = false;
        let mut n = 0u64;
        loop {
            let sent = Instant::now();
            if sent >= until {
                return tally;
            }
            if !measuring && sent >= started {
                measuring = true;
                on_measuring();
            }
            n += 1;
            let outcome = client
                .execute_actor_state_transaction(self.transaction(n))
                .await;
            if !measuring {
                continue;
            }
            done.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok(_) => {
                    tally.ok += 1;
                    let us = sent.elapsed().as_micros().max(1) as u64;
                    tally.latency_us.saturating_record(us);
                }
                Err(status) => {
                    *tally
                        .errors
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1
                }
            }
        }
    }

    fn activation(&self) -> Request<InvokeActorRequest> {
        let mut request = Request::new(InvokeActorRequest {
            actor_type: ACTOR_TYPE.into(),
            actor_id: self.actor_id.clone(),
            method: "activate".into(),
            ..Default::default()
        });
        request.set_timeout(self.timeout);
        request
    }

    fn transaction(&self, n: u64) -> Request<ExecuteActorStateTransactionRequest> {
        let mut value = self.payload.clone();
        // Each transaction's value differs, as a real update's would.
        let tag = n.to_be_bytes();
        let len = value.len().min(tag.len());
        value[..len].copy_from_slice(&tag[..len]);
        let mut request = Request::new(ExecuteActorStateTransactionRequest {
            actor_type: ACTOR_TYPE.into(),
            actor_id: self.actor_id.clone(),
            operations: vec![TransactionalActorStateOperation {
                operation_type: "upsert".into(),
                key: "state".into(),
                value: Some(prost_types::Any {
                    type_url: String::new(),
                    value,
                }),
                metadata: Default::default(),
            }],
        });
        request.set_timeout(self.timeout);
        request
    }
}

async fn probe_disk(dir: &Path) -> Result<f64, BoxError> {
    let dir = dir.to_owned();
    Ok(tokio::task::spawn_blocking(move || fsync_rate(&dir, FSYNC_PROBE)).await??)
}

/// How many write + fsync rounds of one page the disk under `dir` does per
/// second: the cost of one durable commit, shared or not.
///
/// Each round writes the next page of a file allocated beforehand, as a
/// copy-on-write commit writes fresh pages; the file never grows, which
/// would add a metadata update to every round.
fn fsync_rate(dir: &Path, probe: Duration) -> std::io::Result<f64> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let page = [0x5Au8; PROBE_BYTES];
    for slot in 0..PROBE_PAGES {
        file.write_all_at(&page, slot * PROBE_BYTES as u64)?;
    }
    file.sync_all()?;
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < probe {
        let slot = rounds % PROBE_PAGES;
        file.write_all_at(&page, slot * PROBE_BYTES as u64)?;
        file.sync_data()?;
        rounds += 1;
    }
    let rate = rounds as f64 / start.elapsed().as_secs_f64();
    drop::<File>(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}
