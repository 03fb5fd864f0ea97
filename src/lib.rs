//! autocompress: AutoCompress structured pruning (Liu et al., AAAI 2020) for CNNs,
//! with every tensor operation a custom WGSL compute shader run through wgpu.

pub mod data;
pub mod gpu;
pub mod io;
pub mod model;
pub mod train;
pub mod prune;
pub mod search;
pub mod compress;
pub mod bench;
pub mod report;
pub mod onnx;
