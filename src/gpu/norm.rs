//! Launchers of shaders/batchnorm.wgsl: batch normalisation (statistics, apply, backward).

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

const TEMPLATE: &str = include_str!("../../shaders/batchnorm.wgsl");

/// A tree over workgroup memory: six barrier steps, on every adapter.
const TREE_LANE_SUM: &str = "fn lane_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var half = 32u; half > 0u; half >>= 1u) {
        if (li < half) { red[li] += red[li + half]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}";

/// Each subgroup sums in registers and its first lane stores that sum in its own slot (the
/// others store zero); every lane then adds the 64 slots in index order, so the result is the
/// same on every lane and in every run, whatever the subgroup size and however lanes map to
/// subgroups. Two barriers: after the slots are written, and before the next call writes them.
const SUBGROUP_LANE_SUM: &str = "fn lane_sum(li: u32, v: f32) -> f32 {
    let s = subgroupAdd(v);
    red[li] = select(0.0, s, subgroupBroadcastFirst(li) == li);
    workgroupBarrier();
    var r = 0.0;
    for (var i = 0u; i < 64u; i++) { r += red[i]; }
    workgroupBarrier();
    return r;
}";

/// The batch-norm shaders with their lane reduction: subgroup sums or the tree.
pub fn source(subgroups: bool) -> Source {
    if subgroups {
        // wgpu takes subgroup built-ins under its SUBGROUP feature; naga 30 does not parse
        // WebGPU's `enable subgroups;` yet
        Source::new("batchnorm-subgroups", &TEMPLATE.replace("{{LANE_SUM}}", SUBGROUP_LANE_SUM))
    } else {
        Source::new("batchnorm", &TEMPLATE.replace("{{LANE_SUM}}", TREE_LANE_SUM))
    }
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
    /// Workgroups per channel of the training reductions: 1 runs bn_stats and
    /// bn_backward_reduce (one workgroup a channel), more the split kernels, whose partial
    /// results (`partial_len` floats) are merged per channel (`strategy::select_bn_slices`).
    pub slices: usize,
    /// The reductions' lane sums use subgroup operations (`Gpu::bn_subgroups`), else a tree.
    pub subgroups: bool,
}

impl BnGeom {
    fn len(&self) -> usize {
        self.n * self.c * self.p
    }

    fn params(&self) -> Params {
        let (n, c, p, mode) = (self.n as u32, self.c as u32, self.p as u32, (!self.training) as u32);
        Params { n, c, p, mode, eps: self.eps, momentum: self.momentum, slices: self.slices as u32, _b: 0 }
    }

    /// Floats of the split reductions' partial results: (count, mean, M2) per slice and channel.
    pub fn partial_len(&self) -> usize {
        3 * self.slices * self.c
    }

    /// Whether the training reductions run split over several workgroups per channel.
    fn split(&self) -> bool {
        self.training && self.slices > 1
    }

    /// The shaders this layer runs, refused where the device has no subgroups.
    fn src(&self, gpu: &Gpu) -> Result<Source> {
        ensure!(!self.subgroups || gpu.adapter.subgroups, "batch norm with subgroup reductions on {}, which has no subgroup operations", gpu.info.name);
        Ok(source(self.subgroups))
    }
}

wgsl_params! {
    /// `mode` 0 is training (batch statistics), 1 inference (running statistics).
    Params = "batchnorm.wgsl" :: Params { n: u32, c: u32, p: u32, mode: u32, eps: f32, momentum: f32, slices: u32, _b: u32 }
}

/// `stats` ← (μ, 1/√(σ² + ε)) per channel; in training also updates `running` (mean, variance).
/// `part` holds the split reduction's partial results (`g.partial_len()`, unused at one slice).
pub fn bn_stats(gpu: &Gpu, x: &Tensor, stats: &Tensor, running: &Tensor, part: &Tensor, g: &BnGeom) -> Result<Vec<Dispatch>> {
    ensure!(g.len() <= x.len && 2 * g.c <= stats.len && 2 * g.c <= running.len, "bn_stats out of range");
    if !g.split() {
        let k = gpu.kernel(&g.src(gpu)?, "bn_stats", &[R, W, W], false)?;
        return Ok(vec![gpu.dispatch(&k, &[x, stats, running], &g.params(), [g.c as u32, 1, 1])?]);
    }
    ensure!(g.partial_len() <= part.len, "bn_stats partial results out of range");
    let src = g.src(gpu)?;
    let slices = gpu.kernel(&src, "bn_stats_partial", &[R, W], false)?;
    let merge = gpu.kernel(&src, "bn_stats_merge", &[R, W, W], false)?;
    Ok(vec![
        gpu.dispatch(&slices, &[x, part], &g.params(), [g.c as u32, g.slices as u32, 1])?,
        gpu.dispatch(&merge, &[part, stats, running], &g.params(), gpu.grid1d(g.c, 64))?,
    ])
}

/// y = γ·(x − μ)/σ + β.
pub fn bn_apply(gpu: &Gpu, x: &Tensor, stats: &Tensor, gamma: &Tensor, beta: &Tensor, y: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= x.len && g.len() <= y.len && 2 * g.c <= stats.len && g.c <= gamma.len && g.c <= beta.len, "bn_apply out of range");
    let k = gpu.kernel(&g.src(gpu)?, "bn_apply", &[R, R, R, R, W], false)?;
    gpu.dispatch(&k, &[x, stats, gamma, beta, y], &g.params(), gpu.grid1d(g.len(), 256))
}

/// dγ and dβ per channel from dy (`part` as for `bn_stats`).
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_reduce(gpu: &Gpu, dy: &Tensor, x: &Tensor, stats: &Tensor, dgamma: &Tensor, dbeta: &Tensor, part: &Tensor, g: &BnGeom) -> Result<Vec<Dispatch>> {
    ensure!(g.len() <= dy.len && g.len() <= x.len && 2 * g.c <= stats.len && g.c <= dgamma.len && g.c <= dbeta.len, "bn_backward_reduce out of range");
    if !g.split() {
        let k = gpu.kernel(&g.src(gpu)?, "bn_backward_reduce", &[R, R, R, W, W], false)?;
        return Ok(vec![gpu.dispatch(&k, &[dy, x, stats, dgamma, dbeta], &g.params(), [g.c as u32, 1, 1])?]);
    }
    ensure!(g.partial_len() <= part.len, "bn_backward_reduce partial results out of range");
    let src = g.src(gpu)?;
    let slices = gpu.kernel(&src, "bn_reduce_partial", &[R, R, R, W], false)?;
    let merge = gpu.kernel(&src, "bn_reduce_merge", &[R, W, W], false)?;
    Ok(vec![
        gpu.dispatch(&slices, &[dy, x, stats, part], &g.params(), [g.c as u32, g.slices as u32, 1])?,
        gpu.dispatch(&merge, &[part, dgamma, dbeta], &g.params(), gpu.grid1d(g.c, 64))?,
    ])
}

/// dx from dy, after `bn_backward_reduce` filled dγ and dβ.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_dx(gpu: &Gpu, dy: &Tensor, x: &Tensor, stats: &Tensor, gamma: &Tensor, dgamma: &Tensor, dbeta: &Tensor, dx: &Tensor, g: &BnGeom) -> Result<Dispatch> {
    ensure!(g.len() <= dy.len && g.len() <= x.len && g.len() <= dx.len && 2 * g.c <= stats.len, "bn_backward_dx out of range");
    ensure!(g.c <= gamma.len && g.c <= dgamma.len && g.c <= dbeta.len, "bn_backward_dx out of range");
    let k = gpu.kernel(&g.src(gpu)?, "bn_backward_dx", &[R, R, R, R, R, R, W], false)?;
    gpu.dispatch(&k, &[dy, x, stats, gamma, dgamma, dbeta, dx], &g.params(), gpu.grid1d(g.len(), 256))
}
