//! One exploration route at work: bucket the unit, seed the decision, reorder the response, and
//! describe it all in the record's `exploration` field.

use std::sync::Arc;

use serde_json::Value;

use super::log::{CandidateLog, DecisionLog, ExplorationLog, Params, ShownLog};
use super::rewrite::{self, RewriteError, Span};
use super::strategy::{self, Candidate, Decision, Strategy};
use crate::config::exploration::{ExplorationRoute, Target};
use crate::record::redact::{hmac, hmac_hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Never explored: the control group.
    Holdout,
    /// Uniform shuffle of the candidates, for position-bias estimation.
    Randomize,
    /// The configured strategy.
    Explore,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Holdout => "holdout",
            Self::Randomize => "randomize",
            Self::Explore => "explore",
        }
    }
}

/// What happened to one response, for `driftwatch_exploration_decisions_total{outcome}`.
pub mod outcome {
    pub const EXPLORED: &str = "explored";
    pub const SHADOW: &str = "shadow";
    pub const HOLDOUT: &str = "holdout";
    pub const OPT_OUT: &str = "opt_out";
    pub const EMPTY: &str = "empty";
    pub const NOT_JSON: &str = "skipped_not_json";
    pub const NO_LIST: &str = "skipped_no_list";
    pub const TOO_LARGE: &str = "skipped_too_large";
    pub const NOT_REWRITABLE: &str = "skipped_not_rewritable";
    pub const ALL: [&str; 9] = [
        EXPLORED,
        SHADOW,
        HOLDOUT,
        OPT_OUT,
        EMPTY,
        NOT_JSON,
        NO_LIST,
        TOO_LARGE,
        NOT_REWRITABLE,
    ];
}

/// The result of exploring one response.
pub struct Explored {
    /// The new body, or `None` when the response is returned unchanged.
    pub body: Option<Vec<u8>>,
    pub bucket: Bucket,
    pub outcome: &'static str,
    /// The record's `exploration` field.
    pub log: ExplorationLog,
    /// The conditional propensity of the first free slot, for `driftwatch_propensity`.
    pub propensity: Option<f64>,
}

/// The list found in a response.
struct Found {
    /// Element spans of each list to reorder together (two for Open Inference ids + scores).
    lists: Vec<Vec<Span>>,
    ids: Vec<Arc<str>>,
    scores: Vec<Option<f64>>,
    pinned: Vec<bool>,
}

pub struct Route {
    pub config: ExplorationRoute,
    route_name: Arc<str>,
    list: Vec<String>,
    id: Vec<String>,
    score: Option<Vec<String>>,
    pin: Option<Vec<String>>,
}

impl Route {
    pub fn new(config: ExplorationRoute) -> Arc<Self> {
        let (list, id, score, pin) = match &config.target {
            Target::List {
                list,
                id,
                score,
                pin,
            } => (
                rewrite::pointer_tokens(list),
                rewrite::pointer_tokens(id),
                score.as_deref().map(rewrite::pointer_tokens),
                pin.as_deref().map(rewrite::pointer_tokens),
            ),
            Target::OpenInference { .. } => (Vec::new(), Vec::new(), None, None),
        };
        Arc::new(Self {
            route_name: config.name.as_str().into(),
            config,
            list,
            id,
            score,
            pin,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The bucket of a unit: a keyed hash of it, in [0, 1).
    pub fn bucket(&self, unit: &[u8]) -> Bucket {
        let u = unit_interval(&self.config.salt, unit);
        if u < self.config.holdout {
            Bucket::Holdout
        } else if u < self.config.holdout + self.config.randomize {
            Bucket::Randomize
        } else {
            Bucket::Explore
        }
    }

    /// The decision's seed: a keyed hash of the unit and the request id.
    pub fn seed(&self, unit: &[u8], request_id: &[u8]) -> u64 {
        let mut message = unit.to_vec();
        message.push(0x1f);
        message.extend_from_slice(request_id);
        hash64(&self.config.salt, &message)
    }

    fn find(&self, body: &[u8]) -> Result<Found, RewriteError> {
        let document = rewrite::document(body).ok_or(RewriteError::NotJson)?;
        match &self.config.target {
            Target::List { .. } => {
                let list = rewrite::find(body, document, &self.list).ok_or(RewriteError::NoList)?;
                let spans = rewrite::elements(body, list).ok_or(RewriteError::NoList)?;
                let mut found = Found {
                    lists: Vec::new(),
                    ids: Vec::new(),
                    scores: Vec::new(),
                    pinned: Vec::new(),
                };
                for span in &spans {
                    let id = rewrite::find(body, *span, &self.id)
                        .and_then(|s| rewrite::scalar_text(body, s))
                        .ok_or(RewriteError::NoList)?;
                    found.ids.push(id.into());
                    found.scores.push(
                        self.score
                            .as_ref()
                            .and_then(|p| rewrite::find(body, *span, p))
                            .and_then(|s| rewrite::number_at(body, s)),
                    );
                    found.pinned.push(
                        self.pin
                            .as_ref()
                            .and_then(|p| rewrite::find(body, *span, p))
                            .and_then(|s| rewrite::value_at(body, s))
                            .is_some_and(|v| v == Value::Bool(true)),
                    );
                }
                found.lists.push(spans);
                Ok(found)
            }
            Target::OpenInference { ids, scores } => {
                let outputs = rewrite::find(body, document, &["outputs".to_owned()])
                    .ok_or(RewriteError::NoList)?;
                let tensors = rewrite::elements(body, outputs).ok_or(RewriteError::NoList)?;
                let tensor_data = |wanted: &str| -> Option<Vec<Span>> {
                    let tensor = tensors.iter().find(|t| {
                        rewrite::find(body, **t, &["name".to_owned()])
                            .and_then(|s| rewrite::value_at(body, s))
                            .is_some_and(|v| v == Value::String(wanted.to_owned()))
                    })?;
                    let data = rewrite::find(body, *tensor, &["data".to_owned()])?;
                    let mut elements = rewrite::elements(body, data)?;
                    // `[[...]]` for shape [1, N].
                    if elements.len() == 1 && body[elements[0].start] == b'[' {
                        elements = rewrite::elements(body, elements[0])?;
                    }
                    Some(elements)
                };
                let id_spans = tensor_data(ids).ok_or(RewriteError::NoList)?;
                let mut found = Found {
                    lists: Vec::new(),
                    ids: Vec::new(),
                    scores: Vec::new(),
                    pinned: vec![false; id_spans.len()],
                };
                for span in &id_spans {
                    let id = match rewrite::value_at(body, *span).ok_or(RewriteError::NoList)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    found.ids.push(id.into());
                }
                let score_spans = scores
                    .as_deref()
                    .and_then(tensor_data)
                    .filter(|s| s.len() == id_spans.len());
                found.scores = match &score_spans {
                    Some(spans) => spans
                        .iter()
                        .map(|s| rewrite::value_at(body, *s).and_then(|v| v.as_f64()))
                        .collect(),
                    None => vec![None; id_spans.len()],
                };
                found.lists.push(id_spans);
                if let Some(spans) = score_spans {
                    found.lists.push(spans);
                }
                Ok(found)
            }
        }
    }

    /// Explores one response body. `unit` is the unit header's value (or the request id).
    pub fn explore(
        &self,
        body: &[u8],
        unit: &[u8],
        request_id: &[u8],
        opted_out: bool,
    ) -> Explored {
        let unit_hash = format!("hmac-sha256:{}", hmac_hex(&self.config.salt, unit));
        let bucket = self.bucket(unit);
        let skipped = |outcome: &'static str| Explored {
            body: None,
            bucket,
            outcome,
            log: ExplorationLog {
                route: self.route_name.clone(),
                bucket: bucket.as_str(),
                unit: unit_hash.clone(),
                outcome,
                decision: None,
            },
            propensity: None,
        };
        if opted_out {
            return skipped(outcome::OPT_OUT);
        }
        let found = match self.find(body) {
            Ok(found) => found,
            Err(RewriteError::NotJson) => return skipped(outcome::NOT_JSON),
            Err(RewriteError::NoList) => return skipped(outcome::NO_LIST),
        };
        if found.ids.is_empty() {
            return skipped(outcome::EMPTY);
        }
        let candidates: Vec<Candidate> = found
            .scores
            .iter()
            .zip(&found.pinned)
            .map(|(score, pinned)| Candidate {
                score: *score,
                pinned: *pinned,
            })
            .collect();
        let seed = self.seed(unit, request_id);
        let (strategy, decision) = match bucket {
            Bucket::Holdout => (None, None),
            Bucket::Randomize => (Some(Strategy::RandTopN), None),
            Bucket::Explore => (Some(self.config.strategy), None::<Decision>),
        };
        let decision = decision.or_else(|| {
            strategy.map(|s| {
                strategy::decide_for_request(
                    s,
                    &candidates,
                    self.config.fixed_top,
                    self.config.candidates,
                    seed,
                )
            })
        });
        let outcome = match (&decision, self.config.shadow) {
            (None, _) => outcome::HOLDOUT,
            (Some(_), true) => outcome::SHADOW,
            (Some(_), false) => outcome::EXPLORED,
        };
        let order: Vec<usize> = decision
            .as_ref()
            .map_or_else(|| (0..found.ids.len()).collect(), |d| d.order.clone());
        let window = self.config.candidates.min(found.ids.len());
        let log = ExplorationLog {
            route: self.route_name.clone(),
            bucket: bucket.as_str(),
            unit: unit_hash,
            outcome,
            decision: Some(DecisionLog {
                strategy: strategy.map(Strategy::name),
                params: Params {
                    epsilon: match self.config.strategy {
                        Strategy::EpsilonGreedy { epsilon } => Some(epsilon),
                        _ => None,
                    },
                    temperature: match self.config.strategy {
                        Strategy::Softmax { temperature } => Some(temperature),
                        _ => None,
                    },
                    fixed_top: self.config.fixed_top,
                    candidates: self.config.candidates,
                },
                seed: format!("{seed:#018x}"),
                shadow: self.config.shadow,
                candidates: (0..window)
                    .map(|i| CandidateLog {
                        id: found.ids[i].clone(),
                        score: found.scores[i],
                        model_rank: i + 1,
                        pinned: found.pinned[i],
                    })
                    .collect(),
                shown: order
                    .iter()
                    .enumerate()
                    .map(|(position, &item)| {
                        let slot = decision.as_ref().map(|d| &d.slots[position]);
                        ShownLog {
                            id: found.ids[item].clone(),
                            position: position + 1,
                            model_rank: item + 1,
                            p_conditional: slot.map_or(1.0, |s| s.p_conditional),
                            p_item_position: slot.map_or(Some(1.0), |s| s.p_item_position),
                            p_cascade: slot.map_or(1.0, |s| s.p_cascade),
                        }
                    })
                    .collect(),
                p_joint: decision.as_ref().map_or(1.0, |d| d.p_joint),
            }),
        };
        // The propensity of the first free slot's choice.
        let propensity = decision.as_ref().and_then(|d| {
            d.slots
                .iter()
                .find(|s| s.position >= self.config.fixed_top && !candidates[s.position].pinned)
                .map(|s| s.p_conditional)
        });
        let body = match (outcome, &decision) {
            (outcome::EXPLORED, Some(decision))
                if decision.order.iter().enumerate().any(|(i, &j)| i != j) =>
            {
                let lists: Vec<(Vec<Span>, &[usize])> = found
                    .lists
                    .iter()
                    .map(|spans| (spans.clone(), decision.order.as_slice()))
                    .collect();
                Some(rewrite::reorder(body, &lists))
            }
            _ => None,
        };
        Explored {
            body,
            bucket,
            outcome,
            log,
            propensity,
        }
    }
}

/// The first 8 bytes of the HMAC, big-endian: the same number as the first 16 hex digits of the
/// logged `hmac-sha256:` value.
fn hash64(key: &[u8], message: &[u8]) -> u64 {
    let digest = hmac(key, message);
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

fn unit_interval(key: &[u8], unit: &[u8]) -> f64 {
    (hash64(key, unit) >> 11) as f64 / (1u64 << 53) as f64
}
