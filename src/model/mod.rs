//! Layer types, the graph (a sequence of layers, residual blocks nested) and its shapes, the zoo, host weights, and the
//! GPU network that runs forward and backward.

pub mod flat;
pub mod graph;
pub mod lower;
pub mod network;
pub mod store;
pub mod weights;
pub mod zoo;

pub use graph::{Architecture, Layer, Shape};
pub use network::{Hyper, Network};
pub use weights::{NamedTensor, Weights};
