//! The active-actors bench (`--actors N`): N actor ids each called once
//! through the front door of an in-process gateway running the actor
//! runtime, so each call activates one actor (SPEC D1). It reports how fast
//! they were activated and what the N rows cost: the process's RSS before
//! and after (the callers and the echo app are in it too, but do not grow
//! with N), checked against GetMetadata's count.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::kit::procstat;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{GetMetadataRequest, InvokeActorRequest};
use callbackstream::runtime::RuntimeOptions;
use serde::Serialize;
use tonic::Request;

use super::apps::{AppStreams, Connections};
use super::{BenchArgs, BoxError, Ticker, connect_pool};

const ACTOR_TYPE: &str = "CountedActor";

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    actors: usize,
    callers: usize,
    activations_per_sec: f64,
    active_reported: i64,
    errors: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    bytes_per_actor: f64,
}

pub(super) async fn run(args: &BenchArgs, actors: usize) -> Result<ExitCode, BoxError> {
    let settings = GatewaySettings {
        app_id: "bench".into(),
        runtime: Some(RuntimeOptions::default()),
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
    let rss_before_kib = procstat::rss_kib(std::process::id())?;

    let called = Arc::new(AtomicU64::new(0));
    let ticker = Ticker::start("activations", "actors", {
        let called = called.clone();
        move || called.load(Ordering::Relaxed)
    });
    let started = Instant::now();
    let errors = activate_all(&pool, actors, args.call_timeout, &called).await;
    let elapsed = started.elapsed();
    drop(ticker);
    let rss_after_kib = procstat::rss_kib(std::process::id())?;
    let active_reported = active_count(&pool[0]).await?;
    apps.close().await;
    gateway.finished().await?;

    let report = Report {
        mode: "actors",
        actors,
        callers: args.callers,
        activations_per_sec: actors as f64 / elapsed.as_secs_f64(),
        active_reported,
        errors,
        rss_before_kib,
        rss_after_kib,
        bytes_per_actor: rss_after_kib.saturating_sub(rss_before_kib) as f64 * 1024.0
            / actors as f64,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} actors activated in {:.2}s: {:.0}/s; GetMetadata counts {}; RSS {} -> {} KiB, {:.0} bytes per active actor; {} errors",
            report.actors,
            elapsed.as_secs_f64(),
            report.activations_per_sec,
            report.active_reported,
            report.rss_before_kib,
            report.rss_after_kib,
            report.bytes_per_actor,
            report.errors
        );
    }
    let clean = errors == 0 && active_reported == actors as i64;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One call per actor id, the ids shared out to `pool.len()` callers.
/// Returns how many calls failed.
async fn activate_all(
    pool: &[tonic::transport::Channel],
    actors: usize,
    timeout: Duration,
    called: &Arc<AtomicU64>,
) -> u64 {
    let next = Arc::new(AtomicUsize::new(0));
    let callers = pool.iter().cloned().map(|channel| {
        let (next, called) = (next.clone(), called.clone());
        tokio::spawn(async move {
            let mut client = DaprClient::new(channel);
            let mut errors = 0;
            loop {
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= actors {
                    return errors;
                }
                let mut request = Request::new(InvokeActorRequest {
                    actor_type: ACTOR_TYPE.into(),
                    actor_id: format!("actor-{id}"),
                    method: "echo".into(),
                    ..Default::default()
                });
                request.set_timeout(timeout);
                if client.invoke_actor(request).await.is_err() {
                    errors += 1;
                }
                called.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let results = futures::future::join_all(callers).await;
    results.into_iter().map(|r| r.unwrap_or(1)).sum()
}

async fn active_count(channel: &tonic::transport::Channel) -> Result<i64, BoxError> {
    let metadata = DaprClient::new(channel.clone())
        .get_metadata(GetMetadataRequest {})
        .await?
        .into_inner();
    let runtime = metadata.actor_runtime.unwrap_or_default();
    Ok(runtime
        .active_actors
        .iter()
        .filter(|a| a.r#type == ACTOR_TYPE)
        .map(|a| i64::from(a.count))
        .sum())
}
