//! Everything that touches wgpu: the device, buffers, the kernel cache, and one launcher module
//! per shader family. Other modules just say "run kernel K on these tensors".

pub mod admm;
pub mod context;
pub mod gemm;
pub mod kernel;
pub mod norm;
pub mod ops;

pub use context::{Gpu, Tensor};
pub use kernel::{record, Dispatch};
