//! `callbackstream`: run the gateway, call an actor through it, see it work, or measure it.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Dapr actor callback-stream gateway (SubscribeActorEventsAlpha1)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGINT/SIGTERM.
    Serve(cli::serve::ServeArgs),
    /// Call an actor method through a running gateway and print the reply.
    Invoke(cli::invoke::InvokeArgs),
    /// Run a gateway, an echo app and a short load in one process.
    Demo(cli::demo::DemoArgs),
    /// Measure a gateway: throughput, latency, CPU per call, memory per app stream.
    Bench(cli::bench::BenchArgs),
    /// Run the chaos workload against an in-process gateway and watch RSS.
    Soak(cli::soak::SoakArgs),
}

/// `serve` runs the gateway on its own actor threads; its main runtime only
/// waits for a signal and stops them, so one thread does, and a sidecar
/// keeps no idle workers. The other commands drive load or apps from the
/// main runtime and get a worker per core.
fn runtime_for(command: &Command) -> tokio::runtime::Builder {
    match command {
        Command::Serve(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let runtime = match runtime_for(&cli.command).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cli::serve::run(args).await,
            Command::Invoke(args) => cli::invoke::run(args).await,
            Command::Demo(args) => cli::demo::run(args).await,
            Command::Bench(args) => cli::bench::run(args).await,
            Command::Soak(args) => cli::soak::run(args).await,
        }
    });
    // The commands bound their own shutdown; a blocking task still running
    // now (an actor thread that would not stop) must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
