//! The analysis side of exploration: every list shown on an exploration route feeds the route's
//! popularity-diversity windows ([`super::diversity`]), exported as `driftwatch_recs_*` and
//! `GET /api/v1/diversity`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::Gauge;
use serde_json::{Value, json};

use super::diversity::{Diversity, DiversityConfig, DiversityReport};
use super::log::{ExplorationLog, ShownLog};
use crate::config::exploration::ExplorationRoute;
use crate::tap::{Analyzer, Findings, Observation};
use crate::telemetry::Registry;

pub type SharedDiversity = Arc<Mutex<BTreeMap<String, RouteDiversity>>>;

const GAUGES: [(&str, &str); 9] = [
    (
        "driftwatch_recs_exposure_gini",
        "Gini coefficient of item exposures in the last window of shown lists.",
    ),
    (
        "driftwatch_recs_entropy_bits",
        "Shannon entropy of item exposures, in bits.",
    ),
    (
        "driftwatch_recs_effective_items",
        "2^entropy: equally exposed items with the same entropy.",
    ),
    (
        "driftwatch_recs_distinct_items",
        "Distinct items shown in the last window.",
    ),
    (
        "driftwatch_recs_catalog_coverage",
        "Distinct items shown / catalog size (when configured).",
    ),
    (
        "driftwatch_recs_head_share",
        "Share of exposures going to the most exposed 20% of items.",
    ),
    (
        "driftwatch_recs_long_tail_share",
        "Share of exposures going to the least exposed 50% of items.",
    ),
    (
        "driftwatch_recs_list_overlap",
        "Mean Jaccard overlap of the top items of lists shown to different units.",
    ),
    (
        "driftwatch_recs_homogenization",
        "1 when Gini rose and distinct items fell over the last windows.",
    ),
];

pub struct RouteDiversity {
    pub diversity: Diversity,
    gauges: Vec<Gauge>,
    /// Positions counted as exposures (`diversity_positions`).
    positions: Option<usize>,
}

impl RouteDiversity {
    fn publish(&self, report: &DiversityReport) {
        let values = [
            report.gini,
            report.entropy_bits,
            report.effective_items,
            report.distinct_items as f64,
            report.catalog_coverage.unwrap_or(f64::NAN),
            report.head_share,
            report.long_tail_share,
            report.list_overlap,
            f64::from(u8::from(self.diversity.homogenizing())),
        ];
        for (gauge, value) in self.gauges.iter().zip(values) {
            if !value.is_nan() {
                gauge.set(value);
            }
        }
    }
}

/// Creates the per-route diversity state.
pub fn shared(routes: &[ExplorationRoute], registry: &Registry) -> SharedDiversity {
    for (name, help) in GAUGES {
        registry.describe_gauge(name, help);
    }
    let state = routes
        .iter()
        .map(|route| {
            let diversity = Diversity::new(DiversityConfig {
                window_lists: route.diversity_window,
                max_items: 100_000,
                catalog_size: route.catalog_size,
                overlap_lists: 200,
                top_k: 10,
                trend_windows: 3,
            });
            let gauges = GAUGES
                .iter()
                .map(|(name, _)| registry.gauge(name, &[("route", route.name.as_str())]))
                .collect();
            (
                route.name.clone(),
                RouteDiversity {
                    diversity,
                    gauges,
                    positions: route.diversity_positions,
                },
            )
        })
        .collect();
    Arc::new(Mutex::new(state))
}

pub struct DiversityAnalyzer {
    state: SharedDiversity,
}

impl DiversityAnalyzer {
    pub fn new(state: SharedDiversity) -> Self {
        Self { state }
    }
}

/// The ids in the order the client saw them, and the unit's hash, from an exploration log.
fn shown(log: &ExplorationLog) -> Option<(u64, Vec<&str>)> {
    if !matches!(log.outcome, "explored" | "shadow" | "holdout") {
        return None;
    }
    let decision = log.decision.as_ref()?;
    let mut slots: Vec<&ShownLog> = decision.shown.iter().collect();
    // In shadow mode the client saw the model's order.
    if log.outcome == "shadow" {
        slots.sort_by_key(|s| s.model_rank);
    } else {
        slots.sort_by_key(|s| s.position);
    }
    let unit = log
        .unit
        .strip_prefix("hmac-sha256:")
        .and_then(|hex| u64::from_str_radix(hex.get(..16)?, 16).ok())
        .unwrap_or(0);
    Some((unit, slots.into_iter().map(|s| &*s.id).collect()))
}

impl Analyzer for DiversityAnalyzer {
    fn observe(&mut self, observation: &Observation, _: &mut Findings) {
        let Some(log) = &observation.exploration else {
            return;
        };
        let Some((unit, ids)) = shown(log) else {
            return;
        };
        let route = &*log.route;
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(route) = state.get_mut(route) {
            let displayed = &ids[..route.positions.map_or(ids.len(), |p| p.min(ids.len()))];
            if let Some(report) = route.diversity.observe(unit, displayed) {
                route.publish(&report);
            }
        }
    }
}

/// `GET /api/v1/diversity`.
pub fn report(state: &SharedDiversity) -> Value {
    let Ok(state) = state.lock() else {
        return json!({"error": "diversity state unavailable"});
    };
    let routes: Vec<Value> = state
        .iter()
        .map(|(name, route)| {
            json!({
                "route": name,
                "last_window": route.diversity.last(),
                "open_window": route.diversity.report(),
                "homogenizing": route.diversity.homogenizing(),
            })
        })
        .collect();
    json!({"routes": routes})
}
