//! Pruning: actions, the layer topology, ADMM, purification, compaction, counting, and the
//! pipeline that runs them in order (SPEC.md §1, §3–§6).

pub mod action;
pub mod compact;
pub mod count;
pub mod topology;
pub mod admm;
pub mod purify;
pub mod pipeline;
pub mod scheme;

pub use scheme::{keep_count, Scheme};
