//! The pending-prediction store: what each recent prediction needs for its label to be joined,
//! keyed by request id, bounded by `feedback.ttl`, `feedback.max_pending` and
//! `feedback.max_pending_bytes` (the oldest go first). Recently evicted ids are remembered
//! (bounded) so a late label is told `expired`, not `unknown`.
//!
//! Entries are kept small, because a busy model fills the store: the request id is held as a
//! 64-bit keyed hash (a label for an id never seen collides with a pending one with probability
//! about pending/2^64), model names and class labels are shared rather than copied per entry, and
//! a single-row prediction needs no allocation of its own.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A model's prediction for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// A class label (a categorical output, or the argmax of probabilities).
    Class(Arc<str>),
    /// A regression value.
    Value(f64),
    /// The row's output could not be read.
    Missing,
}

/// The predictions of one exchange, one per row; one row is stored inline.
#[derive(Debug, Clone, PartialEq)]
pub enum Rows {
    One(Prediction),
    Many(Box<[Prediction]>),
}

impl From<Vec<Prediction>> for Rows {
    fn from(mut predictions: Vec<Prediction>) -> Self {
        match predictions.len() {
            1 => Rows::One(predictions.pop().expect("one row")),
            _ => Rows::Many(predictions.into_boxed_slice()),
        }
    }
}

impl Deref for Rows {
    type Target = [Prediction];

    fn deref(&self) -> &[Prediction] {
        match self {
            Rows::One(prediction) => std::slice::from_ref(prediction),
            Rows::Many(predictions) => predictions,
        }
    }
}

#[derive(Debug)]
pub struct Pending {
    pub model: Arc<str>,
    pub time: SystemTime,
    pub predictions: Rows,
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
    /// Evicted recently (TTL or capacity) before its label came; the model it was for.
    Expired(Arc<str>),
    Unknown,
}

/// A request id as the store keys it.
type IdHash = u64;

pub struct PendingStore {
    ttl: Duration,
    max_pending: usize,
    max_bytes: usize,
    /// Keys ids by a hash with per-process random keys, so ids cannot be chosen to collide.
    ids: RandomState,
    /// Each pending prediction with the sequence number of its insertion.
    entries: HashMap<IdHash, (u64, Pending)>,
    /// Insertion order as `(id, sequence)`; a slot whose sequence no longer matches its entry (the
    /// id was inserted again, a client retry) is stale and skipped.
    order: VecDeque<(IdHash, u64)>,
    sequence: u64,
    evicted: VecDeque<IdHash>,
    /// Recently evicted ids and their model, so a late label is counted under its model.
    evicted_ids: HashMap<IdHash, Arc<str>>,
    /// Shared spellings of class labels (bounded: free-text outputs get their own copies).
    classes: HashSet<Arc<str>>,
    /// Shared model names (as many as monitoring allows models).
    models: HashSet<Arc<str>>,
    bytes: usize,
}

/// Fixed cost of one entry, as measured by `cargo bench --bench analysis` (resident memory over
/// 200,000 single-row predictions): the map slot with its share of spare capacity, the queue slot.
const ENTRY_OVERHEAD: usize = 120;
/// How many evicted ids are remembered to tell `expired` from `unknown`.
const REMEMBERED_EVICTIONS: usize = 65_536;
/// Distinct class labels shared between entries.
const MAX_SHARED_CLASSES: usize = 4096;
/// Longer labels (free text, generated output) are not shared, and count in full.
const MAX_SHARED_CLASS_BYTES: usize = 64;
/// What a class label held by one entry costs besides its text (the `Arc` counts).
const CLASS_OVERHEAD: usize = 16;

impl PendingStore {
    pub fn new(ttl: Duration, max_pending: usize, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_pending,
            max_bytes,
            ids: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
            sequence: 0,
            evicted: VecDeque::new(),
            evicted_ids: HashMap::new(),
            classes: HashSet::new(),
            models: HashSet::new(),
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

    fn entry_bytes(pending: &Pending) -> usize {
        let unshared_text: usize = pending
            .predictions
            .iter()
            .map(|prediction| match prediction {
                Prediction::Class(class) if class.len() > MAX_SHARED_CLASS_BYTES => {
                    class.len() + CLASS_OVERHEAD
                }
                _ => 0,
            })
            .sum();
        ENTRY_OVERHEAD
            + unshared_text
            + match &pending.predictions {
                Rows::One(_) => 0,
                Rows::Many(rows) => rows.len() * std::mem::size_of::<Prediction>(),
            }
    }

    fn key(&self, id: &str) -> IdHash {
        self.ids.hash_one(id)
    }

    /// The shared copy of a model name, for [`Pending::model`].
    pub fn model_name(&mut self, model: &str) -> Arc<str> {
        if let Some(shared) = self.models.get(model) {
            return shared.clone();
        }
        let shared: Arc<str> = model.into();
        self.models.insert(shared.clone());
        shared
    }

    /// The shared copy of a class label.
    fn share(&mut self, prediction: Prediction) -> Prediction {
        match prediction {
            Prediction::Class(class) => {
                if let Some(shared) = self.classes.get(&class) {
                    Prediction::Class(shared.clone())
                } else {
                    if self.classes.len() < MAX_SHARED_CLASSES
                        && class.len() <= MAX_SHARED_CLASS_BYTES
                    {
                        self.classes.insert(class.clone());
                    }
                    Prediction::Class(class)
                }
            }
            other => other,
        }
    }

    /// Stores a prediction; returns the unlabelled predictions evicted to make room or by age.
    pub fn insert(
        &mut self,
        id: &str,
        mut pending: Pending,
        now: SystemTime,
    ) -> Vec<(Arc<str>, Eviction)> {
        let mut evicted = self.evict(now);
        pending.predictions =
            match std::mem::replace(&mut pending.predictions, Rows::Many([].into())) {
                Rows::One(prediction) => Rows::One(self.share(prediction)),
                Rows::Many(rows) => Rows::Many(
                    rows.into_vec()
                        .into_iter()
                        .map(|prediction| self.share(prediction))
                        .collect(),
                ),
            };
        let key = self.key(id);
        if let Some((_, previous)) = self.entries.remove(&key) {
            // The same request id twice (a client retry): the newer prediction replaces it, and
            // its old queue slot goes stale.
            self.bytes -= Self::entry_bytes(&previous);
        }
        self.bytes += Self::entry_bytes(&pending);
        self.sequence += 1;
        self.entries.insert(key, (self.sequence, pending));
        self.order.push_back((key, self.sequence));
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
        while let Some((oldest, sequence)) = self.order.front() {
            let expired = match self.entries.get(oldest) {
                Some((current, pending)) if current == sequence => {
                    now.duration_since(pending.time).unwrap_or_default() > self.ttl
                }
                // A stale queue slot (the id was replaced or already removed).
                _ => true,
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
            let (key, sequence) = self.order.pop_front()?;
            if self
                .entries
                .get(&key)
                .is_some_and(|(current, _)| *current == sequence)
                && let Some((_, pending)) = self.entries.remove(&key)
            {
                self.bytes -= Self::entry_bytes(&pending);
                self.remember_eviction(key, pending.model.clone());
                return Some((pending.model, pending.joined));
            }
        }
    }

    fn remember_eviction(&mut self, key: IdHash, model: Arc<str>) {
        if self.evicted_ids.insert(key, model).is_none() {
            self.evicted.push_back(key);
        }
        while self.evicted.len() > REMEMBERED_EVICTIONS {
            if let Some(old) = self.evicted.pop_front() {
                self.evicted_ids.remove(&old);
            }
        }
    }

    pub fn lookup(&mut self, id: &str) -> Lookup<'_> {
        let key = self.key(id);
        if let Some((_, pending)) = self.entries.get_mut(&key) {
            return Lookup::Found(pending);
        }
        if let Some(model) = self.evicted_ids.get(&key) {
            Lookup::Expired(model.clone())
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
        assert!(matches!(store.lookup("a"), Lookup::Expired(model) if &*model == "m"));
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
        assert!(matches!(store.lookup("a"), Lookup::Expired(_)));
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
    fn a_retried_id_keeps_its_new_place_in_the_eviction_order() {
        let now = SystemTime::now();
        let mut store = PendingStore::new(Duration::from_secs(60), 2, usize::MAX);
        store.insert("a", pending(now), now);
        store.insert("b", pending(now), now);
        // "a" again (a retry): now the newest.
        store.insert("a", pending(now), now);
        assert_eq!(store.len(), 2);
        store.insert("c", pending(now), now);
        assert!(
            matches!(store.lookup("b"), Lookup::Expired(_)),
            "b was oldest"
        );
        assert!(matches!(store.lookup("a"), Lookup::Found(_)));
        assert!(matches!(store.lookup("c"), Lookup::Found(_)));
    }

    #[test]
    fn long_class_labels_count_in_full() {
        let now = SystemTime::now();
        let mut store = PendingStore::new(Duration::from_secs(60), 100, usize::MAX);
        store.insert("short", pending(now), now);
        let short = store.bytes();
        let text: String = "x".repeat(2000);
        store.insert(
            "long",
            Pending {
                model: "m".into(),
                time: now,
                predictions: vec![Prediction::Class(text.as_str().into())].into(),
                joined: false,
            },
            now,
        );
        assert!(
            store.bytes() - short >= 2000,
            "a 2,000-byte generated label is counted: {}",
            store.bytes() - short
        );
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
