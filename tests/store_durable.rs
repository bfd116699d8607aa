//! The durable store through its public API (SPEC P1, P2): what is committed
//! is there after reopening, concurrent writers share disk commits (group
//! commit), and a full write queue refuses without applying anything.
//! The store contract itself runs on it in `src/store/durable` (unit tests).

use std::sync::Arc;

use callbackstream::store::durable::Limits;
use callbackstream::store::{Batch, DurableStore, Store, StoreError};
use futures::future::join_all;
use tempfile::TempDir;

fn put(key: &[u8], value: &[u8]) -> Batch {
    let mut batch = Batch::new();
    batch.put(key.to_vec(), value.to_vec());
    batch
}

#[tokio::test]
async fn p1_committed_writes_survive_reopening() {
    let dir = TempDir::new().unwrap();
    {
        let store = DurableStore::open(dir.path()).unwrap();
        let mut batch = Batch::new();
        batch
            .put(b"a".to_vec(), b"1".to_vec())
            .put(b"b".to_vec(), b"2".to_vec());
        store.commit(batch).await.unwrap();
        let mut batch = Batch::new();
        batch.delete(b"a".to_vec());
        store.commit(batch).await.unwrap();
    }
    let store = DurableStore::open(dir.path()).unwrap();
    assert_eq!(store.get(b"a".to_vec()).await.unwrap(), None);
    assert_eq!(store.get(b"b".to_vec()).await.unwrap(), Some(b"2".to_vec()));
}

/// Writers that arrive while a commit is in flight share the next one: many
/// more batches are made durable than there are disk commits, and every
/// batch is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_concurrent_commits_share_disk_commits() {
    const WRITERS: usize = 64;
    const EACH: usize = 40;
    let dir = TempDir::new().unwrap();
    let store = Arc::new(DurableStore::open(dir.path()).unwrap());
    let before = store.commit_stats();
    let writers = (0..WRITERS).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..EACH {
                let key = format!("w{w:02}-{i:03}");
                store.commit(put(key.as_bytes(), b"v")).await.unwrap();
            }
        })
    });
    for writer in join_all(writers).await {
        writer.unwrap();
    }
    let stats = store.commit_stats();
    let batches = stats.batches - before.batches;
    let commits = stats.commits - before.commits;
    assert_eq!(
        batches,
        (WRITERS * EACH) as u64,
        "every batch committed once"
    );
    assert!(
        commits * 4 <= batches,
        "{batches} batches took {commits} disk commits: not grouped"
    );
    let all = store.scan(b"w".to_vec(), None, WRITERS * EACH + 1).await;
    assert_eq!(all.unwrap().len(), WRITERS * EACH);
}

/// Past the queue's bound a write is refused at once (Busy) and has no
/// effect; every write that was accepted is committed.
#[tokio::test]
async fn store_queue_bound_refuses_with_busy_and_applies_nothing() {
    const WRITES: usize = 2000;
    let dir = TempDir::new().unwrap();
    let limits = Limits {
        max_queued_batches: 4,
        ..Limits::default()
    };
    let store = DurableStore::open_with(dir.path(), limits).unwrap();
    // Handed over all at once, faster than any disk commits them.
    let commits: Vec<_> = (0..WRITES)
        .map(|i| store.commit(put(format!("k{i:05}").as_bytes(), b"v")))
        .collect();
    let outcomes = join_all(commits).await;
    let mut refused = 0;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let stored = store.get(format!("k{i:05}").into_bytes()).await.unwrap();
        match outcome {
            Ok(()) => assert!(stored.is_some(), "write {i} acknowledged but absent"),
            Err(StoreError::Busy) => {
                refused += 1;
                assert!(stored.is_none(), "write {i} refused but applied");
            }
            Err(e) => panic!("write {i}: {e}"),
        }
    }
    assert!(refused > 0, "the bound of 4 queued batches never refused");
    assert!(refused < WRITES, "nothing was accepted");
}
