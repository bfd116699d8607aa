//! A deadline queue: which job falls due next, at a cost that does not grow
//! with the jobs that are merely waiting.
//!
//! A min-heap of (due instant, sequence number, key). Moving or removing a
//! job does not search the heap: the job's current sequence number is kept
//! beside it, and a heap entry whose number is not the current one is stale
//! and skipped when it reaches the top (lazy deletion). So every operation
//! is O(log n), and the owner needs only one wake-up, at
//! [`DeadlineQueue::next_deadline`]: 100,000 jobs due next year cost no CPU
//! until the first of them is due.
//!
//! Stale entries are dropped in one pass when they outnumber the live ones,
//! so churn (re-registering the same job over and over) cannot grow the heap
//! without bound.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Stale entries tolerated before a compaction, beyond as many as there are
/// live ones.
const SLACK: usize = 1024;

/// Keys in deadline order; each key is in the queue at most once.
#[derive(Debug)]
pub struct DeadlineQueue<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    /// The sequence number of each queued key's current entry.
    live: HashMap<K, u64>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<K> {
    at: Instant,
    /// Orders equal deadlines first come, first served, and names the entry.
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<K: Clone + Eq + Hash> DeadlineQueue<K> {
    pub fn new() -> Self {
        DeadlineQueue {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Makes room for `more` keys at once (a restore of many jobs): the heap
    /// then holds exactly what it needs instead of up to twice as much.
    pub fn reserve(&mut self, more: usize) {
        self.heap.reserve_exact(more);
        self.live.reserve(more);
    }

    /// Queues `key` for `at`, replacing the deadline it had, if any.
    pub fn insert(&mut self, key: K, at: Instant) {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.live.insert(key.clone(), seq);
        self.heap.push(Reverse(Entry { at, seq, key }));
        self.compact_if_stale();
    }

    /// Takes `key` out of the queue; whether it was in it.
    pub fn remove(&mut self, key: &K) -> bool {
        let was = self.live.remove(key).is_some();
        self.compact_if_stale();
        was
    }

    /// The earliest deadline, if any key is queued.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes out the earliest key due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.drop_stale_top();
        let Reverse(top) = self.heap.peek()?;
        if top.at > now {
            return None;
        }
        let Reverse(entry) = self.heap.pop()?;
        self.live.remove(&entry.key);
        Some(entry.key)
    }

    /// Keys queued.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn is_current(&self, entry: &Entry<K>) -> bool {
        self.live.get(&entry.key) == Some(&entry.seq)
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_current(top) {
                return;
            }
            self.heap.pop();
        }
    }

    fn compact_if_stale(&mut self) {
        if self.heap.len() <= 2 * self.live.len() + SLACK {
            return;
        }
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse(e)| self.is_current(e))
            .collect();
    }
}

impl<K: Clone + Eq + Hash> Default for DeadlineQueue<K> {
    fn default() -> Self {
        DeadlineQueue::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    #[test]
    fn keys_come_out_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new();
        q.insert("c", at(t0, 3));
        q.insert("a", at(t0, 1));
        q.insert("b", at(t0, 2));
        assert_eq!(q.next_deadline(), Some(at(t0, 1)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(at(t0, 2)), Some("a"));
        assert_eq!(q.pop_due(at(t0, 2)), Some("b"));
        assert_eq!(q.pop_due(at(t0, 2)), None);
        assert_eq!(q.pop_due(at(t0, 9)), Some("c"));
        assert!(q.is_empty());
    }

    #[test]
    fn a_moved_or_removed_key_leaves_no_trace_of_its_old_deadline() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new();
        q.insert("a", at(t0, 1));
        q.insert("b", at(t0, 2));
        q.insert("a", at(t0, 5));
        assert!(q.remove(&"b"));
        assert!(!q.remove(&"b"));
        assert_eq!(q.next_deadline(), Some(at(t0, 5)));
        assert_eq!(q.pop_due(at(t0, 4)), None);
        assert_eq!(q.pop_due(at(t0, 5)), Some("a"));
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_keep_insertion_order() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new();
        for k in 0..5 {
            q.insert(k, t0);
        }
        let out: Vec<_> = std::iter::from_fn(|| q.pop_due(t0)).collect();
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn churn_does_not_grow_the_heap_without_bound() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::new();
        for i in 0..100_000u64 {
            q.insert(i % 10, at(t0, i));
        }
        assert_eq!(q.len(), 10);
        assert!(q.heap.len() <= 2 * 10 + SLACK + 1, "{}", q.heap.len());
    }
}
