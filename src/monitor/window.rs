//! Windows (SPEC §7): the rows a drift decision is made on, held as bin counts on the reference
//! bins plus a bounded uniform sample per column — memory per column is fixed by the bin count
//! and the sample size, whatever the traffic.
//!
//! `{samples: N}` is one tumbling slot: when it holds N rows the window closes, its report is
//! kept as the last complete window, and the slot starts over. `{duration: D, slots: S}` is a
//! ring of S slots of D/S each, indexed by wall-clock time; the window is the union of the slots.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::reference::{ColumnProfile, Kind, SAMPLE_SIZE, category, number};
use crate::extract::table::Cell;

pub const MISSING_BIN: &str = "missing";
pub const OTHER_BIN: &str = "__other__";
pub const UNSEEN_BIN: &str = "__unseen__";
pub const CATEGORY_MISSING_BIN: &str = "__missing__";

/// How values of one column map to bins.
#[derive(Debug, Clone)]
pub enum BinLayout {
    /// `edges.len() + 1` value bins, then the missing bin.
    Numeric { edges: Vec<f64> },
    /// The reference's top categories, then `__other__`, `__unseen__`, `__missing__`.
    Categorical {
        top: Vec<String>,
        /// Every reference category, sorted, when the reference knows them all.
        known: Option<Vec<String>>,
    },
}

impl BinLayout {
    pub fn from_profile(column: &ColumnProfile) -> Self {
        match (&column.numeric, &column.categorical) {
            (Some(numeric), _) => Self::Numeric {
                edges: numeric.edges.clone(),
            },
            (None, Some(categorical)) => Self::Categorical {
                top: categorical
                    .top
                    .iter()
                    .map(|(label, _)| label.clone())
                    .collect(),
                known: categorical.complete.then(|| categorical.categories.clone()),
            },
            (None, None) => Self::Numeric { edges: Vec::new() },
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Self::Numeric { .. } => Kind::Numeric,
            Self::Categorical { .. } => Kind::Categorical,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Numeric { edges } => edges.len() + 2,
            Self::Categorical { top, .. } => top.len() + 3,
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Bin labels, as exported in the `bin` metric label and the API.
    pub fn labels(&self) -> Vec<String> {
        match self {
            Self::Numeric { edges } => (0..=edges.len())
                .map(|i| i.to_string())
                .chain(std::iter::once(MISSING_BIN.to_owned()))
                .collect(),
            Self::Categorical { top, .. } => top
                .iter()
                .cloned()
                .chain([OTHER_BIN, UNSEEN_BIN, CATEGORY_MISSING_BIN].map(String::from))
                .collect(),
        }
    }

    /// The bin of a cell.
    pub fn bin_of(&self, cell: &Cell) -> usize {
        match self {
            Self::Numeric { edges } => match number(cell) {
                Some(x) => super::stats::bin_index(edges, x),
                None => edges.len() + 1,
            },
            Self::Categorical { top, known } => match category(cell) {
                None => top.len() + 2,
                Some(label) => match top.iter().position(|t| *t == label) {
                    Some(index) => index,
                    None => match known {
                        Some(known) if known.binary_search(&label).is_err() => top.len() + 1,
                        _ => top.len(),
                    },
                },
            },
        }
    }

    /// The reference's rows per bin.
    pub fn reference_counts(&self, column: &ColumnProfile) -> Vec<u64> {
        match (self, &column.numeric, &column.categorical) {
            (Self::Numeric { .. }, Some(numeric), _) => {
                let mut counts = numeric.bin_counts.clone();
                counts.push(column.missing);
                counts
            }
            (Self::Categorical { .. }, _, Some(categorical)) => {
                let mut counts: Vec<u64> = categorical.top.iter().map(|(_, n)| *n).collect();
                counts.extend([categorical.other, 0, column.missing]);
                counts
            }
            _ => vec![0; self.len()],
        }
    }
}

/// A uniform sample of a stream (Algorithm R), seeded so a replay reproduces it.
#[derive(Debug, Clone)]
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    values: Vec<f64>,
    rng: SmallRng,
}

impl Reservoir {
    pub fn new(capacity: usize, seed: u64) -> Self {
        Self {
            capacity,
            seen: 0,
            values: Vec::with_capacity(capacity),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Empties the sample in place (keeping its buffer) with a new seed.
    pub fn reset(&mut self, seed: u64) {
        self.seen = 0;
        self.values.clear();
        self.rng = SmallRng::seed_from_u64(seed);
    }

    pub fn push(&mut self, x: f64) {
        self.seen += 1;
        if self.values.len() < self.capacity {
            self.values.push(x);
        } else {
            let j = self.rng.random_range(0..self.seen);
            if (j as usize) < self.capacity {
                self.values[j as usize] = x;
            }
        }
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Values pushed since the last reset.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether the sample holds every value pushed.
    pub fn complete(&self) -> bool {
        self.seen as usize == self.values.len()
    }
}

/// One slot of one column: bin counts and a sample.
#[derive(Debug, Clone)]
pub struct Slot {
    pub counts: Vec<u64>,
    pub sample: Reservoir,
}

impl Slot {
    pub fn new(bins: usize, sample_capacity: usize, seed: u64) -> Self {
        Self {
            counts: vec![0; bins],
            sample: Reservoir::new(sample_capacity, seed),
        }
    }

    pub fn add(&mut self, bin: usize, value: Option<f64>) {
        if let Some(count) = self.counts.get_mut(bin) {
            *count += 1;
        }
        if let Some(x) = value {
            self.sample.push(x);
        }
    }
}

/// A column's window: one slot (tumbling) or a ring (sliding).
#[derive(Debug, Clone)]
pub struct ColumnWindow {
    pub layout: BinLayout,
    slots: Vec<Slot>,
    seed: u64,
}

impl ColumnWindow {
    pub fn new(layout: BinLayout, slots: usize, seed: u64) -> Self {
        let capacity = (SAMPLE_SIZE / slots.max(1)).max(1);
        let bins = layout.len();
        Self {
            slots: (0..slots.max(1))
                .map(|i| Slot::new(bins, capacity, seed ^ i as u64))
                .collect(),
            layout,
            seed,
        }
    }

    pub fn add(&mut self, slot: usize, cell: &Cell) -> usize {
        let bin = self.layout.bin_of(cell);
        let value = match self.layout {
            BinLayout::Numeric { .. } => number(cell),
            BinLayout::Categorical { .. } => None,
        };
        if let Some(target) = self.slots.get_mut(slot) {
            target.add(bin, value);
        }
        bin
    }

    /// Empties a slot; `generation` varies the seed so successive windows sample independently
    /// yet reproducibly.
    pub fn clear(&mut self, slot: usize, generation: u64) {
        let seed = self.seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if let Some(target) = self.slots.get_mut(slot) {
            target.counts.fill(0);
            target.sample.reset(seed);
        }
    }

    /// The window's bin counts and sample, merged over its slots.
    ///
    /// When every slot holds all its values the sample is the window's values, exactly. Otherwise
    /// the slots were thinned at different rates (a busy slot keeps a smaller share of what it saw
    /// than a quiet one), so each slot contributes in proportion to the values it saw: as many in
    /// total as the most thinned slot allows, drawn without replacement from its reservoir with a
    /// seed fixed by the window's state (a replay draws the same). The merged sample is then a
    /// uniform sample of the whole window.
    pub fn merged(&self) -> (Vec<u64>, Vec<f64>, bool) {
        let mut counts = vec![0u64; self.layout.len()];
        let mut complete = true;
        for slot in &self.slots {
            for (total, count) in counts.iter_mut().zip(&slot.counts) {
                *total += count;
            }
            complete &= slot.sample.complete();
        }
        let mut sample = Vec::new();
        if complete || self.slots.len() == 1 {
            for slot in &self.slots {
                sample.extend_from_slice(slot.sample.values());
            }
        } else {
            let seen: u64 = self.slots.iter().map(|s| s.sample.seen()).sum();
            let target = self
                .slots
                .iter()
                .filter(|s| s.sample.seen() > 0)
                .map(|s| s.sample.values().len() as f64 * seen as f64 / s.sample.seen() as f64)
                .fold(f64::INFINITY, f64::min);
            for (index, slot) in self.slots.iter().enumerate() {
                let held = slot.sample.values();
                let share = target * slot.sample.seen() as f64 / seen.max(1) as f64;
                let take = (share.round() as usize).min(held.len());
                if take == held.len() {
                    sample.extend_from_slice(held);
                    continue;
                }
                let mut pool = held.to_vec();
                let mut rng = SmallRng::seed_from_u64(
                    self.seed ^ (index as u64) ^ slot.sample.seen().wrapping_mul(0x9e37_79b9),
                );
                for i in 0..take {
                    let j = rng.random_range(i..pool.len());
                    pool.swap(i, j);
                }
                sample.extend_from_slice(&pool[..take]);
            }
        }
        sample.sort_by(f64::total_cmp);
        (counts, sample, complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinned_slots_merge_in_proportion_to_what_they_saw() {
        let layout = BinLayout::Numeric { edges: vec![1.5] };
        let mut window = ColumnWindow::new(layout, 2, 7);
        for _ in 0..20_000 {
            window.add(0, &Cell::Number(1.0));
        }
        for _ in 0..100 {
            window.add(1, &Cell::Number(2.0));
        }
        let (counts, sample, exact) = window.merged();
        assert!(!exact);
        assert_eq!(counts.iter().sum::<u64>(), 20_100);
        let twos = sample.iter().filter(|&&x| x == 2.0).count() as f64;
        let share = twos / sample.len() as f64;
        assert!(
            (share - 100.0 / 20_100.0).abs() < 0.001,
            "the quiet slot is not over-represented: {share} of {}",
            sample.len()
        );
        assert_eq!(window.merged().1, sample, "the same window merges the same");
    }
    use crate::extract::table::Role;
    use crate::monitor::reference::{ColumnInput, ProfileBuilder};

    #[test]
    fn numeric_bins_are_right_closed_with_a_missing_bin() {
        let layout = BinLayout::Numeric {
            edges: vec![2.8, 4.6, 6.4, 8.2],
        };
        let bins: Vec<usize> = [1.0, 2.8, 2.9, 8.2, 8.3, f64::NAN]
            .iter()
            .map(|x| layout.bin_of(&Cell::Number(*x)))
            .collect();
        assert_eq!(bins, [0, 0, 1, 3, 4, 5]);
        assert_eq!(layout.bin_of(&Cell::Null), 5);
        assert_eq!(layout.labels(), ["0", "1", "2", "3", "4", "missing"]);
    }

    #[test]
    fn categorical_bins_tell_other_from_unseen() {
        let mut builder = ProfileBuilder::new(vec![ColumnInput {
            name: "c".into(),
            role: Role::Input,
            kind: Kind::Categorical,
        }]);
        for label in ["a", "a", "b", "c"] {
            builder.push(&[Cell::Text(label.into())]);
        }
        let profile = builder.finish(None, "t".into(), 10, 1);
        let layout = BinLayout::from_profile(&profile.columns[0]);
        assert_eq!(
            layout.labels(),
            ["a", "__other__", "__unseen__", "__missing__"]
        );
        let bin = |s: &str| layout.bin_of(&Cell::Text(s.into()));
        assert_eq!((bin("a"), bin("b"), bin("zzz")), (0, 1, 2));
        assert_eq!(layout.bin_of(&Cell::Missing), 3);
        assert_eq!(layout.reference_counts(&profile.columns[0]), [2, 2, 0, 0]);
    }

    #[test]
    fn reservoirs_are_bounded_uniform_and_reproducible() {
        let mut first = Reservoir::new(100, 7);
        let mut second = Reservoir::new(100, 7);
        for i in 0..10_000 {
            first.push(f64::from(i));
            second.push(f64::from(i));
        }
        assert_eq!(first.values().len(), 100);
        assert_eq!(first.values(), second.values());
        let mean = first.values().iter().sum::<f64>() / 100.0;
        assert!((mean - 5000.0).abs() < 1000.0, "{mean}");
    }
}
