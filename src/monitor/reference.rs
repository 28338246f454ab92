//! Reference profiles (SPEC §7): what "normal" looks like for each column, computed once — by
//! `driftwatch profile` from a training set, or from the first N live rows — and then frozen.
//!
//! Per column: role, kind, count, missing count; numeric: min, max, mean, std (ddof 0), median,
//! MAD, mean absolute deviation, q0.001, q0.999, the inner bin edges (deduplicated reference
//! quantiles at i/B, numpy "linear") with the reference count per bin; categorical: the top-K
//! categories with counts, the count of the rest, and up to 10,000 distinct categories (to tell
//! `__other__` from `__unseen__`); and a uniform sample of up to 10,000 non-missing values
//! (seeded, so the same input gives the same profile) for KS and Wasserstein.

use std::collections::{BTreeMap, HashMap};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::stats;
use crate::extract::table::{Cell, Role};

pub const SCHEMA: &str = "driftwatch.profile/v1";
/// Most values kept in the uniform sample (reference and window alike).
pub const SAMPLE_SIZE: usize = 10_000;
/// Most distinct categories remembered.
pub const MAX_CATEGORIES: usize = 10_000;
/// The seed of the reference sample.
const SAMPLE_SEED: u64 = 0x0d21_f7a7_c4e5_5eed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Numeric => "numeric",
            Self::Categorical => "categorical",
        }
    }
}

/// A reference profile: every monitored column of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub schema: String,
    pub model: Option<String>,
    /// Where it came from: `profile:<file>` or `learned`.
    pub source: String,
    /// Rows profiled.
    pub rows: u64,
    pub bins: usize,
    pub top_k: usize,
    pub columns: Vec<ColumnProfile>,
    /// The model's performance on the profiled rows (its outputs against the label column):
    /// `accuracy`, `precision`, `recall`, `f1` or `mae`, `rmse`. The default baseline of the
    /// performance-drop check (SPEC §8) when the config names none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub performance: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub role: Role,
    pub kind: Kind,
    /// Non-missing values.
    pub count: u64,
    /// Absent, null, NaN, ±Inf, or of the wrong type.
    pub missing: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical: Option<CategoricalProfile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericProfile {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std: f64,
    pub median: f64,
    pub mad: f64,
    pub mean_abs_deviation: f64,
    pub q001: f64,
    pub q999: f64,
    /// Inner bin edges; bins are `(e[i-1], e[i]]` with open ends.
    pub edges: Vec<f64>,
    /// Reference rows per bin (`edges.len() + 1` bins).
    pub bin_counts: Vec<u64>,
    /// A uniform sample of the values, sorted.
    pub sample: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// The top-K categories by count (ties by name), with counts.
    pub top: Vec<(String, u64)>,
    /// Rows in categories outside the top K.
    pub other: u64,
    /// Distinct categories seen, up to 10,000.
    pub categories: Vec<String>,
    /// Whether `categories` holds every distinct category (so a value outside it is unseen).
    pub complete: bool,
}

impl Profile {
    pub fn column(&self, role: Role, name: &str) -> Option<&ColumnProfile> {
        self.columns
            .iter()
            .find(|c| c.role == role && c.name == name)
    }

    /// Parses and checks a profile file's content.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let profile: Self =
            serde_json::from_str(text).map_err(|e| format!("not a profile: {e}"))?;
        if profile.schema != SCHEMA {
            return Err(format!("schema {:?}, expected {SCHEMA:?}", profile.schema));
        }
        for column in &profile.columns {
            let consistent = match (column.kind, &column.numeric, &column.categorical) {
                (Kind::Numeric, Some(numeric), None) => {
                    numeric.bin_counts.len() == numeric.edges.len() + 1
                        && numeric.edges.windows(2).all(|w| w[0] < w[1])
                }
                (Kind::Categorical, None, Some(_)) => true,
                _ => false,
            };
            if !consistent {
                return Err(format!(
                    "column {:?} ({}) is inconsistent",
                    column.name, column.role
                ));
            }
        }
        Ok(profile)
    }
}

/// The category label of a cell in a categorical column, or `None` when it is missing.
pub fn category(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Text(text) => Some(text.clone()),
        Cell::Bool(value) => Some(value.to_string()),
        Cell::Number(x) if x.is_finite() => Some(format_number(*x)),
        _ => None,
    }
}

/// Integers without a fraction print without `.0` (class id 2 is category "2").
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// The number in a numeric column's cell, or `None` when missing (absent, null, non-finite or of
/// the wrong type).
pub fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Number(x) if x.is_finite() => Some(*x),
        _ => None,
    }
}

/// A column being profiled.
pub struct ColumnInput {
    pub name: String,
    pub role: Role,
    pub kind: Kind,
}

/// Accumulates rows, then computes the profile. Holds every value: bounded by the rows given
/// (`learn_reference.samples` live; the file size offline).
pub struct ProfileBuilder {
    columns: Vec<ColumnInput>,
    numbers: Vec<Vec<f64>>,
    categories: Vec<HashMap<String, u64>>,
    category_order: Vec<Vec<String>>,
    missing: Vec<u64>,
    rows: u64,
}

impl ProfileBuilder {
    pub fn new(columns: Vec<ColumnInput>) -> Self {
        let n = columns.len();
        Self {
            columns,
            numbers: vec![Vec::new(); n],
            categories: vec![HashMap::new(); n],
            category_order: vec![Vec::new(); n],
            missing: vec![0; n],
            rows: 0,
        }
    }

    pub fn columns(&self) -> &[ColumnInput] {
        &self.columns
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds one row; `cells[i]` belongs to column `i`.
    pub fn push(&mut self, cells: &[Cell]) {
        self.rows += 1;
        for (index, column) in self.columns.iter().enumerate() {
            let cell = cells.get(index).unwrap_or(&Cell::Missing);
            match column.kind {
                Kind::Numeric => match number(cell) {
                    Some(x) => self.numbers[index].push(x),
                    None => self.missing[index] += 1,
                },
                Kind::Categorical => match category(cell) {
                    Some(label) => {
                        let counts = &mut self.categories[index];
                        match counts.get_mut(&label) {
                            Some(count) => *count += 1,
                            None => {
                                self.category_order[index].push(label.clone());
                                counts.insert(label, 1);
                            }
                        }
                    }
                    None => self.missing[index] += 1,
                },
            }
        }
    }

    pub fn finish(
        self,
        model: Option<String>,
        source: String,
        bins: usize,
        top_k: usize,
    ) -> Profile {
        let mut columns = Vec::with_capacity(self.columns.len());
        for (index, column) in self.columns.into_iter().enumerate() {
            let missing = self.missing[index];
            let profile = match column.kind {
                Kind::Numeric => {
                    let values = &self.numbers[index];
                    ColumnProfile {
                        name: column.name,
                        role: column.role,
                        kind: Kind::Numeric,
                        count: values.len() as u64,
                        missing,
                        numeric: Some(numeric_profile(values, bins)),
                        categorical: None,
                    }
                }
                Kind::Categorical => {
                    let counts = &self.categories[index];
                    let order = &self.category_order[index];
                    ColumnProfile {
                        name: column.name,
                        role: column.role,
                        kind: Kind::Categorical,
                        count: counts.values().sum(),
                        missing,
                        numeric: None,
                        categorical: Some(categorical_profile(counts, order, top_k)),
                    }
                }
            };
            columns.push(profile);
        }
        Profile {
            schema: SCHEMA.to_owned(),
            model,
            source,
            rows: self.rows,
            bins,
            top_k,
            columns,
            performance: BTreeMap::new(),
        }
    }
}

fn numeric_profile(values: &[f64], bins: usize) -> NumericProfile {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let edges = stats::bin_edges(values, bins);
    let mut bin_counts = vec![0u64; edges.len() + 1];
    for &x in values {
        bin_counts[stats::bin_index(&edges, x)] += 1;
    }
    let quantile = |q: f64| {
        if sorted.is_empty() {
            f64::NAN
        } else {
            stats::quantile_linear(&sorted, q)
        }
    };
    NumericProfile {
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
        mean: stats::mean(values),
        std: stats::std_ddof0(values),
        median: stats::median(values),
        mad: stats::mad(values),
        mean_abs_deviation: stats::mean_abs_deviation(values),
        q001: quantile(0.001),
        q999: quantile(0.999),
        edges,
        bin_counts,
        sample: uniform_sample(values),
    }
}

/// Every value when there are at most [`SAMPLE_SIZE`], else a seeded uniform sample; sorted.
fn uniform_sample(values: &[f64]) -> Vec<f64> {
    let mut sample = if values.len() <= SAMPLE_SIZE {
        values.to_vec()
    } else {
        let mut rng = SmallRng::seed_from_u64(SAMPLE_SEED);
        let mut indices: Vec<usize> = (0..values.len()).collect();
        let (chosen, _) = indices.partial_shuffle(&mut rng, SAMPLE_SIZE);
        chosen.iter().map(|&i| values[i]).collect()
    };
    sample.sort_by(f64::total_cmp);
    sample
}

fn categorical_profile(
    counts: &HashMap<String, u64>,
    order: &[String],
    top_k: usize,
) -> CategoricalProfile {
    let mut ranked: Vec<(&String, u64)> = counts.iter().map(|(k, v)| (k, *v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let top: Vec<(String, u64)> = ranked
        .iter()
        .take(top_k)
        .map(|(k, v)| ((*k).clone(), *v))
        .collect();
    let other = ranked.iter().skip(top_k).map(|(_, v)| v).sum();
    let mut categories: Vec<String> = order.iter().take(MAX_CATEGORIES).cloned().collect();
    categories.sort();
    CategoricalProfile {
        top,
        other,
        complete: order.len() <= MAX_CATEGORIES,
        categories,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(name: &str) -> ColumnInput {
        ColumnInput {
            name: name.into(),
            role: Role::Input,
            kind: Kind::Numeric,
        }
    }

    #[test]
    fn numeric_profile_of_the_spec_example() {
        let mut builder = ProfileBuilder::new(vec![numeric("x")]);
        for i in 1..=10 {
            builder.push(&[Cell::Number(f64::from(i))]);
        }
        builder.push(&[Cell::Null]);
        builder.push(&[Cell::Number(f64::NAN)]);
        let profile = builder.finish(Some("m".into()), "test".into(), 5, 10);
        let column = &profile.columns[0];
        assert_eq!((column.count, column.missing), (10, 2));
        let numeric = column.numeric.as_ref().unwrap();
        assert_eq!(numeric.edges.len(), 4);
        assert!((numeric.edges[0] - 2.8).abs() < 1e-12);
        assert_eq!(numeric.bin_counts, vec![2, 2, 2, 2, 2]);
        assert_eq!((numeric.min, numeric.max, numeric.median), (1.0, 10.0, 5.5));
        assert_eq!(numeric.sample.len(), 10);
        let round_trip = Profile::from_json(&serde_json::to_string(&profile).unwrap()).unwrap();
        assert_eq!(round_trip, profile);
    }

    #[test]
    fn categorical_profile_keeps_top_k_and_every_category() {
        let mut builder = ProfileBuilder::new(vec![ColumnInput {
            name: "c".into(),
            role: Role::Output,
            kind: Kind::Categorical,
        }]);
        for label in ["a", "b", "a", "c", "a", "b"] {
            builder.push(&[Cell::Text(label.into())]);
        }
        builder.push(&[Cell::Number(2.0)]);
        builder.push(&[Cell::Missing]);
        let profile = builder.finish(None, "test".into(), 10, 2);
        let categorical = profile.columns[0].categorical.as_ref().unwrap();
        assert_eq!(categorical.top, vec![("a".into(), 3), ("b".into(), 2)]);
        assert_eq!(categorical.other, 2);
        assert_eq!(categorical.categories, ["2", "a", "b", "c"]);
        assert!(categorical.complete);
        assert_eq!(profile.columns[0].missing, 1);
    }

    #[test]
    fn large_inputs_are_sampled_deterministically() {
        let values: Vec<f64> = (0..50_000).map(f64::from).collect();
        let first = uniform_sample(&values);
        assert_eq!(first.len(), SAMPLE_SIZE);
        assert_eq!(first, uniform_sample(&values));
    }
}
