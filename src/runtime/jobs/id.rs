//! [`JobId`]: which timer or reminder, as one shared byte string.
//!
//! The bytes are the reminder's store key (module `reminder`):
//!
//! ```text
//! [REMINDER] len(type) type  len(id) id  name
//! ```
//!
//! `len(x)` a big-endian `u32`, the name running to the end, so each
//! (type, id, name) has exactly one encoding. One allocation per job, shared
//! by reference (an `Arc`) by the jobs' map, the deadline queue and every
//! fire in flight: 100,000 reminders hold their names once, in about 60
//! bytes each, where three `String`s in a struct would take about 200. The
//! names are read back by slicing, without allocating.

use std::sync::Arc;

use crate::runtime::table::ActorKey;
use crate::store::namespace;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JobId(Arc<[u8]>);

impl JobId {
    pub fn new(actor_type: &str, actor_id: &str, name: &str) -> Self {
        let mut out = Vec::with_capacity(9 + actor_type.len() + actor_id.len() + name.len());
        out.push(namespace::REMINDER);
        for part in [actor_type, actor_id] {
            // Names are length-checked far below u32::MAX before they get here.
            let len = u32::try_from(part.len()).expect("names are length-checked");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        JobId(out.into())
    }

    /// The job a store key names; None for bytes [`new`](Self::new) did
    /// not make.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let (t, i, n) = split(key)?;
        for part in [t, i, n] {
            std::str::from_utf8(part).ok()?;
        }
        Some(JobId(key.into()))
    }

    /// The bytes: a reminder's store key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    pub fn actor_type(&self) -> &str {
        self.part(|(t, _, _)| t)
    }

    pub fn actor_id(&self) -> &str {
        self.part(|(_, i, _)| i)
    }

    pub fn name(&self) -> &str {
        self.part(|(_, _, n)| n)
    }

    /// The actor, as the table names it.
    pub fn actor(&self) -> ActorKey {
        ActorKey::new(self.actor_type(), self.actor_id())
    }

    fn part(&self, pick: impl FnOnce(Parts<'_>) -> &[u8]) -> &str {
        // `new` and `from_key` made sure the bytes split into UTF-8 parts.
        split(&self.0)
            .and_then(|parts| std::str::from_utf8(pick(parts)).ok())
            .unwrap_or_default()
    }
}

/// Type, id and name.
type Parts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn split(key: &[u8]) -> Option<Parts<'_>> {
    fn part<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (text, tail) = (tail.get(..len)?, tail.get(len..)?);
        *rest = tail;
        Some(text)
    }
    let mut rest = key.strip_prefix(&[namespace::REMINDER])?;
    let actor_type = part(&mut rest)?;
    let actor_id = part(&mut rest)?;
    Some((actor_type, actor_id, rest))
}

impl std::fmt::Debug for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobId")
            .field("actor_type", &self.actor_type())
            .field("actor_id", &self.actor_id())
            .field("name", &self.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unambiguous_and_read_back() {
        // Same bytes end to end, split differently: different ids.
        assert_ne!(JobId::new("ab", "c", "d"), JobId::new("a", "bc", "d"));
        assert_ne!(JobId::new("a", "b", "cd"), JobId::new("a", "bc", "d"));
        for (t, i, n) in [("T", "1", ""), ("t\0y", "ü", "n/a?"), ("", "", "x")] {
            let id = JobId::new(t, i, n);
            assert_eq!((id.actor_type(), id.actor_id(), id.name()), (t, i, n));
            assert_eq!(JobId::from_key(id.key()), Some(id));
        }
        assert_eq!(JobId::from_key(b"r\0\0"), None);
        assert_eq!(JobId::from_key(b"s\0\0\0\0\0\0\0\0"), None);
        assert_eq!(JobId::from_key(b"r\0\0\0\x01\xff\0\0\0\0"), None);
    }
}
