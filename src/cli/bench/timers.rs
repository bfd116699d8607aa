//! The timers bench (`--timers N`): N timers, one per actor, registered
//! through RegisterActorTimer on an in-process gateway, each due in
//! `--timer-due` and then every `--timer-period`, for `--duration`. An app
//! answers every fire at once and notes when it came.
//!
//! Fires are judged by `fires` (lateness, missed, duplicates). With a due
//! time longer than the run, nothing fires and the report is what N idle
//! timers cost: the gateway's CPU over the run.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions, echo};
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::proto::RegisterActorTimerRequest;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use futures::StreamExt;
use serde::Serialize;
use tonic::transport::Channel;

use super::fires::{self, Arrivals, FireStats, go_duration};
use super::{BenchArgs, BoxError, OPENING_AT_ONCE, Ticker, connect};

const TIMER_TYPE: &str = "TimedActor";

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    timers: usize,
    due_s: f64,
    period_s: f64,
    duration_s: f64,
    registered_per_sec: f64,
    #[serde(flatten)]
    fires: FireStats,
    gateway_cpu_percent: f64,
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
        move || fires::count(&arrivals)
    });
    tokio::time::sleep(args.duration).await;
    let cpu_used = cpu.read()?.saturating_sub(cpu_before);
    drop(ticker);
    let end = Instant::now();
    let _ = app.close().await;
    gateway.stop();
    let _ = gateway.finished().await;

    let cadence = (args.timer_due, args.timer_period);
    let report = Report {
        mode: "timers",
        timers,
        due_s: args.timer_due.as_secs_f64(),
        period_s: args.timer_period.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        registered_per_sec: timers as f64 / registering.as_secs_f64(),
        fires: fires::judge(&registered, &arrivals.lock().unwrap(), cadence, end),
        gateway_cpu_percent: cpu_used.as_secs_f64() * 100.0 / args.duration.as_secs_f64(),
    };
    print(&report, args.json)?;
    Ok(if report.fires.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An app that notes each timer fire's arrival and answers at once.
fn recording_app(arrivals: Arrivals) -> AppHostOptions {
    AppHostOptions::echo([TIMER_TYPE]).with_handler(move |request| {
        if let ResponseType::TimerRequest(fire) = &request {
            fires::arrived(&arrivals, &fire.name);
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
        report.fires.fires,
        report.fires.expected_fires,
        report.fires.missed,
        report.fires.duplicates,
        report.gateway_cpu_percent
    );
    fires::print_lateness(&report.fires);
    Ok(())
}
