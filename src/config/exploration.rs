//! The `exploration` section: routes whose ranked responses are reordered to explore.

use std::sync::Arc;

use http::HeaderName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::units::ByteSize;
use crate::explore::strategy::Strategy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplorationSection {
    /// The route's name in metrics, records and the API.
    pub name: String,
    /// Which requests are exploration requests.
    #[serde(rename = "match")]
    pub match_: ExplorationMatch,
    /// JSON pointer to the ranked array in the response.
    #[serde(default = "default_list")]
    pub list: String,
    /// JSON pointer, inside each element, to the item id.
    #[serde(default = "default_id")]
    pub id: String,
    /// JSON pointer, inside each element, to the model's score (optional).
    #[serde(default)]
    pub score: Option<String>,
    /// JSON pointer, inside each element, to a boolean that pins the element in place.
    #[serde(default)]
    pub pin: Option<String>,
    /// Open Inference responses: the output tensors holding item ids and scores (instead of
    /// `list`/`id`/`score`).
    #[serde(default)]
    pub open_inference: Option<OpenInferenceTensors>,
    /// `epsilon_greedy`, `softmax`, `rand_pair` or `rand_top_n`.
    #[serde(default = "default_strategy")]
    pub strategy: StrategyName,
    /// ε of `epsilon_greedy`.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// τ of `softmax`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Leading positions never moved.
    #[serde(default = "default_fixed_top")]
    pub fixed_top: usize,
    /// Only the first `candidates` items are explored among; the rest keep their positions.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    #[serde(default)]
    pub buckets: BucketsSection,
    /// What the bucket and the seed hash on (HMAC'd before logging).
    #[serde(default)]
    pub unit: UnitSection,
    /// File holding the secret salt of the unit and seed hashes. Unset: a fixed default salt
    /// (every replica agrees, but the hashes are guessable; set one in production).
    #[serde(default)]
    pub salt_file: Option<String>,
    /// Decide and log, but return the model's order.
    #[serde(default)]
    pub shadow: bool,
    /// A request header whose value `off` disables exploration for that request.
    #[serde(default = "default_opt_out")]
    pub opt_out_header: String,
    /// Larger responses pass through unmodified (counted).
    #[serde(default = "default_max_response")]
    pub max_response_bytes: ByteSize,
    /// Items in the catalog, for `driftwatch_recs_catalog_coverage`.
    #[serde(default)]
    pub catalog_size: Option<u64>,
    /// Lists per diversity window.
    #[serde(default = "default_window_lists")]
    pub diversity_window: usize,
    /// Positions the client actually displays; diversity counts exposures in these only.
    /// Unset: every position of the list.
    #[serde(default)]
    pub diversity_positions: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplorationMatch {
    pub path_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenInferenceTensors {
    pub ids: String,
    #[serde(default)]
    pub scores: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    EpsilonGreedy,
    Softmax,
    RandPair,
    RandTopN,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BucketsSection {
    /// Share of units never explored (the control group).
    pub holdout: f64,
    /// Share of units whose candidates are shuffled uniformly (position-bias estimation).
    pub randomize: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UnitSection {
    /// Request header identifying the unit (a user); absent: the request id is the unit.
    pub header: String,
}

impl Default for BucketsSection {
    fn default() -> Self {
        Self {
            holdout: 0.02,
            randomize: 0.005,
        }
    }
}

impl Default for UnitSection {
    fn default() -> Self {
        Self {
            header: "x-user-id".to_owned(),
        }
    }
}

fn default_list() -> String {
    "/items".to_owned()
}
fn default_id() -> String {
    "/id".to_owned()
}
fn default_strategy() -> StrategyName {
    StrategyName::EpsilonGreedy
}
fn default_epsilon() -> f64 {
    0.05
}
fn default_temperature() -> f64 {
    1.0
}
fn default_fixed_top() -> usize {
    1
}
fn default_candidates() -> usize {
    20
}
fn default_opt_out() -> String {
    "x-driftwatch-explore".to_owned()
}
fn default_max_response() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_window_lists() -> usize {
    1000
}

/// The salt used when no `salt_file` is configured.
pub const DEFAULT_SALT: &[u8] = b"driftwatch-exploration";

/// A validated exploration route.
#[derive(Debug, Clone)]
pub struct ExplorationRoute {
    pub name: String,
    pub path_prefix: String,
    pub target: Target,
    pub strategy: Strategy,
    pub fixed_top: usize,
    pub candidates: usize,
    pub holdout: f64,
    pub randomize: f64,
    pub unit_header: HeaderName,
    pub salt: Arc<[u8]>,
    pub shadow: bool,
    pub opt_out_header: HeaderName,
    pub max_response_bytes: usize,
    pub catalog_size: Option<u64>,
    pub diversity_window: usize,
    pub diversity_positions: Option<usize>,
}

/// Where the ranked list is.
#[derive(Debug, Clone)]
pub enum Target {
    List {
        list: String,
        id: String,
        score: Option<String>,
        pin: Option<String>,
    },
    OpenInference {
        ids: String,
        scores: Option<String>,
    },
}

pub fn validate_exploration(
    sections: &[ExplorationSection],
) -> Result<Vec<ExplorationRoute>, ConfigError> {
    let mut routes: Vec<ExplorationRoute> = Vec::new();
    for (index, section) in sections.iter().enumerate() {
        let key = |field: &str| format!("exploration[{index}].{field}");
        if section.name.is_empty() || routes.iter().any(|r| r.name == section.name) {
            return Err(ConfigError::key(
                key("name"),
                "expected a unique, non-empty name",
            ));
        }
        if !section.match_.path_prefix.starts_with('/') {
            return Err(ConfigError::key(
                key("match.path_prefix"),
                "expected a path starting with /",
            ));
        }
        let pointer = |field: &str, value: &str| {
            if value.is_empty() || value.starts_with('/') {
                Ok(value.to_owned())
            } else {
                Err(ConfigError::key(
                    key(field),
                    format!("expected a JSON pointer starting with /, got {value:?}"),
                ))
            }
        };
        let target = match &section.open_inference {
            Some(tensors) => Target::OpenInference {
                ids: tensors.ids.clone(),
                scores: tensors.scores.clone(),
            },
            None => Target::List {
                list: pointer("list", &section.list)?,
                id: pointer("id", &section.id)?,
                score: section
                    .score
                    .as_deref()
                    .map(|s| pointer("score", s))
                    .transpose()?,
                pin: section
                    .pin
                    .as_deref()
                    .map(|s| pointer("pin", s))
                    .transpose()?,
            },
        };
        if !(0.0..=1.0).contains(&section.epsilon) {
            return Err(ConfigError::key(
                key("epsilon"),
                "expected a number from 0 to 1",
            ));
        }
        if !(section.temperature.is_finite() && section.temperature > 0.0) {
            return Err(ConfigError::key(
                key("temperature"),
                "expected a positive number",
            ));
        }
        if section.candidates < 2 || section.candidates > 1000 {
            return Err(ConfigError::key(key("candidates"), "expected 2 to 1000"));
        }
        let (holdout, randomize) = (section.buckets.holdout, section.buckets.randomize);
        if !(0.0..=1.0).contains(&holdout)
            || !(0.0..=1.0).contains(&randomize)
            || holdout + randomize > 1.0
        {
            return Err(ConfigError::key(
                key("buckets"),
                "expected shares from 0 to 1 that add up to at most 1",
            ));
        }
        let header = |field: &str, name: &str| {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::key(key(field), format!("{name:?} is not a valid header name"))
            })
        };
        let salt: Arc<[u8]> = match &section.salt_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    ConfigError::key(key("salt_file"), format!("cannot read {path}: {e}"))
                })?;
                let trimmed = bytes.trim_ascii().to_vec();
                if trimmed.is_empty() {
                    return Err(ConfigError::key(
                        key("salt_file"),
                        format!("{path} is empty"),
                    ));
                }
                trimmed.into()
            }
            None => DEFAULT_SALT.into(),
        };
        if section.diversity_window == 0 {
            return Err(ConfigError::key(
                key("diversity_window"),
                "expected a positive number of lists",
            ));
        }
        routes.push(ExplorationRoute {
            name: section.name.clone(),
            path_prefix: section.match_.path_prefix.clone(),
            target,
            strategy: match section.strategy {
                StrategyName::EpsilonGreedy => Strategy::EpsilonGreedy {
                    epsilon: section.epsilon,
                },
                StrategyName::Softmax => Strategy::Softmax {
                    temperature: section.temperature,
                },
                StrategyName::RandPair => Strategy::RandPair,
                StrategyName::RandTopN => Strategy::RandTopN,
            },
            fixed_top: section.fixed_top,
            candidates: section.candidates,
            holdout,
            randomize,
            unit_header: header("unit.header", &section.unit.header)?,
            salt,
            shadow: section.shadow,
            opt_out_header: header("opt_out_header", &section.opt_out_header)?,
            max_response_bytes: usize::try_from(section.max_response_bytes.0).unwrap_or(usize::MAX),
            catalog_size: section.catalog_size,
            diversity_window: section.diversity_window,
            diversity_positions: section.diversity_positions.filter(|p| *p > 0),
        });
    }
    Ok(routes)
}
