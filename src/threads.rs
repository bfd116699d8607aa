//! Where the actors live: an actix system on threads of its own.
//!
//! actix runs actors on single-threaded tokio runtimes (arbiters). The
//! manager lives on the system's first arbiter; a gateway may add more
//! arbiters and serve gRPC *on* them (see [`ActorThreads::run_on_each`]), so
//! that a stream's HTTP/2 connection, its writer, and its connection actor
//! (which reads the stream itself) share one thread. Hand-offs between them
//! are then plain task wake-ups on that thread instead of wake-ups of a
//! parked thread, which is most of what a callback costs end to end
//! (docs/performance.md).
//!
//! Code outside these threads (a tonic server on its own multi-threaded
//! runtime, any tokio task) only sends messages to the manager's `Addr`,
//! which is `Send` and usable from anywhere; only actors start actors.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use actix::{Actor, Addr, Arbiter, System};
use actix_rt::ArbiterHandle;
use tokio::sync::oneshot;

use crate::connection::ConnectionOptions;
use crate::manager::ManagerActor;

/// The first actor thread's name (the bench counts its CPU time by it).
/// Further arbiters are named by actix (`actix-rt|system:..|arbiter:..`).
pub const THREAD_NAME: &str = "callbackstream-actors";

/// How many actor threads a gateway serves on unless told: one per core this
/// process may use, as a gRPC server would have workers. On the project's
/// 2-core machine two threads carried 0.93x the calls of a 2-worker unary
/// server against one thread's 0.81x (docs/performance.md).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A running actix system hosting one [`ManagerActor`], on one or more threads.
pub struct ActorSystem {
    threads: ActorThreads,
    system: System,
    /// The arbiters added to the system's own, to stop and join.
    extra: Vec<Arbiter>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl ActorSystem {
    /// Starts the actor thread and the manager on it.
    pub fn start(options: ConnectionOptions) -> io::Result<Self> {
        Self::start_threads(options, 1)
    }

    /// Starts `threads` (at least one) actor threads, the manager on the first.
    pub fn start_threads(options: ConnectionOptions, threads: usize) -> io::Result<Self> {
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async {
                    let manager = ManagerActor::new(options).start();
                    // Arbiters can only be created from inside the system.
                    let extra: Vec<Arbiter> = (1..threads).map(|_| Arbiter::new()).collect();
                    let _ = tx.send((manager, System::current(), Arbiter::current(), extra));
                });
                system.run()
            })?;
        let (manager, system, first, extra) = rx
            .recv()
            .map_err(|_| io::Error::other("actor thread died during start-up"))?;
        let arbiters = std::iter::once(first)
            .chain(extra.iter().map(Arbiter::handle))
            .collect();
        Ok(ActorSystem {
            threads: ActorThreads { manager, arbiters },
            system,
            extra,
            thread: Some(thread),
        })
    }

    /// The manager: hand clones of it to services and transports.
    pub fn manager(&self) -> Addr<ManagerActor> {
        self.threads.manager.clone()
    }

    /// The threads and the manager, to hand to a server.
    pub fn threads(&self) -> ActorThreads {
        self.threads.clone()
    }

    /// Stops the actor system and waits for its threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for arbiter in &self.extra {
            arbiter.stop();
        }
        for arbiter in self.extra.drain(..) {
            let _ = arbiter.join();
        }
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A handle on the actor threads of an [`ActorSystem`]; cheap to clone.
/// Work spawned through it stops when the runtime does.
#[derive(Clone)]
pub struct ActorThreads {
    manager: Addr<ManagerActor>,
    /// Every thread that can serve: the system's own arbiter first.
    arbiters: Vec<ArbiterHandle>,
}

impl ActorThreads {
    pub fn manager(&self) -> Addr<ManagerActor> {
        self.manager.clone()
    }

    /// How many threads there are.
    pub fn count(&self) -> usize {
        self.arbiters.len()
    }

    /// Starts `task(i)` on each actor thread `i`; the futures returned, in
    /// thread order, resolve with each task's output, or `None` if its thread
    /// stopped first. The tasks need not be `Send`: each is built on its own
    /// thread.
    pub fn run_on_each<F, Fut>(&self, task: F) -> Vec<impl Future<Output = Option<Fut::Output>>>
    where
        F: Fn(usize) -> Fut + std::marker::Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: std::marker::Send + 'static,
    {
        self.run_on_each_with(vec![(); self.count()], move |i, ()| task(i))
    }

    /// As [`run_on_each`](Self::run_on_each), giving thread `i` its own
    /// `inputs[i]` as well (a thread without one runs nothing).
    pub fn run_on_each_with<T, F, Fut>(
        &self,
        inputs: Vec<T>,
        task: F,
    ) -> Vec<impl Future<Output = Option<Fut::Output>>>
    where
        T: std::marker::Send + 'static,
        F: Fn(usize, T) -> Fut + std::marker::Send + Sync + 'static,
        Fut: Future + 'static,
        Fut::Output: std::marker::Send + 'static,
    {
        let task = Arc::new(task);
        self.arbiters
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(i, (arbiter, input))| {
                let (tx, rx) = oneshot::channel();
                let task = task.clone();
                arbiter.spawn_fn(move || {
                    actix_rt::spawn(async move {
                        let _ = tx.send(task(i, input).await);
                    });
                });
                async move { rx.await.ok() }
            })
            .collect()
    }
}
