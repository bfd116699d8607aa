//! The actor runtime (SPEC §8): what daprd, placement, the scheduler and the
//! state store do for an SDK app's actors, behind the relay.
//!
//! - [`table::ActorTable`] owns the active actors and their turns (T1, T3,
//!   D1-D3); a [`table::Turn`] is the right to call the app for one actor;
//! - [`state::ActorState`] keeps actor state in a [`crate::store::Store`]
//!   (ST1-ST3);
//! - [`jobs::Jobs`] fires timers and reminders (TM1-TM3, RM1-RM5), waiting
//!   in a [`scheduler::DeadlineQueue`]; [`schedule`] and [`data`] are what
//!   they are made of;
//! - [`purge`] deletes expired state in the background (ST3);
//! - [`clock::Clock`] is the one wall clock, tied to tokio's.
//!
//! [`Runtime`] is the handle the front door holds; when its last clone
//! goes, the runtime's timers, reminders and purge stop with it, and let go
//! of the store (a restart in the same process starts a fresh runtime on
//! the same store). See docs/architecture.md.

pub mod clock;
pub mod data;
pub mod jobs;
pub mod purge;
pub mod schedule;
pub mod scheduler;
pub mod state;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::manager::{ManagerActor, StartTable};
use crate::pending::PendingReply;
use crate::store::{Store, StoreError};
use crate::transport::{InvokeRequest, Transport};
use clock::Clock;
pub use jobs::JobLimits;
use jobs::Jobs;
use state::ActorState;
use table::{
    Acquire, ActorKey, ActorTable, Call, CountActive, Granted, IsActive, REENTRANCY_ID, Turn,
};

/// How the runtime runs.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    /// How often idle actors are looked for (`--idle-scan-interval`, D2).
    pub idle_scan_interval: Duration,
    /// Timers and reminders the gateway keeps at most (P4).
    pub job_limits: JobLimits,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            idle_scan_interval: Duration::from_secs(1),
            job_limits: JobLimits::default(),
        }
    }
}

/// The actor runtime of one gateway: cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    table: Addr<ActorTable>,
    state: ActorState,
    jobs: Jobs,
    _alive: Arc<Alive>,
}

/// Held by every clone of a [`Runtime`]; dropped with the last one, it
/// stops the runtime's own work (the table is the manager's, and stays).
struct Alive {
    purge: CancellationToken,
    jobs: Jobs,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.purge.cancel();
        self.jobs.stop();
    }
}

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Runtime(#[from] Error),
    /// The stored reminders could not be read back (P3).
    #[error("loading reminders: {0}")]
    Store(#[from] StoreError),
}

impl Runtime {
    /// Starts the runtime beside `manager`, keeping state in `store`.
    pub async fn start(
        manager: &Addr<ManagerActor>,
        store: Arc<dyn Store>,
        options: RuntimeOptions,
    ) -> Result<Self, StartError> {
        Runtime::start_with_clock(manager, store, options, Clock::new()).await
    }

    /// [`start`](Self::start) reading wall time from `clock`: tests that
    /// restart a runtime on the same store give both the same clock, so that
    /// the time that passes between them (on tokio's paused clock) passes in
    /// wall time too.
    pub async fn start_with_clock(
        manager: &Addr<ManagerActor>,
        store: Arc<dyn Store>,
        options: RuntimeOptions,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let (table, arbiter) = manager
            .send(StartTable {
                idle_scan: options.idle_scan_interval,
            })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        // One clock for state expiry and schedules.
        let transport = Transport::new(manager.clone());
        let jobs = Jobs::start(
            &arbiter,
            table.clone(),
            transport,
            store.clone(),
            clock,
            options.job_limits,
        )
        .await?;
        let state = ActorState::new(store, clock);
        let purge = CancellationToken::new();
        arbiter.spawn(purge::run(state.clone(), clock, purge.clone()));
        let alive = Alive {
            purge,
            jobs: jobs.clone(),
        };
        Ok(Runtime {
            table,
            state,
            jobs,
            _alive: Arc::new(alive),
        })
    }

    /// Waits for `key`'s turn (T1), or enters at once when `chain` holds it
    /// and the type allows reentrancy (T3). Gives up at `deadline`, leaving
    /// the queue.
    pub async fn turn(
        &self,
        key: ActorKey,
        chain: Option<String>,
        deadline: Option<Instant>,
    ) -> Result<Turn, Error> {
        take_turn(&self.table, key, chain, deadline).await
    }

    /// Sends `request` to the app in its actor's turn (T1, T3): waits for
    /// the turn as [`turn`](Self::turn) does, then the invoke goes out from
    /// the table's thread. Keep the `Turn` until the reply is in.
    pub async fn invoke(
        &self,
        request: InvokeRequest,
        deadline: Option<Instant>,
    ) -> Result<(Turn, PendingReply), Error> {
        let key = ActorKey::new(request.actor_type.clone(), request.actor_id.clone());
        let chain = request.metadata.get(REENTRANCY_ID).cloned();
        let call = Call { request, deadline };
        let granted = acquire(&self.table, key, chain, Some(call), deadline).await?;
        let pending = granted.sent.unwrap_or(Err(Error::ShuttingDown))?;
        Ok((granted.turn, pending))
    }

    /// Whether an actor is active (ST2).
    pub async fn is_active(&self, key: ActorKey) -> Result<bool, Error> {
        self.table
            .send(IsActive(key))
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    /// Active actors per type (D1).
    pub async fn active_counts(&self) -> Result<HashMap<String, usize>, Error> {
        self.table
            .send(CountActive)
            .await
            .map_err(|_| Error::ShuttingDown)
    }

    pub fn state(&self) -> &ActorState {
        &self.state
    }

    /// Timers and reminders.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }
}

/// [`Runtime::turn`], for the runtime's own callers (fires) too.
async fn take_turn(
    table: &Addr<ActorTable>,
    key: ActorKey,
    chain: Option<String>,
    deadline: Option<Instant>,
) -> Result<Turn, Error> {
    Ok(acquire(table, key, chain, None, deadline).await?.turn)
}

async fn acquire(
    table: &Addr<ActorTable>,
    key: ActorKey,
    chain: Option<String>,
    call: Option<Call>,
    deadline: Option<Instant>,
) -> Result<Granted, Error> {
    let waiting = async {
        let ticket = table
            .send(Acquire { key, chain, call })
            .await
            .map_err(|_| Error::ShuttingDown)??;
        // The ticket drops unanswered when the actor's type loses its
        // last host (D3).
        ticket.await.map_err(|_| Error::disconnected())
    };
    match deadline {
        Some(at) => tokio::time::timeout_at(at, waiting)
            .await
            .map_err(|_| Error::DeadlineExceeded)?,
        None => waiting.await,
    }
}
