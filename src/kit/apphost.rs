//! A small actor host in Rust: the *app* side of the stream. It dials a
//! gateway, registers actor types, and answers each callback with a handler.
//!
//! The gateway does not need it; the demo, the bench and the tests do (an
//! echo app that speaks the real protocol over real gRPC).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use crate::proto::dapr_client::DaprClient;
use crate::proto::subscribe_actor_events_request_alpha1::RequestType;
use crate::proto::subscribe_actor_events_response_alpha1::ResponseType;
use crate::proto::{
    SubscribeActorEventsRequestAlpha1, SubscribeActorEventsRequestDeactivateResponseAlpha1,
    SubscribeActorEventsRequestInitialAlpha1, SubscribeActorEventsRequestInvokeResponseAlpha1,
    SubscribeActorEventsRequestReminderResponseAlpha1, SubscribeActorEventsResponseAlpha1,
};
use crate::service::auth::TOKEN_HEADER;

/// Answers one callback, or `None` to leave it unanswered.
pub type Handler = Arc<dyn Fn(ResponseType) -> Option<RequestType> + Send + Sync>;

/// Messages the host may have queued for the gateway before it blocks.
const SEND_BUFFER: usize = 1024;

/// A connected app stream, answering callbacks until it is closed.
pub struct AppHost {
    to_gateway: Option<mpsc::Sender<SubscribeActorEventsRequestAlpha1>>,
    task: JoinHandle<Result<(), Status>>,
}

/// How an [`AppHost`] registers and answers.
pub struct AppHostOptions {
    pub registration: SubscribeActorEventsRequestInitialAlpha1,
    pub api_token: Option<String>,
    pub handler: Handler,
}

impl AppHostOptions {
    /// An echo host for the given actor types.
    pub fn echo<S: Into<String>>(types: impl IntoIterator<Item = S>) -> Self {
        AppHostOptions {
            registration: SubscribeActorEventsRequestInitialAlpha1 {
                entities: types.into_iter().map(Into::into).collect(),
                ..Default::default()
            },
            api_token: None,
            handler: Arc::new(echo),
        }
    }

    pub fn with_handler(
        mut self,
        handler: impl Fn(ResponseType) -> Option<RequestType> + Send + Sync + 'static,
    ) -> Self {
        self.handler = Arc::new(handler);
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.api_token = Some(token.into());
        self
    }
}

impl AppHost {
    /// Opens the stream, registers, and returns once the gateway acknowledged.
    pub async fn connect(channel: Channel, options: AppHostOptions) -> Result<Self, Status> {
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        tx.send(message(RequestType::InitialRequest(options.registration)))
            .await
            .map_err(|_| Status::internal("send buffer closed"))?;
        let mut request = Request::new(ReceiverStream::new(rx));
        if let Some(token) = &options.api_token {
            let value = MetadataValue::try_from(token.as_str())
                .map_err(|_| Status::invalid_argument("token is not valid metadata"))?;
            request.metadata_mut().insert(TOKEN_HEADER, value);
        }
        let mut inbound = DaprClient::new(channel)
            .subscribe_actor_events_alpha1(request)
            .await?
            .into_inner();
        match inbound.message().await? {
            Some(SubscribeActorEventsResponseAlpha1 {
                response_type: Some(ResponseType::InitialResponse(_)),
            }) => {}
            other => {
                return Err(Status::internal(format!(
                    "expected initial_response, got {other:?}"
                )));
            }
        }
        let task = tokio::spawn(answer(inbound, tx.downgrade(), options.handler));
        Ok(AppHost {
            to_gateway: Some(tx),
            task,
        })
    }

    /// A sender for writing raw messages to the gateway (tests use it to
    /// answer held requests or to send strays).
    pub fn sender(&self) -> mpsc::Sender<SubscribeActorEventsRequestAlpha1> {
        self.to_gateway.clone().expect("present until closed")
    }

    /// Half-closes the stream and waits for the gateway to end it.
    pub async fn close(mut self) -> Result<(), Status> {
        self.to_gateway = None;
        self.finished().await
    }

    /// Waits until the gateway ends the stream; its final status.
    pub async fn finished(self) -> Result<(), Status> {
        let AppHost { task, .. } = self;
        task.await
            .unwrap_or_else(|e| Err(Status::cancelled(e.to_string())))
    }

    /// Drops the stream abruptly, as a crashing app would (RST_STREAM).
    pub fn abort(self) {
        self.task.abort();
    }
}

async fn answer(
    mut inbound: Streaming<SubscribeActorEventsResponseAlpha1>,
    // Weak: the host's own sender alone decides when the app half-closes.
    tx: mpsc::WeakSender<SubscribeActorEventsRequestAlpha1>,
    handler: Handler,
) -> Result<(), Status> {
    while let Some(msg) = inbound.message().await? {
        let Some(request) = msg.response_type else {
            continue;
        };
        if let (Some(reply), Some(tx)) = (handler(request), tx.upgrade())
            && tx.send(message(reply)).await.is_err()
        {
            break;
        }
    }
    Ok(())
}

fn message(request_type: RequestType) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(request_type),
    }
}

/// Echoes an invoke's data back; reminders and timers keep firing;
/// deactivations succeed.
pub fn echo(request: ResponseType) -> Option<RequestType> {
    Some(match request {
        ResponseType::InvokeRequest(r) => {
            RequestType::InvokeResponse(SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id: r.id,
                data: r.data,
                metadata: Default::default(),
                error: false,
            })
        }
        ResponseType::ReminderRequest(r) => {
            RequestType::ReminderResponse(SubscribeActorEventsRequestReminderResponseAlpha1 {
                id: r.id,
                cancel: false,
            })
        }
        ResponseType::TimerRequest(r) => {
            RequestType::TimerResponse(SubscribeActorEventsRequestReminderResponseAlpha1 {
                id: r.id,
                cancel: false,
            })
        }
        ResponseType::DeactivateRequest(r) => {
            RequestType::DeactivateResponse(SubscribeActorEventsRequestDeactivateResponseAlpha1 {
                id: r.id,
            })
        }
        ResponseType::InitialResponse(_) => return None,
    })
}
