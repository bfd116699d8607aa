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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{
    ExecuteActorStateTransactionRequest, InvokeActorRequest, TransactionalActorStateOperation,
};
use callbackstream::runtime::RuntimeOptions;
use callbackstream::store::{CommitStats, DurableStore};
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::Request;
use tonic::transport::Channel;

use super::apps::{AppStreams, Connections};
use super::{BenchArgs, BoxError, Ticker, connect_pool};

const ACTOR_TYPE: &str = "StateActor";

/// How long the disk's fsync rate is measured.
const FSYNC_PROBE: Duration = Duration::from_secs(2);

/// What the probe writes before each fsync: one page, as a small commit does.
const PROBE_BYTES: usize = 4096;

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    data_dir: PathBuf,
    callers: usize,
    payload_bytes: usize,
    elapsed_s: f64,
    transactions: u64,
    errors: BTreeMap<String, u64>,
    tx_per_sec: f64,
    latency_us: Latency,
    /// Durable commits the store made during the measured run.
    store_commits: u64,
    tx_per_commit: f64,
    /// The disk's own rate of write + fsync, in the same directory.
    disk_fsyncs_per_sec: f64,
    /// tx/s over the disk's fsync/s: what the group commit buys.
    tx_per_disk_fsync: f64,
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
}

pub(super) async fn run(args: &BenchArgs) -> Result<ExitCode, BoxError> {
    let scratch = Scratch::new(args.data_dir.clone())?;
    let store = Arc::new(DurableStore::open(&scratch.path)?);
    let disk_fsyncs_per_sec = tokio::task::spawn_blocking({
        let dir = scratch.path.clone();
        move || fsync_rate(&dir, FSYNC_PROBE)
    })
    .await??;
    let settings = GatewaySettings {
        app_id: "bench".into(),
        runtime: Some(RuntimeOptions::default()),
        store: store.clone(),
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
    let before = Arc::new(std::sync::Mutex::new(None::<CommitStats>));
    let callers = pool.iter().enumerate().map(|(i, channel)| {
        let caller = Caller {
            channel: channel.clone(),
            actor_id: format!("caller-{i}"),
            payload: vec![b'x'; args.payload],
            timeout: args.call_timeout,
        };
        let (done, store, before) = (done.clone(), store.clone(), before.clone());
        tokio::spawn(async move {
            caller
                .run(started, until, &done, || {
                    // The first caller past the warmup reads the counters.
                    let mut before = before.lock().unwrap_or_else(|e| e.into_inner());
                    before.get_or_insert_with(|| store.commit_stats());
                })
                .await
        })
    });
    let mut tally = Tally::new();
    for caller in futures::future::join_all(callers).await {
        tally.merge(caller?);
    }
    let after = store.commit_stats();
    let elapsed = Instant::now().saturating_duration_since(started);
    drop(ticker);
    apps.close().await;
    gateway.finished().await?;
    let before = before
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(after);

    let store_commits = after.commits - before.commits;
    let tx_per_sec = tally.ok as f64 / elapsed.as_secs_f64().max(1e-9);
    let report = Report {
        mode: "state",
        data_dir: scratch.path.clone(),
        callers: args.callers,
        payload_bytes: args.payload,
        elapsed_s: elapsed.as_secs_f64(),
        transactions: tally.ok,
        errors: tally.errors.clone(),
        tx_per_sec,
        latency_us: Latency {
            p50: tally.latency_us.value_at_quantile(0.50),
            p90: tally.latency_us.value_at_quantile(0.90),
            p99: tally.latency_us.value_at_quantile(0.99),
            max: tally.latency_us.max(),
        },
        store_commits,
        tx_per_commit: (after.batches - before.batches) as f64 / store_commits.max(1) as f64,
        disk_fsyncs_per_sec,
        tx_per_disk_fsync: tx_per_sec / disk_fsyncs_per_sec.max(1e-9),
    };
    print(&report, args.json)?;
    Ok(if report.errors.is_empty() && report.transactions > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print(report: &Report, json: bool) -> Result<(), BoxError> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let l = &report.latency_us;
    println!(
        "{} durable state transactions in {:.1}s from {} callers: {:.0} tx/s; latency p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
        report.transactions,
        report.elapsed_s,
        report.callers,
        report.tx_per_sec,
        l.p50,
        l.p90,
        l.p99,
        l.max
    );
    println!(
        "store: {} commits, {:.1} tx per commit; disk: {:.0} fsync/s (write + fsync in {}), {:.1} tx per disk fsync",
        report.store_commits,
        report.tx_per_commit,
        report.disk_fsyncs_per_sec,
        report.data_dir.display(),
        report.tx_per_disk_fsync
    );
    if !report.errors.is_empty() {
        println!("errors: {:?}", report.errors);
    }
    Ok(())
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

/// How many write + fsync rounds of one page the disk under `dir` does per
/// second: the cost of one durable commit, shared or not.
fn fsync_rate(dir: &Path, probe: Duration) -> std::io::Result<f64> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let page = [0x5Au8; PROBE_BYTES];
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < probe {
        file.write_all_at(&page, 0)?;
        file.sync_data()?;
        rounds += 1;
    }
    let rate = rounds as f64 / start.elapsed().as_secs_f64();
    drop::<File>(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// The bench's data directory: the one given, kept; or a new one in the
/// working directory (on the disk a gateway started here would use),
/// removed afterwards.
struct Scratch {
    path: PathBuf,
    remove: bool,
}

impl Scratch {
    fn new(given: Option<PathBuf>) -> std::io::Result<Self> {
        if let Some(path) = given {
            return Ok(Scratch {
                path,
                remove: false,
            });
        }
        let path = std::env::current_dir()?.join(format!(
            "callbackstream-bench-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&path)?;
        Ok(Scratch { path, remove: true })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
