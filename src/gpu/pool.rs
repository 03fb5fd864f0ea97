//! Launchers of shaders/pool.wgsl: max pooling (with its argmax for the backward pass) and
//! global average pooling.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn src() -> Source {
    Source::new("pool", include_str!("../../shaders/pool.wgsl"))
}

wgsl_params! {
    MaxParams = "pool.wgsl" :: Params { planes: u32, h: u32, w: u32, oh: u32, ow: u32, k: u32, stride: u32, pad: u32 }
    AvgParams = "pool.wgsl" :: AvgParams { planes: u32, hw: u32, _p0: u32, _p1: u32 }
}

/// Max pooling over `planes` = N·C planes of h×w with a k×k window and `pad` pixels of -∞ on
/// every side (`pad < k`, so every window holds a real pixel).
#[derive(Clone, Copy, Debug)]
pub struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl PoolGeom {
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    fn params(&self) -> MaxParams {
        let u = |x: usize| x as u32;
        MaxParams { planes: u(self.planes), h: u(self.h), w: u(self.w), oh: u(self.oh()), ow: u(self.ow()), k: u(self.k), stride: u(self.stride), pad: u(self.pad) }
    }
}

pub fn maxpool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, arg: &Tensor, g: &PoolGeom) -> Result<Dispatch> {
    ensure!(g.pad < g.k, "maxpool padding {} must be smaller than the window {}", g.pad, g.k);
    let n = g.planes * g.oh() * g.ow();
    ensure!(g.planes * g.h * g.w <= x.len && n <= y.len && n <= arg.len, "maxpool out of range");
    let k = gpu.kernel(&src(), "maxpool_forward", &[R, W, W], false)?;
    gpu.dispatch(&k, &[x, y, arg], &g.params(), gpu.grid1d(n, 256))
}

pub fn maxpool_backward(gpu: &Gpu, dy: &Tensor, arg: &Tensor, dx: &Tensor, g: &PoolGeom) -> Result<Dispatch> {
    ensure!(g.pad < g.k && g.planes * g.h * g.w <= dx.len, "maxpool backward out of range");
    let k = gpu.kernel(&src(), "maxpool_backward", &[R, R, W], false)?;
    gpu.dispatch(&k, &[dy, arg, dx], &g.params(), gpu.grid1d(g.planes * g.h, 256))
}

fn avg_params(planes: usize, hw: usize) -> AvgParams {
    AvgParams { planes: planes as u32, hw: hw as u32, _p0: 0, _p1: 0 }
}

pub fn avgpool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, planes: usize, hw: usize) -> Result<Dispatch> {
    ensure!(planes * hw <= x.len && planes <= y.len, "avgpool out of range");
    let k = gpu.kernel(&src(), "avgpool_forward", &[R, W], false)?;
    gpu.dispatch(&k, &[x, y], &avg_params(planes, hw), gpu.grid1d(planes, 64))
}

pub fn avgpool_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor, planes: usize, hw: usize) -> Result<Dispatch> {
    ensure!(planes <= dy.len && planes * hw <= dx.len, "avgpool backward out of range");
    let k = gpu.kernel(&src(), "avgpool_backward", &[R, W], false)?;
    gpu.dispatch(&k, &[dy, dx], &avg_params(planes, hw), gpu.grid1d(planes * hw, 256))
}
