//! `callbackstream invoke`: one InvokeActor call through a running gateway.

use std::process::ExitCode;
use std::time::Duration;

use callbackstream::proto::InvokeActorRequest;
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::service::auth::TOKEN_HEADER;
use callbackstream::service::front_door::ERROR_RESPONSE_HEADER;
use clap::Args;
use tonic::Request;
use tonic::metadata::MetadataValue;

use super::{CliResult, duration};

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The gateway's address.
    #[arg(long, default_value = "http://127.0.0.1:50001")]
    addr: String,
    /// Actor type.
    actor_type: String,
    /// Actor id.
    actor_id: String,
    /// Method name.
    method: String,
    /// Request body (sent as-is, e.g. JSON).
    #[arg(long, default_value = "")]
    data: String,
    /// The call's deadline.
    #[arg(long, default_value = "10s", value_parser = duration)]
    timeout: Duration,
    /// `dapr-api-token` to send.
    #[arg(long, env = "DAPR_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
}

pub async fn run(args: InvokeArgs) -> CliResult {
    let mut client = DaprClient::connect(args.addr.clone()).await?;
    let mut request = Request::new(InvokeActorRequest {
        actor_type: args.actor_type,
        actor_id: args.actor_id,
        method: args.method,
        data: args.data.into_bytes(),
        metadata: Default::default(),
    });
    request.set_timeout(args.timeout);
    if let Some(token) = &args.api_token {
        request
            .metadata_mut()
            .insert(TOKEN_HEADER, MetadataValue::try_from(token.as_str())?);
    }
    match client.invoke_actor(request).await {
        Ok(response) => {
            let app_error = response.metadata().get(ERROR_RESPONSE_HEADER).is_some();
            let data = response.into_inner().data;
            if app_error {
                eprintln!("the actor method failed; its error payload:");
            }
            println!("{}", String::from_utf8_lossy(&data));
            Ok(if app_error {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            Ok(ExitCode::FAILURE)
        }
    }
}
