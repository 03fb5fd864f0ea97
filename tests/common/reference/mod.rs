//! Naive CPU twins of the kernels, written for clarity, not speed, one file per shader family.
//! They accumulate in f64 and share no code with the GPU launchers: output sizes are computed
//! here from first principles. Everything is re-exported, so a test calls `reference::matmul`
//! (or `cpu::matmul`) whichever file the twin lives in.

// Each test binary uses the twins of its own kernels only.
#![allow(unused_imports)]

mod activation;
mod admm;
mod batchnorm;
mod conv;
mod gemm;
mod loss;
mod pool;
mod purify;
mod sgd;

pub use activation::*;
pub use admm::*;
pub use batchnorm::*;
pub use conv::*;
pub use gemm::*;
pub use loss::*;
pub use pool::*;
pub use purify::*;
pub use sgd::*;
