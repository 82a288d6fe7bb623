//! The idempotency ledger: which `Idempotency-Key`s were applied, how often each was seen and when
//! first. Sharded `Mutex<HashMap>`s, each touched only for one lookup/insert.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Number of independently locked shards.
const SHARDS: usize = 16;

/// Snapshot of the ledger (`GET /_sim/ledger`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Distinct keys applied.
    pub applied: u64,
    /// Requests that repeated an already applied key.
    pub duplicates: u64,
    /// One entry per key, ordered by first sighting.
    pub entries: Vec<LedgerEntry>,
}

/// One idempotency key in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The `Idempotency-Key` header value.
    pub key: String,
    /// Times the key was seen (1 = applied once, no duplicates).
    pub count: u64,
    /// Milliseconds since simulator start when the key was first applied.
    pub first_seen_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    count: u64,
    first_seen_ms: u64,
}

/// Whether a recorded key was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Applied,
    Duplicate,
}

/// The sharded key → slot map.
#[derive(Debug)]
pub(crate) struct LedgerStore {
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<String, Slot>>]>,
}

impl Default for LedgerStore {
    fn default() -> Self {
        LedgerStore { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }
}

impl LedgerStore {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Slot>> {
        let idx = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[idx]
    }

    /// Records one sighting of `key` at `now_ms`.
    pub fn record(&self, key: &str, now_ms: u64) -> Recorded {
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get_mut(key) {
            slot.count += 1;
            return Recorded::Duplicate;
        }
        map.insert(key.to_owned(), Slot { count: 1, first_seen_ms: now_ms });
        Recorded::Applied
    }

    /// Every entry, ordered by first sighting then key, with totals.
    pub fn snapshot(&self) -> Ledger {
        let mut entries = Vec::new();
        for shard in self.shards.iter() {
            let map = shard.lock().unwrap_or_else(|e| e.into_inner());
            entries.extend(map.iter().map(|(k, s)| LedgerEntry { key: k.clone(), count: s.count, first_seen_ms: s.first_seen_ms }));
        }
        entries.sort_by(|a, b| a.first_seen_ms.cmp(&b.first_seen_ms).then_with(|| a.key.cmp(&b.key)));
        Ledger { applied: entries.len() as u64, duplicates: entries.iter().map(|e| e.count - 1).sum(), entries }
    }

    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_counted_not_applied() {
        let l = LedgerStore::default();
        assert_eq!(l.record("a", 1), Recorded::Applied);
        assert_eq!(l.record("b", 2), Recorded::Applied);
        assert_eq!(l.record("a", 3), Recorded::Duplicate);
        let snap = l.snapshot();
        assert_eq!((snap.applied, snap.duplicates), (2, 1));
        assert_eq!(snap.entries[0], LedgerEntry { key: "a".into(), count: 2, first_seen_ms: 1 });
        l.clear();
        assert_eq!(l.snapshot(), Ledger::default());
    }
}
