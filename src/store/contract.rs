//! The store contract (module doc of `store`) as tests any implementation can
//! run: `contract_tests!(make)` expands to one test per promise, where `make`
//! is an expression of type `impl Fn() -> Arc<dyn Store>` giving a fresh,
//! empty store.

use std::sync::Arc;

use super::{Batch, Store};

/// One `#[tokio::test]` per contract check, each on a fresh store from `$make`.
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::store::contract::contract_tests!(@tests $make;
            get_returns_the_committed_value,
            later_write_in_a_batch_wins,
            deleting_a_missing_key_is_fine,
            empty_batch_is_fine,
            scan_returns_exactly_the_prefix_in_key_order,
            scan_pages_resume_after_the_cursor,
        );

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn batch_is_all_or_nothing_visible() {
            $crate::store::contract::batch_is_all_or_nothing_visible(($make)()).await;
        }
    };
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                $crate::store::contract::$check(($make)()).await;
            }
        )*
    };
}
pub(crate) use contract_tests;

fn batch(puts: &[(&[u8], &[u8])]) -> Batch {
    let mut batch = Batch::new();
    for (key, value) in puts {
        batch.put(key.to_vec(), value.to_vec());
    }
    batch
}

async fn get(store: &dyn Store, key: &[u8]) -> Option<Vec<u8>> {
    store.get(key.to_vec()).await.expect("get")
}

async fn keys(
    store: &dyn Store,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<Vec<u8>> {
    let page = store
        .scan(prefix.to_vec(), after.map(<[u8]>::to_vec), limit)
        .await
        .expect("scan");
    page.into_iter().map(|(key, _)| key).collect()
}

pub async fn get_returns_the_committed_value(store: Arc<dyn Store>) {
    assert_eq!(get(&*store, b"a").await, None);
    store.commit(batch(&[(b"a", b"1")])).await.unwrap();
    assert_eq!(get(&*store, b"a").await.as_deref(), Some(&b"1"[..]));
    store.commit(batch(&[(b"a", b"")])).await.unwrap();
    assert_eq!(
        get(&*store, b"a").await.as_deref(),
        Some(&b""[..]),
        "an empty value is a value"
    );
}

pub async fn later_write_in_a_batch_wins(store: Arc<dyn Store>) {
    let mut b = Batch::new();
    b.put(b"a".to_vec(), b"1".to_vec())
        .delete(b"a".to_vec())
        .delete(b"b".to_vec())
        .put(b"b".to_vec(), b"2".to_vec())
        .put(b"b".to_vec(), b"3".to_vec());
    store.commit(b).await.unwrap();
    assert_eq!(get(&*store, b"a").await, None);
    assert_eq!(get(&*store, b"b").await.as_deref(), Some(&b"3"[..]));
}

pub async fn deleting_a_missing_key_is_fine(store: Arc<dyn Store>) {
    store.commit(batch(&[(b"kept", b"1")])).await.unwrap();
    let mut b = Batch::new();
    b.delete(b"never-written".to_vec());
    store.commit(b).await.unwrap();
    assert_eq!(get(&*store, b"kept").await.as_deref(), Some(&b"1"[..]));
}

pub async fn empty_batch_is_fine(store: Arc<dyn Store>) {
    store.commit(Batch::new()).await.unwrap();
    assert!(keys(&*store, b"", None, 10).await.is_empty());
}

pub async fn scan_returns_exactly_the_prefix_in_key_order(store: Arc<dyn Store>) {
    // Neighbours on both sides of the prefix, and keys that only a byte-wise
    // (not string-wise or signed) comparison orders right.
    let all: [&[u8]; 8] = [
        b"\x01\xff",
        b"\x01\xfe\xff",
        b"\x01\xff\x00",
        b"\x01\xff\xff\xff",
        b"\x01\xff\x7f",
        b"\x01\xff\x80",
        b"\x02",
        b"\x00\xff",
    ];
    let puts: Vec<(&[u8], &[u8])> = all.iter().map(|k| (*k, &b"v"[..])).collect();
    store.commit(batch(&puts)).await.unwrap();

    let expected: Vec<Vec<u8>> = [
        &b"\x01\xff"[..],
        b"\x01\xff\x00",
        b"\x01\xff\x7f",
        b"\x01\xff\x80",
        b"\x01\xff\xff\xff",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    assert_eq!(keys(&*store, b"\x01\xff", None, 100).await, expected);

    let mut everything: Vec<Vec<u8>> = all.iter().map(|k| k.to_vec()).collect();
    everything.sort();
    assert_eq!(
        keys(&*store, b"", None, 100).await,
        everything,
        "the empty prefix is every key"
    );
    assert!(keys(&*store, b"\x03", None, 100).await.is_empty());

    let page = store.scan(b"\x02".to_vec(), None, 10).await.unwrap();
    assert_eq!(
        page,
        vec![(b"\x02".to_vec(), b"v".to_vec())],
        "scan returns values too"
    );
}

pub async fn scan_pages_resume_after_the_cursor(store: Arc<dyn Store>) {
    let puts: Vec<(&[u8], &[u8])> = [&b"p1"[..], b"p2", b"p3", b"p4", b"p5", b"q"]
        .iter()
        .map(|k| (*k, &b"v"[..]))
        .collect();
    store.commit(batch(&puts)).await.unwrap();

    assert_eq!(keys(&*store, b"p", None, 2).await, [b"p1", b"p2"]);
    assert_eq!(keys(&*store, b"p", Some(b"p2"), 2).await, [b"p3", b"p4"]);
    assert_eq!(
        keys(&*store, b"p", Some(b"p4"), 2).await,
        [b"p5"],
        "a short page is the last"
    );
    assert_eq!(
        keys(&*store, b"p", Some(b"p2x"), 1).await,
        [b"p3"],
        "the cursor need not exist"
    );
    assert_eq!(
        keys(&*store, b"p", Some(b"a"), 1).await,
        [b"p1"],
        "a cursor before the prefix starts at it"
    );
    assert!(keys(&*store, b"p", Some(b"p5"), 2).await.is_empty());
    assert!(keys(&*store, b"p", Some(b"z"), 2).await.is_empty());
    assert!(keys(&*store, b"p", None, 0).await.is_empty());
}

/// Readers racing a writer see each batch entirely or not at all, and the
/// writer reads each of its batches back as soon as its commit resolves.
pub async fn batch_is_all_or_nothing_visible(store: Arc<dyn Store>) {
    const KEYS: u8 = 8;
    const ROUNDS: u32 = 300;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            while last < ROUNDS {
                let page = store.scan(b"g".to_vec(), None, 100).await.unwrap();
                if page.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                assert_eq!(page.len(), usize::from(KEYS), "a batch seen in part");
                let round = |v: &[u8]| u32::from_be_bytes(v.try_into().unwrap());
                let first = round(&page[0].1);
                assert!(
                    page.iter().all(|(_, v)| round(v) == first),
                    "two batches mixed: {page:?}"
                );
                assert!(first >= last, "went back in time");
                last = first;
                tokio::task::yield_now().await;
            }
        })
    };
    for round in 1..=ROUNDS {
        let mut b = Batch::with_capacity(usize::from(KEYS));
        for k in 0..KEYS {
            b.put(vec![b'g', k], round.to_be_bytes().to_vec());
        }
        store.commit(b).await.unwrap();
        assert_eq!(
            get(&*store, &[b'g', KEYS - 1]).await,
            Some(round.to_be_bytes().to_vec())
        );
        tokio::task::yield_now().await;
    }
    reader.await.expect("reader");
}
