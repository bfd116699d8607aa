//! A stateful actor app in Rust: `CounterActor` keeps its count in actor
//! state through the gateway's state RPCs, and counts its reminder's fires
//! the same way: what an SDK actor does, for the demo and the tests.
//!
//! Methods: `increment` (adds one, answers the new count), `count` (answers
//! it), `remind` (registers a reminder named `tick` due in one second, firing
//! once). A `tick` fire adds one to the `reminded` key.
//!
//! Callbacks are answered one at a time by a worker task, which makes the
//! state calls the way an SDK app makes them: from inside the callback,
//! while the gateway holds the actor's turn for it.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Status;
use tonic::transport::Channel;

use crate::kit::apphost::{AppHost, AppHostOptions, echo};
use crate::proto::dapr_client::DaprClient;
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::proto::{
    ExecuteActorStateTransactionRequest, GetActorStateRequest, RegisterActorReminderRequest,
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestFailedAlpha1,
    SubscribeActorEventsRequestInvokeResponseAlpha1,
    SubscribeActorEventsRequestReminderResponseAlpha1, TransactionalActorStateOperation,
};

pub const COUNTER_TYPE: &str = "CounterActor";
/// The state key of the count, and of the reminder's fires.
pub const COUNT_KEY: &str = "count";
pub const REMINDED_KEY: &str = "reminded";

/// A connected counter app; answers until closed.
pub struct CounterApp {
    host: AppHost,
    worker: JoinHandle<()>,
}

impl CounterApp {
    pub async fn connect(channel: Channel) -> Result<Self, Status> {
        let (tx, rx) = mpsc::unbounded_channel();
        let options = AppHostOptions::echo([COUNTER_TYPE]).with_handler(move |request| {
            let _ = tx.send(request);
            None
        });
        let host = AppHost::connect(channel.clone(), options).await?;
        let worker = tokio::spawn(serve(rx, host.sender(), DaprClient::new(channel)));
        Ok(CounterApp { host, worker })
    }

    /// Half-closes the stream; the worker ends with it.
    pub async fn close(self) -> Result<(), Status> {
        let closed = self.host.close().await;
        self.worker.abort();
        closed
    }
}

type Client = DaprClient<Channel>;

async fn serve(
    mut requests: mpsc::UnboundedReceiver<ResponseType>,
    to_gateway: mpsc::Sender<SubscribeActorEventsRequestAlpha1>,
    mut client: Client,
) {
    while let Some(request) = requests.recv().await {
        let reply = answer(&mut client, request).await;
        let message = SubscribeActorEventsRequestAlpha1 {
            request_type: Some(reply),
        };
        if to_gateway.send(message).await.is_err() {
            return;
        }
    }
}

async fn answer(client: &mut Client, request: ResponseType) -> RequestType {
    match request {
        ResponseType::InvokeRequest(r) => {
            let outcome = match r.method.as_str() {
                "increment" => add_one(client, &r.actor_id, COUNT_KEY).await,
                "count" => read_count(client, &r.actor_id, COUNT_KEY).await,
                "remind" => remind(client, &r.actor_id).await.map(|()| 0),
                other => Err(Status::not_found(format!("no method {other}"))),
            };
            match outcome {
                Ok(n) => {
                    RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                        id: r.id,
                        data: n.to_string().into_bytes(),
                        ..Default::default()
                    })
                }
                Err(status) => failed(r.id, &status),
            }
        }
        ResponseType::ReminderRequest(r) => {
            match add_one(client, &r.actor_id, REMINDED_KEY).await {
                Ok(_) => RequestType::ReminderResponse(
                    SubscribeActorEventsRequestReminderResponseAlpha1 {
                        id: r.id,
                        cancel: false,
                    },
                ),
                Err(status) => failed(r.id, &status),
            }
        }
        // Timers keep firing; deactivations succeed: as the echo app does.
        other => {
            echo(other).unwrap_or_else(|| failed(String::new(), &Status::internal("not a request")))
        }
    }
}

fn failed(id: String, status: &Status) -> RequestType {
    RequestType::RequestFailed(SubscribeActorEventsRequestFailedAlpha1 {
        id,
        code: status.code() as u32,
        message: status.message().to_owned(),
    })
}

/// The number stored under `key` (0 when none), as the SDK stores it: JSON.
pub async fn read_count(client: &mut Client, actor_id: &str, key: &str) -> Result<u64, Status> {
    let data = client
        .get_actor_state(GetActorStateRequest {
            actor_type: COUNTER_TYPE.into(),
            actor_id: actor_id.into(),
            key: key.into(),
        })
        .await?
        .into_inner()
        .data;
    if data.is_empty() {
        return Ok(0);
    }
    serde_json::from_slice(&data).map_err(|e| Status::data_loss(e.to_string()))
}

async fn add_one(client: &mut Client, actor_id: &str, key: &str) -> Result<u64, Status> {
    let n = read_count(client, actor_id, key).await? + 1;
    let upsert = TransactionalActorStateOperation {
        operation_type: "upsert".into(),
        key: key.into(),
        value: Some(prost_types::Any {
            type_url: String::new(),
            value: n.to_string().into_bytes(),
        }),
        metadata: Default::default(),
    };
    client
        .execute_actor_state_transaction(ExecuteActorStateTransactionRequest {
            actor_type: COUNTER_TYPE.into(),
            actor_id: actor_id.into(),
            operations: vec![upsert],
        })
        .await?;
    Ok(n)
}

async fn remind(client: &mut Client, actor_id: &str) -> Result<(), Status> {
    client
        .register_actor_reminder(RegisterActorReminderRequest {
            actor_type: COUNTER_TYPE.into(),
            actor_id: actor_id.into(),
            name: "tick".into(),
            // As the Python SDK writes one second.
            due_time: "0h0m1s0ms0\u{3bc}s".into(),
            period: String::new(),
            data: b"tick".to_vec(),
            ..Default::default()
        })
        .await?;
    Ok(())
}
