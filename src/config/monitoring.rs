//! The `models` and `monitoring` sections: which models are monitored and how their payloads
//! are read, and how drift, validation and outliers are judged. File shapes first, then the
//! runtime types they validate into.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::units::HumanDuration;

/// One model server route, when auto-detection is not enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The model name used in metrics, records and the API.
    pub name: String,
    /// Which requests belong to this model.
    #[serde(rename = "match", default)]
    pub match_: MatchSection,
    /// How payloads are read: `auto`, `open-inference`, `kserve-v1`, `tf-serving`, `mlflow`,
    /// `openai` or `json` (columns from JSON pointers).
    #[serde(default)]
    pub protocol: ProtocolName,
    #[serde(default)]
    pub inputs: InputsSection,
    #[serde(default)]
    pub outputs: OutputsSection,
    /// Reference profile file (`driftwatch profile` writes one). Unset: learned from live traffic.
    #[serde(default)]
    pub reference: Option<String>,
    /// Without a reference file, freeze the first `samples` live rows as the reference.
    #[serde(default)]
    pub learn_reference: LearnSection,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MatchSection {
    /// Requests whose path starts with this prefix. Unset: the model is matched by name in
    /// Open Inference / KServe v1 paths (`/v2/models/{name}/...`, `/v1/models/{name}:predict`).
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolName {
    #[default]
    Auto,
    OpenInference,
    KserveV1,
    TfServing,
    Mlflow,
    Openai,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InputsSection {
    /// Names for positional input columns (a `[N, F]` tensor or rows given as arrays).
    pub names: Vec<String>,
    /// Input columns treated as categorical.
    pub categorical: Vec<String>,
    /// Protocol `json`: column name → JSON pointer into the request body. A pointer to an array
    /// gives one row per element.
    pub pointers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OutputsSection {
    /// Names for positional output columns.
    pub names: Vec<String>,
    /// `classification`, `regression`, `ranking` or `generation`; decides how outputs and labels
    /// are compared when labels arrive.
    pub task: Option<TaskName>,
    /// Protocol `json`: column name → JSON pointer into the response body.
    pub pointers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskName {
    Classification,
    Regression,
    Ranking,
    Generation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LearnSection {
    /// Rows frozen as the reference when no reference file is given.
    pub samples: usize,
}

impl Default for LearnSection {
    fn default() -> Self {
        Self { samples: 5000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSection {
    /// Whether payloads are parsed and monitored at all.
    pub enabled: bool,
    /// `{samples: N}`: tumbling windows of N rows; `{duration: 1h, slots: 12}`: a sliding window
    /// over the last `duration`, advanced slot by slot.
    pub window: WindowSection,
    /// A column is judged drifted only when its window holds at least this many rows.
    pub min_samples: usize,
    pub numeric: NumericSection,
    pub categorical: CategoricalSection,
    /// The dataset is drifted when at least this share of input columns is drifted.
    pub dataset_drift_share: f64,
    pub outliers: OutliersSection,
    /// Online change detectors on per-row signals.
    pub change_detectors: Vec<ChangeDetectorSection>,
    /// Export per-bin counters and reference fractions, so PromQL can compute drift across all
    /// replicas.
    pub export_bins: bool,
    /// Most columns monitored per model (inputs and outputs); further columns are ignored.
    pub max_columns: usize,
    /// Most models monitored; further model names are counted under `other`.
    pub max_models: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSection {
    /// Tumbling window size in rows.
    #[serde(default)]
    pub samples: Option<usize>,
    /// Sliding window length.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    /// Slots of the sliding window.
    #[serde(default)]
    pub slots: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NumericSection {
    /// `psi`, `js`, `ks_d`, `ks_p` or `wasserstein`.
    pub statistic: StatisticName,
    /// The statistic's alarm threshold (for `ks_p`: drifted below it).
    pub threshold: f64,
    /// Reference quantile bins.
    pub bins: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CategoricalSection {
    /// `psi`, `js` or `chi2_p`.
    pub statistic: StatisticName,
    /// The statistic's alarm threshold (for `chi2_p`: drifted below it).
    pub threshold: f64,
    /// Reference categories kept as bins; the rest fall in `__other__`.
    pub top_k: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatisticName {
    Psi,
    Js,
    KsD,
    KsP,
    Wasserstein,
    Chi2P,
}

impl StatisticName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Psi => "psi",
            Self::Js => "js",
            Self::KsD => "ks_d",
            Self::KsP => "ks_p",
            Self::Wasserstein => "wasserstein",
            Self::Chi2P => "chi2_p",
        }
    }

    /// p-values alarm when they fall below the threshold; distances when they rise above it.
    pub fn is_p_value(self) -> bool {
        matches!(self, Self::KsP | Self::Chi2P)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OutliersSection {
    /// A row whose modified z-score exceeds this is an outlier.
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeDetectorSection {
    /// `prediction_mean`, `latency`, `error_rate`, or `column:<name>`.
    pub signal: String,
    /// `page_hinkley`, `adwin` or `ddm`.
    pub detector: DetectorName,
    /// Restrict to one model; unset: every model.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DetectorName {
    PageHinkley,
    Adwin,
    Ddm,
}

impl Default for MonitoringSection {
    fn default() -> Self {
        Self {
            enabled: true,
            window: WindowSection {
                samples: Some(5000),
                duration: None,
                slots: None,
            },
            min_samples: 500,
            numeric: NumericSection::default(),
            categorical: CategoricalSection::default(),
            dataset_drift_share: 0.5,
            outliers: OutliersSection { threshold: 3.5 },
            change_detectors: vec![ChangeDetectorSection {
                signal: "prediction_mean".to_owned(),
                detector: DetectorName::PageHinkley,
                model: None,
            }],
            export_bins: true,
            max_columns: 64,
            max_models: 32,
        }
    }
}

impl Default for NumericSection {
    fn default() -> Self {
        Self {
            statistic: StatisticName::Psi,
            threshold: 0.2,
            bins: 10,
        }
    }
}

impl Default for CategoricalSection {
    fn default() -> Self {
        Self {
            statistic: StatisticName::Psi,
            threshold: 0.2,
            top_k: 50,
        }
    }
}

impl Default for OutliersSection {
    fn default() -> Self {
        Self { threshold: 3.5 }
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime types.

/// How one model's payloads are read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    pub path_prefix: Option<String>,
    pub protocol: ProtocolName,
    pub input_names: Vec<String>,
    pub input_categorical: Vec<String>,
    /// `(column, pointer)` in column order.
    pub input_pointers: Vec<(String, String)>,
    pub output_names: Vec<String>,
    pub output_pointers: Vec<(String, String)>,
    pub task: Option<TaskName>,
    pub reference: Option<PathBuf>,
    pub learn_samples: usize,
}

impl ModelSpec {
    /// The spec of a model found by auto-detection, with every default.
    pub fn auto(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            path_prefix: None,
            protocol: ProtocolName::Auto,
            input_names: Vec::new(),
            input_categorical: Vec::new(),
            input_pointers: Vec::new(),
            output_names: Vec::new(),
            output_pointers: Vec::new(),
            task: None,
            reference: None,
            learn_samples: LearnSection::default().samples,
        }
    }
}

/// How monitoring judges what it sees.
#[derive(Debug, Clone)]
pub struct MonitoringConfig {
    pub enabled: bool,
    pub window: WindowConfig,
    pub min_samples: usize,
    pub numeric_statistic: StatisticName,
    pub numeric_threshold: f64,
    pub bins: usize,
    pub categorical_statistic: StatisticName,
    pub categorical_threshold: f64,
    pub top_k: usize,
    pub dataset_drift_share: f64,
    pub outlier_threshold: f64,
    pub change_detectors: Vec<ChangeDetectorSection>,
    pub export_bins: bool,
    pub max_columns: usize,
    pub max_models: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowConfig {
    Tumbling {
        rows: usize,
    },
    Sliding {
        duration: std::time::Duration,
        slots: usize,
    },
}

pub fn validate_models(models: &[ModelSection]) -> Result<Vec<ModelSpec>, ConfigError> {
    let mut specs: Vec<ModelSpec> = Vec::new();
    for (index, model) in models.iter().enumerate() {
        let key = |field: &str| format!("models[{index}].{field}");
        if model.name.is_empty() || model.name.len() > 128 {
            return Err(ConfigError::key(
                key("name"),
                "expected a name of 1 to 128 characters",
            ));
        }
        if specs.iter().any(|s| s.name == model.name) {
            return Err(ConfigError::key(
                key("name"),
                format!("model {:?} is configured twice", model.name),
            ));
        }
        if let Some(prefix) = &model.match_.path_prefix
            && !prefix.starts_with('/')
        {
            return Err(ConfigError::key(
                key("match.path_prefix"),
                format!("expected a path starting with /, got {prefix:?}"),
            ));
        }
        let pointers = |field: &str,
                        map: &BTreeMap<String, String>|
         -> Result<Vec<(String, String)>, ConfigError> {
            map.iter()
                .map(|(column, pointer)| {
                    if pointer.is_empty() || pointer.starts_with('/') {
                        Ok((column.clone(), pointer.clone()))
                    } else {
                        Err(ConfigError::key(
                            key(&format!("{field}.{column}")),
                            format!("expected a JSON pointer starting with /, got {pointer:?}"),
                        ))
                    }
                })
                .collect()
        };
        let input_pointers = pointers("inputs.pointers", &model.inputs.pointers)?;
        let output_pointers = pointers("outputs.pointers", &model.outputs.pointers)?;
        if model.protocol == ProtocolName::Json && input_pointers.is_empty() {
            return Err(ConfigError::key(
                key("inputs.pointers"),
                "protocol json needs at least one input pointer",
            ));
        }
        if model.learn_reference.samples == 0 && model.reference.is_none() {
            return Err(ConfigError::key(
                key("learn_reference.samples"),
                "expected a positive number of rows (or a reference file)",
            ));
        }
        specs.push(ModelSpec {
            name: model.name.clone(),
            path_prefix: model.match_.path_prefix.clone(),
            protocol: model.protocol,
            input_names: model.inputs.names.clone(),
            input_categorical: model.inputs.categorical.clone(),
            input_pointers,
            output_names: model.outputs.names.clone(),
            output_pointers,
            task: model.outputs.task,
            reference: model.reference.as_ref().map(PathBuf::from),
            learn_samples: model.learn_reference.samples,
        });
    }
    Ok(specs)
}

pub fn validate_monitoring(section: &MonitoringSection) -> Result<MonitoringConfig, ConfigError> {
    let window = match (
        &section.window.samples,
        &section.window.duration,
        &section.window.slots,
    ) {
        (Some(rows), None, None) if *rows > 0 => WindowConfig::Tumbling { rows: *rows },
        (None, Some(duration), slots) if !duration.0.is_zero() => {
            let slots = slots.unwrap_or(12);
            if slots == 0 || slots > 1440 {
                return Err(ConfigError::key(
                    "monitoring.window.slots",
                    "expected 1 to 1440 slots",
                ));
            }
            WindowConfig::Sliding {
                duration: duration.0,
                slots,
            }
        }
        _ => {
            return Err(ConfigError::key(
                "monitoring.window",
                "expected either {samples: N} with N > 0, or {duration: D, slots: S} with D > 0",
            ));
        }
    };
    let numeric = section.numeric.statistic;
    if numeric == StatisticName::Chi2P {
        return Err(ConfigError::key(
            "monitoring.numeric.statistic",
            "expected psi, js, ks_d, ks_p or wasserstein (chi2_p is for categorical columns)",
        ));
    }
    let categorical = section.categorical.statistic;
    if !matches!(
        categorical,
        StatisticName::Psi | StatisticName::Js | StatisticName::Chi2P
    ) {
        return Err(ConfigError::key(
            "monitoring.categorical.statistic",
            "expected psi, js or chi2_p",
        ));
    }
    if !(2..=100).contains(&section.numeric.bins) {
        return Err(ConfigError::key(
            "monitoring.numeric.bins",
            "expected 2 to 100 bins",
        ));
    }
    if !(1..=1000).contains(&section.categorical.top_k) {
        return Err(ConfigError::key(
            "monitoring.categorical.top_k",
            "expected 1 to 1000",
        ));
    }
    if !(0.0..=1.0).contains(&section.dataset_drift_share) {
        return Err(ConfigError::key(
            "monitoring.dataset_drift_share",
            "expected a share from 0 to 1",
        ));
    }
    for (key, threshold) in [
        ("monitoring.numeric.threshold", section.numeric.threshold),
        (
            "monitoring.categorical.threshold",
            section.categorical.threshold,
        ),
        ("monitoring.outliers.threshold", section.outliers.threshold),
    ] {
        if !threshold.is_finite() || threshold <= 0.0 {
            return Err(ConfigError::key(key, "expected a positive number"));
        }
    }
    for (index, detector) in section.change_detectors.iter().enumerate() {
        let valid = matches!(
            detector.signal.as_str(),
            "prediction_mean" | "latency" | "error_rate"
        ) || detector
            .signal
            .strip_prefix("column:")
            .is_some_and(|c| !c.is_empty());
        if !valid {
            return Err(ConfigError::key(
                format!("monitoring.change_detectors[{index}].signal"),
                format!(
                    "expected prediction_mean, latency, error_rate or column:<name>, got {:?}",
                    detector.signal
                ),
            ));
        }
    }
    if section.max_columns == 0 || section.max_models == 0 {
        return Err(ConfigError::key(
            "monitoring.max_columns",
            "expected positive limits",
        ));
    }
    Ok(MonitoringConfig {
        enabled: section.enabled,
        window,
        min_samples: section.min_samples,
        numeric_statistic: numeric,
        numeric_threshold: section.numeric.threshold,
        bins: section.numeric.bins,
        categorical_statistic: categorical,
        categorical_threshold: section.categorical.threshold,
        top_k: section.categorical.top_k,
        dataset_drift_share: section.dataset_drift_share,
        outlier_threshold: section.outliers.threshold,
        change_detectors: section.change_detectors.clone(),
        export_bins: section.export_bins,
        max_columns: section.max_columns,
        max_models: section.max_models,
    })
}
