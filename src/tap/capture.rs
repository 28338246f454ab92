//! Body capture on the request path: a copy of each body's first bytes, taken while the body
//! streams, without buffering the body. Only the captured prefix is copied; it is copied (rather
//! than kept as slices of hyper's read buffers) because a small slice would pin a whole read buffer
//! for as long as the observation waits for analysis, and the budget could not account for that.
//!
//! Memory is bounded twice: per body by `recording.max_body_bytes`, and across all exchanges by
//! `recording.capture_budget` (bytes held by captures in flight or waiting for the analysis
//! worker). A body that finds the budget spent is not captured further; it is flagged truncated
//! and counted, and the traffic is unaffected.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// The shared budget of captured bytes.
#[derive(Debug)]
pub struct CaptureBudget {
    used: AtomicUsize,
    limit: usize,
}

impl CaptureBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes currently held by captures.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Why a capture holds less than the whole body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncation {
    #[default]
    None,
    /// The body is longer than `recording.max_body_bytes`.
    SizeLimit,
    /// The shared capture budget was spent.
    Budget,
}

/// A body prefix as it is being captured, and as it travels in the observation.
#[derive(Debug, Default)]
pub struct Capture {
    limit: usize,
    bytes: Vec<u8>,
    truncation: Truncation,
    budget: Option<Arc<CaptureBudget>>,
}

impl Capture {
    /// A capture of up to `limit` bytes charged to `budget`. A limit of 0 captures nothing.
    pub fn new(limit: usize, budget: Option<Arc<CaptureBudget>>) -> Self {
        Self {
            limit,
            bytes: Vec::new(),
            truncation: Truncation::None,
            budget,
        }
    }

    /// Notes a chunk that passed through, copying what fits under the limit.
    pub fn push(&mut self, chunk: &Bytes) {
        if chunk.is_empty() || self.limit == 0 {
            return;
        }
        let room = self.limit - self.bytes.len();
        if room == 0 {
            self.mark(Truncation::SizeLimit);
            return;
        }
        let take = room.min(chunk.len());
        if let Some(budget) = &self.budget
            && !budget.try_reserve(take)
        {
            self.mark(Truncation::Budget);
            // Stop capturing this body: a later, smaller chunk must not leave a hole.
            self.limit = self.bytes.len();
            return;
        }
        self.bytes.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            self.mark(Truncation::SizeLimit);
        }
    }

    fn mark(&mut self, truncation: Truncation) {
        if self.truncation == Truncation::None {
            self.truncation = truncation;
        }
    }

    /// Whether anything is being captured at all.
    pub fn is_enabled(&self) -> bool {
        self.limit > 0 || self.truncation != Truncation::None
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn truncated(&self) -> bool {
        self.truncation != Truncation::None
    }

    pub fn truncation(&self) -> Truncation {
        self.truncation
    }

    /// The captured bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
}

impl Clone for Capture {
    /// A clone copies the bytes but not the budget reservation, which stays with the original.
    fn clone(&self) -> Self {
        Self {
            limit: self.limit,
            bytes: self.bytes.clone(),
            truncation: self.truncation,
            budget: None,
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_a_prefix_and_flags_truncation() {
        let budget = CaptureBudget::new(1 << 20);
        let mut capture = Capture::new(10, Some(budget.clone()));
        let first = Bytes::from_static(b"abcdef");
        capture.push(&first);
        capture.push(&Bytes::from_static(b"ghijkl"));
        assert_eq!(capture.as_slice(), b"abcdefghij");
        assert!(capture.truncated());
        assert_eq!(capture.truncation(), Truncation::SizeLimit);
        assert_eq!(budget.used(), 10);
        let clone = capture.clone();
        drop(capture);
        assert_eq!(
            budget.used(),
            0,
            "the reservation is released with the original"
        );
        assert_eq!(clone.len(), 10);
    }

    #[test]
    fn an_exact_fit_is_not_truncated() {
        let mut capture = Capture::new(4, None);
        capture.push(&Bytes::from_static(b"abcd"));
        assert!(!capture.truncated());
        capture.push(&Bytes::from_static(b"e"));
        assert!(capture.truncated());
    }

    #[test]
    fn a_spent_budget_stops_the_capture() {
        let budget = CaptureBudget::new(5);
        let mut first = Capture::new(100, Some(budget.clone()));
        first.push(&Bytes::from_static(b"1234"));
        let mut second = Capture::new(100, Some(budget.clone()));
        second.push(&Bytes::from_static(b"abc"));
        second.push(&Bytes::from_static(b"d"));
        assert_eq!(second.len(), 0, "no hole-y partial capture");
        assert_eq!(second.truncation(), Truncation::Budget);
        drop(first);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn disabled_capture_holds_nothing() {
        let mut capture = Capture::new(0, None);
        capture.push(&Bytes::from_static(b"data"));
        assert!(!capture.is_enabled());
        assert!(!capture.truncated());
        assert!(capture.as_slice().is_empty());
    }
}
