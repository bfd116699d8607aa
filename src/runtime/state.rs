//! Actor state (SPEC ST1-ST3, P4): GetActorState and
//! ExecuteActorStateTransaction over a [`Store`], with per-key expiry.
//!
//! It owns how state is laid out in the store, the validation of a
//! transaction (all of it, before anything is written), and the removal of
//! expired keys. Whether the actor is active (ST2's INTERNAL `actor instance
//! is missing`) is the caller's check: this module knows nothing of actors'
//! lives.
//!
//! # Layout
//!
//! ```text
//! value:   [STATE]        len(type) type  len(id) id  key       -> tag [expiry] data
//! expiry:  [STATE_EXPIRY] expiry  <the value's key, whole>      -> (empty)
//! ```
//!
//! `len(x)` is the byte length of `x` as a big-endian `u32` and `key` runs to
//! the end, so every (type, id, key) has exactly one encoding whatever bytes
//! the names hold, and the keys of one actor are exactly those under the
//! prefix `[STATE] len(type) type len(id) id`. The namespace bytes come from
//! [`crate::store::namespace`], which other users of the store (reminders)
//! share.
//!
//! A value starts with a tag: `0` for a key that never expires, then the data;
//! `1` for one that does, then its expiry instant (nanoseconds since the Unix
//! epoch, big-endian `u64`), then the data. The expiry lives in the value so
//! that a read after it sees the key absent however long the process (or a
//! durable store's directory) has been down, with or without a purge.
//!
//! Each expiring write also records `expiry ++ value key` under
//! [`STATE_EXPIRY`](crate::store::namespace::STATE_EXPIRY); these sort by
//! expiry, so [`ActorState::purge_expired`] reads only what is due. The
//! runtime calls it in the background (`runtime::purge`), woken by the
//! [`ExpiryWatch`] every expiring write lowers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::RwLock;

use crate::metrics;
use crate::runtime::clock::Clock;
use crate::runtime::purge::ExpiryWatch;
use crate::store::{Batch, Store, StoreError, namespace};

/// Longest state key accepted, in bytes (UTF-8 of the proto string).
pub const MAX_KEY_BYTES: usize = 4096;

/// Longest actor type or actor id accepted, in bytes.
pub const MAX_ACTOR_NAME_BYTES: usize = 1024;

/// Most operations accepted in one transaction.
pub const MAX_OPERATIONS: usize = 10_000;

/// Longest `ttlInSeconds` accepted (2^31 - 1 s, about 68 years): long enough
/// for any real use, and short enough that an expiry always fits the value's
/// `u64` nanoseconds and formats as RFC3339.
pub const MAX_TTL_SECONDS: i64 = i32::MAX as i64;

/// How many expiry records [`ActorState::purge_expired`] handles per call
/// unless told otherwise: one bounded batch per call.
pub const PURGE_BATCH: usize = 256;

/// The upsert metadata key that sets a time to live, in whole seconds.
pub const TTL_IN_SECONDS: &str = "ttlInSeconds";

/// The read metadata key that reports when a key expires (RFC3339).
pub const TTL_EXPIRE_TIME: &str = "ttlExpireTime";

/// Error messages echo at most this many bytes of the caller's input, so a
/// status stays small whatever was sent.
const ECHO_BYTES: usize = 128;

/// One `TransactionalActorStateOperation`, as plain values: `value` is the
/// `Any`'s `value` bytes (empty when unset; the type_url is not kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operation {
    pub operation_type: String,
    pub key: String,
    pub value: Vec<u8>,
    pub metadata: HashMap<String, String>,
}

impl Operation {
    pub fn upsert(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Operation {
            operation_type: "upsert".into(),
            key: key.into(),
            value: value.into(),
            metadata: HashMap::new(),
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        Operation {
            operation_type: "delete".into(),
            key: key.into(),
            ..Operation::default()
        }
    }

    /// The same operation with `metadata.ttlInSeconds` set to `ttl`.
    pub fn with_ttl(mut self, ttl: impl Into<String>) -> Self {
        self.metadata.insert(TTL_IN_SECONDS.into(), ttl.into());
        self
    }
}

/// A GetActorState answer: both empty when the key is absent or expired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateValue {
    pub data: Vec<u8>,
    /// `ttlExpireTime` while a ttl runs; nothing else.
    pub metadata: HashMap<String, String>,
}

/// What one [`ActorState::purge_expired`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired keys deleted.
    pub removed: usize,
    /// The batch was full: more may be due, call again.
    pub more: bool,
}

/// Why a state request was refused or failed; [`StateError::code`] is its
/// gRPC status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("operation type {0} not supported")]
    UnsupportedOperation(String),

    #[error("actor state key cannot be empty")]
    EmptyKey,

    #[error("actor state key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLong { len: usize, max: usize },

    #[error("actor {what} of {len} bytes exceeds the limit of {max} bytes")]
    NameTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },

    #[error("transaction of {count} operations exceeds the limit of {max}")]
    TooManyOperations { count: usize, max: usize },

    #[error("ttlInSeconds value must be a valid integer: actual is '{0}'")]
    TtlNotInteger(String),

    #[error("ttlInSeconds value must be between 1 and 2147483647: actual is {0}")]
    TtlOutOfRange(i64),

    #[error("actor state store: {0}")]
    Store(#[from] StoreError),

    #[error("stored actor state is corrupt: {0}")]
    Corrupt(&'static str),
}

impl StateError {
    /// The gRPC status code the front door answers with.
    pub fn code(&self) -> tonic::Code {
        use StateError::*;
        match self {
            UnsupportedOperation(_) => tonic::Code::Unimplemented,
            EmptyKey
            | KeyTooLong { .. }
            | NameTooLong { .. }
            | TooManyOperations { .. }
            | TtlNotInteger(_)
            | TtlOutOfRange(_) => tonic::Code::InvalidArgument,
            Store(StoreError::Closed) => tonic::Code::Unavailable,
            Store(StoreError::Busy) => tonic::Code::ResourceExhausted,
            Store(_) | Corrupt(_) => tonic::Code::Internal,
        }
    }
}

/// Actor state over a shared store. Cheap to clone; clones share the store,
/// the purge gate and the expiry watch.
#[derive(Clone)]
pub struct ActorState {
    store: Arc<dyn Store>,
    clock: Clock,
    /// Told of every expiry written, for the background purge.
    expiries: Arc<ExpiryWatch>,
    // Transactions hold it shared, a purge exclusively: a purge reads a key,
    // finds it expired and deletes it, and no transaction may write that key
    // in between or the purge would delete the new value. A purge is one
    // small batch, now and then, so stalling writers for it is cheaper than
    // locking per key on every transaction.
    purge_gate: Arc<RwLock<()>>,
}

impl ActorState {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        ActorState {
            store,
            clock,
            expiries: Arc::default(),
            purge_gate: Arc::new(RwLock::new(())),
        }
    }

    /// What the background purge (`runtime::purge`) sleeps on.
    pub fn expiry_watch(&self) -> &Arc<ExpiryWatch> {
        &self.expiries
    }

    /// GetActorState (ST1, ST3). An empty key is valid here and simply absent.
    pub async fn get(
        &self,
        actor_type: &str,
        actor_id: &str,
        key: &str,
    ) -> Result<StateValue, StateError> {
        check_actor(actor_type, actor_id)?;
        check_key_length(key)?;
        let Some(stored) = self.store.get(value_key(actor_type, actor_id, key)).await? else {
            return Ok(StateValue::default());
        };
        let (expiry, data) = decode_value(stored)?;
        match expiry {
            None => Ok(StateValue {
                data,
                metadata: HashMap::new(),
            }),
            Some(expiry) if expiry.has_passed(self.now()) => Ok(StateValue::default()),
            Some(expiry) => Ok(StateValue {
                data,
                metadata: HashMap::from([(TTL_EXPIRE_TIME.to_owned(), expiry.to_rfc3339())]),
            }),
        }
    }

    /// ExecuteActorStateTransaction (ST2, ST3, P4): every operation is
    /// validated before any is written, then all are committed as one batch,
    /// in order (a later operation on a key wins).
    pub async fn transact(
        &self,
        actor_type: &str,
        actor_id: &str,
        operations: Vec<Operation>,
    ) -> Result<(), StateError> {
        let started = tokio::time::Instant::now();
        let result = self.apply(actor_type, actor_id, operations).await;
        if let Some(m) = metrics::get() {
            let committed = result.is_ok().then(|| started.elapsed().as_secs_f64());
            m.state_transaction(committed);
        }
        result
    }

    async fn apply(
        &self,
        actor_type: &str,
        actor_id: &str,
        operations: Vec<Operation>,
    ) -> Result<(), StateError> {
        check_actor(actor_type, actor_id)?;
        if operations.len() > MAX_OPERATIONS {
            return Err(StateError::TooManyOperations {
                count: operations.len(),
                max: MAX_OPERATIONS,
            });
        }
        let now = self.now();
        let mut batch = Batch::with_capacity(operations.len());
        let mut earliest: Option<UnixNanos> = None;
        for operation in operations {
            match Change::validate(operation, now)? {
                Change::Upsert { key, value, expiry } => {
                    let key = value_key(actor_type, actor_id, &key);
                    if let Some(expiry) = expiry {
                        batch.put(expiry_key(expiry, &key), Vec::new());
                        earliest = Some(earliest.map_or(expiry, |e| e.min(expiry)));
                    }
                    batch.put(key, encode_value(expiry, &value));
                }
                Change::Delete { key } => {
                    batch.delete(value_key(actor_type, actor_id, &key));
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let _shared = self.purge_gate.read().await;
        self.store.commit(batch).await?;
        if let Some(expiry) = earliest {
            self.expiries.expires_at(expiry.to_system_time());
        }
        Ok(())
    }

    /// The earliest expiry of any record in the store (stale ones
    /// included: they are due to be dropped then too).
    pub async fn earliest_expiry(&self) -> Result<Option<SystemTime>, StateError> {
        let first = self
            .store
            .scan(vec![namespace::STATE_EXPIRY], None, 1)
            .await?;
        match first.first() {
            Some((record, _)) => Ok(Some(parse_expiry_key(record)?.0.to_system_time())),
            None => Ok(None),
        }
    }

    /// Deletes keys that have expired, handling at most `limit` due expiry
    /// records (at least one) in one batch; call again while `more`.
    ///
    /// A record may be stale: its key rewritten (with another ttl or none) or
    /// deleted since. A key is deleted only if the value under it has expired
    /// now, so writes never need to find and remove old records, and a stale
    /// record just goes when it falls due.
    pub async fn purge_expired(&self, limit: usize) -> Result<Purged, StateError> {
        let limit = limit.max(1);
        let now = self.now();
        let page = self
            .store
            .scan(vec![namespace::STATE_EXPIRY], None, limit)
            .await?;
        let mut due = Vec::with_capacity(page.len());
        for (record, _) in page {
            let (expiry, key) = parse_expiry_key(&record)?;
            if !expiry.has_passed(now) {
                break;
            }
            due.push((key.to_vec(), record));
        }
        if due.is_empty() {
            return Ok(Purged::default());
        }
        let more = due.len() == limit;

        let _exclusive = self.purge_gate.write().await;
        let mut batch = Batch::with_capacity(2 * due.len());
        let mut removed = HashSet::new();
        for (key, record) in due {
            if !removed.contains(&key) && self.has_expired(&key, now).await? {
                batch.delete(key.clone());
                removed.insert(key);
            }
            batch.delete(record);
        }
        self.store.commit(batch).await?;
        Ok(Purged {
            removed: removed.len(),
            more,
        })
    }

    async fn has_expired(&self, key: &[u8], now: UnixNanos) -> Result<bool, StateError> {
        let Some(stored) = self.store.get(key.to_vec()).await? else {
            return Ok(false);
        };
        Ok(matches!(decode_expiry(&stored)?, Some(expiry) if expiry.has_passed(now)))
    }

    fn now(&self) -> UnixNanos {
        UnixNanos::at(self.clock.now())
    }
}

/// A validated operation.
enum Change {
    Upsert {
        key: String,
        value: Vec<u8>,
        expiry: Option<UnixNanos>,
    },
    Delete {
        key: String,
    },
}

impl Change {
    fn validate(operation: Operation, now: UnixNanos) -> Result<Change, StateError> {
        let Operation {
            operation_type,
            key,
            value,
            metadata,
        } = operation;
        let upsert = match operation_type.as_str() {
            "upsert" => true,
            "delete" => false,
            _ => return Err(StateError::UnsupportedOperation(echo(&operation_type))),
        };
        check_key_length(&key)?;
        if key.is_empty() {
            return Err(StateError::EmptyKey);
        }
        if !upsert {
            // A delete's metadata (a ttl included) means nothing: ignored.
            return Ok(Change::Delete { key });
        }
        let expiry = parse_ttl(&metadata)?.map(|ttl| now.after(ttl));
        Ok(Change::Upsert { key, value, expiry })
    }
}

/// `ttlInSeconds`: absent or empty means no ttl; otherwise a decimal integer
/// (an optional sign allowed, as Go's ParseInt) from 1 to [`MAX_TTL_SECONDS`].
/// Zero and negative values are refused rather than read as "already expired"
/// or "never": a caller asking for either has a bug worth hearing about.
fn parse_ttl(metadata: &HashMap<String, String>) -> Result<Option<Duration>, StateError> {
    let Some(text) = metadata.get(TTL_IN_SECONDS).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let seconds: i64 = text
        .parse()
        .map_err(|_| StateError::TtlNotInteger(echo(text)))?;
    if !(1..=MAX_TTL_SECONDS).contains(&seconds) {
        return Err(StateError::TtlOutOfRange(seconds));
    }
    Ok(Some(Duration::from_secs(seconds.unsigned_abs())))
}

fn check_actor(actor_type: &str, actor_id: &str) -> Result<(), StateError> {
    for (what, name) in [("type", actor_type), ("id", actor_id)] {
        if name.len() > MAX_ACTOR_NAME_BYTES {
            return Err(StateError::NameTooLong {
                what,
                len: name.len(),
                max: MAX_ACTOR_NAME_BYTES,
            });
        }
    }
    Ok(())
}

fn check_key_length(key: &str) -> Result<(), StateError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StateError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

/// At most [`ECHO_BYTES`] of `text`, cut at a character boundary.
fn echo(text: &str) -> String {
    if text.len() <= ECHO_BYTES {
        return text.to_owned();
    }
    let end = (0..=ECHO_BYTES)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &text[..end])
}

/// An instant as whole nanoseconds since the Unix epoch: how the layout
/// stores an expiry, and the one scale expiries are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct UnixNanos(u64);

impl UnixNanos {
    /// `time`, clamped to the representable range (1970 to 2554).
    fn at(time: SystemTime) -> UnixNanos {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        UnixNanos(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
    }

    fn after(self, ttl: Duration) -> UnixNanos {
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        UnixNanos(self.0.saturating_add(ttl))
    }

    /// Whether this expiry has passed at `now`: a key is absent from its
    /// expiry instant on.
    fn has_passed(self, now: UnixNanos) -> bool {
        self.0 <= now.0
    }

    fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    fn to_rfc3339(self) -> String {
        humantime::format_rfc3339(self.to_system_time()).to_string()
    }
}

const TAG_PLAIN: u8 = 0;
const TAG_EXPIRING: u8 = 1;
const EXPIRY_BYTES: usize = 8;

fn value_key(actor_type: &str, actor_id: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 4 + actor_type.len() + 4 + actor_id.len() + key.len());
    out.push(namespace::STATE);
    push_part(&mut out, actor_type);
    push_part(&mut out, actor_id);
    out.extend_from_slice(key.as_bytes());
    out
}

fn push_part(out: &mut Vec<u8>, part: &str) {
    // check_actor bounds every name far below u32::MAX.
    let len = u32::try_from(part.len()).expect("actor names are length-checked");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part.as_bytes());
}

fn expiry_key(expiry: UnixNanos, value_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + EXPIRY_BYTES + value_key.len());
    out.push(namespace::STATE_EXPIRY);
    out.extend_from_slice(&expiry.0.to_be_bytes());
    out.extend_from_slice(value_key);
    out
}

/// An expiry record's instant and the value key it names.
fn parse_expiry_key(record: &[u8]) -> Result<(UnixNanos, &[u8]), StateError> {
    let corrupt = StateError::Corrupt("malformed expiry record");
    let rest = record
        .strip_prefix(&[namespace::STATE_EXPIRY])
        .ok_or(corrupt.clone())?;
    let (expiry, key) = rest.split_first_chunk::<EXPIRY_BYTES>().ok_or(corrupt)?;
    Ok((UnixNanos(u64::from_be_bytes(*expiry)), key))
}

fn encode_value(expiry: Option<UnixNanos>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + EXPIRY_BYTES + data.len());
    match expiry {
        None => out.push(TAG_PLAIN),
        Some(expiry) => {
            out.push(TAG_EXPIRING);
            out.extend_from_slice(&expiry.0.to_be_bytes());
        }
    }
    out.extend_from_slice(data);
    out
}

/// A stored value's expiry and the length of its header.
fn decode_header(stored: &[u8]) -> Result<(Option<UnixNanos>, usize), StateError> {
    match stored.split_first() {
        Some((&TAG_PLAIN, _)) => Ok((None, 1)),
        Some((&TAG_EXPIRING, rest)) => {
            let (expiry, _) = rest
                .split_first_chunk::<EXPIRY_BYTES>()
                .ok_or(StateError::Corrupt("truncated expiry"))?;
            Ok((
                Some(UnixNanos(u64::from_be_bytes(*expiry))),
                1 + EXPIRY_BYTES,
            ))
        }
        _ => Err(StateError::Corrupt("unknown value tag")),
    }
}

fn decode_expiry(stored: &[u8]) -> Result<Option<UnixNanos>, StateError> {
    Ok(decode_header(stored)?.0)
}

fn decode_value(mut stored: Vec<u8>) -> Result<(Option<UnixNanos>, Vec<u8>), StateError> {
    let (expiry, header) = decode_header(&stored)?;
    stored.drain(..header);
    Ok((expiry, stored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const T0_SECS: u64 = 1_700_000_000;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0_SECS)
    }

    fn fresh() -> (ActorState, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        (
            ActorState::new(store.clone(), Clock::starting_at(t0())),
            store,
        )
    }

    async fn data(state: &ActorState, key: &str) -> Vec<u8> {
        state.get("T", "1", key).await.unwrap().data
    }

    async fn advance(secs: u64) {
        tokio::time::advance(Duration::from_secs(secs)).await;
    }

    async fn store_len(store: &Arc<dyn Store>) -> usize {
        store
            .scan(Vec::new(), None, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    #[tokio::test(start_paused = true)]
    async fn st1_absent_key_reads_as_empty_data_and_metadata() {
        let (state, _) = fresh();
        assert_eq!(
            state.get("T", "1", "nothing").await.unwrap(),
            StateValue::default()
        );
        assert_eq!(
            state.get("T", "1", "").await.unwrap(),
            StateValue::default(),
            "an empty key reads as absent"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st1_get_returns_the_bytes_last_stored() {
        let (state, _) = fresh();
        state
            .transact("T", "1", vec![Operation::upsert("k", b"\"one\"".to_vec())])
            .await
            .unwrap();
        state
            .transact("T", "1", vec![Operation::upsert("k", b"\"two\"".to_vec())])
            .await
            .unwrap();
        let value = state.get("T", "1", "k").await.unwrap();
        assert_eq!(value.data, b"\"two\"");
        assert!(value.metadata.is_empty(), "no ttl, no metadata");
        assert!(
            state.get("T", "2", "k").await.unwrap().data.is_empty(),
            "another actor's key"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st1_names_with_any_bytes_never_collide() {
        // Triples that a separator-joined layout would confuse.
        let triples = [
            ("a", "bc", "d"),
            ("ab", "c", "d"),
            ("a", "b", "cd"),
            ("a\0", "b", "c"),
            ("a", "\0b", "c"),
            ("a||b", "c", "d"),
            ("a", "b||c", "d"),
            ("", "", "abc"),
            ("", "abc", "x"),
            ("\u{0}\u{0}\u{0}\u{3}abc", "", "x"),
        ];
        let (state, _) = fresh();
        for (n, (t, id, key)) in triples.iter().enumerate() {
            state
                .transact(t, id, vec![Operation::upsert(*key, n.to_string())])
                .await
                .unwrap();
        }
        for (n, (t, id, key)) in triples.iter().enumerate() {
            assert_eq!(
                state.get(t, id, key).await.unwrap().data,
                n.to_string().as_bytes(),
                "{t:?} {id:?} {key:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn st2_transaction_applies_every_operation_in_order() {
        let (state, _) = fresh();
        state
            .transact("T", "1", vec![Operation::upsert("gone", "x")])
            .await
            .unwrap();
        let ops = vec![
            Operation::upsert("a", "1"),
            Operation::delete("gone"),
            Operation::upsert("b", "1"),
            Operation::upsert("b", "2"),
            Operation::upsert("c", "1"),
            Operation::delete("c"),
        ];
        state.transact("T", "1", ops).await.unwrap();
        assert_eq!(data(&state, "a").await, b"1");
        assert_eq!(data(&state, "gone").await, b"");
        assert_eq!(
            data(&state, "b").await,
            b"2",
            "the later operation on a key wins"
        );
        assert_eq!(data(&state, "c").await, b"");
    }

    #[tokio::test(start_paused = true)]
    async fn st2_deleting_a_missing_key_is_fine() {
        let (state, _) = fresh();
        state
            .transact("T", "1", vec![Operation::delete("never")])
            .await
            .unwrap();
        state.transact("T", "1", Vec::new()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn st2_unknown_operation_type_is_unimplemented_and_applies_nothing() {
        let (state, store) = fresh();
        for kind in ["merge", "Upsert", "DELETE", "", "get"] {
            let odd = Operation {
                operation_type: kind.into(),
                ..Operation::upsert("b", "2")
            };
            let err = state
                .transact("T", "1", vec![Operation::upsert("a", "1"), odd])
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unimplemented);
            assert_eq!(
                err.to_string(),
                format!("operation type {kind} not supported")
            );
        }
        assert_eq!(store_len(&store).await, 0, "nothing applied");
    }

    #[tokio::test(start_paused = true)]
    async fn st2_empty_key_is_invalid_and_applies_nothing() {
        let (state, store) = fresh();
        for bad in [Operation::upsert("", "x"), Operation::delete("")] {
            let err = state
                .transact("T", "1", vec![Operation::upsert("a", "1"), bad])
                .await
                .unwrap_err();
            assert_eq!(err, StateError::EmptyKey);
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
        }
        assert_eq!(store_len(&store).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn st3_ttl_reports_its_expire_time_then_the_key_reads_absent() {
        let (state, _) = fresh();
        state
            .transact("T", "1", vec![Operation::upsert("k", "v").with_ttl("10")])
            .await
            .unwrap();
        advance(9).await;
        let value = state.get("T", "1", "k").await.unwrap();
        assert_eq!(value.data, b"v");
        assert_eq!(
            value.metadata,
            HashMap::from([(
                TTL_EXPIRE_TIME.to_owned(),
                "2023-11-14T22:13:30Z".to_owned()
            )])
        );
        advance(1).await;
        assert_eq!(
            state.get("T", "1", "k").await.unwrap(),
            StateValue::default(),
            "absent from the expiry instant on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st3_a_later_upsert_without_ttl_keeps_the_key_for_good() {
        let (state, _) = fresh();
        state
            .transact("T", "1", vec![Operation::upsert("k", "v1").with_ttl("5")])
            .await
            .unwrap();
        state
            .transact("T", "1", vec![Operation::upsert("k", "v2")])
            .await
            .unwrap();
        advance(3600).await;
        let value = state.get("T", "1", "k").await.unwrap();
        assert_eq!(
            (value.data.as_slice(), value.metadata.len()),
            (&b"v2"[..], 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st3_ttl_must_be_a_positive_integer_and_a_bad_one_applies_nothing() {
        let (state, store) = fresh();
        let cases = [
            (
                "1.5",
                "ttlInSeconds value must be a valid integer: actual is '1.5'",
            ),
            (
                "10s",
                "ttlInSeconds value must be a valid integer: actual is '10s'",
            ),
            (
                " 1",
                "ttlInSeconds value must be a valid integer: actual is ' 1'",
            ),
            (
                "99999999999999999999",
                "ttlInSeconds value must be a valid integer: actual is '99999999999999999999'",
            ),
            (
                "0",
                "ttlInSeconds value must be between 1 and 2147483647: actual is 0",
            ),
            (
                "-1",
                "ttlInSeconds value must be between 1 and 2147483647: actual is -1",
            ),
            (
                "2147483648",
                "ttlInSeconds value must be between 1 and 2147483647: actual is 2147483648",
            ),
        ];
        for (ttl, message) in cases {
            let err = state
                .transact(
                    "T",
                    "1",
                    vec![
                        Operation::upsert("a", "1"),
                        Operation::upsert("b", "2").with_ttl(ttl),
                    ],
                )
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{ttl}");
            assert_eq!(err.to_string(), message);
        }
        assert_eq!(store_len(&store).await, 0);
        assert_eq!(
            StateError::TtlOutOfRange(0).to_string(),
            format!("ttlInSeconds value must be between 1 and {MAX_TTL_SECONDS}: actual is 0"),
            "the message names the cap"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st3_empty_ttl_means_none_and_ttl_on_delete_is_ignored() {
        let (state, _) = fresh();
        let ops = vec![
            Operation::upsert("a", "1").with_ttl(""),
            Operation::upsert("b", "1"),
            Operation::delete("b").with_ttl("nonsense"),
            Operation::upsert("c", "1").with_ttl("+2147483647"),
        ];
        state.transact("T", "1", ops).await.unwrap();
        let a = state.get("T", "1", "a").await.unwrap();
        assert_eq!((a.data.as_slice(), a.metadata.len()), (&b"1"[..], 0));
        assert_eq!(data(&state, "b").await, b"");
        let c = state.get("T", "1", "c").await.unwrap();
        assert_eq!(
            c.metadata[TTL_EXPIRE_TIME], "2091-12-03T01:27:27Z",
            "the longest ttl formats"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn st3_expiry_is_kept_in_the_store_across_a_restart() {
        let (state, store) = fresh();
        state
            .transact("T", "1", vec![Operation::upsert("k", "v").with_ttl("60")])
            .await
            .unwrap();
        drop(state);
        // A new runtime over the same store, its clock two minutes on.
        let later = ActorState::new(store, Clock::starting_at(t0() + Duration::from_secs(120)));
        assert_eq!(
            later.get("T", "1", "k").await.unwrap(),
            StateValue::default()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn p4_oversized_names_keys_and_transactions_are_invalid_and_apply_nothing() {
        let (state, store) = fresh();
        let long_name = "n".repeat(MAX_ACTOR_NAME_BYTES + 1);
        let long_key = "k".repeat(MAX_KEY_BYTES + 1);
        let one = || vec![Operation::upsert("a", "1")];
        let too_many = vec![Operation::delete("a"); MAX_OPERATIONS + 1];
        let refusals = [
            state.transact(&long_name, "1", one()).await,
            state.transact("T", &long_name, one()).await,
            state
                .transact(
                    "T",
                    "1",
                    vec![
                        Operation::upsert("a", "1"),
                        Operation::upsert(long_key.clone(), "x"),
                    ],
                )
                .await,
            state
                .transact(
                    "T",
                    "1",
                    vec![
                        Operation::upsert("a", "1"),
                        Operation::delete(long_key.clone()),
                    ],
                )
                .await,
            state.transact("T", "1", too_many).await,
            state.get("T", "1", &long_key).await.map(drop),
            state.get(&long_name, "1", "a").await.map(drop),
        ];
        for refusal in refusals {
            assert_eq!(refusal.unwrap_err().code(), tonic::Code::InvalidArgument);
        }
        assert_eq!(store_len(&store).await, 0);

        let at_caps = vec![Operation::upsert("k".repeat(MAX_KEY_BYTES), "x"); MAX_OPERATIONS];
        let name = "n".repeat(MAX_ACTOR_NAME_BYTES);
        state
            .transact(&name, &name, at_caps)
            .await
            .expect("at the caps is fine");
    }

    #[test]
    fn p4_echoed_input_is_shortened_at_a_character_boundary() {
        let long = "é".repeat(ECHO_BYTES);
        let err = StateError::UnsupportedOperation(echo(&long));
        assert!(err.to_string().len() < ECHO_BYTES + 40, "{err}");
        assert_eq!(echo("upsertx"), "upsertx");
    }

    #[tokio::test(start_paused = true)]
    async fn purge_removes_expired_keys_in_bounded_batches() {
        let (state, store) = fresh();
        let ops = (0..5)
            .map(|i| Operation::upsert(format!("k{i}"), "v").with_ttl("10"))
            .collect();
        state.transact("T", "1", ops).await.unwrap();
        state
            .transact(
                "T",
                "1",
                vec![Operation::upsert("late", "v").with_ttl("20")],
            )
            .await
            .unwrap();
        state
            .transact("T", "1", vec![Operation::upsert("kept", "v")])
            .await
            .unwrap();
        assert_eq!(
            state.purge_expired(PURGE_BATCH).await.unwrap(),
            Purged::default(),
            "nothing due yet"
        );
        assert_eq!(store_len(&store).await, 7 + 6);

        advance(10).await;
        assert_eq!(
            state.purge_expired(2).await.unwrap(),
            Purged {
                removed: 2,
                more: true
            }
        );
        assert_eq!(
            state.purge_expired(2).await.unwrap(),
            Purged {
                removed: 2,
                more: true
            }
        );
        assert_eq!(
            state.purge_expired(2).await.unwrap(),
            Purged {
                removed: 1,
                more: false
            }
        );
        assert_eq!(
            store_len(&store).await,
            2 + 1,
            "late, kept and late's record remain"
        );

        advance(10).await;
        assert_eq!(
            state.purge_expired(0).await.unwrap(),
            Purged {
                removed: 1,
                more: true
            },
            "a limit of 0 is 1"
        );
        assert_eq!(
            state.purge_expired(PURGE_BATCH).await.unwrap(),
            Purged::default()
        );
        assert_eq!(data(&state, "kept").await, b"v");
        assert_eq!(store_len(&store).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn purge_keeps_keys_rewritten_since_their_record() {
        let (state, store) = fresh();
        let ttl = |key: &str, secs: &str| Operation::upsert(key, "old").with_ttl(secs);
        state
            .transact(
                "T",
                "1",
                vec![
                    ttl("plain", "5"),
                    ttl("longer", "5"),
                    ttl("gone", "5"),
                    ttl("twice", "5"),
                ],
            )
            .await
            .unwrap();
        advance(1).await;
        let rewrites = vec![
            Operation::upsert("plain", "new"),
            Operation::upsert("longer", "new").with_ttl("100"),
            Operation::delete("gone"),
            Operation::upsert("twice", "new").with_ttl("5"),
        ];
        state.transact("T", "1", rewrites).await.unwrap();
        advance(10).await;
        let purged = state.purge_expired(PURGE_BATCH).await.unwrap();
        assert_eq!(
            purged,
            Purged {
                removed: 1,
                more: false
            },
            "only `twice` has expired, though it has two records"
        );
        assert_eq!(data(&state, "plain").await, b"new");
        assert_eq!(data(&state, "longer").await, b"new");
        // plain, longer and longer's live record.
        assert_eq!(store_len(&store).await, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn corrupt_values_are_internal_errors() {
        let (state, store) = fresh();
        let mut batch = Batch::new();
        batch.put(value_key("T", "1", "bad-tag"), vec![7, 1, 2]);
        batch.put(value_key("T", "1", "short"), vec![TAG_EXPIRING, 1, 2]);
        store.commit(batch).await.unwrap();
        for key in ["bad-tag", "short"] {
            assert_eq!(
                state.get("T", "1", key).await.unwrap_err().code(),
                tonic::Code::Internal
            );
        }
        assert_eq!(
            StateError::Store(StoreError::Closed).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            StateError::Store(StoreError::Busy).code(),
            tonic::Code::ResourceExhausted
        );
    }

    mod model {
        //! Random transactions against a HashMap model: the same reads, and a
        //! transaction holding any invalid operation changes nothing.

        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;

        const ACTORS: [(&str, &str); 3] = [("T", "1"), ("T1", ""), ("", "T1")];
        const KEYS: [&str; 4] = ["a", "a\0b", "ü/x", "b"];

        #[derive(Debug, Clone)]
        enum Op {
            Upsert {
                key: usize,
                value: Vec<u8>,
                ttl: Option<u64>,
            },
            Delete {
                key: usize,
            },
        }

        #[derive(Debug, Clone)]
        struct Step {
            actor: usize,
            ops: Vec<Op>,
            /// Where to slip in an invalid operation, and which.
            invalid: Option<(usize, Operation)>,
            advance_secs: u64,
            purge: bool,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (
                    0..KEYS.len(),
                    vec(any::<u8>(), 0..4),
                    proptest::option::of(1..6u64)
                )
                    .prop_map(|(key, value, ttl)| Op::Upsert { key, value, ttl }),
                (0..KEYS.len()).prop_map(|key| Op::Delete { key }),
            ]
        }

        fn invalid_op() -> impl Strategy<Value = Operation> {
            prop_oneof![
                Just(Operation {
                    operation_type: "merge".into(),
                    ..Operation::upsert("a", "x")
                }),
                Just(Operation::upsert("", "x")),
                Just(Operation::delete("")),
                Just(Operation::upsert("a", "x").with_ttl("0")),
                Just(Operation::upsert("a", "x").with_ttl("-3")),
                Just(Operation::upsert("a", "x").with_ttl("soon")),
                Just(Operation::upsert("k".repeat(MAX_KEY_BYTES + 1), "x")),
            ]
        }

        fn step() -> impl Strategy<Value = Step> {
            (
                0..ACTORS.len(),
                vec(op(), 0..6),
                proptest::option::weighted(0.25, (0..6usize, invalid_op())),
                0..4u64,
                any::<bool>(),
            )
                .prop_map(|(actor, ops, invalid, advance_secs, purge)| Step {
                    actor,
                    ops,
                    invalid,
                    advance_secs,
                    purge,
                })
        }

        fn operation(op: &Op) -> Operation {
            match op {
                Op::Upsert { key, value, ttl } => {
                    let upsert = Operation::upsert(KEYS[*key], value.clone());
                    match ttl {
                        Some(secs) => upsert.with_ttl(secs.to_string()),
                        None => upsert,
                    }
                }
                Op::Delete { key } => Operation::delete(KEYS[*key]),
            }
        }

        /// (actor, key) → (data, expiry in seconds after t0).
        type Model = HashMap<(usize, usize), (Vec<u8>, Option<u64>)>;

        fn apply(model: &mut Model, actor: usize, ops: &[Op], now_secs: u64) {
            for op in ops {
                match op {
                    Op::Upsert { key, value, ttl } => {
                        model.insert((actor, *key), (value.clone(), ttl.map(|t| now_secs + t)));
                    }
                    Op::Delete { key } => {
                        model.remove(&(actor, *key));
                    }
                }
            }
        }

        fn expected(model: &Model, at: (usize, usize), now_secs: u64) -> StateValue {
            match model.get(&at) {
                Some((_, Some(expiry))) if *expiry <= now_secs => StateValue::default(),
                Some((data, expiry)) => StateValue {
                    data: data.clone(),
                    metadata: expiry
                        .iter()
                        .map(|e| {
                            let at = UNIX_EPOCH + Duration::from_secs(T0_SECS + e);
                            (
                                TTL_EXPIRE_TIME.to_owned(),
                                humantime::format_rfc3339(at).to_string(),
                            )
                        })
                        .collect(),
                },
                None => StateValue::default(),
            }
        }

        async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
            let (state, store) = fresh();
            let mut model = Model::new();
            let mut now_secs = 0;
            for step in steps {
                let (t, id) = ACTORS[step.actor];
                let mut ops: Vec<Operation> = step.ops.iter().map(operation).collect();
                match step.invalid {
                    Some((at, bad)) => {
                        ops.insert(at.min(ops.len()), bad);
                        let before = store.scan(Vec::new(), None, usize::MAX).await.unwrap();
                        prop_assert!(state.transact(t, id, ops).await.is_err());
                        let after = store.scan(Vec::new(), None, usize::MAX).await.unwrap();
                        prop_assert_eq!(before, after, "an invalid transaction wrote");
                    }
                    None => {
                        state.transact(t, id, ops).await.unwrap();
                        apply(&mut model, step.actor, &step.ops, now_secs);
                    }
                }
                advance(step.advance_secs).await;
                now_secs += step.advance_secs;
                if step.purge {
                    state.purge_expired(2).await.unwrap();
                }
                for (actor, (t, id)) in ACTORS.into_iter().enumerate() {
                    for (key, name) in KEYS.into_iter().enumerate() {
                        let read = state.get(t, id, name).await.unwrap();
                        let want = expected(&model, (actor, key), now_secs);
                        prop_assert_eq!(read, want, "{:?} {:?} {:?}", t, id, name);
                    }
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn random_transactions_read_like_a_hashmap(steps in vec(step(), 1..25)) {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .start_paused(true)
                    .build()
                    .unwrap();
                runtime.block_on(run(steps))?;
            }
        }
    }
}
