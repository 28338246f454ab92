//! The process lifecycle shared by the listeners: serving, draining (still accepting while
//! Kubernetes propagates the endpoint removal), closing (not accepting, in-flight exchanges
//! finishing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Normal operation; `/readyz` reflects the upstream.
    Serving = 0,
    /// A shutdown signal arrived: `/readyz` is 503, connections are still accepted.
    Draining = 1,
    /// `shutdown.delay` has passed: the listener is closed, in-flight exchanges finish.
    Closing = 2,
}

#[derive(Clone)]
pub struct Lifecycle {
    /// Read on the request path without touching the watch channel's lock.
    phase: Arc<AtomicU8>,
    notify: Arc<watch::Sender<Phase>>,
}

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            phase: Arc::new(AtomicU8::new(Phase::Serving as u8)),
            notify: Arc::new(watch::Sender::new(Phase::Serving)),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Serving,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }

    /// Moves forward to `phase`; never backwards.
    pub fn advance(&self, phase: Phase) {
        let previous = self.phase.fetch_max(phase as u8, Ordering::AcqRel);
        if previous < phase as u8 {
            self.notify.send_replace(phase);
        }
    }

    /// Resolves once the lifecycle has reached `phase`.
    pub async fn reached(&self, phase: Phase) {
        let mut receiver = self.notify.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we wait.
        let _ = receiver.wait_for(|current| *current >= phase).await;
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let lifecycle = Lifecycle::new();
        let waiter = tokio::spawn({
            let lifecycle = lifecycle.clone();
            async move { lifecycle.reached(Phase::Draining).await }
        });
        lifecycle.advance(Phase::Draining);
        waiter.await.unwrap();
        lifecycle.advance(Phase::Serving);
        assert_eq!(lifecycle.phase(), Phase::Draining);
        lifecycle.advance(Phase::Closing);
        assert_eq!(lifecycle.phase(), Phase::Closing);
        lifecycle.reached(Phase::Draining).await;
    }
}
