//! The pending-prediction store: what each recent prediction needs for its label to be joined,
//! keyed by request id, bounded by `feedback.ttl`, `feedback.max_pending` and
//! `feedback.max_pending_bytes` (the oldest go first). Recently evicted ids are remembered (bounded) so a late label is told `expired`, not
//! `unknown`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A model's prediction for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// A class label (a categorical output, or the argmax of probabilities).
    Class(Box<str>),
    /// A regression value.
    Value(f64),
    /// The row's output could not be read.
    Missing,
}

#[derive(Debug)]
pub struct Pending {
    pub model: Arc<str>,
    pub time: SystemTime,
    pub predictions: Box<[Prediction]>,
    /// A label was joined already (a second one is a duplicate).
    pub joined: bool,
}

/// Why a prediction left the store unlabelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Ttl,
    Capacity,
}

pub enum Lookup<'a> {
    Found(&'a mut Pending),
    /// Evicted recently (TTL or capacity) before its label came.
    Expired,
    Unknown,
}

pub struct PendingStore {
    ttl: Duration,
    max_pending: usize,
    max_bytes: usize,
    entries: HashMap<Arc<str>, Pending>,
    order: VecDeque<Arc<str>>,
    evicted: VecDeque<Arc<str>>,
    evicted_ids: HashSet<Arc<str>>,
    bytes: usize,
}

/// Fixed cost of one entry: the map slot, the id's Arc header, the queue slot, the `Pending`.
const ENTRY_OVERHEAD: usize = 160;
/// How many evicted ids are remembered to tell `expired` from `unknown`.
const REMEMBERED_EVICTIONS: usize = 65_536;

impl PendingStore {
    pub fn new(ttl: Duration, max_pending: usize, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_pending,
            max_bytes,
            entries: HashMap::new(),
            order: VecDeque::new(),
            evicted: VecDeque::new(),
            evicted_ids: HashSet::new(),
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate bytes held by pending predictions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn entry_bytes(id: &str, pending: &Pending) -> usize {
        ENTRY_OVERHEAD
            + id.len()
            + pending
                .predictions
                .iter()
                .map(|p| {
                    std::mem::size_of::<Prediction>()
                        + if let Prediction::Class(c) = p {
                            c.len()
                        } else {
                            0
                        }
                })
                .sum::<usize>()
    }

    /// Stores a prediction; returns the unlabelled predictions evicted to make room or by age.
    pub fn insert(
        &mut self,
        id: &str,
        pending: Pending,
        now: SystemTime,
    ) -> Vec<(Arc<str>, Eviction)> {
        let mut evicted = self.evict(now);
        let id: Arc<str> = id.into();
        if let Some(previous) = self.entries.remove(&id) {
            // The same request id twice (a client retry): the newer prediction replaces it.
            self.bytes -= Self::entry_bytes(&id, &previous);
        }
        self.bytes += Self::entry_bytes(&id, &pending);
        self.entries.insert(id.clone(), pending);
        self.order.push_back(id);
        // The newest entry always stays, even alone above the byte bound.
        while self.entries.len() > self.max_pending
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            match self.pop_oldest() {
                Some((model, joined)) => {
                    if !joined {
                        evicted.push((model, Eviction::Capacity));
                    }
                }
                None => break,
            }
        }
        evicted
    }

    /// Drops predictions older than the TTL; returns the unlabelled ones.
    pub fn evict(&mut self, now: SystemTime) -> Vec<(Arc<str>, Eviction)> {
        let mut evicted = Vec::new();
        while let Some(oldest) = self.order.front() {
            let expired = match self.entries.get(oldest) {
                Some(pending) => now.duration_since(pending.time).unwrap_or_default() > self.ttl,
                // A stale queue slot (the id was replaced or already removed).
                None => true,
            };
            if !expired {
                break;
            }
            if let Some((model, joined)) = self.pop_oldest()
                && !joined
            {
                evicted.push((model, Eviction::Ttl));
            }
        }
        evicted
    }

    /// Removes the oldest entry: `(model, joined)`, or `None` when the queue is empty.
    fn pop_oldest(&mut self) -> Option<(Arc<str>, bool)> {
        loop {
            let id = self.order.pop_front()?;
            if let Some(pending) = self.entries.remove(&id) {
                self.bytes -= Self::entry_bytes(&id, &pending);
                self.remember_eviction(id);
                return Some((pending.model, pending.joined));
            }
        }
    }

    fn remember_eviction(&mut self, id: Arc<str>) {
        if self.evicted_ids.insert(id.clone()) {
            self.evicted.push_back(id);
        }
        while self.evicted.len() > REMEMBERED_EVICTIONS {
            if let Some(old) = self.evicted.pop_front() {
                self.evicted_ids.remove(&old);
            }
        }
    }

    pub fn lookup(&mut self, id: &str) -> Lookup<'_> {
        if let Some(pending) = self.entries.get_mut(id) {
            return Lookup::Found(pending);
        }
        if self.evicted_ids.contains(id) {
            Lookup::Expired
        } else {
            Lookup::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(time: SystemTime) -> Pending {
        Pending {
            model: "m".into(),
            time,
            predictions: vec![Prediction::Class("1".into())].into(),
            joined: false,
        }
    }

    #[test]
    fn capacity_evicts_the_oldest_and_late_labels_are_expired() {
        let now = SystemTime::now();
        let mut store = PendingStore::new(Duration::from_secs(60), 2, usize::MAX);
        assert!(store.insert("a", pending(now), now).is_empty());
        assert!(store.insert("b", pending(now), now).is_empty());
        let evicted = store.insert("c", pending(now), now);
        assert_eq!(evicted, vec![("m".into(), Eviction::Capacity)]);
        assert!(matches!(store.lookup("a"), Lookup::Expired));
        assert!(matches!(store.lookup("c"), Lookup::Found(_)));
        assert!(matches!(store.lookup("zzz"), Lookup::Unknown));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest_first() {
        let now = SystemTime::now();
        let mut one = PendingStore::new(Duration::from_secs(60), 100, usize::MAX);
        one.insert("a", pending(now), now);
        let entry = one.bytes();
        let mut store = PendingStore::new(Duration::from_secs(60), 100, 3 * entry);
        for id in ["a", "b", "c"] {
            assert!(store.insert(id, pending(now), now).is_empty());
        }
        assert_eq!(store.bytes(), 3 * entry);
        let evicted = store.insert("d", pending(now), now);
        assert_eq!(evicted, vec![("m".into(), Eviction::Capacity)]);
        assert!(matches!(store.lookup("a"), Lookup::Expired));
        assert!(matches!(store.lookup("d"), Lookup::Found(_)));
        assert_eq!((store.len(), store.bytes()), (3, 3 * entry));
        // One prediction larger than the whole bound still waits for its label, alone.
        let mut tiny = PendingStore::new(Duration::from_secs(60), 100, 1);
        tiny.insert("a", pending(now), now);
        tiny.insert("b", pending(now), now);
        assert!(matches!(tiny.lookup("b"), Lookup::Found(_)));
        assert_eq!(tiny.len(), 1);
    }

    #[test]
    fn ttl_evicts_by_age_and_bytes_are_tracked() {
        let start = SystemTime::now();
        let mut store = PendingStore::new(Duration::from_secs(10), 100, usize::MAX);
        store.insert("a", pending(start), start);
        let bytes_one = store.bytes();
        assert!(bytes_one > 0);
        store.insert(
            "b",
            pending(start + Duration::from_secs(5)),
            start + Duration::from_secs(5),
        );
        let evicted = store.evict(start + Duration::from_secs(11));
        assert_eq!(evicted, vec![("m".into(), Eviction::Ttl)]);
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), bytes_one, "one entry left, same size");
        store.evict(start + Duration::from_secs(100));
        assert_eq!((store.len(), store.bytes()), (0, 0));
    }
}
