//! Launchers of shaders/activation.wgsl: ReLU forward and backward.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn src() -> Source {
    Source::new("activation", include_str!("../../shaders/activation.wgsl"))
}

wgsl_params! {
    Params = "activation.wgsl" :: Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }
}

fn params(n: usize) -> Params {
    Params { n: n as u32, ..Params::default() }
}

pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, n: usize) -> Result<Dispatch> {
    ensure!(n <= x.len && n <= y.len, "relu out of range");
    let k = gpu.kernel(&src(), "relu_forward", &[R, W], false)?;
    gpu.dispatch(&k, &[x, y], &params(n), gpu.grid1d(n, 256))
}

/// dx = dy where the forward output `y` was positive.
pub fn relu_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor, n: usize) -> Result<Dispatch> {
    ensure!(n <= dy.len && n <= y.len && n <= dx.len, "relu backward out of range");
    let k = gpu.kernel(&src(), "relu_backward", &[R, R, W], false)?;
    gpu.dispatch(&k, &[dy, y, dx], &params(n), gpu.grid1d(n, 256))
}
