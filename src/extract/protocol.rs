//! Which protocol a payload speaks: configured, or detected from the path and then the body's
//! shape; and the model a path names.

use std::fmt;

use serde_json::Value;

use crate::config::monitoring::ProtocolName;

/// A payload protocol that extraction can read (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Open Inference Protocol (KServe v2, Triton, MLServer).
    OpenInference,
    /// KServe v1 (the TF Serving REST format under another name).
    KserveV1,
    /// TF Serving REST; read exactly like [`Protocol::KserveV1`].
    TfServing,
    Mlflow,
    Openai,
    /// Columns from configured JSON pointers.
    Json,
}

impl Protocol {
    pub const ALL: [Self; 6] = [
        Self::OpenInference,
        Self::KserveV1,
        Self::TfServing,
        Self::Mlflow,
        Self::Openai,
        Self::Json,
    ];

    /// The configuration spelling (`models[].protocol`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenInference => "open-inference",
            Self::KserveV1 => "kserve-v1",
            Self::TfServing => "tf-serving",
            Self::Mlflow => "mlflow",
            Self::Openai => "openai",
            Self::Json => "json",
        }
    }

    /// The configured protocol; `None` for `auto`.
    pub fn from_name(name: ProtocolName) -> Option<Self> {
        match name {
            ProtocolName::Auto => None,
            ProtocolName::OpenInference => Some(Self::OpenInference),
            ProtocolName::KserveV1 => Some(Self::KserveV1),
            ProtocolName::TfServing => Some(Self::TfServing),
            ProtocolName::Mlflow => Some(Self::Mlflow),
            ProtocolName::Openai => Some(Self::Openai),
            ProtocolName::Json => Some(Self::Json),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Auto-detection: by path first, then by the request body's shape. `json` is never detected
/// here: the caller falls back to it when the model has pointers.
///
/// Paths (a query string is ignored; a prefix before the pattern is allowed, for gateways):
/// `…/v2/models/{name}[/versions/{v}]/infer` → open-inference;
/// `…/v1/models/{name}[/versions/{v}]:predict` → kserve-v1; `…/invocations` → mlflow;
/// `…/chat/completions`, `…/completions`, `…/embeddings` → openai.
///
/// Bodies, in order: `inputs` as an array of tensors (objects with `name` and `datatype`) →
/// open-inference; `instances` → kserve-v1; `dataframe_split` or `dataframe_records` → mlflow;
/// `messages`, `prompt` or `input` beside a string `model` → openai; any other `inputs` →
/// kserve-v1 (columnar or rows; MLflow's `inputs` reads the same).
pub fn detect(path: &str, request: &Value) -> Option<Protocol> {
    detect_by_path(path).or_else(|| detect_by_body(request))
}

fn detect_by_path(path: &str) -> Option<Protocol> {
    let path = without_query(path);
    if open_inference_model(path).is_some() {
        Some(Protocol::OpenInference)
    } else if kserve_v1_model(path).is_some() {
        Some(Protocol::KserveV1)
    } else if path.ends_with("/invocations") {
        Some(Protocol::Mlflow)
    } else if ["/chat/completions", "/completions", "/embeddings"]
        .iter()
        .any(|suffix| path.ends_with(suffix))
    {
        Some(Protocol::Openai)
    } else {
        None
    }
}

fn detect_by_body(request: &Value) -> Option<Protocol> {
    let body = request.as_object()?;
    let is_tensor = |tensor: &Value| {
        tensor
            .as_object()
            .is_some_and(|tensor| tensor.contains_key("name") && tensor.contains_key("datatype"))
    };
    match body.get("inputs") {
        Some(Value::Array(tensors)) if !tensors.is_empty() && tensors.iter().all(is_tensor) => {
            return Some(Protocol::OpenInference);
        }
        _ => {}
    }
    if body.contains_key("instances") {
        return Some(Protocol::KserveV1);
    }
    if body.contains_key("dataframe_split") || body.contains_key("dataframe_records") {
        return Some(Protocol::Mlflow);
    }
    let names_model = body.get("model").is_some_and(Value::is_string);
    if names_model
        && ["messages", "prompt", "input"]
            .iter()
            .any(|key| body.contains_key(*key))
    {
        return Some(Protocol::Openai);
    }
    if body.contains_key("inputs") {
        return Some(Protocol::KserveV1);
    }
    None
}

/// The model name and version a path names: Open Inference
/// `/v2/models/{name}[/versions/{v}]/infer`, KServe v1 / TF Serving
/// `/v1/models/{name}[/versions/{v}|/labels/{label}]:predict` (a TF Serving label stands for the
/// version). A query string is ignored.
pub fn model_from_path(path: &str) -> Option<(String, Option<String>)> {
    let path = without_query(path);
    let (name, version) = open_inference_model(path).or_else(|| kserve_v1_model(path))?;
    Some((name.to_owned(), version.map(str::to_owned)))
}

fn without_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// `{name}` or `{name}/versions/{v}` (also `/labels/{l}` when `labels` is allowed).
fn name_and_version(rest: &str, labels: bool) -> Option<(&str, Option<&str>)> {
    let mut segments = rest.split('/');
    let name = segments.next().filter(|name| !name.is_empty())?;
    match (segments.next(), segments.next(), segments.next()) {
        (None, _, _) => Some((name, None)),
        (Some("versions"), Some(version), None) if !version.is_empty() => {
            Some((name, Some(version)))
        }
        (Some("labels"), Some(label), None) if labels && !label.is_empty() => {
            Some((name, Some(label)))
        }
        _ => None,
    }
}

fn open_inference_model(path: &str) -> Option<(&str, Option<&str>)> {
    let (_, rest) = path.split_once("/v2/models/")?;
    name_and_version(rest.strip_suffix("/infer")?, false)
}

fn kserve_v1_model(path: &str) -> Option<(&str, Option<&str>)> {
    let (_, rest) = path.split_once("/v1/models/")?;
    name_and_version(rest.strip_suffix(":predict")?, true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model(path: &str) -> Option<(String, Option<String>)> {
        model_from_path(path)
    }

    #[test]
    fn paths_name_models() {
        assert_eq!(model("/v2/models/iris/infer"), Some(("iris".into(), None)));
        assert_eq!(
            model("/v2/models/iris/versions/3/infer?x=1"),
            Some(("iris".into(), Some("3".into())))
        );
        assert_eq!(
            model("/v1/models/flowers:predict"),
            Some(("flowers".into(), None))
        );
        assert_eq!(
            model("/v1/models/flowers/versions/7:predict"),
            Some(("flowers".into(), Some("7".into())))
        );
        assert_eq!(
            model("/v1/models/flowers/labels/stable:predict"),
            Some(("flowers".into(), Some("stable".into())))
        );
        assert_eq!(
            model("/gateway/v2/models/m/infer"),
            Some(("m".into(), None))
        );
        for path in [
            "/v2/models//infer",
            "/v2/models/iris/ready",
            "/v2/models/iris/versions/infer",
            "/v2/models/iris/labels/x/infer",
            "/v1/models/flowers",
            "/v1/models/:predict",
            "/v1/models/a/b:predict",
            "/invocations",
            "",
        ] {
            assert_eq!(model(path), None, "{path}");
        }
    }

    #[test]
    fn detects_by_path_then_body() {
        let empty = json!({});
        assert_eq!(
            detect("/v2/models/m/infer", &empty),
            Some(Protocol::OpenInference)
        );
        assert_eq!(
            detect("/v1/models/m:predict", &empty),
            Some(Protocol::KserveV1)
        );
        assert_eq!(
            detect("/invocations", &json!({"instances": []})),
            Some(Protocol::Mlflow)
        );
        assert_eq!(
            detect("/v1/chat/completions", &empty),
            Some(Protocol::Openai)
        );
        assert_eq!(detect("/v1/embeddings", &empty), Some(Protocol::Openai));
        let tensors =
            json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]});
        assert_eq!(detect("/predict", &tensors), Some(Protocol::OpenInference));
        assert_eq!(
            detect("/predict", &json!({"instances": [[1]]})),
            Some(Protocol::KserveV1)
        );
        assert_eq!(
            detect("/predict", &json!({"inputs": {"a": [1]}})),
            Some(Protocol::KserveV1)
        );
        assert_eq!(
            detect("/predict", &json!({"dataframe_records": []})),
            Some(Protocol::Mlflow)
        );
        assert_eq!(
            detect("/x", &json!({"model": "m", "messages": []})),
            Some(Protocol::Openai)
        );
        assert_eq!(detect("/x", &json!({"messages": []})), None);
        assert_eq!(detect("/x", &json!([1, 2])), None);
    }

    #[test]
    fn names_round_trip() {
        for protocol in Protocol::ALL {
            let name: ProtocolName =
                serde_json::from_value(json!(protocol.as_str())).expect("a configuration spelling");
            assert_eq!(Protocol::from_name(name), Some(protocol));
        }
        assert_eq!(Protocol::from_name(ProtocolName::Auto), None);
    }
}
