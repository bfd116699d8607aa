//! The bench's echo apps, on a thread of their own.
//!
//! An app is a separate process in real life, and a Dapr SDK app (Python's
//! asyncio, a Go app at small load) typically answers its stream from one
//! thread. Running the echo apps on a single-threaded runtime of their own
//! does the same here: their work does not land on the callers' threads or
//! hop between threads per callback, so what the bench adds to a call is the
//! app's own small cost, not contention with the load generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use callbackstream::kit::apphost::{AppHost, AppHostOptions};
use futures::{StreamExt, TryStreamExt};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use super::{BoxError, CLOSE_TIMEOUT, CONNECT_TIMEOUT, OPENING_AT_ONCE, connect, with_causes};

/// The app thread's name.
const APP_THREAD: &str = "bench-apps";

/// How app streams reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connections {
    /// Each stream on a connection of its own, as separate app processes would be.
    OnePerStream,
    /// All streams multiplexed on one connection.
    Shared,
}

/// Registered echo app streams and the thread serving them.
pub(super) struct AppStreams {
    hosts: Vec<AppHost>,
    /// Dropping it ends the thread, and with it any stream still open.
    _thread: AppThread,
}

impl AppStreams {
    /// Opens `count` echo app streams to `url`, stream `i` hosting
    /// `actor_type(i)`, counting each acknowledged one in `opened`.
    pub(super) async fn open(
        url: &str,
        count: usize,
        connections: Connections,
        actor_type: impl Fn(usize) -> String + Send + Sync + 'static,
        opened: Arc<AtomicU64>,
    ) -> Result<Self, BoxError> {
        let thread = AppThread::start()?;
        let opening = open_all(url.to_owned(), count, connections, actor_type, opened);
        let hosts = thread.handle.spawn(opening).await??;
        Ok(AppStreams {
            hosts,
            _thread: thread,
        })
    }

    /// Half-closes every stream and waits (bounded) for the gateway to end them.
    pub(super) async fn close(self) {
        let closing = futures::future::join_all(self.hosts.into_iter().map(AppHost::close));
        // What is still open after the bound is dropped, which resets it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
    }
}

async fn open_all(
    url: String,
    count: usize,
    connections: Connections,
    actor_type: impl Fn(usize) -> String,
    opened: Arc<AtomicU64>,
) -> Result<Vec<AppHost>, BoxError> {
    let shared = match connections {
        Connections::Shared => Some(connect(&url).await?),
        Connections::OnePerStream => None,
    };
    let open_one = |i: usize| {
        let shared = shared.clone();
        let options = AppHostOptions::echo([actor_type(i)]);
        let (url, opened) = (&url, &opened);
        async move {
            let channel = match shared {
                Some(channel) => channel,
                None => connect(url).await?,
            };
            let host = tokio::time::timeout(CONNECT_TIMEOUT, AppHost::connect(channel, options))
                .await
                .map_err(|_| format!("no registration ack within {CONNECT_TIMEOUT:?}"))??;
            opened.fetch_add(1, Ordering::Relaxed);
            Ok::<_, BoxError>(host)
        }
    };
    futures::stream::iter(0..count)
        .map(open_one)
        .buffer_unordered(OPENING_AT_ONCE)
        .try_collect()
        .await
        .map_err(|e| {
            let done = opened.load(Ordering::Relaxed);
            format!(
                "opened {done} of {count} app streams, then: {}",
                with_causes(&*e)
            )
            .into()
        })
}

/// A thread running a single-threaded tokio runtime until dropped. Not
/// joined: the thread only drops its runtime, and the drop may run on an
/// async worker that must not block.
struct AppThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl AppThread {
    fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(APP_THREAD.into())
            // Spawned tasks run while the thread blocks on this; dropping the
            // runtime afterwards cancels whatever is left.
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(AppThread {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for AppThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
