//! Popularity diversity of what a recommendation route shows (SPEC §9): how concentrated the
//! exposures are (Gini, entropy, head and long-tail shares), how much of the catalog is shown, and
//! how alike the lists of different users are, per tumbling window of lists, in bounded memory.
//!
//! Analysis path only: one [`Diversity`] per route is fed every shown list with
//! [`Diversity::observe`]; nothing here does I/O, and the metrics are pure functions of the
//! window's lists, documented field by field on [`DiversityReport`].
//!
//! # Exposures
//!
//! Every slot of a shown list is one exposure of the item in it: all positions weigh the same
//! (no position discount), and an id shown twice in one list is exposed twice. Items are told
//! apart by a fixed-seed 64-bit hash of their id, so two different ids are merged only on a hash
//! collision (probability about n²/2⁶⁵ for n distinct ids, 3·10⁻¹⁰ at 100,000), which is ignored.
//!
//! # Bounded memory
//!
//! A window counts exactly while it has seen at most `max_items` distinct items. The first item
//! beyond that turns the window into a sketch until it closes, and its report says
//! `exact: false`. The sketch holds at most `max_items` counters, split in two halves:
//! - heavy hitters, by SpaceSaving (Metwally, Agrawal, El Abbadi 2005) in ⌈`max_items`/2⌉
//!   counters, started from the largest exact counts: an untracked item takes over the counter
//!   with the smallest count c_min and starts at c_min + 1 with error c_min. A tracked item's true
//!   count lies in [count − error, count], and every item shown more than c_min times is tracked;
//!   those whose guaranteed count (count − error) exceeds c_min are the *certain heavy hitters*;
//! - a uniform sample of the distinct items, by bottom-k hashing in ⌊`max_items`/2⌋ counters: the
//!   items with the smallest hashes, whose counts are exact (an item in the sample was admitted at
//!   its first exposure) and which are chosen independently of how often they are shown;
//! - and, besides the counters, distinct items by a HyperLogLog of 2¹⁴ one-byte registers
//!   (Flajolet et al. 2007, linear counting below 2.5·2¹⁴), relative standard error
//!   1.04/√2¹⁴ ≈ 0.8%, never below the exact count at the moment the window overflowed.
//!
//! The figures are then computed on an estimated distribution: the certain heavy hitters at their
//! counts (exact when sampled, guaranteed otherwise), and the estimated number of other items
//! (HyperLogLog minus the heavy hitters) shaped like the sampled counts of the non-heavy items,
//! each sampled count standing for a number of items proportional to c^λ, with λ chosen so that
//! they share exactly the exposures the heavy hitters leave (see `tail_runs`). `lists`,
//! `exposures` and `list_overlap` stay exact; shares are taken of the estimate's own total.
//!
//! Error against exact counting, worst over ten seeded streams of lists of 10 drawn from a Zipf
//! popularity, with distinct items / `max_items` as "items per counter" (absolute for Gini and
//! the shares, relative for the rest):
//!
//! | max_items | Zipf | items per counter | gini | head | tail | entropy | effective | distinct |
//! |---|---|---|---|---|---|---|---|---|
//! | 300 | 1.05 | 11 | 0.034 | 0.044 | 0.002 | 2.9% | 20% | 1.1% |
//! | 300 | 0.8 | 27 | 0.032 | 0.044 | 0.005 | 2.7% | 25% | 1.7% |
//! | 1,000 | 1.05 | 9 | 0.007 | 0.012 | 0.001 | 0.8% | 5.4% | 1.0% |
//! | 1,000 | 0.8 | 17 | 0.013 | 0.021 | 0.004 | 1.0% | 9.6% | 1.4% |
//! | 3,000 | 1.05 | 9 | 0.002 | 0.003 | 0.002 | 0.2% | 1.3% | 1.6% |
//! | 3,000 | 0.8 | 18 | 0.011 | 0.018 | 0.004 | 0.6% | 6.1% | 1.6% |
//! | 10,000 | 1.0 | 9 | 0.002 | 0.003 | 0.002 | 0.1% | 0.9% | 1.4% |
//!
//! The error comes from the few mid-popular items (too rare to be certain heavy hitters, too
//! common to be typical of the tail) that the sample happens to hold: it shrinks with the sample
//! size and grows with the number of distinct items per counter and with a flatter popularity;
//! `effective_items` = 2^H magnifies entropy's error. `sketch_error_on_zipf_streams` below
//! asserts the 1,000 rows. `tests/fixtures/diversity/
//! sketch_zipf.json` checks one such stream against numpy. A homogenization trend computed from
//! sketched windows compares estimates, so prefer a `max_items` of a few thousand or more.
//!
//! Memory per route: at most `max_items` counters with their indexes (sized once, never
//! growing), 16 KiB of registers while sketching, `overlap_lists` × `top_k` hashes for the
//! overlap, and `trend_windows` reports.
//!
//! # Example
//!
//! ```
//! use driftwatch::explore::diversity::{Diversity, DiversityConfig};
//!
//! let mut diversity = Diversity::new(DiversityConfig {
//!     window_lists: 2,
//!     max_items: 1000,
//!     catalog_size: Some(10),
//!     overlap_lists: 200,
//!     top_k: 10,
//!     trend_windows: 3,
//! });
//! assert!(diversity.observe(1, &["a", "b"]).is_none());
//! let closed = diversity.observe(2, &["a", "c"]).expect("the second list closes the window");
//! assert_eq!(closed.distinct_items, 3);
//! assert_eq!(closed.catalog_coverage, Some(0.3));
//! assert_eq!(closed.list_overlap, 1.0 / 3.0); // {a, b} and {a, c} share one of three items
//! assert_eq!(diversity.last(), Some(&closed));
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;

use foldhash::{HashMap, HashMapExt};

/// What a [`Diversity`] measures over, for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiversityConfig {
    /// Lists per tumbling window (e.g. 1000); 0 is taken as 1.
    pub window_lists: usize,
    /// Distinct items counted exactly in one window before it switches to sketches; also the
    /// number of counters the sketch keeps. 0 is taken as 1.
    pub max_items: usize,
    /// Items the route could show, for coverage and the catalog Gini; `None` when unknown.
    pub catalog_size: Option<u64>,
    /// Most recent lists of the window whose overlap is measured (e.g. 200): the cost of a report
    /// grows with its square.
    pub overlap_lists: usize,
    /// Leading slots of a list compared for overlap (e.g. 10).
    pub top_k: usize,
    /// Complete windows a trend must span to count as homogenization (e.g. 3); below 2 is taken
    /// as 2, one comparison.
    pub trend_windows: usize,
}

/// The diversity of one window of shown lists.
///
/// Notation: the window's exposure counts c_1 ≤ … ≤ c_n over its n distinct items, S = Σ c_i.
/// With `exact: false` every item-level figure is the sketch's approximation (module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DiversityReport {
    /// Lists observed in the window.
    pub lists: u64,
    /// S: slots shown in the window (every position counts 1).
    pub exposures: u64,
    /// n: distinct items shown in the window.
    pub distinct_items: u64,
    /// Gini coefficient of the exposure counts of the items shown,
    /// G = 2·Σ i·c_i / (n·S) − (n+1)/n, computed as the single exact fraction
    /// (2·Σ i·c_i − (n+1)·S) / (n·S); 0 when n ≤ 1 or S = 0. Items never shown are left out, so
    /// 0 means "what is shown, is shown evenly" however small a part of the catalog that is.
    pub gini: f64,
    /// The same Gini over the whole catalog, never-shown items counting as zeros: the formula
    /// with n replaced by C = max(`catalog_size`, n) and C − n zeros in front. `None` without a
    /// catalog size.
    pub gini_catalog: Option<f64>,
    /// Shannon entropy of the exposure shares p_i = c_i / S in bits, H = −Σ p_i·log₂ p_i; 0 when
    /// S = 0.
    pub entropy_bits: f64,
    /// 2^H: the number of equally exposed items with the same entropy; 0 when S = 0.
    pub effective_items: f64,
    /// n / C with C = max(`catalog_size`, n) (a catalog size below the items actually shown is
    /// taken as n, so coverage never exceeds 1); 0 when C = 0; `None` without a catalog size.
    pub catalog_coverage: Option<f64>,
    /// Share of exposures going to the head: the ⌈n/5⌉ most exposed items (the top 20%, Pareto's
    /// head), Σ of the ⌈n/5⌉ largest c_i / S. Ties at the boundary cannot change it (it is a sum
    /// of the largest counts), so no tie-break is needed. 0.2 when exposure is even (for n a
    /// multiple of 5), towards 1 as it concentrates; 0 when S = 0.
    pub head_share: f64,
    /// Share of exposures going to the long tail: the ⌊n/2⌋ least exposed items, Σ of the ⌊n/2⌋
    /// smallest c_i / S (the "bottom 50% share" of inequality statistics, next to the top-20%
    /// share above). 0.5 when exposure is even (for even n), towards 0 as the tail starves; 0
    /// when n ≤ 1. It is a split by item rank, not by exposure mass: a tail defined as "the items
    /// outside those holding 80% of exposures" would by construction always hold about 20%.
    pub long_tail_share: f64,
    /// Mean Jaccard similarity |A∩B| / |A∪B| of the sets of the first `top_k` ids of every pair
    /// of lists of different units among the window's last `overlap_lists` lists (two empty sets
    /// count 0); 0 when there is no such pair. The overlap never reaches into the previous
    /// window.
    pub list_overlap: f64,
    /// Whether the item-level figures are exact or the sketch's approximation.
    pub exact: bool,
}

/// Popularity diversity of one route: the open window, and the complete windows a trend needs.
#[derive(Debug)]
pub struct Diversity {
    config: DiversityConfig,
    window: Window,
    /// The last complete windows, oldest first, at most `trend_windows` of them.
    history: VecDeque<DiversityReport>,
}

impl Diversity {
    pub fn new(config: DiversityConfig) -> Self {
        let config = DiversityConfig {
            window_lists: config.window_lists.max(1),
            max_items: config.max_items.max(1),
            trend_windows: config.trend_windows.max(2),
            ..config
        };
        Self {
            window: Window::new(config.overlap_lists),
            history: VecDeque::with_capacity(config.trend_windows),
            config,
        }
    }

    /// One shown list (item ids in shown order) for one unit (a hashed user id; lists of the same
    /// unit are not compared with each other for overlap). Returns the report of the window this
    /// list closed, if it closed one.
    pub fn observe(&mut self, unit: u64, shown: &[&str]) -> Option<DiversityReport> {
        self.window.add(unit, shown, &self.config);
        if self.window.lists < self.config.window_lists as u64 {
            return None;
        }
        let closed = self.report();
        self.window.clear();
        if self.history.len() == self.config.trend_windows {
            self.history.pop_front();
        }
        self.history.push_back(closed.clone());
        Some(closed)
    }

    /// The open window as it stands.
    pub fn report(&self) -> DiversityReport {
        let window = &self.window;
        let (exposure_counts, distinct_items, exact) = window.counts.distribution(window.exposures);
        let catalog = self
            .config
            .catalog_size
            .map(|catalog_size| catalog_size.max(distinct_items));
        // The distribution's own total: the exposures themselves when exact, the estimate's sum
        // otherwise, so that the shares of an estimate add up.
        let total = exposure_counts
            .iter()
            .map(|run| u128::from(run.exposures) * u128::from(run.items))
            .sum::<u128>();
        let entropy_bits = entropy_bits(&exposure_counts, total);
        DiversityReport {
            lists: window.lists,
            exposures: window.exposures,
            distinct_items,
            gini: gini(&exposure_counts, distinct_items),
            gini_catalog: catalog.map(|catalog| gini(&exposure_counts, catalog)),
            entropy_bits,
            effective_items: if total == 0 { 0.0 } else { entropy_bits.exp2() },
            catalog_coverage: catalog.map(|catalog| ratio(distinct_items as u128, catalog as u128)),
            head_share: ratio(
                largest_sum(&exposure_counts, distinct_items.div_ceil(5)),
                total,
            ),
            long_tail_share: ratio(smallest_sum(&exposure_counts, distinct_items / 2), total),
            list_overlap: mean_overlap(&window.recent),
            exact,
        }
    }

    /// The last complete window.
    pub fn last(&self) -> Option<&DiversityReport> {
        self.history.back()
    }

    /// True when, over the last `trend_windows` complete windows, the exposure Gini strictly
    /// increased and the number of distinct items shown strictly decreased from each window to
    /// the next (with a fixed catalog size, fewer distinct items is lower coverage). False until
    /// that many windows are complete. A window in sketch mode compares its estimates.
    pub fn homogenizing(&self) -> bool {
        self.history.len() == self.config.trend_windows
            && self
                .history
                .iter()
                .zip(self.history.iter().skip(1))
                .all(|(before, after)| {
                    after.gini > before.gini && after.distinct_items < before.distinct_items
                })
    }

    /// Per-item counters the open window holds: at most `max_items`, whatever the stream.
    pub fn tracked_items(&self) -> usize {
        match &self.window.counts {
            Counts::Exact(counts) => counts.len(),
            Counts::Sketch(sketch) => sketch.tracked_items(),
        }
    }
}

/// The open window's state.
#[derive(Debug)]
struct Window {
    lists: u64,
    exposures: u64,
    counts: Counts,
    /// The last `overlap_lists` lists, oldest first.
    recent: VecDeque<RecentList>,
    overlap_lists: usize,
}

#[derive(Debug)]
struct RecentList {
    unit: u64,
    /// Hashes of the first `top_k` ids, sorted and deduplicated.
    top: Vec<u64>,
}

impl Window {
    fn new(overlap_lists: usize) -> Self {
        Self {
            lists: 0,
            exposures: 0,
            counts: Counts::Exact(HashMap::new()),
            recent: VecDeque::with_capacity(overlap_lists),
            overlap_lists,
        }
    }

    fn add(&mut self, unit: u64, shown: &[&str], config: &DiversityConfig) {
        self.lists += 1;
        self.exposures += shown.len() as u64;
        for item in shown {
            self.counts.add(item_hash(item), config.max_items);
        }
        if self.overlap_lists == 0 {
            return;
        }
        // Reuse the evicted list's buffer: a full ring then allocates nothing per list.
        let mut top = if self.recent.len() == self.overlap_lists {
            self.recent.pop_front().map(|oldest| oldest.top)
        } else {
            None
        }
        .unwrap_or_default();
        top.clear();
        top.extend(shown.iter().take(config.top_k).map(|item| item_hash(item)));
        top.sort_unstable();
        top.dedup();
        self.recent.push_back(RecentList { unit, top });
    }

    fn clear(&mut self) {
        self.lists = 0;
        self.exposures = 0;
        match &mut self.counts {
            Counts::Exact(counts) => counts.clear(),
            Counts::Sketch(_) => self.counts = Counts::Exact(HashMap::new()),
        }
        self.recent.clear();
    }
}

/// A fixed seed, so that a window's figures do not depend on the process they were computed in.
const ITEM_HASH: foldhash::quality::FixedState =
    foldhash::quality::FixedState::with_seed(0x6469_7665_7273_6974);

fn item_hash(item: &str) -> u64 {
    ITEM_HASH.hash_one(item)
}

/// Exposure counts of one window.
#[derive(Debug)]
enum Counts {
    /// Exposures by item hash, at most `max_items` entries.
    Exact(HashMap<u64, u64>),
    Sketch(Box<Sketch>),
}

impl Counts {
    fn add(&mut self, item: u64, max_items: usize) {
        match self {
            Counts::Exact(counts) => {
                if let Some(count) = counts.get_mut(&item) {
                    *count += 1;
                } else if counts.len() < max_items {
                    counts.insert(item, 1);
                } else {
                    let exact = std::mem::take(counts);
                    let mut sketch = Box::new(Sketch::from_exact(exact, max_items));
                    sketch.add(item);
                    *self = Counts::Sketch(sketch);
                }
            }
            Counts::Sketch(sketch) => sketch.add(item),
        }
    }

    /// The window's exposure distribution as ascending runs of equal counts, the number of
    /// distinct items, and whether it is exact (then the runs add up to `exposures`).
    fn distribution(&self, exposures: u64) -> (Vec<Run>, u64, bool) {
        match self {
            Counts::Exact(counts) => {
                let runs = merge_runs(counts.values().map(|&count| Run::one(count)).collect());
                (runs, counts.len() as u64, true)
            }
            Counts::Sketch(sketch) => {
                let (runs, distinct_items) = sketch.distribution(exposures);
                (runs, distinct_items, false)
            }
        }
    }
}

/// `items` items exposed `exposures` times each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Run {
    exposures: u64,
    items: u64,
}

impl Run {
    fn one(exposures: u64) -> Self {
        Self {
            exposures,
            items: 1,
        }
    }
}

/// Sorts runs by count and merges those of equal count; drops empty runs.
fn merge_runs(mut unsorted: Vec<Run>) -> Vec<Run> {
    unsorted.retain(|run| run.items > 0);
    unsorted.sort_unstable();
    let mut merged: Vec<Run> = Vec::with_capacity(unsorted.len());
    for run in unsorted {
        match merged.last_mut() {
            Some(last) if last.exposures == run.exposures => last.items += run.items,
            _ => merged.push(run),
        }
    }
    merged
}

/// The bounded summary of a window that has seen more than `max_items` distinct items: half the
/// counters find the heavy hitters, the other half count a uniform sample of the items exactly.
#[derive(Debug)]
struct Sketch {
    heavy: SpaceSaving,
    sample: HashSample,
    distinct: HyperLogLog,
    /// Distinct items known exactly when the window overflowed: the estimate never goes below.
    distinct_floor: u64,
}

impl Sketch {
    fn from_exact(exact: HashMap<u64, u64>, max_items: usize) -> Self {
        let heavy_counters = max_items.div_ceil(2);
        let mut distinct = HyperLogLog::new();
        for &item in exact.keys() {
            distinct.add(item);
        }
        Self {
            distinct_floor: exact.len() as u64,
            heavy: SpaceSaving::from_exact(&exact, heavy_counters),
            sample: HashSample::from_exact(exact, max_items - heavy_counters),
            distinct,
        }
    }

    fn add(&mut self, item: u64) {
        self.heavy.add(item);
        self.sample.add(item);
        self.distinct.add(item);
    }

    fn tracked_items(&self) -> usize {
        self.heavy.slots.len() + self.sample.counts.len()
    }

    /// The estimated distribution and its number of items (see the module docs): the certain
    /// heavy hitters one by one, and every other item through the sample.
    fn distribution(&self, exposures: u64) -> (Vec<Run>, u64) {
        // Every item shown more often than the smallest counter holds a counter; one whose
        // guaranteed count is above it is such an item for certain.
        let smallest = self.heavy.slots.iter().map(|slot| slot.count).min();
        let heavy_count = |item: u64| {
            let slot = &self.heavy.slots[*self.heavy.index.get(&item)? as usize];
            let guaranteed = slot.count - slot.error;
            (Some(guaranteed) > smallest).then_some(guaranteed)
        };
        let mut counts: Vec<Run> = self
            .heavy
            .slots
            .iter()
            .filter_map(|slot| {
                let guaranteed = heavy_count(slot.item)?;
                let exact = self.sample.counts.get(&slot.item).copied();
                Some(Run::one(exact.unwrap_or(guaranteed)))
            })
            .collect();
        let heavy_items = counts.len() as u64;
        let heavy_exposures: u64 = counts.iter().map(|run| run.exposures).sum();
        let tail = merge_runs(
            self.sample
                .counts
                .iter()
                .filter(|&(&item, _)| heavy_count(item).is_none())
                .map(|(_, &count)| Run::one(count))
                .collect(),
        );
        let sampled: u64 = tail.iter().map(|run| run.items).sum();
        let distinct_items = (self.distinct.estimate().round() as u64)
            .max(self.distinct_floor)
            .max(heavy_items + sampled);
        // What the heavy hitters leave: with no exposures left there is no other item (every item
        // shown was shown at least once), and there cannot be more items than exposures left.
        // (Heavy counts never exceed the true ones, so the heavy hitters cannot take more.)
        let rest = exposures.saturating_sub(heavy_exposures);
        let tail_items = (distinct_items - heavy_items).min(rest);
        counts.extend(tail_runs(&tail, tail_items, rest));
        (merge_runs(counts), heavy_items + tail_items)
    }
}

/// `items` items sharing `exposures`, shaped like the sample (ascending runs of sampled counts):
/// each sampled item of count c stands for a number of items proportional to c^λ, with λ such
/// that they share `exposures` (λ = 0, equal weights, when the sample's mean is already right;
/// the tilt corrects a sample that happens to hold more or fewer mid-popular items than its
/// share). Without a sample, the exposures are spread as evenly as integers allow.
fn tail_runs(sample: &[Run], items: u64, exposures: u64) -> Vec<Run> {
    if items == 0 {
        return Vec::new();
    }
    if sample.is_empty() {
        let (each, plus_one) = (exposures / items, exposures % items);
        return vec![
            Run {
                exposures: each,
                items: items - plus_one,
            },
            Run {
                exposures: each + 1,
                items: plus_one,
            },
        ];
    }
    let tilt = calibration_tilt(sample, exposures as f64 / items as f64);
    let weights: Vec<f64> = sample.iter().map(|run| tilted(run, tilt)).collect();
    let scale = items as f64 / weights.iter().sum::<f64>();
    // Rounding the running total keeps the item numbers adding up to `items` exactly.
    let mut runs = Vec::with_capacity(sample.len());
    let (mut cumulative, mut assigned) = (0.0, 0u64);
    for (run, weight) in sample.iter().zip(&weights) {
        cumulative += weight * scale;
        let upto = (cumulative.round() as u64).min(items);
        runs.push(Run {
            exposures: run.exposures,
            items: upto - assigned,
        });
        assigned = upto;
    }
    if let Some(last) = runs.last_mut() {
        last.items += items - assigned;
    }
    runs
}

/// Bound on |λ|: far beyond it one count would carry all the weight.
const MAX_TILT: f64 = 4.0;

/// The run's weight k·c^λ.
fn tilted(run: &Run, tilt: f64) -> f64 {
    run.items as f64 * (run.exposures as f64).powf(tilt)
}

/// The λ in [−`MAX_TILT`, `MAX_TILT`] for which weights c^λ give the sampled counts the mean
/// `target` (the weighted mean rises with λ: bisection), or the nearer end when none does.
fn calibration_tilt(sample: &[Run], target: f64) -> f64 {
    let weighted_mean = |tilt: f64| {
        let (mut weights, mut weighted) = (0.0, 0.0);
        for run in sample {
            let weight = tilted(run, tilt);
            weights += weight;
            weighted += weight * run.exposures as f64;
        }
        weighted / weights
    };
    let (mut low, mut high) = (-MAX_TILT, MAX_TILT);
    if weighted_mean(low) >= target {
        return low;
    }
    if weighted_mean(high) <= target {
        return high;
    }
    // 2·MAX_TILT / 2^40 ≈ 10⁻¹¹: far below what the integer item numbers can show.
    for _ in 0..40 {
        let middle = 0.5 * (low + high);
        if weighted_mean(middle) < target {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// Exact counts of the `capacity` items with the smallest (remixed) hashes seen: a uniform sample
/// of the distinct items, independent of how often they are shown (bottom-k sampling). The
/// smallest-hash boundary only ever falls, so an item in the sample was admitted at its first
/// exposure and its count is exact; an item pushed out never comes back.
#[derive(Debug)]
struct HashSample {
    capacity: usize,
    counts: HashMap<u64, u64>,
    /// (sample hash, item) of the items in `counts`, largest hash on top.
    by_hash: BinaryHeap<(u64, u64)>,
}

impl HashSample {
    fn from_exact(mut counts: HashMap<u64, u64>, capacity: usize) -> Self {
        let mut smallest: Vec<(u64, u64)> = counts
            .keys()
            .map(|&item| (Self::sample_hash(item), item))
            .collect();
        smallest.sort_unstable();
        for &(_, item) in smallest.iter().skip(capacity) {
            counts.remove(&item);
        }
        smallest.truncate(capacity);
        Self {
            capacity,
            counts,
            by_hash: BinaryHeap::from(smallest),
        }
    }

    fn sample_hash(item: u64) -> u64 {
        // A different mix than the HyperLogLog's, so sampling and registers are independent.
        mix64(item ^ 0x9e37_79b9_7f4a_7c15)
    }

    fn add(&mut self, item: u64) {
        if let Some(count) = self.counts.get_mut(&item) {
            *count += 1;
            return;
        }
        let hash = Self::sample_hash(item);
        if self.counts.len() == self.capacity {
            match self.by_hash.peek() {
                Some(&(largest, _)) if hash < largest => {
                    if let Some((_, out)) = self.by_hash.pop() {
                        self.counts.remove(&out);
                    }
                }
                _ => return,
            }
        }
        self.counts.insert(item, 1);
        self.by_hash.push((hash, item));
    }
}

/// SpaceSaving heavy hitters: exactly `capacity` counters once full.
#[derive(Debug)]
struct SpaceSaving {
    capacity: usize,
    slots: Vec<Slot>,
    /// Slot of each tracked item.
    index: HashMap<u64, u32>,
    /// One entry per slot, keyed by a count that may lag behind the slot's (increments do not
    /// touch the heap): keys never exceed the true counts, so a popped entry whose key is current
    /// is the minimum, and a stale one is pushed back with its current count.
    by_count: BinaryHeap<Reverse<(u64, u32)>>,
}

#[derive(Debug)]
struct Slot {
    item: u64,
    count: u64,
    /// Upper bound on how much of `count` belongs to items this slot tracked before.
    error: u64,
}

impl SpaceSaving {
    /// Starts from exact counts, keeping the `capacity` largest (ties by item, so the result does
    /// not depend on map order): every item left out has at most the smallest count kept, which is
    /// the invariant SpaceSaving needs.
    fn from_exact(exact: &HashMap<u64, u64>, capacity: usize) -> Self {
        let mut largest: Vec<(u64, u64)> =
            exact.iter().map(|(&item, &count)| (count, item)).collect();
        largest.sort_unstable_by(|first, second| second.cmp(first));
        let mut summary = Self {
            capacity,
            slots: Vec::with_capacity(capacity),
            // Evictions leave tombstones; a table at most half full clears them by rehashing in
            // place instead of growing, so its size is fixed from here on.
            index: HashMap::with_capacity(2 * capacity),
            by_count: BinaryHeap::with_capacity(capacity),
        };
        for (count, item) in largest.into_iter().take(capacity) {
            summary.track(item, count, 0);
        }
        summary
    }

    fn track(&mut self, item: u64, count: u64, error: u64) {
        let slot = self.slots.len() as u32;
        self.slots.push(Slot { item, count, error });
        self.index.insert(item, slot);
        self.by_count.push(Reverse((count, slot)));
    }

    fn add(&mut self, item: u64) {
        if let Some(&slot) = self.index.get(&item) {
            self.slots[slot as usize].count += 1;
            return;
        }
        if self.slots.len() < self.capacity {
            self.track(item, 1, 0);
            return;
        }
        let slot = self.pop_smallest();
        let smallest = &mut self.slots[slot as usize];
        self.index.remove(&smallest.item);
        smallest.item = item;
        smallest.error = smallest.count;
        smallest.count += 1;
        self.index.insert(item, slot);
        self.by_count.push(Reverse((smallest.count, slot)));
    }

    fn pop_smallest(&mut self) -> u32 {
        loop {
            let Reverse((key, slot)) = self.by_count.pop().expect("a full summary has slots");
            let count = self.slots[slot as usize].count;
            if key == count {
                return slot;
            }
            self.by_count.push(Reverse((count, slot)));
        }
    }
}

/// HyperLogLog distinct counter with 2^PRECISION registers.
#[derive(Debug)]
struct HyperLogLog {
    registers: Box<[u8]>,
}

impl HyperLogLog {
    const PRECISION: u32 = 14;
    const REGISTERS: usize = 1 << Self::PRECISION;

    fn new() -> Self {
        Self {
            registers: vec![0; Self::REGISTERS].into_boxed_slice(),
        }
    }

    fn add(&mut self, item: u64) {
        // The item hash also keys hash maps; remix it so register choice and rank are independent.
        let hash = mix64(item);
        let register = (hash >> (64 - Self::PRECISION)) as usize;
        let rest = hash << Self::PRECISION;
        let rank = (rest.leading_zeros() + 1).min(64 - Self::PRECISION + 1) as u8;
        let current = &mut self.registers[register];
        *current = (*current).max(rank);
    }

    fn estimate(&self) -> f64 {
        let registers = Self::REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / registers);
        let harmonic: f64 = self
            .registers
            .iter()
            .map(|&rank| (-f64::from(rank)).exp2())
            .sum();
        let raw = alpha * registers * registers / harmonic;
        let empty = self.registers.iter().filter(|&&rank| rank == 0).count();
        if raw <= 2.5 * registers && empty > 0 {
            registers * (registers / empty as f64).ln()
        } else {
            raw
        }
    }
}

/// The 64-bit finalizer of MurmurHash3.
fn mix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Gini over `items` items: the runs' items, and zeros for the rest (never-shown catalog items).
fn gini(ascending: &[Run], items: u64) -> f64 {
    let total: u128 = ascending
        .iter()
        .map(|run| u128::from(run.exposures) * u128::from(run.items))
        .sum();
    if items <= 1 || total == 0 {
        return 0.0;
    }
    let zeros = items - ascending.iter().map(|run| run.items).sum::<u64>();
    // Σ i·c_i, 1-based ranks; a run of k equal counts after `before` items covers ranks
    // before+1 ..= before+k, whose sum is k·before + k(k+1)/2.
    let mut before = u128::from(zeros);
    let mut rank_weighted = 0u128;
    for run in ascending {
        let k = u128::from(run.items);
        rank_weighted += u128::from(run.exposures) * (k * before + k * (k + 1) / 2);
        before += k;
    }
    let items = u128::from(items);
    let numerator = 2 * rank_weighted as i128 - ((items + 1) * total) as i128;
    numerator as f64 / (items * total) as f64
}

fn entropy_bits(runs: &[Run], total: u128) -> f64 {
    let mut entropy = CompensatedSum::default();
    for run in runs.iter().filter(|run| run.exposures > 0) {
        let share = run.exposures as f64 / total as f64;
        entropy.add(-share * share.log2() * run.items as f64);
    }
    entropy.value()
}

/// Σ of the `count` largest exposure counts.
fn largest_sum(ascending: &[Run], count: u64) -> u128 {
    top_sum(ascending.iter().rev(), count)
}

/// Σ of the `count` smallest exposure counts.
fn smallest_sum(ascending: &[Run], count: u64) -> u128 {
    top_sum(ascending.iter(), count)
}

fn top_sum<'a>(runs: impl Iterator<Item = &'a Run>, mut count: u64) -> u128 {
    let mut sum = 0u128;
    for run in runs {
        if count == 0 {
            break;
        }
        let taken = run.items.min(count);
        sum += u128::from(run.exposures) * u128::from(taken);
        count -= taken;
    }
    sum
}

/// part / whole, 0 for an empty whole; exact integers, so a single rounding while both fit in
/// 53 bits.
fn ratio(part: u128, whole: u128) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn mean_overlap(recent: &VecDeque<RecentList>) -> f64 {
    let mut sum = CompensatedSum::default();
    let mut pairs = 0u64;
    for (position, first) in recent.iter().enumerate() {
        for second in recent.iter().skip(position + 1) {
            if first.unit != second.unit {
                sum.add(jaccard(&first.top, &second.top));
                pairs += 1;
            }
        }
    }
    if pairs == 0 {
        0.0
    } else {
        sum.value() / pairs as f64
    }
}

/// |A∩B| / |A∪B| of two sorted, deduplicated sets; 0 for two empty sets.
fn jaccard(first: &[u64], second: &[u64]) -> f64 {
    let (mut left, mut right, mut shared) = (0, 0, 0usize);
    while left < first.len() && right < second.len() {
        match first[left].cmp(&second[right]) {
            std::cmp::Ordering::Less => left += 1,
            std::cmp::Ordering::Greater => right += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                left += 1;
                right += 1;
            }
        }
    }
    let union = first.len() + second.len() - shared;
    ratio(shared as u128, union as u128)
}

/// Neumaier's compensated sum: the result does not drift with the number of terms (thousands of
/// items, tens of thousands of list pairs), so it agrees with numpy's pairwise sums.
#[derive(Debug, Default)]
struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    fn add(&mut self, term: f64) {
        let sum = self.sum + term;
        self.compensation += if self.sum.abs() >= term.abs() {
            (self.sum - sum) + term
        } else {
            (term - sum) + self.sum
        };
        self.sum = sum;
    }

    fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window_lists: usize, max_items: usize) -> DiversityConfig {
        DiversityConfig {
            window_lists,
            max_items,
            catalog_size: None,
            overlap_lists: 200,
            top_k: 10,
            trend_windows: 3,
        }
    }

    fn empty_report(catalog: Option<f64>, gini_catalog: Option<f64>) -> DiversityReport {
        DiversityReport {
            lists: 0,
            exposures: 0,
            distinct_items: 0,
            gini: 0.0,
            gini_catalog,
            entropy_bits: 0.0,
            effective_items: 0.0,
            catalog_coverage: catalog,
            head_share: 0.0,
            long_tail_share: 0.0,
            list_overlap: 0.0,
            exact: true,
        }
    }

    #[test]
    fn an_empty_window_reports_zeros() {
        let diversity = Diversity::new(config(10, 100));
        assert_eq!(diversity.report(), empty_report(None, None));
        assert_eq!(diversity.last(), None);
        assert!(!diversity.homogenizing());

        let with_catalog = Diversity::new(DiversityConfig {
            catalog_size: Some(50),
            ..config(10, 100)
        });
        assert_eq!(with_catalog.report(), empty_report(Some(0.0), Some(0.0)));
    }

    #[test]
    fn empty_lists_count_as_lists_without_exposures() {
        let mut diversity = Diversity::new(config(2, 100));
        assert_eq!(diversity.observe(1, &[]), None);
        let closed = diversity
            .observe(2, &[])
            .expect("two lists close the window");
        // Two empty top-k sets share nothing: one pair, overlap 0.
        assert_eq!(
            closed,
            DiversityReport {
                lists: 2,
                ..empty_report(None, None)
            }
        );
    }

    #[test]
    fn one_item_is_perfectly_equal_and_perfectly_concentrated() {
        let mut diversity = Diversity::new(DiversityConfig {
            catalog_size: Some(4),
            ..config(10, 100)
        });
        diversity.observe(1, &["only"]);
        diversity.observe(2, &["only", "only"]);
        let report = diversity.report();
        assert_eq!(report.exposures, 3);
        assert_eq!(report.distinct_items, 1);
        assert_eq!(report.gini, 0.0);
        // Exposure c = (0, 0, 0, 3): G = (2·4·3 − 5·3) / (4·3) = 0.75, the maximum (n−1)/n.
        assert_eq!(report.gini_catalog, Some(0.75));
        assert_eq!(report.entropy_bits, 0.0);
        assert_eq!(report.effective_items, 1.0);
        assert_eq!(report.catalog_coverage, Some(0.25));
        assert_eq!(report.head_share, 1.0);
        assert_eq!(report.long_tail_share, 0.0);
        assert_eq!(report.list_overlap, 1.0);
    }

    #[test]
    fn one_list() {
        let mut diversity = Diversity::new(config(10, 100));
        diversity.observe(7, &["a", "b", "c", "d", "e"]);
        let report = diversity.report();
        assert_eq!(
            (report.lists, report.exposures, report.distinct_items),
            (1, 5, 5)
        );
        assert_eq!(report.gini, 0.0);
        assert!((report.entropy_bits - 5f64.log2()).abs() < 1e-15);
        assert!((report.effective_items - 5.0).abs() < 1e-12);
        assert_eq!(report.head_share, 0.2);
        assert_eq!(report.long_tail_share, 0.4);
        assert_eq!(report.list_overlap, 0.0, "a single list has no pair");
    }

    #[test]
    fn lists_of_the_same_unit_are_not_compared() {
        let mut diversity = Diversity::new(config(10, 100));
        diversity.observe(3, &["a", "b"]);
        diversity.observe(3, &["a", "b"]);
        assert_eq!(diversity.report().list_overlap, 0.0);
        diversity.observe(4, &["b", "c"]);
        // Two cross-unit pairs, each {a, b} against {b, c}: 1/3.
        assert_eq!(diversity.report().list_overlap, 1.0 / 3.0);
    }

    #[test]
    fn overlap_uses_the_top_k_prefix_and_the_last_lists_of_the_window() {
        let mut diversity = Diversity::new(DiversityConfig {
            overlap_lists: 2,
            top_k: 2,
            ..config(3, 100)
        });
        diversity.observe(1, &["x", "y", "z"]);
        // Evicts the first list from the overlap: only {a, b} vs {a, b} remains.
        diversity.observe(2, &["a", "b", "x"]);
        diversity.observe(3, &["b", "a", "y"]);
        assert_eq!(
            diversity.last().map(|report| report.list_overlap),
            Some(1.0)
        );
        // The new window does not compare with the previous one.
        diversity.observe(4, &["a", "b"]);
        assert_eq!(diversity.report().list_overlap, 0.0);
    }

    fn runs(counts: &[u64]) -> Vec<Run> {
        merge_runs(counts.iter().map(|&count| Run::one(count)).collect())
    }

    #[test]
    fn gini_of_known_distributions() {
        let even = runs(&[3, 3, 3, 3]);
        assert_eq!(gini(&even, 4), 0.0);
        // Counts 1, 2, 3, 4: Σ i·c = 30, G = (60 − 5·10) / 40 = 0.25.
        assert_eq!(gini(&runs(&[1, 2, 3, 4]), 4), 0.25);
        // The same with four zeros in front: Σ i·c = 5+12+21+32 = 70, G = (140 − 90) / 80.
        assert_eq!(gini(&runs(&[1, 2, 3, 4]), 8), 0.625);
    }

    #[test]
    fn a_catalog_smaller_than_what_is_shown_counts_as_what_is_shown() {
        let mut diversity = Diversity::new(DiversityConfig {
            catalog_size: Some(2),
            ..config(10, 100)
        });
        diversity.observe(1, &["a", "b", "c", "c"]);
        let report = diversity.report();
        assert_eq!(report.catalog_coverage, Some(1.0));
        assert_eq!(report.gini_catalog, Some(report.gini));
    }

    #[test]
    fn windows_tumble_and_the_trend_needs_every_step() {
        let mut diversity = Diversity::new(DiversityConfig {
            trend_windows: 3,
            ..config(2, 100)
        });
        let mut flags = Vec::new();
        // Windows narrowing from 8 even items to 2 skewed ones, then a widening one.
        let windows: [[&[&str]; 2]; 5] = [
            [&["a", "b", "c", "d"], &["e", "f", "g", "h"]],
            [&["a", "b", "c", "d"], &["a", "b", "e", "f"]],
            [&["a", "a", "a", "b"], &["a", "a", "b", "c"]],
            [&["a", "a", "a", "b"], &["a", "a", "a", "a"]],
            [&["a", "b", "c", "d"], &["e", "f", "g", "h"]],
        ];
        for (index, [first, second]) in windows.iter().enumerate() {
            assert_eq!(diversity.observe(1, first), None);
            let closed = diversity.observe(2, second).expect("closes");
            assert_eq!(diversity.last(), Some(&closed));
            assert_eq!(closed.lists, 2, "window {index}");
            assert_eq!(diversity.report().lists, 0, "the next window starts empty");
            flags.push(diversity.homogenizing());
        }
        assert_eq!(flags, [false, false, true, true, false]);
    }

    #[test]
    fn degenerate_sizes_are_clamped() {
        let mut diversity = Diversity::new(DiversityConfig {
            window_lists: 0,
            max_items: 0,
            catalog_size: None,
            overlap_lists: 0,
            top_k: 0,
            trend_windows: 0,
        });
        let closed = diversity.observe(1, &["a"]).expect("a window of one list");
        assert_eq!(closed.lists, 1);
        let closed = diversity
            .observe(1, &["a", "b"])
            .expect("a window of one list");
        assert!(!closed.exact, "one exact counter, two items");
        assert_eq!(closed.distinct_items, 2);
        assert_eq!(closed.list_overlap, 0.0);
    }

    /// Zipf-like exposures over `items` ids with a tail of 10× more ids than counters: memory
    /// stays at `max_items` counters and the approximations stay close to the exact figures.
    #[test]
    fn memory_stays_bounded_beyond_the_cap() {
        const MAX_ITEMS: usize = 1000;
        let mut diversity = Diversity::new(config(usize::MAX, MAX_ITEMS));
        let mut exact = Diversity::new(config(usize::MAX, usize::MAX));
        // A hash map's reported capacity wobbles with its tombstones (removals and inserts);
        // growing would at least double it. So: never above 1.5× what it was when the sketch began.
        let mut first_footprint: Option<[usize; 5]> = None;
        for round in 0..10 * MAX_ITEMS {
            let fresh = format!("tail-{round}");
            let popular = format!("head-{}", round % 50);
            let shown = [popular.as_str(), fresh.as_str(), "star"];
            diversity.observe(round as u64, &shown);
            exact.observe(round as u64, &shown);
            assert!(diversity.tracked_items() <= MAX_ITEMS);
            if let Counts::Sketch(sketch) = &diversity.window.counts {
                let footprint = [
                    sketch.heavy.slots.capacity(),
                    sketch.heavy.index.capacity(),
                    sketch.heavy.by_count.capacity(),
                    sketch.sample.counts.capacity(),
                    sketch.sample.by_hash.capacity(),
                ];
                let first = *first_footprint.get_or_insert(footprint);
                assert!(
                    footprint
                        .iter()
                        .zip(first)
                        .all(|(now, then)| *now <= then + then / 2),
                    "round {round}: {footprint:?} grew from {first:?}"
                );
                assert_eq!(sketch.heavy.by_count.len(), MAX_ITEMS / 2);
                assert_eq!(sketch.sample.by_hash.len(), sketch.sample.counts.len());
            }
        }
        assert_eq!(diversity.tracked_items(), MAX_ITEMS);
        let approximate = diversity.report();
        let truth = exact.report();
        assert!(!approximate.exact && truth.exact);
        assert_eq!(approximate.exposures, truth.exposures);
        assert_eq!(truth.distinct_items, 10_051);
        let relative = |a: f64, b: f64| (a - b).abs() / b;
        assert!(relative(approximate.distinct_items as f64, 10_051.0) < 0.03);
        assert!(
            (approximate.gini - truth.gini).abs() < 0.01,
            "{approximate:?} {truth:?}"
        );
        assert!(relative(approximate.entropy_bits, truth.entropy_bits) < 0.01);
        assert!((approximate.head_share - truth.head_share).abs() < 0.01);
        assert!((approximate.long_tail_share - truth.long_tail_share).abs() < 0.01);
        assert_eq!(approximate.list_overlap, truth.list_overlap);
    }

    /// The sketch against exact counting on Zipf streams with ~10× more distinct items than
    /// counters, within the errors the module docs state for `max_items` = 1000.
    #[test]
    fn sketch_error_on_zipf_streams() {
        use rand::{RngExt, SeedableRng};

        const MAX_ITEMS: usize = 1000;
        const CATALOG: usize = 100_000;
        for exponent in [0.8, 1.05] {
            let mut cumulative: Vec<f64> = (1..=CATALOG)
                .scan(0.0, |sum, rank| {
                    *sum += 1.0 / (rank as f64).powf(exponent);
                    Some(*sum)
                })
                .collect();
            let total = cumulative[CATALOG - 1];
            cumulative.iter_mut().for_each(|sum| *sum /= total);
            for seed in 0..3u64 {
                // Other ids per seed, so each seed samples other items too.
                let ids: Vec<String> = (0..CATALOG).map(|rank| format!("{seed}-{rank}")).collect();
                let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
                let mut approximate = Diversity::new(config(usize::MAX, MAX_ITEMS));
                let mut exact = Diversity::new(config(usize::MAX, usize::MAX));
                for unit in 0..3000u64 {
                    let shown: Vec<&str> = (0..10)
                        .map(|_| {
                            let draw: f64 = rng.random();
                            let rank = cumulative.partition_point(|&sum| sum < draw);
                            ids[rank.min(CATALOG - 1)].as_str()
                        })
                        .collect();
                    approximate.observe(unit, &shown);
                    exact.observe(unit, &shown);
                }
                let (estimate, truth) = (approximate.report(), exact.report());
                assert!(!estimate.exact && truth.distinct_items > 8 * MAX_ITEMS as u64);
                let context = format!("exponent {exponent} seed {seed}: {estimate:?} vs {truth:?}");
                let relative = |estimate: f64, truth: f64| (estimate - truth).abs() / truth;
                assert!((estimate.gini - truth.gini).abs() < 0.02, "{context}");
                assert!(
                    (estimate.head_share - truth.head_share).abs() < 0.03,
                    "{context}"
                );
                assert!(
                    (estimate.long_tail_share - truth.long_tail_share).abs() < 0.01,
                    "{context}"
                );
                assert!(
                    relative(estimate.entropy_bits, truth.entropy_bits) < 0.015,
                    "{context}"
                );
                assert!(
                    relative(estimate.effective_items, truth.effective_items) < 0.12,
                    "{context}"
                );
                let distinct =
                    relative(estimate.distinct_items as f64, truth.distinct_items as f64);
                assert!(distinct < 0.03, "{context}");
            }
        }
    }

    #[test]
    fn the_estimated_tail_has_the_estimated_items_and_about_the_exposures_left() {
        let sample = runs(&[1, 1, 1, 1, 2, 2, 3, 40]);
        let tail = tail_runs(&sample, 1000, 1800);
        assert_eq!(tail.iter().map(|run| run.items).sum::<u64>(), 1000);
        let exposures: u64 = tail.iter().map(|run| run.exposures * run.items).sum();
        // The tilt matches the mass up to rounding item numbers (at most half an item per run).
        assert!(exposures.abs_diff(1800) <= 40, "{exposures}");
        // A sample whose mean is already right keeps equal weights.
        let even = tail_runs(&runs(&[1, 3]), 4, 8);
        assert_eq!(
            even,
            [
                Run {
                    exposures: 1,
                    items: 2
                },
                Run {
                    exposures: 3,
                    items: 2
                }
            ]
        );
        // Without a sample, as evenly as integers allow.
        let spread = tail_runs(&[], 4, 10);
        assert_eq!(
            merge_runs(spread),
            [
                Run {
                    exposures: 2,
                    items: 2
                },
                Run {
                    exposures: 3,
                    items: 2
                }
            ]
        );
        assert!(tail_runs(&sample, 0, 0).is_empty());
    }

    #[test]
    fn space_saving_keeps_heavy_hitters_within_the_error_bound() {
        let mut summary = SpaceSaving::from_exact(&HashMap::new(), 10);
        let mut stream = 0u64;
        for round in 0..10_000u64 {
            // Three heavy hitters with a sixth of the stream each, between ids never seen again.
            summary.add(round % 3);
            summary.add(1_000 + round);
            stream += 2;
        }
        for heavy in 0..3u64 {
            let slot = &summary.slots[summary.index[&heavy] as usize];
            let truth = 10_000 / 3 + u64::from(heavy < 10_000 % 3);
            assert!(slot.count - slot.error <= truth && truth <= slot.count);
            assert!(slot.error <= stream / 10);
        }
    }

    #[test]
    fn hyperloglog_is_within_a_few_standard_errors() {
        for distinct in [10u64, 1_000, 50_000, 500_000] {
            let mut counter = HyperLogLog::new();
            for item in 0..distinct {
                counter.add(item_hash(&item.to_string()));
            }
            let error = (counter.estimate() - distinct as f64).abs() / distinct as f64;
            assert!(error < 0.03, "{distinct}: {}", counter.estimate());
        }
    }
}
