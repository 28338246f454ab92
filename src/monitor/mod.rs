//! Monitoring on the analysis path: statistics (pure functions checked against scipy) and online
//! change detectors (checked against River).

pub mod detectors;
pub mod stats;
