//! Where the actors live: an actix system on a thread of its own.
//!
//! actix runs actors on a single-threaded tokio runtime inside a LocalSet,
//! while tonic serves requests on a multi-threaded runtime. Keeping the
//! actors on their own thread lets both run side by side: tonic handlers only
//! ever send messages to the manager's `Addr`, which is `Send` and usable from
//! any runtime, and only actors start actors.

use std::io;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use actix::{Actor, Addr, System};

use crate::connection::ConnectionOptions;
use crate::manager::ManagerActor;

/// The actor thread's name (the bench counts its CPU time by it).
pub const THREAD_NAME: &str = "callbackstream-actors";

/// A running actix system hosting one [`ManagerActor`].
pub struct ActorRuntime {
    manager: Addr<ManagerActor>,
    system: System,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl ActorRuntime {
    /// Starts the actor thread and the manager on it.
    pub fn start(options: ConnectionOptions) -> io::Result<Self> {
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async {
                    let manager = ManagerActor::new(options).start();
                    let _ = tx.send((manager, System::current()));
                });
                system.run()
            })?;
        let (manager, system) = rx
            .recv()
            .map_err(|_| io::Error::other("actor thread died during start-up"))?;
        Ok(ActorRuntime {
            manager,
            system,
            thread: Some(thread),
        })
    }

    /// The manager: hand clones of it to services and transports.
    pub fn manager(&self) -> Addr<ManagerActor> {
        self.manager.clone()
    }

    /// Stops the actor system and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ActorRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
