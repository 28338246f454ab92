//! Exploration for recommendation responses (SPEC §9): on configured routes the ranked list in
//! the response is reordered by a seeded strategy, the propensities are logged, and the
//! popularity diversity of what is shown is measured.

pub mod analyzer;
pub mod diversity;
pub mod export;
pub mod log;
pub mod rewrite;
pub mod rng;
pub mod route;
pub mod strategy;
