//! The record's `exploration` field, typed: built on the request path without going through a
//! JSON tree, serialized by the recorder, read by the diversity analyzer and the exporter.

use std::sync::Arc;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplorationLog {
    pub route: Arc<str>,
    pub bucket: &'static str,
    /// `hmac-sha256:<hex>` of the unit.
    pub unit: String,
    pub outcome: &'static str,
    /// Present when a list was found and a decision made (or held out).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionLog>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionLog {
    /// `null` for the holdout bucket.
    pub strategy: Option<&'static str>,
    pub params: Params,
    /// The seed of the decision, `0x` and 16 hex digits.
    pub seed: String,
    pub shadow: bool,
    /// The first `candidates` items, in the model's order.
    pub candidates: Vec<CandidateLog>,
    /// Every position, as returned (or, in shadow mode, as it would have been).
    pub shown: Vec<ShownLog>,
    pub p_joint: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    pub epsilon: Option<f64>,
    pub temperature: Option<f64>,
    pub fixed_top: usize,
    pub candidates: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateLog {
    pub id: Arc<str>,
    pub score: Option<f64>,
    pub model_rank: usize,
    pub pinned: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownLog {
    pub id: Arc<str>,
    /// 1-based.
    pub position: usize,
    /// 1-based.
    pub model_rank: usize,
    pub p_conditional: f64,
    pub p_item_position: Option<f64>,
    pub p_cascade: f64,
}

impl ExplorationLog {
    /// Whether the list the client got was decided by a strategy (explored or shadow).
    pub fn decided(&self) -> bool {
        matches!(self.outcome, "explored" | "shadow")
    }
}
