//! One reminder (RM1-RM4) and how it is kept in the store.
//!
//! # Layout
//!
//! ```text
//! [REMINDER] len(type) type  len(id) id  name  ->  VALUE_VERSION, postcard of `Reminder`
//! ```
//!
//! The key is the [`JobId`]'s bytes (module `id`: each (type, id, name) has
//! exactly one key, and a key reads back as exactly one). The value is a
//! version byte ([`VALUE_VERSION`]) then the postcard encoding of
//! [`Reminder`]: what a restarted gateway needs to carry on, the
//! [`Schedule`] (which keeps the registered strings and how far it has
//! got), the data, and the failure policy. postcard rather than JSON: a
//! reminder takes about a hundred bytes instead of a few hundred, which is
//! what a start with 100,000 of them reads and decodes. A value of another
//! version is refused as corrupt (P3), never guessed at.
//!
//! The schedule is written again after every fire, once the app has
//! answered, so a fire cut short by a crash is still due after the restart
//! (RM5: at least once).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::JobId;
use super::policy::FailurePolicy;
use crate::runtime::data;
use crate::runtime::schedule::Schedule;
use crate::store::{Store, StoreError, namespace};
use crate::transport::ReminderRequest;

/// Stored reminders read per page at start, bounding the memory one page
/// takes whatever the store holds.
const LOAD_PAGE: usize = 1024;

/// The first byte of every stored reminder: the layout of what follows.
/// Changing [`Reminder`] or [`Schedule`]'s fields changes the layout, and
/// needs a new version.
pub const VALUE_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub schedule: Schedule,
    /// The registered bytes, as they came.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// `data` is JSON text registered over HTTP, not bytes. Always written:
    /// the stored layout (postcard) is positional, so a field left out
    /// would shift every field after it.
    pub data_is_json: bool,
    pub policy: FailurePolicy,
}

impl Reminder {
    /// The fire message: due time and period as registered (SPEC RM1), and
    /// the data as daprd wraps it (facts §3).
    pub fn request(&self, id: &JobId) -> ReminderRequest {
        ReminderRequest {
            id: String::new(),
            actor_type: id.actor_type().to_owned(),
            actor_id: id.actor_id().to_owned(),
            name: id.name().to_owned(),
            due_time: self.schedule.due_time().to_owned(),
            period: self.schedule.period().to_owned(),
            data: self.data_any(),
            metadata: Default::default(),
        }
    }

    /// The data as daprd wraps it (facts §3, §4): what a fire carries and
    /// GetActorReminder answers.
    pub fn data_any(&self) -> Option<prost_types::Any> {
        data::wrap(&self.data, self.data_is_json)
    }

    pub fn to_value(&self) -> Vec<u8> {
        let out = vec![VALUE_VERSION];
        postcard::to_extend(self, out).expect("a reminder always serializes")
    }

    fn from_value(value: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |why: String| StoreError::Corrupt(format!("stored reminder: {why}").into());
        match value.split_first() {
            Some((&VALUE_VERSION, encoded)) => {
                postcard::from_bytes(encoded).map_err(|e| corrupt(e.to_string()))
            }
            Some((version, _)) => Err(corrupt(format!("unknown layout version {version}"))),
            None => Err(corrupt("empty value".into())),
        }
    }
}

/// A reminder as the store holds it, kept that way in memory too: the
/// runtime holds every registered reminder, and the encoded bytes take a
/// fraction of the decoded struct (its strings, times and policy). It is
/// decoded when it fires or is read, which costs a microsecond next to a
/// fire's round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored(Box<[u8]>);

impl Stored {
    pub fn new(reminder: &Reminder) -> Self {
        Stored(reminder.to_value().into_boxed_slice())
    }

    /// Bytes read from the store, checked to decode, and what they hold.
    /// Copied, not kept: the page they came in was allocated on a blocking
    /// thread, and keeping its values would pin that thread's heap, full of
    /// the holes its freed keys left, for as long as the reminders live.
    fn read(value: &[u8]) -> Result<(Self, Reminder), StoreError> {
        let reminder = Reminder::from_value(value)?;
        Ok((Stored(value.into()), reminder))
    }

    pub fn reminder(&self) -> Reminder {
        // Every `Stored` was encoded by `new` or checked by `read`.
        Reminder::from_value(&self.0).expect("a stored reminder decodes")
    }

    /// The bytes to write to the store.
    pub fn value(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

/// A stored reminder as [`load_all`] reads it: its bytes, and its next due
/// time.
#[derive(Debug)]
pub struct Loaded {
    pub id: JobId,
    pub stored: Stored,
    pub due: std::time::SystemTime,
}

/// Every stored reminder, a page at a time. A key or value that does not
/// read back is corruption, and refused rather than skipped (P3).
pub async fn load_all(store: &dyn Store) -> Result<Vec<Loaded>, StoreError> {
    let prefix = vec![namespace::REMINDER];
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan(prefix.clone(), after.take(), LOAD_PAGE).await?;
        let full = page.len() == LOAD_PAGE;
        after = page.last().map(|(key, _)| key.clone());
        for (key, value) in page {
            let id = JobId::from_key(&key)
                .ok_or_else(|| StoreError::Corrupt("malformed reminder key".into()))?;
            let (stored, reminder) = Stored::read(&value)?;
            let due = reminder.schedule.due();
            all.push(Loaded { id, stored, due });
        }
        if !full {
            return Ok(all);
        }
    }
}

/// Bytes as a base64 string: a third larger than the bytes, where serde's
/// default (a sequence of numbers) would be up to twice as large in
/// postcard, and four times in JSON, should a debug dump ever use it.
mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::store::{Batch, MemoryStore};

    fn key(n: &str) -> Vec<u8> {
        JobId::new("T", "1", n).key().to_vec()
    }

    #[tokio::test]
    async fn stored_reminders_load_back_whole_across_pages() {
        let store = MemoryStore::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let reminder = Reminder {
            schedule: Schedule::reminder("1s", "R3/PT1S", "", now).unwrap(),
            data: b"rstate".to_vec(),
            data_is_json: false,
            policy: FailurePolicy::Drop,
        };
        let mut batch = Batch::new();
        for n in 0..LOAD_PAGE + 3 {
            batch.put(key(&n.to_string()), reminder.to_value());
        }
        store.commit(batch).await.unwrap();
        let all = load_all(&store).await.unwrap();
        assert_eq!(all.len(), LOAD_PAGE + 3);
        assert!(all.iter().all(|l| l.stored.reminder() == reminder));
        let value = reminder.to_value();
        assert!(value.len() < 100, "{} bytes", value.len());
    }

    #[tokio::test]
    async fn a_value_of_another_layout_is_refused_as_corrupt() {
        let store = MemoryStore::new();
        let mut batch = Batch::new();
        batch.put(key("r"), b"{\"schedule\":{}}".to_vec());
        store.commit(batch).await.unwrap();
        let refused = load_all(&store).await.unwrap_err();
        assert!(matches!(refused, StoreError::Corrupt(_)), "{refused:?}");
    }
}
