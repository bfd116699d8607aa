//! The timers bench (`--timers N`): N timers, one per actor, registered
//! through RegisterActorTimer on an in-process gateway, each due in
//! `--timer-due` and then every `--timer-period`, for `--duration`. An app
//! answers every fire at once and notes when it came.
//!
//! Fire k of timer i is due at `registered_i + due + k × period`
//! (`registered_i` taken just before its RPC, so lateness includes up to one
//! round trip), so each fire's lateness is its arrival minus that; a slot with no fire by the end
//! (less one period of slack) is a missed fire, two fires in one slot a
//! duplicate. With a due time longer than the run, nothing fires and the
//! report is what N idle timers cost: the gateway's CPU over the run.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::proto::RegisterActorTimerRequest;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::transport::Channel;

use super::{BenchArgs, BoxError, OPENING_AT_ONCE, Ticker, connect};

const TIMER_TYPE: &str = "TimedActor";

/// Arrival times of each timer's fires, by timer name.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    timers: usize,
    due_s: f64,
    period_s: f64,
    duration_s: f64,
    registered_per_sec: f64,
    fires: u64,
    expected_fires: u64,
    missed: u64,
    duplicates: u64,
    lateness_us: Option<Lateness>,
    gateway_cpu_percent: f64,
}

#[derive(Debug, Serialize)]
struct Lateness {
    p50: u64,
    p99: u64,
    max: u64,
}

pub(super) async fn run(args: &BenchArgs, timers: usize) -> Result<ExitCode, BoxError> {
    let gateway = HostedGateway::start(
        GatewaySettings {
            app_id: "bench".into(),
            ..GatewaySettings::default()
        },
        ConnectionOptions::default(),
        args.threads,
    )?;
    let url = gateway.server().url();
    let arrivals = Arrivals::default();
    let app = AppHost::connect(connect(&url).await?, recording_app(arrivals.clone())).await?;
    let channel = connect(&url).await?;

    let started = Instant::now();
    let registered = register_all(&channel, timers, args).await?;
    let registering = started.elapsed();
    let cpu = gateway.cpu_scope();
    let cpu_before = cpu.read()?;
    let ticker = Ticker::start("timers", "fires", {
        let arrivals = arrivals.clone();
        move || {
            arrivals
                .lock()
                .unwrap()
                .values()
                .map(|v| v.len() as u64)
                .sum()
        }
    });
    tokio::time::sleep(args.duration).await;
    let cpu_used = cpu.read()?.saturating_sub(cpu_before);
    drop(ticker);
    let end = Instant::now();
    let _ = app.close().await;
    gateway.stop();
    let _ = gateway.finished().await;

    let mut report = judge(&registered, &arrivals.lock().unwrap(), args, end);
    report.timers = timers;
    report.registered_per_sec = timers as f64 / registering.as_secs_f64();
    report.gateway_cpu_percent = cpu_used.as_secs_f64() * 100.0 / args.duration.as_secs_f64();
    print(&report, args.json)?;
    let clean = report.missed == 0 && report.duplicates == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An app that notes each timer fire's arrival and answers at once.
fn recording_app(arrivals: Arrivals) -> AppHostOptions {
    AppHostOptions::echo([TIMER_TYPE]).with_handler(move |request| {
        if let ResponseType::TimerRequest(fire) = &request {
            let now = Instant::now();
            arrivals
                .lock()
                .unwrap()
                .entry(fire.name.clone())
                .or_default()
                .push(now);
        }
        echo(request)
    })
}

/// Registers the timers, a few at a time; when each was registered.
async fn register_all(
    channel: &Channel,
    timers: usize,
    args: &BenchArgs,
) -> Result<HashMap<String, Instant>, BoxError> {
    let due = go_duration(args.timer_due);
    let period = go_duration(args.timer_period);
    let registrations = futures::stream::iter(0..timers).map(|i| {
        let mut client = DaprClient::new(channel.clone());
        let (due, period) = (due.clone(), period.clone());
        async move {
            let name = format!("t{i}");
            let request = RegisterActorTimerRequest {
                actor_type: TIMER_TYPE.into(),
                actor_id: format!("actor-{i}"),
                name: name.clone(),
                due_time: due,
                period,
                callback: "tick".into(),
                ..Default::default()
            };
            // Taken before the call: the gateway registers the timer (and
            // starts its due time) somewhere within it.
            let sent = Instant::now();
            client.register_actor_timer(request).await?;
            Ok::<_, tonic::Status>((name, sent))
        }
    });
    let registered: Vec<_> = registrations
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    Ok(registered.into_iter().collect::<Result<_, _>>()?)
}

/// Whole milliseconds as a Go duration, the format the SDK sends.
fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn judge(
    registered: &HashMap<String, Instant>,
    arrivals: &HashMap<String, Vec<Instant>>,
    args: &BenchArgs,
    end: Instant,
) -> Report {
    let (due, period) = (args.timer_due, args.timer_period);
    let mut lateness = Histogram::<u64>::new(3).expect("valid precision");
    let (mut fires, mut expected, mut missed, mut duplicates) = (0, 0, 0, 0);
    for (name, at) in registered {
        // Slots that must have fired by the end, one period of slack kept.
        let first = *at + due;
        let slots = match end.checked_duration_since(first + period) {
            Some(span) => span.as_nanos() / period.as_nanos().max(1) + 1,
            None => 0,
        } as u64;
        expected += slots;
        let mut seen = vec![0u32; slots as usize];
        for arrival in arrivals.get(name).map(Vec::as_slice).unwrap_or_default() {
            fires += 1;
            // The nearest slot: a fire is late by far less than half a
            // period, or it is a missed one.
            let since = arrival.saturating_duration_since(first);
            let period_ns = period.as_nanos().max(1);
            let slot = ((since.as_nanos() + period_ns / 2) / period_ns) as usize;
            let late = since.saturating_sub(period * slot as u32);
            let _ = lateness.record(late.as_micros() as u64);
            if let Some(count) = seen.get_mut(slot) {
                *count += 1;
            }
        }
        missed += seen.iter().filter(|&&n| n == 0).count() as u64;
        duplicates += seen.iter().filter(|&&n| n > 1).count() as u64;
    }
    Report {
        mode: "timers",
        timers: 0,
        due_s: due.as_secs_f64(),
        period_s: period.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        registered_per_sec: 0.0,
        fires,
        expected_fires: expected,
        missed,
        duplicates,
        lateness_us: (fires > 0).then(|| Lateness {
            p50: lateness.value_at_quantile(0.5),
            p99: lateness.value_at_quantile(0.99),
            max: lateness.max(),
        }),
        gateway_cpu_percent: 0.0,
    }
}

fn print(report: &Report, json: bool) -> Result<(), BoxError> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "{} timers (due {}s, period {}s) registered at {:.0}/s; over {}s: {} fires of {} expected, {} missed, {} duplicates; gateway CPU {:.2} % of a core",
        report.timers,
        report.due_s,
        report.period_s,
        report.registered_per_sec,
        report.duration_s,
        report.fires,
        report.expected_fires,
        report.missed,
        report.duplicates,
        report.gateway_cpu_percent
    );
    if let Some(l) = &report.lateness_us {
        println!(
            "fire lateness: p50 {} us, p99 {} us, max {} us",
            l.p50, l.p99, l.max
        );
    }
    Ok(())
}
