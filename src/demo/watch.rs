//! What the demo reads back from driftwatch's admin API while traffic runs: the drift reports of
//! closed windows, validation counts and outliers — the way a user's dashboard would.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::model::{FEATURES, MODEL_NAME};

/// A closed window, as the demo saw it.
#[derive(Debug, Clone)]
pub struct WindowSeen {
    pub index: u64,
    /// Seconds since the demo started, when the demo first saw the closed window.
    pub seen_at: f64,
    pub dataset_drifted: bool,
    /// `(column, statistic, value, drifted)` per input column.
    pub columns: Vec<(String, String, f64, bool)>,
}

pub struct Watcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    admin: String,
    pub windows: Vec<WindowSeen>,
    pub reference_ready_at: Option<f64>,
    /// `(seen at, window index, accuracy)` of each closed window of labels.
    pub accuracy: Vec<(f64, u64, f64)>,
    /// When the concept drift flag was first seen up.
    pub concept_drift_at: Option<f64>,
    pub labels_joined: u64,
    /// Per recommendation route: its complete diversity windows, in order.
    pub diversity: std::collections::BTreeMap<String, Vec<Value>>,
}

impl Watcher {
    pub fn new(admin: String) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            admin,
            windows: Vec::new(),
            reference_ready_at: None,
            accuracy: Vec::new(),
            concept_drift_at: None,
            labels_joined: 0,
            diversity: std::collections::BTreeMap::new(),
        }
    }

    async fn get(&self, path: &str) -> Option<Bytes> {
        let uri = format!("http://{}{path}", self.admin).parse().ok()?;
        let response = tokio::time::timeout(Duration::from_secs(2), self.client.get(uri))
            .await
            .ok()?
            .ok()?;
        response
            .into_body()
            .collect()
            .await
            .ok()
            .map(|b| b.to_bytes())
    }

    /// Notes the last closed window (of rows, and of labels) when it is new.
    pub async fn poll(&mut self, elapsed: f64) {
        self.poll_performance(elapsed).await;
        self.poll_diversity().await;
        let Some(body) = self.get(&format!("/api/v1/drift?model={MODEL_NAME}")).await else {
            return;
        };
        let Ok(drift) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        if self.reference_ready_at.is_none() && !drift["open_window"].is_null() {
            self.reference_ready_at = Some(elapsed);
        }
        let last = &drift["last_window"];
        let Some(index) = last["window"]["index"].as_u64() else {
            return;
        };
        if self.windows.last().is_some_and(|w| w.index == index) {
            return;
        }
        let columns = last["columns"]
            .as_array()
            .map(|columns| {
                columns
                    .iter()
                    .filter(|c| c["role"] == "input")
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["statistic"].as_str().unwrap_or_default().to_owned(),
                            c["value"].as_f64().unwrap_or(f64::NAN),
                            c["drifted"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.windows.push(WindowSeen {
            index,
            seen_at: elapsed,
            dataset_drifted: last["dataset"]["drifted"].as_bool().unwrap_or(false),
            columns,
        });
    }

    async fn poll_diversity(&mut self) {
        let Some(body) = self.get("/api/v1/diversity").await else {
            return;
        };
        let Ok(report) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        for route in report["routes"].as_array().into_iter().flatten() {
            let (Some(name), last) = (route["route"].as_str(), &route["last_window"]) else {
                continue;
            };
            if last.is_null() {
                continue;
            }
            let windows = self.diversity.entry(name.to_owned()).or_default();
            if windows.last() != Some(last) {
                windows.push(last.clone());
            }
        }
    }

    /// How the diversity of what each recommendation route showed evolved.
    pub fn diversity_report(&self) -> Vec<String> {
        let mut lines = vec![
            "recommendations: a popularity model retrained on its own clicks (the feedback loop), displayed top 10 of 50".to_owned(),
        ];
        for (route, windows) in &self.diversity {
            let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
                continue;
            };
            let describe = |w: &Value| {
                format!(
                    "{} items, coverage {:.2}, catalog Gini {:.2}, entropy {:.1} bits",
                    w["distinct_items"],
                    w["catalog_coverage"].as_f64().unwrap_or(0.0),
                    w["gini_catalog"].as_f64().unwrap_or(0.0),
                    w["entropy_bits"].as_f64().unwrap_or(0.0)
                )
            };
            lines.push(format!(
                "  {route:<13} first window: {}; last: {}",
                describe(first),
                describe(last)
            ));
        }
        if self.diversity.is_empty() {
            lines.push("  no complete diversity window yet (run longer)".to_owned());
        }
        lines
    }

    async fn poll_performance(&mut self, elapsed: f64) {
        let Some(body) = self.get("/api/v1/performance").await else {
            return;
        };
        let Ok(report) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        let Some(model) = report["models"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["model"] == MODEL_NAME))
        else {
            return;
        };
        if model["concept_drift"]["detected"] == true && self.concept_drift_at.is_none() {
            self.concept_drift_at = Some(elapsed);
        }
        if let (Some(index), Some(accuracy)) = (
            model["window_index"].as_u64(),
            model["last_window"]["classification"]["accuracy"].as_f64(),
        ) && self
            .accuracy
            .last()
            .is_none_or(|(_, seen, _)| *seen != index)
        {
            self.accuracy.push((elapsed, index, accuracy));
        }
        if let Some(body) = self.get("/metrics").await {
            let text = String::from_utf8_lossy(&body);
            let series =
                format!("driftwatch_feedback_total{{model=\"{MODEL_NAME}\",outcome=\"joined\"}} ");
            if let Some(value) = text.lines().find_map(|l| l.strip_prefix(series.as_str())) {
                self.labels_joined = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            }
        }
    }

    /// What the labels showed: accuracy before and after the concept change, and when the
    /// concept drift flag rose.
    pub fn performance_report(&self, change_at: f64) -> Vec<String> {
        let mut lines = vec![format!(
            "labels: {} requests labelled, {:.0}s after their predictions",
            self.labels_joined,
            super::traffic::LABEL_DELAY.as_secs_f64()
        )];
        let mean = |windows: Vec<f64>| {
            (!windows.is_empty()).then(|| windows.iter().sum::<f64>() / windows.len() as f64)
        };
        // Labels lag by the delay: windows seen before change + delay hold the old concept.
        let lag = super::traffic::LABEL_DELAY.as_secs_f64() + 1.0;
        let before = mean(
            self.accuracy
                .iter()
                .filter(|w| w.0 < change_at + lag)
                .map(|w| w.2)
                .collect(),
        );
        let after = mean(
            self.accuracy
                .iter()
                .filter(|w| w.0 > change_at + lag + 5.0)
                .map(|w| w.2)
                .collect(),
        );
        match (before, after) {
            (Some(before), Some(after)) => lines.push(format!(
                "accuracy: {before:.3} before the concept change at {change_at:.0}s, {after:.3} after (the class 1/2 boundary moved; no input column shows it)"
            )),
            _ => lines.push("accuracy: not enough labelled windows yet (run longer)".to_owned()),
        }
        lines.push(match self.concept_drift_at {
            Some(at) => format!("concept drift: flagged at {at:.0}s (DDM on the error stream, driftwatch_concept_drift_detected)"),
            None => "concept drift: not flagged".to_owned(),
        });
        lines
    }

    /// `drifted/total` input columns in the last closed window, for the live line.
    pub fn drift_fragment(&self) -> String {
        match (self.reference_ready_at, self.windows.last()) {
            (None, _) => "reference=learning".to_owned(),
            (Some(_), None) => "drift=first-window".to_owned(),
            (Some(_), Some(window)) => format!(
                "drift={}/{}",
                window.columns.iter().filter(|c| c.3).count(),
                window.columns.len()
            ),
        }
    }

    /// Validation counts per input column and the outlier total, from `/metrics`.
    pub async fn validation(&self) -> (Vec<(String, Vec<(String, u64)>)>, u64) {
        let Some(body) = self.get("/metrics").await else {
            return (Vec::new(), 0);
        };
        let text = String::from_utf8_lossy(&body);
        let value = |series: &str| -> u64 {
            text.lines()
                .find_map(|line| {
                    let (name, value) = line.rsplit_once(' ')?;
                    (name == series)
                        .then(|| value.parse::<f64>().ok())
                        .flatten()
                })
                .unwrap_or(0.0) as u64
        };
        let columns = FEATURES
            .iter()
            .map(|column| {
                let counts = ["ok", "out_of_range", "nan", "missing", "wrong_type"]
                    .iter()
                    .map(|status| {
                        let series = format!(
                            "driftwatch_column_values_total{{model=\"{MODEL_NAME}\",column=\"{column}\",role=\"input\",status=\"{status}\"}}"
                        );
                        ((*status).to_owned(), value(&series))
                    })
                    .filter(|(status, count)| *count > 0 || status == "ok")
                    .collect();
                ((*column).to_owned(), counts)
            })
            .collect();
        let outliers = value(&format!(
            "driftwatch_outlier_rows_total{{model=\"{MODEL_NAME}\"}}"
        ));
        (columns, outliers)
    }
}
