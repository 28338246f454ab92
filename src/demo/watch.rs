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
}

impl Watcher {
    pub fn new(admin: String) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            admin,
            windows: Vec::new(),
            reference_ready_at: None,
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

    /// Notes the last closed window when it is new.
    pub async fn poll(&mut self, elapsed: f64) {
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
