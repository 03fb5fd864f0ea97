//! Pruning: schemes and masks, ADMM, purification, compaction, and counting (SPEC.md §1, §3–§6).

pub mod count;
