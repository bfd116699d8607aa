//! A real gateway on a loopback port (port 0) with its actor runtime, plus
//! real gRPC apps and callers for it: the end-to-end tests' common ground.
#![allow(dead_code)] // each test file uses its own subset

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use actix::Addr;
use callbackstream::connection::ConnectionOptions;
use callbackstream::gateway::{self, GatewayError, GatewaySettings};
use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use callbackstream::manager::{CountPending, Describe, ManagerActor, RegistryView};
use callbackstream::proto::dapr_client::DaprClient;
use callbackstream::proto::subscribe_actor_events_request_alpha1::RequestType;
use callbackstream::proto::subscribe_actor_events_response_alpha1::ResponseType;
use callbackstream::proto::{
    InvokeActorRequest, InvokeActorResponse, SubscribeActorEventsRequestAlpha1,
    SubscribeActorEventsRequestInvokeResponseAlpha1,
};
use callbackstream::threads::ActorSystem;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

/// Bound for "promptly" / "does not hang": generous, since CI is shared.
pub const PROMPTLY: Duration = Duration::from_secs(5);

/// Where the gateway's tonic server runs.
#[derive(Debug, Clone, Copy)]
pub enum Hosting {
    /// On this many actor threads (`gateway::serve_on`), as the binary does.
    ActorThreads(usize),
    /// On the test's own tokio runtime (`gateway::serve`), as an embedding
    /// application would; the actors stay on their own thread.
    Embedded,
}

pub struct TestGateway {
    pub addr: SocketAddr,
    /// The HTTP front door's address, when started with one.
    pub http_addr: Option<SocketAddr>,
    actors: ActorSystem,
    stop: CancellationToken,
    server: JoinHandle<Result<(), GatewayError>>,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(GatewaySettings::default(), ConnectionOptions::default()).await
    }

    /// A gateway serving as the binary does: on one actor thread.
    pub async fn start_with(settings: GatewaySettings, options: ConnectionOptions) -> Self {
        Self::start_hosted(settings, options, Hosting::ActorThreads(1)).await
    }

    pub async fn start_hosted(
        settings: GatewaySettings,
        options: ConnectionOptions,
        hosting: Hosting,
    ) -> Self {
        Self::start_listening(settings, options, hosting, false).await
    }

    /// A gateway with daprd's HTTP API on a port of its own too.
    pub async fn start_with_http(settings: GatewaySettings, hosting: Hosting) -> Self {
        Self::start_listening(settings, ConnectionOptions::default(), hosting, true).await
    }

    async fn start_listening(
        settings: GatewaySettings,
        options: ConnectionOptions,
        hosting: Hosting,
        with_http: bool,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = match with_http {
            true => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            false => None,
        };
        let http_addr = http.as_ref().map(|l| l.local_addr().unwrap());
        let threads = match hosting {
            Hosting::ActorThreads(n) => n,
            Hosting::Embedded => 1,
        };
        let actors = ActorSystem::start_threads(options, threads).unwrap();
        let stop = CancellationToken::new();
        let shutdown = stop.clone().cancelled_owned();
        let server = match hosting {
            Hosting::ActorThreads(_) => tokio::spawn(gateway::serve_both_on(
                actors.threads(),
                settings,
                listener.into_std().unwrap(),
                http.map(|l| l.into_std().unwrap()),
                shutdown,
            )),
            Hosting::Embedded => tokio::spawn(gateway::serve_both(
                settings,
                actors.manager(),
                listener,
                http,
                shutdown,
            )),
        };
        TestGateway {
            addr,
            http_addr,
            actors,
            stop,
            server,
        }
    }

    pub fn manager(&self) -> Addr<ManagerActor> {
        self.actors.manager()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A fresh HTTP/2 connection to the gateway.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> DaprClient<Channel> {
        DaprClient::new(self.channel().await)
    }

    /// An echo app for `types`, registered and acknowledged.
    pub async fn echo_app(&self, types: &[&str]) -> AppHost {
        self.app(AppHostOptions::echo(types.iter().copied())).await
    }

    pub async fn app(&self, options: AppHostOptions) -> AppHost {
        AppHost::connect(self.channel().await, options)
            .await
            .unwrap()
    }

    /// An app that answers nothing by itself: every callback it receives is
    /// handed to the test, which answers through `AppHost::sender`.
    pub async fn holding_app(
        &self,
        types: &[&str],
    ) -> (AppHost, mpsc::UnboundedReceiver<ResponseType>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let options = AppHostOptions::echo(types.iter().copied()).with_handler(move |req| {
            let _ = tx.send(req);
            None
        });
        (self.app(options).await, rx)
    }

    pub async fn describe(&self) -> RegistryView {
        self.manager().send(Describe).await.unwrap()
    }

    pub async fn pending(&self) -> usize {
        self.manager().send(CountPending).await.unwrap()
    }

    /// Waits until the registry holds exactly `n` connections.
    pub async fn wait_for_connections(&self, n: usize) {
        eventually(&format!("{n} live connection(s)"), || async {
            self.describe().await.connections.len() == n
        })
        .await;
    }

    /// Waits until no stream is registered and nothing is pending: what must
    /// hold once every app stream has ended (SPEC H3, R4, R5).
    pub async fn wait_until_idle(&self) {
        eventually("an empty registry and nothing pending", || async {
            self.describe().await.connections.is_empty() && self.pending().await == 0
        })
        .await;
    }

    /// Starts shutdown (as SIGTERM would) and waits for the server to return.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        self.stop.cancel();
        self.server.await.unwrap()
    }

    /// Starts shutdown without waiting.
    pub fn begin_shutdown(&self) {
        self.stop.cancel();
    }

    pub async fn server_result(self) -> Result<(), GatewayError> {
        self.server.await.unwrap()
    }
}

/// Panics so far on the threads gateway code runs on (tokio's workers, the
/// actor thread, actix arbiters), counted from the first [`watch_panics`].
/// The tests' own assertions run on their test threads and are not counted;
/// tasks a test spawns do run on the workers, so they report instead of
/// panicking.
static SERVER_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Installs (once per test binary) a panic hook that counts panics on the
/// gateway's threads, keeping the default report.
pub fn watch_panics() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            let gateway_thread = name.starts_with("tokio-runtime-worker")
                || name.starts_with(callbackstream::threads::THREAD_NAME)
                || name.starts_with("actix");
            if gateway_thread {
                SERVER_PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

/// Panics counted by [`watch_panics`] so far.
pub fn server_panics() -> usize {
    SERVER_PANICS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Polls `check` until it holds; panics naming `what` after [`PROMPTLY`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Fails the test if `fut` takes longer than [`PROMPTLY`].
pub async fn promptly<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PROMPTLY, fut)
        .await
        .expect("did not finish promptly")
}

pub fn invoke(
    actor_type: &str,
    actor_id: &str,
    method: &str,
    data: &[u8],
) -> Request<InvokeActorRequest> {
    Request::new(InvokeActorRequest {
        actor_type: actor_type.into(),
        actor_id: actor_id.into(),
        method: method.into(),
        data: data.to_vec(),
        metadata: Default::default(),
    })
}

/// An InvokeActor running in the background (on a clone of `client`), so the
/// test can play the app meanwhile.
pub fn spawn_invoke(
    client: &DaprClient<Channel>,
    request: Request<InvokeActorRequest>,
) -> JoinHandle<Result<tonic::Response<InvokeActorResponse>, tonic::Status>> {
    let mut client = client.clone();
    tokio::spawn(async move { client.invoke_actor(request).await })
}

/// The app's answer to invoke `id`.
pub fn invoke_reply(id: &str, data: &[u8], error: bool) -> SubscribeActorEventsRequestAlpha1 {
    SubscribeActorEventsRequestAlpha1 {
        request_type: Some(RequestType::InvokeResponse(
            SubscribeActorEventsRequestInvokeResponseAlpha1 {
                id: id.into(),
                data: data.to_vec(),
                metadata: Default::default(),
                error,
            },
        )),
    }
}

/// The next callback a holding app received, which must be an invoke.
pub async fn next_invoke(
    rx: &mut mpsc::UnboundedReceiver<ResponseType>,
) -> callbackstream::transport::InvokeRequest {
    match promptly(rx.recv()).await {
        Some(ResponseType::InvokeRequest(r)) => r,
        other => panic!("expected an invoke_request, got {other:?}"),
    }
}

/// A TCP proxy that can be frozen: it then stops forwarding in both
/// directions but keeps both sockets open, like a silent network partition.
pub struct FreezableProxy {
    pub addr: SocketAddr,
    frozen: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl FreezableProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                pipes.spawn(pipe(cr, sw, watch.clone()));
                pipes.spawn(pipe(sr, cw, watch.clone()));
            }
        });
        FreezableProxy { addr, frozen, task }
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.wait_for(|f| *f) => 0,
        };
        if *frozen.borrow() {
            // Hold both sockets open and silent until the proxy is dropped.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `options` with every callback the app receives also handed to the test;
/// the app still answers with its own handler.
pub fn recorded(
    options: AppHostOptions,
) -> (AppHostOptions, mpsc::UnboundedReceiver<ResponseType>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = options.handler.clone();
    let options = options.with_handler(move |req| {
        let _ = tx.send(req.clone());
        answer(req)
    });
    (options, rx)
}
