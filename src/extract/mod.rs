//! Extraction: from a captured request/response pair to rows of typed cells (see [`table`]).
//! Placeholder module root; the protocol adapters are being written.

pub mod lenient;
pub mod table;
