//! The background purge of expired actor state (SPEC ST3): a key whose ttl
//! has passed already reads as absent (its expiry is in its value), and this
//! task deletes it from the store, so that expired data does not pile up on
//! disk for as long as nobody reads it.
//!
//! One task per runtime. It purges in rounds: each round deletes everything
//! due, in batches of [`PURGE_BATCH`] (one commit each, so writers get in
//! between), and rounds start at most every [`PURGE_INTERVAL`], so keys that
//! expire one after the other share rounds instead of costing a commit each.
//! Between rounds it sleeps until the earliest expiry the store holds, or,
//! when the store holds none, until a write with a ttl comes: a store with
//! nothing due costs no CPU. [`ExpiryWatch`] is how writes tell it of an
//! expiry earlier than the one it sleeps for.
//!
//! The task ends when the runtime does (its [`CancellationToken`] is
//! cancelled when the last handle on the runtime goes), and holds the store
//! only while it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::warn;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::state::{ActorState, PURGE_BATCH, StateError};
use crate::store::StoreError;

/// The least time between the starts of two purge rounds.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// Nothing known to expire.
const NEVER: u64 = u64::MAX;

/// The earliest expiry the purge task must wake for, lowered by writes.
#[derive(Debug)]
pub struct ExpiryWatch {
    /// Nanoseconds since the Unix epoch; [`NEVER`] when none is known.
    earliest: AtomicU64,
    lowered: Notify,
}

impl Default for ExpiryWatch {
    fn default() -> Self {
        ExpiryWatch {
            earliest: AtomicU64::new(NEVER),
            lowered: Notify::new(),
        }
    }
}

impl ExpiryWatch {
    /// A key now in the store expires at `at`: wakes the task if that is
    /// earlier than what it sleeps for. One atomic operation when it is not,
    /// which is the common case (expiries mostly come in increasing order).
    pub fn expires_at(&self, at: SystemTime) {
        let at = nanos(at);
        if self.earliest.fetch_min(at, Ordering::AcqRel) > at {
            self.lowered.notify_one();
        }
    }

    /// Forgets what it knew, before the task reads the store afresh: an
    /// expiry written from here on is either seen by that read or lowers the
    /// watch again.
    fn reset(&self) {
        self.earliest.store(NEVER, Ordering::Release);
    }

    fn earliest(&self) -> Option<SystemTime> {
        match self.earliest.load(Ordering::Acquire) {
            NEVER => None,
            n => Some(UNIX_EPOCH + Duration::from_nanos(n)),
        }
    }
}

fn nanos(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Expiries past 2554 are clamped just below NEVER: they still count.
    u64::try_from(since.as_nanos()).map_or(NEVER - 1, |n| n.min(NEVER - 1))
}

/// Runs the purge for `state` until `stop` is cancelled (or the store is
/// closed: nothing more can be purged).
pub async fn run(state: ActorState, clock: Clock, stop: CancellationToken) {
    let watch = state.expiry_watch().clone();
    loop {
        let no_earlier = Instant::now() + PURGE_INTERVAL;
        watch.reset();
        let earliest = tokio::select! {
            _ = stop.cancelled() => return,
            earliest = round(&state) => earliest,
        };
        match earliest {
            Err(Closed) => return,
            Ok(Some(at)) => watch.expires_at(at),
            Ok(None) => {}
        }
        loop {
            let wake = watch
                .earliest()
                .map(|at| clock.instant_at(at).max(no_earlier));
            let sleeping = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = sleeping => break,
                // An earlier expiry came: sleep for that one instead.
                _ = watch.lowered.notified() => {}
            }
        }
    }
}

/// The store was closed under the purge.
struct Closed;

/// Deletes everything due, a batch at a time; the earliest expiry left in
/// the store afterwards. Any other failure is logged and answers an expiry
/// long past, so the next round comes after the interval.
async fn round(state: &ActorState) -> Result<Option<SystemTime>, Closed> {
    let failed = |what: &str, e: StateError| match e {
        StateError::Store(StoreError::Closed) => Err(Closed),
        e => {
            warn!("{what}: {e}");
            Ok(Some(UNIX_EPOCH))
        }
    };
    loop {
        match state.purge_expired(PURGE_BATCH).await {
            Ok(purged) if purged.more => tokio::task::yield_now().await,
            Ok(_) => break,
            Err(e) => return failed("purging expired actor state", e),
        }
    }
    match state.earliest_expiry().await {
        Ok(earliest) => Ok(earliest),
        Err(e) => failed("reading the next actor state expiry", e),
    }
}
