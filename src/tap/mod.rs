//! The tap: the one boundary between the request path and the analysis path.
//!
//! Every exchange the proxy handles yields exactly one [`Observation`]: the request and response
//! heads, timings, sizes and outcome, plus room for the captured body prefixes. The proxy hands it
//! to [`Tap::offer`], which never waits: when the bounded queue is full the observation is dropped
//! and counted (`driftwatch_analysis_observations_total{result="dropped_queue_full"}`).
//!
//! Everything that parses, computes statistics or writes records runs behind the tap, on the
//! analysis worker thread ([`AnalysisWorker`]), never on the request path.

mod capture;
mod observation;
mod worker;

pub use capture::{CaptureBudget, Truncation};
pub use observation::{Capture, Observation, Outcome, RequestHead, ResponseHead, Timing};
pub use worker::{AnalysisWorker, Analyzer, Findings};

use std::sync::Arc;

use metrics::Counter;
use tokio::sync::mpsc;

use crate::telemetry::Registry;

const OBSERVATIONS_TOTAL: &str = "driftwatch_analysis_observations_total";

/// The sending half, held by the proxy.
#[derive(Clone)]
pub struct Tap {
    sender: mpsc::Sender<Observation>,
    dropped: Counter,
}

/// Creates the tap and the receiving half the worker consumes.
pub fn channel(capacity: usize, registry: &Registry) -> (Tap, mpsc::Receiver<Observation>) {
    registry.describe_counter(
        OBSERVATIONS_TOTAL,
        "Observations handed from the request path to the analysis worker, by result.",
    );
    let (sender, receiver) = mpsc::channel(capacity);
    let dropped = registry.counter(OBSERVATIONS_TOTAL, &[("result", "dropped_queue_full")]);
    (Tap { sender, dropped }, receiver)
}

impl Tap {
    /// Hands the observation over without waiting; a full or closed queue drops it, counted.
    pub fn offer(&self, observation: Observation) {
        if self.sender.try_send(observation).is_err() {
            self.dropped.increment(1);
        }
    }
}

/// A shared, cheaply clonable model label (`"unknown"` when no model is recognised).
pub type ModelName = Arc<str>;
