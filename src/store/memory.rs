//! `MemoryStore`: the store kept in a sorted map in memory (`--in-memory`,
//! and tests). Nothing survives the process, which is the point.
//!
//! Every operation runs to completion under the map's lock before its future
//! is even returned, so a batch is applied whole under one write lock (no
//! reader sees part of it) and the lock is never held across an await.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::FutureExt;
use futures::future::ready;

use super::{Batch, KeyValue, Store, StoreFuture, Write};

/// A [`Store`] in a `BTreeMap`, whose key order is the scan order.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    // A panic cannot leave the map half-written by a batch: inserts and
    // removes do not panic, so the data behind a poisoned lock is whole.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, batch: Batch) {
        let mut map = self.write();
        for write in batch.into_writes() {
            match write {
                Write::Put { key, value } => {
                    map.insert(key, value);
                }
                Write::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
    }

    fn page(&self, prefix: &[u8], after: Option<Vec<u8>>, limit: usize) -> Vec<KeyValue> {
        // A cursor before the prefix would start the range outside it.
        let start = match after {
            Some(after) if after.as_slice() >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix.to_vec()),
        };
        self.read()
            .range((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

impl Store for MemoryStore {
    fn commit(&self, batch: Batch) -> StoreFuture<()> {
        self.apply(batch);
        ready(Ok(())).boxed()
    }

    fn get(&self, key: Vec<u8>) -> StoreFuture<Option<Vec<u8>>> {
        let value = self.read().get(&key).cloned();
        ready(Ok(value)).boxed()
    }

    fn scan(
        &self,
        prefix: Vec<u8>,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> StoreFuture<Vec<KeyValue>> {
        let page = self.page(&prefix, after, limit);
        ready(Ok(page)).boxed()
    }
}

#[cfg(test)]
mod tests {
    crate::store::contract::contract_tests!(|| std::sync::Arc::new(super::MemoryStore::new()));
}
