//! A map bounded in count whose oldest entries go first, shared by threads.
//!
//! First in, first out rather than least recently used: a lookup only reads,
//! so lookups on several threads never wait on each other.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The values and their insertion order; both always hold the same keys.
struct Entries<K, V> {
    values: HashMap<K, V>,
    oldest_first: VecDeque<K>,
}

pub(super) struct FifoMap<K, V> {
    entries: RwLock<Entries<K, V>>,
    capacity: usize,
}

impl<K: Copy + Eq + Hash, V: Copy> FifoMap<K, V> {
    /// An empty map that keeps at most `capacity` values.
    pub(super) fn new(capacity: usize) -> FifoMap<K, V> {
        FifoMap { entries: RwLock::new(Entries { values: HashMap::new(), oldest_first: VecDeque::new() }), capacity }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.read().values.len()
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.read().values.get(key).copied()
    }

    /// Looks several keys up under one lock.
    pub(super) fn with_values<R>(&self, read: impl FnOnce(&dyn Fn(&K) -> Option<V>) -> R) -> R {
        let entries = self.read();
        read(&|key| entries.values.get(key).copied())
    }

    /// Adds the values whose keys are new, evicting the oldest beyond the capacity.
    pub(super) fn insert_all(&self, values: impl IntoIterator<Item = (K, V)>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.write();
        for (key, value) in values {
            if entries.values.contains_key(&key) {
                continue;
            }
            while entries.values.len() >= self.capacity {
                let Some(oldest) = entries.oldest_first.pop_front() else { break };
                entries.values.remove(&oldest);
            }
            entries.values.insert(key, value);
            entries.oldest_first.push_back(key);
        }
    }

    // No update leaves the entries half-changed, so a panic elsewhere while
    // the lock was held does not make them unusable.
    fn read(&self) -> RwLockReadGuard<'_, Entries<K, V>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Entries<K, V>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_capacity_and_evicts_the_oldest_first() {
        let map = FifoMap::new(3);
        map.insert_all([(1, 'a'), (2, 'b'), (3, 'c')]);
        // A key already held keeps its value and its age.
        map.insert_all([(1, 'z'), (4, 'd')]);
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&1), None);
        assert_eq!(map.get(&2), Some('b'));
        assert_eq!(map.with_values(|get| (get(&3), get(&4))), (Some('c'), Some('d')));
        let nothing_kept = FifoMap::new(0);
        nothing_kept.insert_all([(1, 'a')]);
        assert_eq!(nothing_kept.len(), 0);
    }
}
