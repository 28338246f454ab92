//! Which exchanges are recorded, and why (the record's `sampled` field).
//!
//! Head sampling is a pure function of the request id, so every replica (and any offline tool)
//! makes the same decision for the same request: `h = splitmix64(fnv1a64(id))`, recorded when
//! `(h >> 11) / 2^53 < sample_rate`.

use http::HeaderName;

use crate::config::RecordingConfig;
use crate::tap::{Findings, Observation, Outcome};

/// The request header that forces recording of one exchange (`x-driftwatch-record: 1`).
pub static FORCE_HEADER: HeaderName = HeaderName::from_static("x-driftwatch-record");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleReason {
    Forced,
    Error,
    Slow,
    Outlier,
    Explored,
    Rate,
}

impl SampleReason {
    pub const ALL: [Self; 6] = [
        Self::Forced,
        Self::Error,
        Self::Slow,
        Self::Outlier,
        Self::Explored,
        Self::Rate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forced => "forced",
            Self::Error => "error",
            Self::Slow => "slow",
            Self::Outlier => "outlier",
            Self::Explored => "explored",
            Self::Rate => "rate",
        }
    }
}

/// FNV-1a, 64 bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The splitmix64 finalizer: spreads FNV's low-entropy high bits.
fn splitmix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) derived from the request id.
pub fn unit_interval(request_id: &[u8]) -> f64 {
    (splitmix64(fnv1a64(request_id)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether head sampling at `rate` keeps this request id.
pub fn head_sampled(request_id: &[u8], rate: f64) -> bool {
    unit_interval(request_id) < rate
}

/// The reason to record this exchange, or `None`. The first matching reason wins, in the order
/// forced, error, slow, outlier, explored, rate.
pub fn decide(
    config: &RecordingConfig,
    observation: &Observation,
    findings: &Findings,
) -> Option<SampleReason> {
    let forced = observation
        .request
        .headers
        .get(&FORCE_HEADER)
        .is_some_and(|value| matches!(value.as_bytes(), b"1" | b"true"));
    if forced {
        return Some(SampleReason::Forced);
    }
    let server_error = observation
        .response
        .as_ref()
        .is_some_and(|head| head.status.is_server_error());
    let failed = matches!(
        observation.outcome,
        Outcome::UpstreamError | Outcome::Timeout
    );
    if config.always_errors && (server_error || failed || observation.proxy_error.is_some()) {
        return Some(SampleReason::Error);
    }
    if config.always_slow && observation.timing.total >= config.slow_threshold {
        return Some(SampleReason::Slow);
    }
    if config.always_outliers && findings.outlier {
        return Some(SampleReason::Outlier);
    }
    if config.always_explored
        && observation
            .exploration
            .as_ref()
            .is_some_and(|log| log.decided())
    {
        return Some(SampleReason::Explored);
    }
    head_sampled(observation.request_id.as_bytes(), config.sample_rate)
        .then_some(SampleReason::Rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_id_always_gets_the_same_decision() {
        for id in ["a", "0192f2c4-7d2a-7cc0-b8a4-1c3e7b0f9a11", "req-42"] {
            let first = head_sampled(id.as_bytes(), 0.3);
            for _ in 0..10 {
                assert_eq!(head_sampled(id.as_bytes(), 0.3), first);
            }
        }
        assert!(!head_sampled(b"anything", 0.0));
        assert!(head_sampled(b"anything", 1.0));
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // Replicas of different versions must agree; these values are part of the contract.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let u = unit_interval(b"req-42");
        assert!((0.0..1.0).contains(&u));
        assert_eq!(u, unit_interval(b"req-42"));
    }
}
