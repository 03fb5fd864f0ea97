//! Launchers of shaders/batchnorm.wgsl: batch normalisation (statistics, apply, backward).

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn src() -> Source {
    Source::new("batchnorm", include_str!("../../shaders/batchnorm.wgsl"))
}

/// One batch-norm layer's geometry and settings: `n` images of `c` channels of `p` pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnGeom {
    pub n: usize,
    pub c: usize,
    pub p: usize,
    /// Batch statistics (and running-average updates) when true; running statistics otherwise.
    pub training: bool,
    pub eps: f32,
    pub momentum: f32,
}

impl BnGeom {
    fn len(&self) -> usize {
        self.n * self.c * self.p
    }

    fn params(&self) -> Params {
        let (n, c, p, mode) = (self.n as u32, self.c as u32, self.p as u32, (!self.training) as u32);
        Params { n, c, p, mode, eps: self.eps, momentum: self.momentum, _a: 0, _b: 0 }
    }
}

wgsl_params! {
    /// `mode` 0 is training (batch statistics), 1 inference (running statistics).
    Params = "batchnorm.wgsl" :: Params { n: u32, c: u32, p: u32, mode: u32, eps: f32, momentum: f32, _a: u32, _b: u32 }
}

/// `stats` ← (μ, 1/√(σ² + ε)) per channel; in training also updates `running` (mean, variance).
pub fn bn_stats(gpu: &Gpu, x: &Tensor, stats: &Tensor, running: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= x.len && 2 * g.c <= stats.len && 2 * g.c <= running.len, "bn_stats out of range");
    let k = gpu.kernel(&src(), "bn_stats", &[R, W, W], false)?;
    gpu.dispatch(&k, &[x, stats, running], &g.params(), [g.c as u32, 1, 1])
}

/// y = γ·(x − μ)/σ + β.
pub fn bn_apply(gpu: &Gpu, x: &Tensor, stats: &Tensor, gamma: &Tensor, beta: &Tensor, y: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= x.len && g.len() <= y.len && 2 * g.c <= stats.len && g.c <= gamma.len && g.c <= beta.len, "bn_apply out of range");
    let k = gpu.kernel(&src(), "bn_apply", &[R, R, R, R, W], false)?;
    gpu.dispatch(&k, &[x, stats, gamma, beta, y], &g.params(), gpu.grid1d(g.len(), 256))
}

/// dγ and dβ per channel from dy.
pub fn bn_backward_reduce(gpu: &Gpu, dy: &Tensor, x: &Tensor, stats: &Tensor, dgamma: &Tensor, dbeta: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= dy.len && g.len() <= x.len && 2 * g.c <= stats.len && g.c <= dgamma.len && g.c <= dbeta.len, "bn_backward_reduce out of range");
    let k = gpu.kernel(&src(), "bn_backward_reduce", &[R, R, R, W, W], false)?;
    gpu.dispatch(&k, &[dy, x, stats, dgamma, dbeta], &g.params(), [g.c as u32, 1, 1])
}

/// dx from dy, after `bn_backward_reduce` filled dγ and dβ.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_dx(gpu: &Gpu, dy: &Tensor, x: &Tensor, stats: &Tensor, gamma: &Tensor, dgamma: &Tensor, dbeta: &Tensor, dx: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= dy.len && g.len() <= x.len && g.len() <= dx.len && 2 * g.c <= stats.len, "bn_backward_dx out of range");
    ensure!(g.c <= gamma.len && g.c <= dgamma.len && g.c <= dbeta.len, "bn_backward_dx out of range");
    let k = gpu.kernel(&src(), "bn_backward_dx", &[R, R, R, R, R, R, W], false)?;
    gpu.dispatch(&k, &[dy, x, stats, gamma, dgamma, dbeta, dx], &g.params(), gpu.grid1d(g.len(), 256))
}
