//! The store: the one narrow interface the runtime's durable data (actor
//! state and reminders) is kept behind, so that the in-memory store, the
//! embedded database (`durable`) and any later networked store are
//! interchangeable.
//!
//! It is a sorted map from byte keys to byte values with three operations:
//! [`Store::commit`] an atomic [`Batch`] of puts and deletes, [`Store::get`]
//! one key, and [`Store::scan`] a key prefix, a page at a time. What every
//! implementation promises:
//!
//! - **Atomicity.** A batch is applied entirely or not at all; no call ever
//!   observes part of one. Within a batch, writes apply in order, so the last
//!   write to a key wins. Deleting a key that is absent is not an error.
//! - **Durability and read-your-writes.** When `commit` resolves `Ok`, the
//!   batch is as durable as the implementation makes anything (on disk for the
//!   durable store: SPEC P2) and every call *started* afterwards sees it.
//!   A commit that resolves `Err` applied nothing. A commit future dropped
//!   before it resolves may or may not have been applied: the write is handed
//!   over when `commit` is called, so callers must not take a drop for a
//!   rollback.
//! - **Snapshots.** Each `get` and each `scan` call reads one committed state.
//!   Successive pages of a scan may read different states.
//! - **Scan order.** Ascending lexicographic order of the key bytes; a page
//!   holds the keys that start with the prefix and come strictly after the
//!   cursor, at most `limit` of them. Pages keep memory bounded whatever the
//!   size of a namespace.
//!
//! Every operation returns a `'static` boxed future and takes owned bytes, so
//! the durable store can hand the work to a committer thread of its own (group
//! commit) and answer when the commit is on disk, and callers can await it
//! from tokio tasks and actix actors alike without borrowing across the await.
//! A plain trait with boxed futures keeps `Arc<dyn Store>` object-safe without
//! a macro crate; the allocation is small next to a commit.
//!
//! Namespaces: every key starts with one namespace byte from [`namespace`],
//! so the users of one store can never read or overwrite each other's keys.

pub mod durable;
pub mod memory;

#[cfg(test)]
pub(crate) mod contract;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use durable::{CommitStats, DurableStore};
pub use memory::MemoryStore;

/// The first byte of every key, one per user of the store. Kept in one place
/// so that no two users can pick the same byte.
pub mod namespace {
    /// Actor state values (`runtime::state`).
    pub const STATE: u8 = b's';
    /// Actor state expiry records (`runtime::state`).
    pub const STATE_EXPIRY: u8 = b'x';
    /// Reminders (`runtime::jobs::reminder`).
    pub const REMINDER: u8 = b'r';
}

/// A key and its value, as a scan returns them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// What every store operation returns.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, StoreError>>;

/// The keyed byte store the runtime persists to. See the module doc for the
/// contract; `Send + Sync` so one `Arc<dyn Store>` serves every thread.
pub trait Store: Send + Sync + 'static {
    /// Applies `batch` atomically; resolves once it is durable and visible.
    fn commit(&self, batch: Batch) -> StoreFuture<()>;

    /// The value stored under `key`, if any.
    fn get(&self, key: Vec<u8>) -> StoreFuture<Option<Vec<u8>>>;

    /// Up to `limit` entries whose keys start with `prefix` and sort strictly
    /// after `after` (from the first, if `None`), in ascending key order.
    /// Fewer than `limit` entries means the prefix is exhausted.
    fn scan(
        &self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> StoreFuture<Vec<KeyValue>>;
}

// So that settings holding a store can derive Debug without printing it.
impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Store")
    }
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Writes to apply together, in order, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    writes: Vec<Write>,
}

impl Batch {
    pub fn new() -> Self {
        Batch::default()
    }

    pub fn with_capacity(writes: usize) -> Self {
        Batch {
            writes: Vec::with_capacity(writes),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.writes.push(Write::Put { key, value });
        self
    }

    pub fn delete(&mut self, key: Vec<u8>) -> &mut Self {
        self.writes.push(Write::Delete { key });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    pub fn into_writes(self) -> Vec<Write> {
        self.writes
    }
}

/// Why a store operation failed. `Clone` because one failed group commit
/// answers every writer that shared it; messages are strings so that no
/// backend's error types leak into this interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store was shut down (or its committer is gone); nothing more will
    /// be read or written.
    #[error("store is closed")]
    Closed,

    /// Too many writes are waiting for the disk; this one was refused and
    /// had no effect.
    #[error("store is busy: too many writes waiting")]
    Busy,

    /// The backend failed (I/O, a full disk); the operation had no effect.
    #[error("store failed: {0}")]
    Backend(Arc<str>),

    /// Stored bytes did not decode as what was written there.
    #[error("store is corrupt: {0}")]
    Corrupt(Arc<str>),
}
