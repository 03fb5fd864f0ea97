//! Launcher of shaders/elementwise.wgsl: the element-wise add used by residual sums and by
//! gradients of tensors read by two layers.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

wgsl_params! {
    Params = "elementwise.wgsl" :: Params { n: u32, _a: u32, _b: u32, _c: u32 }
}

/// y = a + b over `n` elements.
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, y: &Tensor, n: usize) -> Result<Dispatch> {
    ensure!(n <= a.len && n <= b.len && n <= y.len, "add out of range");
    let src = Source::new("elementwise", include_str!("../../shaders/elementwise.wgsl"));
    let k = gpu.kernel(&src, "add", &[Access::Read, Access::Read, Access::ReadWrite], false)?;
    gpu.dispatch(&k, &[a, b, y], &Params { n: n as u32, ..Params::default() }, gpu.grid1d(n, 256))
}
