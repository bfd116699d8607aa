//! The group commit (SPEC P2): one thread owns every write to the database.
//!
//! Writers put their batch on a bounded queue and wait on a oneshot. The
//! committer takes everything queued (up to one group's bound), applies the
//! batches in arrival order in one write transaction, makes it durable with
//! one commit (one fsync), and only then answers each writer. While that
//! commit is on its way to the disk, new batches queue up and share the next
//! one: the more writers wait, the more each fsync carries, so durability
//! costs latency, not throughput.
//!
//! Each batch stays atomic within a group. If writing one batch fails before
//! the commit (say a key redb refuses), the group's transaction is dropped,
//! so nothing of it reached the disk, and its batches are committed again one
//! by one: the bad one fails alone. If the commit itself fails, the disk may
//! or may not hold the group (redb: applied whole or not at all, possibly
//! durable), redb refuses further writes, and every writer of the group gets
//! the error; a restart reopens the store in a consistent state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use log::error;
use redb::{Database, Durability, StorageError, Table, TableDefinition};
use tokio::sync::oneshot;

use crate::store::{Batch, StoreError, Write};

/// The one table: byte keys to byte values, in byte order.
pub(super) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// How much may wait for the committer, and how much one commit takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Batches waiting at most; more are refused ([`StoreError::Busy`]).
    pub max_queued_batches: usize,
    /// Bytes of keys and values waiting at most; a batch alone in the queue
    /// is accepted whatever its size, so no batch is refused for ever.
    pub max_queued_bytes: usize,
    /// Batches in one commit at most.
    pub max_group_batches: usize,
    /// Bytes in one commit at most (the first batch always goes in).
    pub max_group_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queued_batches: 16_384,
            max_queued_bytes: 256 << 20,
            max_group_batches: 4096,
            max_group_bytes: 32 << 20,
        }
    }
}

/// Counters of the committer's work, for tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable commits (fsyncs) that succeeded.
    pub commits: u64,
    /// Batches those commits carried.
    pub batches: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }

    fn committed(&self, batches: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.batches.fetch_add(batches as u64, Ordering::Relaxed);
    }
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// A batch waiting for its commit, and who to tell.
struct Pending {
    batch: Batch,
    bytes: usize,
    reply: Reply,
}

impl Pending {
    fn answer(self, result: Result<(), StoreError>) {
        // The writer may have stopped waiting; the commit stands anyway.
        let _ = self.reply.send(result);
    }
}

#[derive(Default)]
struct Waiting {
    batches: VecDeque<Pending>,
    bytes: usize,
    closed: bool,
}

/// The queue between writers and the committer thread.
pub(super) struct Queue {
    limits: Limits,
    waiting: Mutex<Waiting>,
    arrived: Condvar,
}

impl Queue {
    pub(super) fn new(limits: Limits) -> Self {
        Queue {
            limits,
            waiting: Mutex::new(Waiting::default()),
            arrived: Condvar::new(),
        }
    }

    // Nothing panics while the lock is held but a full VecDeque's growth, so
    // the queue behind a poisoned lock is whole.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `batch` now (so batches are committed in the order of these
    /// calls) and returns where its outcome will arrive.
    pub(super) fn push(
        &self,
        batch: Batch,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let bytes = batch_bytes(&batch);
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(StoreError::Closed);
        }
        let full = waiting.batches.len() >= self.limits.max_queued_batches
            || waiting.bytes + bytes > self.limits.max_queued_bytes;
        if full && !waiting.batches.is_empty() {
            return Err(StoreError::Busy);
        }
        let (reply, outcome) = oneshot::channel();
        waiting.batches.push_back(Pending {
            batch,
            bytes,
            reply,
        });
        waiting.bytes += bytes;
        drop(waiting);
        self.arrived.notify_one();
        Ok(outcome)
    }

    /// Waits for batches and takes the next group, oldest first; `None`
    /// once closed and drained.
    fn next_group(&self) -> Option<Vec<Pending>> {
        let mut waiting = self.lock();
        while waiting.batches.is_empty() {
            if waiting.closed {
                return None;
            }
            waiting = self
                .arrived
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(next) = waiting.batches.front() {
            let fits = group.len() < self.limits.max_group_batches
                && bytes + next.bytes <= self.limits.max_group_bytes;
            if !fits && !group.is_empty() {
                break;
            }
            bytes += next.bytes;
            group.extend(waiting.batches.pop_front());
        }
        waiting.bytes -= bytes;
        Some(group)
    }

    /// No more batches are accepted; the committer drains what is queued.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }

    /// Closes the queue and fails what is still in it: the committer is gone.
    fn abandon(&self) {
        let orphans = {
            let mut waiting = self.lock();
            waiting.closed = true;
            waiting.bytes = 0;
            std::mem::take(&mut waiting.batches)
        };
        for pending in orphans {
            pending.answer(Err(StoreError::Closed));
        }
    }
}

fn batch_bytes(batch: &Batch) -> usize {
    batch
        .writes()
        .iter()
        .map(|write| match write {
            Write::Put { key, value } => key.len() + value.len(),
            Write::Delete { key } => key.len(),
        })
        .sum()
}

/// Starts the committer thread over `db`; it runs until `queue` is closed
/// and drained.
pub(super) fn spawn(
    db: Arc<Database>,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("store-committer".into())
        .spawn(move || {
            // However the loop ends (a panic included), nobody is left waiting.
            let _abandon = Abandon(&queue);
            while let Some(group) = queue.next_group() {
                commit_group(&db, group, &counters);
            }
        })
}

struct Abandon<'a>(&'a Queue);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Why a group was not committed.
enum Failed {
    /// Before the commit: nothing of the group is on disk.
    Write(StoreError),
    /// The commit itself: the outcome on disk is unknown.
    Commit(StoreError),
}

fn commit_group(db: &Database, group: Vec<Pending>, counters: &Counters) {
    commit_group_with(db, group, counters, &write_one);
}

/// How one write goes into the table: [`write_one`], or in tests one that
/// fails on purpose.
type WriteFn = dyn Fn(&mut Table<&[u8], &[u8]>, &Write) -> Result<(), StorageError>;

fn write_one(table: &mut Table<&[u8], &[u8]>, write: &Write) -> Result<(), StorageError> {
    match write {
        Write::Put { key, value } => table.insert(key.as_slice(), value.as_slice()),
        Write::Delete { key } => table.remove(key.as_slice()),
    }
    .map(drop)
}

fn commit_group_with(db: &Database, group: Vec<Pending>, counters: &Counters, write: &WriteFn) {
    match apply(db, group.iter().map(|pending| &pending.batch), write) {
        Ok(()) => {
            counters.committed(group.len());
            for pending in group {
                pending.answer(Ok(()));
            }
        }
        Err(Failed::Write(_)) if group.len() > 1 => {
            for pending in group {
                commit_group_with(db, vec![pending], counters, write);
            }
        }
        Err(Failed::Write(e) | Failed::Commit(e)) => {
            error!("store commit failed: {e}");
            for pending in group {
                pending.answer(Err(e.clone()));
            }
        }
    }
}

/// Writes `batches` in order in one transaction and commits it durably.
fn apply<'a>(
    db: &Database,
    batches: impl Iterator<Item = &'a Batch>,
    write: &WriteFn,
) -> Result<(), Failed> {
    let write_err = |e: &dyn std::fmt::Display| Failed::Write(backend(e));
    let mut tx = db.begin_write().map_err(|e| write_err(&e))?;
    tx.set_durability(Durability::Immediate)
        .map_err(|e| write_err(&e))?;
    {
        let mut table = tx.open_table(DATA).map_err(|e| write_err(&e))?;
        for batch in batches {
            for one in batch.writes() {
                write(&mut table, one).map_err(|e| write_err(&e))?;
            }
        }
    }
    tx.commit().map_err(|e| Failed::Commit(backend(&e)))
}

pub(super) fn backend(e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string().into())
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;

    fn pending(key: &[u8]) -> (Pending, oneshot::Receiver<Result<(), StoreError>>) {
        let mut batch = Batch::new();
        batch.put(key.to_vec(), b"first".to_vec());
        batch.put(key.to_vec(), b"v".to_vec());
        let (reply, outcome) = oneshot::channel();
        let bytes = batch_bytes(&batch);
        (
            Pending {
                batch,
                bytes,
                reply,
            },
            outcome,
        )
    }

    /// A batch that cannot be written fails alone: the others of its group
    /// are committed, and nothing of it is.
    #[test]
    fn a_failing_batch_fails_alone_in_its_group() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let counters = Counters::default();
        let (group, outcomes): (Vec<_>, Vec<_>) =
            [&b"a"[..], b"bad", b"c"].into_iter().map(pending).unzip();
        // Fails on the second write to "bad": its first one is in the
        // transaction by then, and must not survive.
        let failing = |table: &mut Table<&[u8], &[u8]>, write: &Write| match write {
            Write::Put { key, value } if key == b"bad" && value == b"v" => {
                Err(StorageError::Corrupted("refused on purpose".into()))
            }
            other => write_one(table, other),
        };
        commit_group_with(&db, group, &counters, &failing);

        let answers: Vec<bool> = outcomes
            .into_iter()
            .map(|mut o| o.try_recv().unwrap().is_ok())
            .collect();
        assert_eq!(answers, [true, false, true]);
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(DATA).unwrap();
        let value = |key: &[u8]| table.get(key).unwrap().map(|v| v.value().to_vec());
        assert_eq!(value(b"a"), Some(b"v".to_vec()));
        assert_eq!(value(b"bad"), None, "the failed batch left nothing");
        assert_eq!(value(b"c"), Some(b"v".to_vec()));
        assert_eq!(counters.snapshot().batches, 2);
    }
}
