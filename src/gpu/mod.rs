//! Everything that touches wgpu: the device, buffers, the kernel cache, and one launcher module
//! per shader family. Other modules just say "run kernel K on these tensors". Nothing here knows
//! about schemes, actions or models: launchers take shapes and plain flags.

pub mod context;
pub mod kernel;
pub mod params;
pub mod strategy;

pub mod activation;
pub mod admm;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod loss;
pub mod norm;
pub mod pool;
pub mod purify;
pub mod sgd;
pub mod tiled;
pub mod timing;
pub mod tune;

pub use context::{Gpu, Tensor};
pub use kernel::{record, Dispatch};
