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
pub use observation::{
    Capture, Observation, Outcome, RequestHead, ResponseHead, Timing, detached_headers,
    detached_uri, detached_value,
};
pub use worker::{AnalysisWorker, Analyzer, Findings};

use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use metrics::Counter;

use crate::telemetry::Registry;

const OBSERVATIONS_TOTAL: &str = "driftwatch_analysis_observations_total";

/// Longest the worker sleeps when the queue is empty. Senders never wake it (a wake-up is a
/// syscall on the request path); it polls, backing off from 100µs to this.
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(20);

struct Queue {
    observations: ArrayQueue<Observation>,
}

/// The sending half, held by the proxy.
#[derive(Clone)]
pub struct Tap {
    queue: Arc<Queue>,
    dropped: Counter,
}

/// The receiving half, held by the analysis worker.
pub struct TapReceiver {
    queue: Arc<Queue>,
}

/// Creates the tap and the receiving half the worker consumes.
pub fn channel(capacity: usize, registry: &Registry) -> (Tap, TapReceiver) {
    registry.describe_counter(
        OBSERVATIONS_TOTAL,
        "Observations handed from the request path to the analysis worker, by result.",
    );
    let queue = Arc::new(Queue {
        observations: ArrayQueue::new(capacity.max(1)),
    });
    let dropped = registry.counter(OBSERVATIONS_TOTAL, &[("result", "dropped_queue_full")]);
    (
        Tap {
            queue: queue.clone(),
            dropped,
        },
        TapReceiver { queue },
    )
}

impl Tap {
    /// Hands the observation over without waiting and without waking anyone; a full queue drops
    /// it, counted.
    pub fn offer(&self, observation: Observation) {
        if self.queue.observations.push(observation).is_err() {
            self.dropped.increment(1);
        }
    }
}

impl TapReceiver {
    /// The next observation, if one is waiting.
    pub fn try_recv(&self) -> Option<Observation> {
        self.queue.observations.pop()
    }

    /// The next observation, sleeping while there is none; `None` once every [`Tap`] is gone and
    /// the queue is drained.
    pub fn recv_blocking(&self) -> Option<Observation> {
        let mut idle = Duration::from_micros(100);
        loop {
            if let Some(observation) = self.queue.observations.pop() {
                return Some(observation);
            }
            if Arc::strong_count(&self.queue) == 1 {
                return self.queue.observations.pop();
            }
            std::thread::sleep(idle);
            idle = (idle * 2).min(MAX_IDLE_SLEEP);
        }
    }
}

/// A shared, cheaply clonable model label (`"unknown"` when no model is recognised).
pub type ModelName = Arc<str>;
