//! Drift statistics of one column's window against its reference (SPEC §7), and the decision.
//! The formulas live in [`super::stats`]; this module chooses which apply to a column and turns
//! them into a report.

use serde::Serialize;

use super::reference::{ColumnProfile, Kind};
use super::stats;
use super::window::BinLayout;
use crate::config::MonitoringConfig;
use crate::config::monitoring::StatisticName;
use crate::extract::table::Role;

/// Every statistic that applies to the column (numeric: psi, js, ks_d, ks_p, wasserstein;
/// categorical: psi, js, chi2_p). Absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Statistics {
    pub psi: Option<f64>,
    pub js: Option<f64>,
    pub ks_d: Option<f64>,
    pub ks_p: Option<f64>,
    pub wasserstein: Option<f64>,
    pub chi2_p: Option<f64>,
}

impl Statistics {
    pub fn get(&self, name: StatisticName) -> Option<f64> {
        match name {
            StatisticName::Psi => self.psi,
            StatisticName::Js => self.js,
            StatisticName::KsD => self.ks_d,
            StatisticName::KsP => self.ks_p,
            StatisticName::Wasserstein => self.wasserstein,
            StatisticName::Chi2P => self.chi2_p,
        }
    }

    /// `(name, value)` of every statistic present.
    pub fn present(&self) -> Vec<(&'static str, f64)> {
        [
            ("psi", self.psi),
            ("js", self.js),
            ("ks_d", self.ks_d),
            ("ks_p", self.ks_p),
            ("wasserstein", self.wasserstein),
            ("chi2_p", self.chi2_p),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bins {
    /// Numeric inner edges (empty for categorical).
    pub edges: Vec<f64>,
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub window: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnReport {
    pub name: String,
    pub role: Role,
    pub kind: &'static str,
    /// Rows of the window that reached this column.
    pub rows: u64,
    pub statistic: &'static str,
    pub threshold: f64,
    pub value: Option<f64>,
    pub drifted: bool,
    pub statistics: Statistics,
    /// Whether KS and Wasserstein used every window value (else a uniform sample).
    pub exact_sample: bool,
    pub bins: Bins,
}

/// Computes a column's report. `window_counts` are rows per bin (same layout as the reference);
/// `window_sample` is the sorted window sample (numeric columns).
pub fn column_report(
    column: &ColumnProfile,
    layout: &BinLayout,
    window_counts: &[u64],
    window_sample: &[f64],
    exact_sample: bool,
    config: &MonitoringConfig,
) -> ColumnReport {
    let reference_counts = layout.reference_counts(column);
    let p = stats::fractions(&reference_counts);
    let q = stats::fractions(window_counts);
    let rows: u64 = window_counts.iter().sum();
    let mut statistics = Statistics::default();
    if rows > 0 {
        statistics.psi = Some(stats::psi(&p, &q));
        statistics.js = Some(stats::js_distance(&p, &q));
        match layout.kind() {
            Kind::Numeric => {
                let reference_sample = column
                    .numeric
                    .as_ref()
                    .map(|n| n.sample.as_slice())
                    .unwrap_or_default();
                if !reference_sample.is_empty() && !window_sample.is_empty() {
                    let (d, p_value) = stats::ks_2samp(reference_sample, window_sample);
                    statistics.ks_d = Some(d);
                    statistics.ks_p = Some(p_value);
                    statistics.wasserstein = Some(stats::wasserstein_normalized(
                        reference_sample,
                        window_sample,
                    ));
                }
            }
            Kind::Categorical => {
                let reference: Vec<f64> = reference_counts.iter().map(|&c| c as f64).collect();
                let window: Vec<f64> = window_counts.iter().map(|&c| c as f64).collect();
                statistics.chi2_p = Some(stats::chi2_contingency_p(&reference, &window));
            }
        }
    }
    let (statistic, threshold) = match layout.kind() {
        Kind::Numeric => (config.numeric_statistic, config.numeric_threshold),
        Kind::Categorical => (config.categorical_statistic, config.categorical_threshold),
    };
    let value = statistics.get(statistic);
    let crossed = value.is_some_and(|v| {
        if statistic.is_p_value() {
            v < threshold
        } else {
            v > threshold
        }
    });
    let drifted = crossed && rows >= config.min_samples as u64;
    ColumnReport {
        name: column.name.clone(),
        role: column.role,
        kind: layout.kind().as_str(),
        rows,
        statistic: statistic.as_str(),
        threshold,
        value,
        drifted,
        statistics,
        exact_sample,
        bins: Bins {
            edges: match layout {
                BinLayout::Numeric { edges } => edges.clone(),
                BinLayout::Categorical { .. } => Vec::new(),
            },
            labels: layout.labels(),
            reference: p,
            window: q,
        },
    }
}

/// The dataset decision: the share of drifted input columns against `dataset_drift_share`.
pub fn dataset_drift(columns: &[ColumnReport], share_threshold: f64) -> (f64, bool) {
    let inputs: Vec<&ColumnReport> = columns.iter().filter(|c| c.role == Role::Input).collect();
    if inputs.is_empty() {
        return (0.0, false);
    }
    let drifted = inputs.iter().filter(|c| c.drifted).count();
    let share = drifted as f64 / inputs.len() as f64;
    (share, drifted > 0 && share >= share_threshold)
}
