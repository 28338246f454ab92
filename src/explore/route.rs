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
                let tensor = |wanted: &str| -> Option<Span> {
                    tensors.iter().copied().find(|t| {
                        rewrite::find(body, *t, &["name".to_owned()])
                            .and_then(|s| rewrite::value_at(body, s))
                            .is_some_and(|v| v == Value::String(wanted.to_owned()))
                    })
                };
                let id_tensor = tensor(ids).ok_or(RewriteError::NoList)?;
                let id_spans = single_list(body, id_tensor).ok_or(RewriteError::NoList)?;
                // A scores tensor that is there must hold the same one list; one that is absent
                // (or is the ids tensor itself) leaves the ids to be explored without scores.
                let score_tensor = scores
                    .as_deref()
                    .and_then(tensor)
                    .filter(|t| *t != id_tensor);
                let score_spans = match score_tensor {
                    Some(t) => Some(
                        single_list(body, t)
                            .filter(|s| s.len() == id_spans.len())
                            .ok_or(RewriteError::NoList)?,
                    ),
                    None => None,
                };
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
        let strategy_used = strategy.unwrap_or(self.config.strategy);
        let propensity = decision.as_ref().and_then(|d| {
            d.slots
                .iter()
                .find(|s| {
                    s.position >= strategy::fixed_slots(strategy_used, self.config.fixed_top)
                        && !candidates[s.position].pinned
                })
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

/// The element spans of an Open Inference output tensor holding one list: `shape` `[N]` with flat
/// `data`, or `[1, N]` with flat or `[[...]]` `data`, and exactly N scalar elements. `None` for
/// anything else — a batch (`[B, N]`, B > 1), more dimensions, no or a malformed `shape`, data
/// that does not fill the shape — so a batch's rows are never mixed or taken for items.
fn single_list(body: &[u8], tensor: Span) -> Option<Vec<Span>> {
    let shape = rewrite::find(body, tensor, &["shape".to_owned()])
        .and_then(|s| rewrite::value_at(body, s))?;
    let dims = shape
        .as_array()?
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<u64>>>()?;
    let (n, may_nest) = match dims.as_slice() {
        [n] => (*n, false),
        [1, n] => (*n, true),
        _ => return None,
    };
    let data = rewrite::find(body, tensor, &["data".to_owned()])?;
    let mut elements = rewrite::elements(body, data)?;
    // `[[...]]` for shape [1, N]: the one row's elements, rewritten in place.
    if may_nest && elements.len() == 1 && body[elements[0].start] == b'[' {
        elements = rewrite::elements(body, elements[0])?;
    }
    let scalars = elements
        .iter()
        .all(|e| !matches!(body[e.start], b'[' | b'{'));
    (scalars && u64::try_from(elements.len()).ok()? == n).then_some(elements)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::exploration::DEFAULT_SALT;

    fn oip_route(scores: Option<&str>) -> Arc<Route> {
        Route::new(ExplorationRoute {
            name: "ranker".into(),
            path_prefix: "/v2/models/ranker/infer".into(),
            target: Target::OpenInference {
                ids: "item_id".into(),
                scores: scores.map(str::to_owned),
            },
            strategy: Strategy::RandTopN,
            fixed_top: 0,
            candidates: 8,
            holdout: 0.0,
            randomize: 0.0,
            unit_header: http::HeaderName::from_static("x-user-id"),
            salt: DEFAULT_SALT.into(),
            shadow: false,
            opt_out_header: http::HeaderName::from_static("x-driftwatch-explore"),
            max_response_bytes: 1 << 20,
            catalog_size: None,
            diversity_window: 10,
            diversity_positions: None,
        })
    }

    fn explore_for_users(route: &Route, body: &str) -> Vec<Explored> {
        (0..20)
            .map(|user| route.explore(body.as_bytes(), format!("u{user}").as_bytes(), b"r", false))
            .collect()
    }

    /// The ids and scores of a one-list response, flattened.
    fn ids_and_scores(body: &[u8]) -> Vec<(String, f64)> {
        let value: Value = serde_json::from_slice(body).unwrap();
        let flat = |tensor: &Value| -> Vec<Value> {
            let data = tensor["data"].as_array().unwrap();
            match data.as_slice() {
                [Value::Array(row)] => row.clone(),
                _ => data.clone(),
            }
        };
        let ids = flat(&value["outputs"][0]);
        let scores = flat(&value["outputs"][1]);
        ids.iter()
            .zip(&scores)
            .map(|(i, s)| (i.as_str().unwrap().to_owned(), s.as_f64().unwrap()))
            .collect()
    }

    #[test]
    fn open_inference_single_lists_are_rewritten() {
        let route = oip_route(Some("score"));
        for (shape, ids, scores) in [
            ("[5]", r#"["a","b","c","d","e"]"#, "[0.9,0.8,0.7,0.6,0.5]"),
            ("[1,5]", r#"["a","b","c","d","e"]"#, "[0.9,0.8,0.7,0.6,0.5]"),
            (
                "[1, 5]",
                r#"[ ["a","b","c","d","e"] ]"#,
                "[[0.9,0.8,0.7,0.6,0.5]]",
            ),
        ] {
            let body = format!(
                r#"{{"model_name":"ranker","outputs":[{{"name":"item_id","datatype":"BYTES","shape":{shape},"data":{ids}}},{{"name":"score","datatype":"FP32","shape":{shape},"data":{scores}}},{{"name":"extra","shape":[2],"data":[1.10,1e-7]}}]}}"#
            );
            let original = ids_and_scores(body.as_bytes());
            let explored = explore_for_users(&route, &body);
            let mut rewritten = 0;
            for e in &explored {
                assert_eq!(e.outcome, outcome::EXPLORED, "{shape}");
                let Some(new) = &e.body else { continue };
                rewritten += 1;
                assert_eq!(new.len(), body.len(), "{shape}");
                let mut pairs = ids_and_scores(new);
                assert_ne!(pairs, original, "{shape}");
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                assert_eq!(pairs, original, "{shape}: scores move with their ids");
                // Outside the two lists, every byte stays (brackets of `[[...]]` included).
                let text = String::from_utf8(new.clone()).unwrap();
                let list_start = body.find(r#""data":"#).unwrap() + 7;
                assert_eq!(text[..list_start], body[..list_start], "{shape}");
                assert!(
                    text.ends_with(r#"{"name":"extra","shape":[2],"data":[1.10,1e-7]}]}"#),
                    "{shape}"
                );
                let strip = |s: &str| s.replace(|c: char| c.is_ascii_alphanumeric(), "");
                assert_eq!(strip(&text), strip(&body), "{shape}: the same structure");
            }
            assert!(rewritten > 10, "{shape}: {rewritten} of 20 reordered");
        }
    }

    #[test]
    fn open_inference_without_a_scores_tensor_explores_the_ids() {
        let route = oip_route(Some("score"));
        let body = r#"{"outputs":[{"name":"item_id","shape":[1,4],"data":[["a","b","c","d"]]}]}"#;
        let explored = explore_for_users(&route, body);
        assert!(explored.iter().all(|e| e.outcome == outcome::EXPLORED));
        assert!(explored.iter().any(|e| e.body.is_some()));
        // Named twice: one list, reordered once.
        let route = Route::new(ExplorationRoute {
            target: Target::OpenInference {
                ids: "item_id".into(),
                scores: Some("item_id".into()),
            },
            ..oip_route(None).config.clone()
        });
        for e in explore_for_users(&route, body) {
            assert_eq!(e.outcome, outcome::EXPLORED);
            if let Some(new) = e.body {
                let value: Value = serde_json::from_slice(&new).unwrap();
                let mut ids: Vec<String> =
                    serde_json::from_value(value["outputs"][0]["data"][0].clone()).unwrap();
                ids.sort();
                assert_eq!(ids, ["a", "b", "c", "d"]);
            }
        }
    }

    #[test]
    fn open_inference_batches_and_other_shapes_pass_through() {
        let route = oip_route(Some("score"));
        let tensors = |ids: &str, scores: &str| {
            format!(
                r#"{{"outputs":[{{"name":"item_id","datatype":"BYTES",{ids}}},{{"name":"score","datatype":"FP32",{scores}}}]}}"#
            )
        };
        let ids5 = r#""shape":[1,5],"data":["a","b","c","d","e"]"#;
        let scores5 = r#""shape":[1,5],"data":[0.9,0.8,0.7,0.6,0.5]"#;
        for (case, body) in [
            (
                "[2,3] flat",
                tensors(
                    r#""shape":[2,3],"data":["a","b","c","d","e","f"]"#,
                    r#""shape":[2,3],"data":[0.9,0.8,0.7,0.6,0.5,0.4]"#,
                ),
            ),
            (
                "[2,3] nested",
                tensors(
                    r#""shape":[2,3],"data":[["a","b","c"],["d","e","f"]]"#,
                    r#""shape":[2,3],"data":[[0.9,0.8,0.7],[0.6,0.5,0.4]]"#,
                ),
            ),
            (
                "[2,3] nested, no scores",
                tensors(
                    r#""shape":[2,3],"data":[["a","b","c"],["d","e","f"]]"#,
                    r#""shape":[1],"data":[0]"#,
                )
                .replace(r#""score""#, r#""other""#),
            ),
            (
                "[5,1]",
                tensors(
                    r#""shape":[5,1],"data":["a","b","c","d","e"]"#,
                    r#""shape":[5,1],"data":[0.9,0.8,0.7,0.6,0.5]"#,
                ),
            ),
            (
                "[1,1,5]",
                tensors(
                    r#""shape":[1,1,5],"data":[["a","b","c","d","e"]]"#,
                    r#""shape":[1,1,5],"data":[[0.9,0.8,0.7,0.6,0.5]]"#,
                ),
            ),
            (
                "ids without shape",
                tensors(r#""data":["a","b","c","d","e"]"#, scores5),
            ),
            (
                "ids shape not integers",
                tensors(r#""shape":[1,5.0],"data":["a","b","c","d","e"]"#, scores5),
            ),
            (
                "scores without shape",
                tensors(ids5, r#""data":[0.9,0.8,0.7,0.6,0.5]"#),
            ),
            (
                "scores batched",
                tensors(
                    ids5,
                    r#""shape":[2,5],"data":[0.9,0.8,0.7,0.6,0.5,0.9,0.8,0.7,0.6,0.5]"#,
                ),
            ),
            (
                "scores of another length",
                tensors(ids5, r#""shape":[4],"data":[0.9,0.8,0.7,0.6]"#),
            ),
            (
                "data short of the shape",
                tensors(r#""shape":[1,6],"data":["a","b","c","d","e"]"#, scores5),
            ),
            (
                "[N] with nested data",
                tensors(r#""shape":[1],"data":[["a","b","c","d","e"]]"#, scores5),
            ),
        ] {
            for e in explore_for_users(&route, &body) {
                assert_eq!(e.outcome, outcome::NO_LIST, "{case}");
                assert!(e.body.is_none(), "{case}");
                assert!(e.log.decision.is_none(), "{case}");
                assert!(e.propensity.is_none(), "{case}");
            }
        }
    }
}
