//! `callbackstream demo`: a gateway, an echo app dialing it over real gRPC,
//! a short load, then a stateful counter actor and a reminder, all in one
//! process, so one command shows the product.
//! The gateway runs on a runtime of its own, as the bench runs it.

use std::process::ExitCode;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::kit::counter::{COUNTER_TYPE, CounterApp, REMINDED_KEY};
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::kit::load::{self, LoadSpec};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::{GetActorStateRequest, GetMetadataRequest, InvokeActorRequest};
use clap::Args;
use tonic::transport::{Channel, Endpoint};

use super::{CliResult, duration};

const ACTOR_TYPE: &str = "EchoActor";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Concurrent callers.
    #[arg(long, default_value_t = 16)]
    callers: usize,
    /// How long the load runs.
    #[arg(long, default_value = "3s", value_parser = duration)]
    duration: Duration,
    /// Request payload size.
    #[arg(long, default_value_t = 64)]
    payload: usize,
}

pub async fn run(args: DemoArgs) -> CliResult {
    let settings = GatewaySettings {
        app_id: "demo".into(),
        ..GatewaySettings::default()
    };
    let gateway = HostedGateway::start(settings, ConnectionOptions::default(), 1)?;
    println!("gateway listening on {}", gateway.server().addr());

    let channel = Endpoint::from_shared(gateway.server().url())?
        .connect()
        .await?;
    let app = AppHost::connect(channel.clone(), AppHostOptions::echo([ACTOR_TYPE])).await?;
    println!("echo app registered over gRPC, hosting {ACTOR_TYPE}");
    print_metadata(channel.clone()).await?;

    println!(
        "driving {} callers for {:?} with {}-byte payloads...",
        args.callers, args.duration, args.payload
    );
    let report = load::run(channel.clone(), spec(&args)).await;
    println!(
        "calls: {} ok, {} failed {:?}, {} wrong replies",
        report.ok,
        report.calls() - report.ok,
        report.errors,
        report.wrong_replies
    );
    println!("throughput: {:.0} calls/s", report.calls_per_sec());
    println!(
        "latency: p50 {} us, p90 {} us, p99 {} us, max {} us",
        report.percentile_us(50.0),
        report.percentile_us(90.0),
        report.percentile_us(99.0),
        report.latency_us.max()
    );

    let stateful = counter_demo(channel.clone()).await?;

    gateway.stop();
    let ended = app.finished().await;
    println!(
        "shutdown: the app's stream ended with {:?}",
        ended.map_err(|s| s.code())
    );
    gateway
        .finished()
        .await
        .map_err(|e| e as Box<dyn std::error::Error>)?;
    let clean =
        report.ok > 0 && report.calls() == report.ok && report.wrong_replies == 0 && stateful;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The runtime at work: a counter kept in actor state across calls, and a
/// reminder that fires through the app's stream. Whether all went as it
/// should.
async fn counter_demo(channel: Channel) -> Result<bool, Box<dyn std::error::Error>> {
    let app = CounterApp::connect(channel.clone()).await?;
    println!("counter app registered, hosting {COUNTER_TYPE} (its count kept in actor state)");
    let mut client = DaprClient::new(channel);
    let mut counts = Vec::new();
    for _ in 0..3 {
        counts.push(call_counter(&mut client, "increment").await?);
    }
    println!("CounterActor/c-1 increment x3 -> {}", counts.join(", "));
    call_counter(&mut client, "remind").await?;
    println!("CounterActor/c-1 registered reminder \"tick\", due in 1s");
    let fired = reminder_fired(&mut client).await?;
    match fired {
        true => println!("reminder \"tick\" fired: the actor counted it in its state"),
        false => println!("reminder \"tick\" did not fire within 5s"),
    }
    app.close().await?;
    Ok(counts == ["1", "2", "3"] && fired)
}

async fn call_counter(
    client: &mut DaprClient<Channel>,
    method: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let reply = client
        .invoke_actor(InvokeActorRequest {
            actor_type: COUNTER_TYPE.into(),
            actor_id: "c-1".into(),
            method: method.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(String::from_utf8_lossy(&reply.data).into_owned())
}

/// Polls the actor's `reminded` count (bounded: 5 s).
async fn reminder_fired(
    client: &mut DaprClient<Channel>,
) -> Result<bool, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let state = client
            .get_actor_state(GetActorStateRequest {
                actor_type: COUNTER_TYPE.into(),
                actor_id: "c-1".into(),
                key: REMINDED_KEY.into(),
            })
            .await?
            .into_inner();
        if !state.data.is_empty() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(false)
}

fn spec(args: &DemoArgs) -> LoadSpec {
    LoadSpec {
        callers: args.callers,
        duration: args.duration,
        max_calls: None,
        payload_bytes: args.payload,
        actor_types: vec![ACTOR_TYPE.into()],
        actor_ids: 1000,
        call_timeout: Duration::from_secs(5),
    }
}

async fn print_metadata(channel: Channel) -> CliResult {
    let meta = DaprClient::new(channel)
        .get_metadata(GetMetadataRequest {})
        .await?
        .into_inner();
    let runtime = meta.actor_runtime.unwrap_or_default();
    let types: Vec<_> = runtime
        .active_actors
        .iter()
        .map(|a| a.r#type.as_str())
        .collect();
    println!(
        "GetMetadata: id {:?}, version {}, host_ready {}, actor types {:?}",
        meta.id, meta.runtime_version, runtime.host_ready, types
    );
    Ok(ExitCode::SUCCESS)
}
