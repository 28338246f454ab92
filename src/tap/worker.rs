//! The analysis worker: a dedicated thread that drains the tap and runs every analyzer on each
//! observation, so parsing and statistics never compete with the proxy's async workers for a
//! poll slot.

use std::thread::JoinHandle;

use metrics::Counter;

use super::{OBSERVATIONS_TOTAL, Observation, TapReceiver};
use crate::telemetry::Registry;

/// What analyzers learned about one exchange, passed along the chain so later analyzers (the
/// recorder comes last) can use it.
#[derive(Debug, Default)]
pub struct Findings {
    /// The record's `monitor` field: rows, validation issues, outlier rows.
    pub monitor: Option<serde_json::Value>,
    /// The exchange holds at least one outlier row.
    pub outlier: bool,
    /// The model monitoring assigned the exchange to, when something named it (a configured
    /// `match.path_prefix`, the path, or the payload's model name); the record's `model` prefers
    /// it to the proxy's path label.
    pub model: Option<String>,
    /// The model version the path or the payload gave (see [`crate::extract`]); the record's
    /// `model_version` prefers it to the one its path gives.
    pub model_version: Option<String>,
}

/// A consumer of observations on the analysis side.
pub trait Analyzer: Send {
    fn observe(&mut self, observation: &Observation, findings: &mut Findings);
    /// Called once when the tap closes (shutdown), after the last observation.
    fn finish(&mut self) {}
}

pub struct AnalysisWorker {
    thread: JoinHandle<()>,
}

impl AnalysisWorker {
    /// Starts the worker; it ends when every `Tap` clone is dropped and the queue is drained.
    pub fn spawn(
        receiver: TapReceiver,
        mut analyzers: Vec<Box<dyn Analyzer>>,
        registry: &Registry,
    ) -> std::io::Result<Self> {
        let processed: Counter = registry.counter(OBSERVATIONS_TOTAL, &[("result", "processed")]);
        let thread = std::thread::Builder::new()
            .name("driftwatch-analysis".to_owned())
            .spawn(move || {
                crate::background::lower_current_thread_priority();
                while let Some(observation) = receiver.recv_blocking() {
                    let mut findings = Findings::default();
                    for analyzer in &mut analyzers {
                        analyzer.observe(&observation, &mut findings);
                    }
                    processed.increment(1);
                }
                for analyzer in &mut analyzers {
                    analyzer.finish();
                }
            })?;
        Ok(Self { thread })
    }

    /// Waits for the worker to drain and finish. Call after the proxy has stopped.
    pub async fn join(self) {
        let thread = self.thread;
        // Joining blocks; keep it off the async workers.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
