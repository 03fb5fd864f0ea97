//! Steps 1–3 of the pipeline (SPEC.md §5): experience-guided simulated annealing over actions,
//! with unguided annealing and uniform rates as baselines.

pub mod anneal;
pub mod cost;
pub mod guide;
pub mod quick;
pub mod target;

pub use anneal::{anneal, Candidate, Mode, Outcome, SearchConfig};
pub use target::{Metric, Target};
