//! Pruning: actions, the layer topology, ADMM, purification, compaction, and counting
//! (SPEC.md §1, §3–§6).

pub mod action;
pub mod compact;
pub mod count;
pub mod topology;
pub mod admm;
pub mod purify;
pub mod scheme;

pub use scheme::{keep_count, Scheme};
