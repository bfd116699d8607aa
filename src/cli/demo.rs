//! `callbackstream demo`: a gateway, an echo app dialing it over real gRPC,
//! and a short load, all in one process, so one command shows the product.
//! The gateway runs on a runtime of its own, as the bench runs it.

use std::process::ExitCode;
use std::time::Duration;

use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::GatewaySettings;
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::kit::hosted::HostedGateway;
use callbackstream::kit::load::{self, LoadSpec};
use callbackstream::proto::GetMetadataRequest;
use callbackstream::proto::dapr_client::DaprClient;
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
    let clean = report.ok > 0 && report.calls() == report.ok && report.wrong_replies == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
