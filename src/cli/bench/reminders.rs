//! The reminders bench (`--reminders N`): durable reminders in a gateway
//! process of their own (`serve --data-dir`, a scratch directory), because
//! a restart and the memory they take are only known per process.
//!
//! 1. The gateway starts on an empty directory; its RSS, once serving, is
//!    the baseline.
//! 2. An app connects and `--callers` callers, over `--caller-connections`
//!    connections (default one each), register N reminders, one per actor,
//!    through RegisterActorReminder: each answered once durable, so the rate
//!    is the durable registration rate.
//! 3. For `--duration`, the app answers every fire and notes its arrival;
//!    the fires are judged by `fires` (lateness, missed, duplicates).
//! 4. The gateway is stopped (SIGTERM) and started again on the same
//!    directory: the time from the new process's start until it answers
//!    gRPC health as SERVING (which it does only once the stored reminders
//!    are loaded), and its RSS then, against the baseline.
//! 5. An app connects and GetActorReminder reads every one of the N back:
//!    how many came back with the schedule they were registered with.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::kit::procstat;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{GetActorReminderRequest, RegisterActorReminderRequest};
use futures::StreamExt;
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::child::{ChildGateway, ChildStore, ScratchDir};
use super::fires::{self, Arrivals, FireStats, go_duration};
use super::{BenchArgs, BoxError, Ticker, connect, connect_pool};

const REMINDER_TYPE: &str = "RemindedActor";
const CHILD_APP_ID: &str = "bench-reminders";

/// How long a restarted gateway may take to serve.
const SERVING_TIMEOUT: Duration = Duration::from_secs(60);

const HEALTH_POLL: Duration = Duration::from_millis(2);

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    reminders: usize,
    due_s: f64,
    period_s: f64,
    duration_s: f64,
    callers: usize,
    caller_connections: usize,
    registered_per_sec: f64,
    #[serde(flatten)]
    fires: FireStats,
    restart: Restart,
}

#[derive(Debug, Serialize)]
struct Restart {
    /// From the restarted process's start until it served.
    serving_ms: f64,
    /// Reminders GetActorReminder read back as registered.
    restored: usize,
    rss_empty_kib: u64,
    rss_restored_kib: u64,
    /// What the stored reminders add, per reminder.
    bytes_per_reminder: f64,
}

pub(super) async fn run(args: &BenchArgs, reminders: usize) -> Result<ExitCode, BoxError> {
    let scratch = ScratchDir::create("reminders")?;
    let store = ChildStore::DataDir(scratch.data_dir());
    let (gateway, _) = start_serving(&store, args.threads).await?;
    let rss_empty = procstat::rss_kib(gateway.pid())?;
    let arrivals = Arrivals::default();
    let app = AppHost::connect(
        connect(&gateway.url()).await?,
        recording_app(arrivals.clone()),
    )
    .await?;
    let connections = args.caller_connections.unwrap_or(args.callers);
    let pool = connect_pool(&gateway.url(), connections).await?;

    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let registered = {
        let counted = done.clone();
        let _ticker = Ticker::start("registering", "reminders", move || {
            counted.load(Ordering::Relaxed)
        });
        register_all(&pool, reminders, args, &done).await?
    };
    let registering = started.elapsed();
    {
        let _ticker = Ticker::start("reminders", "fires", {
            let arrivals = arrivals.clone();
            move || fires::count(&arrivals)
        });
        tokio::time::sleep(args.duration).await;
    }
    let end = Instant::now();
    let _ = app.close().await;
    gateway.stop().await?;
    let cadence = (args.reminder_due, args.reminder_period);
    let fired = fires::judge(&registered, &arrivals.lock().unwrap(), cadence, end);

    let (gateway, serving) = start_serving(&store, args.threads).await?;
    let rss_restored = procstat::rss_kib(gateway.pid())?;
    let app = AppHost::connect(
        connect(&gateway.url()).await?,
        AppHostOptions::echo([REMINDER_TYPE]),
    )
    .await?;
    let pool = connect_pool(&gateway.url(), connections).await?;
    let restored = count_restored(&pool, reminders, args).await?;
    let _ = app.close().await;
    gateway.stop().await?;

    let added = rss_restored.saturating_sub(rss_empty) as f64 * 1024.0;
    let report = Report {
        mode: "reminders",
        reminders,
        due_s: args.reminder_due.as_secs_f64(),
        period_s: args.reminder_period.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        callers: args.callers,
        caller_connections: connections,
        registered_per_sec: reminders as f64 / registering.as_secs_f64(),
        fires: fired,
        restart: Restart {
            serving_ms: serving.as_secs_f64() * 1000.0,
            restored,
            rss_empty_kib: rss_empty,
            rss_restored_kib: rss_restored,
            bytes_per_reminder: added / reminders as f64,
        },
    };
    print(&report, args.json)?;
    let clean = report.fires.clean() && restored == reminders;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts a gateway on `store`; how long it took to answer health as
/// SERVING, from just before its process started.
async fn start_serving(
    store: &ChildStore,
    threads: usize,
) -> Result<(ChildGateway, Duration), BoxError> {
    let started = Instant::now();
    let gateway = ChildGateway::start_with(CHILD_APP_ID, 16, threads, store).await?;
    let mut health = HealthClient::new(connect(&gateway.url()).await?);
    let give_up = started + SERVING_TIMEOUT;
    loop {
        let asked = health.check(HealthCheckRequest::default()).await;
        if asked.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
            return Ok((gateway, started.elapsed()));
        }
        if Instant::now() > give_up {
            return Err(format!("the gateway did not serve within {SERVING_TIMEOUT:?}").into());
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// An app that notes each reminder fire's arrival and answers at once.
fn recording_app(arrivals: Arrivals) -> AppHostOptions {
    AppHostOptions::echo([REMINDER_TYPE]).with_handler(move |request| {
        if let ResponseType::ReminderRequest(fire) = &request {
            fires::arrived(&arrivals, &fire.name);
        }
        echo(request)
    })
}

fn actor_id(i: usize) -> String {
    format!("actor-{i}")
}

fn name(i: usize) -> String {
    format!("r{i}")
}

/// Registers the reminders, `--callers` at a time; when each was registered.
async fn register_all(
    pool: &[Channel],
    reminders: usize,
    args: &BenchArgs,
    done: &Arc<AtomicU64>,
) -> Result<HashMap<String, Instant>, BoxError> {
    let due = go_duration(args.reminder_due);
    let period = go_duration(args.reminder_period);
    let registrations = futures::stream::iter(0..reminders).map(|i| {
        let mut client = DaprClient::new(pool[i % pool.len()].clone());
        let request = RegisterActorReminderRequest {
            actor_type: REMINDER_TYPE.into(),
            actor_id: actor_id(i),
            name: name(i),
            due_time: due.clone(),
            period: period.clone(),
            ..Default::default()
        };
        let done = done.clone();
        async move {
            // Taken before the call: the gateway starts the due time
            // somewhere within it.
            let sent = Instant::now();
            client.register_actor_reminder(request).await?;
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<_, tonic::Status>((name(i), sent))
        }
    });
    let registered: Vec<_> = registrations.buffer_unordered(args.callers).collect().await;
    Ok(registered.into_iter().collect::<Result<_, _>>()?)
}

/// How many of the reminders GetActorReminder reads back with the due time
/// and period they were registered with.
async fn count_restored(
    pool: &[Channel],
    reminders: usize,
    args: &BenchArgs,
) -> Result<usize, BoxError> {
    let due = go_duration(args.reminder_due);
    let period = go_duration(args.reminder_period);
    let reads = futures::stream::iter(0..reminders).map(|i| {
        let mut client = DaprClient::new(pool[i % pool.len()].clone());
        let request = GetActorReminderRequest {
            actor_type: REMINDER_TYPE.into(),
            actor_id: actor_id(i),
            name: name(i),
        };
        async move { client.get_actor_reminder(request).await }
    });
    let answers: Vec<_> = reads.buffer_unordered(args.callers).collect().await;
    let mut restored = 0;
    for answer in answers {
        match answer {
            Ok(r) => {
                let r = r.into_inner();
                let same = r.due_time.as_deref() == Some(due.as_str())
                    && r.period.as_deref() == Some(period.as_str());
                restored += usize::from(same);
            }
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
    }
    Ok(restored)
}

fn print(report: &Report, json: bool) -> Result<(), BoxError> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "{} reminders (due {}s, period {}s) registered durably at {:.0}/s by {} callers on {} connections",
        report.reminders,
        report.due_s,
        report.period_s,
        report.registered_per_sec,
        report.callers,
        report.caller_connections
    );
    let f = &report.fires;
    println!(
        "over {}s: {} fires of {} expected, {} missed, {} duplicates",
        report.duration_s, f.fires, f.expected_fires, f.missed, f.duplicates
    );
    fires::print_lateness(f);
    let r = &report.restart;
    println!(
        "restart: serving after {:.0} ms with {} of {} reminders restored; RSS {:.1} MiB empty, {:.1} MiB restored ({:.0} bytes per reminder)",
        r.serving_ms,
        r.restored,
        report.reminders,
        r.rss_empty_kib as f64 / 1024.0,
        r.rss_restored_kib as f64 / 1024.0,
        r.bytes_per_reminder
    );
    Ok(())
}
