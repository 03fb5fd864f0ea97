//! Launchers for the small kernel families: conv2d helpers (im2col, dgrad_weights, channel_sum),
//! pooling, ReLU, softmax + cross-entropy, and SGD. Each mirrors its shader's Params struct.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{grid1d, Access, Dispatch, Source};

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn src(family: &'static str, text: &'static str) -> Source {
    Source::new(family, text)
}
fn conv_src() -> Source {
    src("conv2d", include_str!("../../shaders/conv2d.wgsl"))
}

/// One convolution's geometry for a batch of `n` images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub r: usize,
    pub s: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeom {
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.r) / self.stride + 1
    }
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.s) / self.stride + 1
    }
    pub fn ohw(&self) -> usize {
        self.oh() * self.ow()
    }
    /// Pixels per image in the column buffer, padded so GEMM rows stay vec4-aligned.
    pub fn ohwp(&self) -> usize {
        self.ohw().next_multiple_of(4)
    }
    pub fn crs(&self) -> usize {
        self.c * self.r * self.s
    }
}

/// The column table of conv2d.wgsl: kept columns (indices into c*R*S) then the inverse map.
pub fn column_table(g: &ConvGeom, kept: &[u32]) -> Result<Vec<u32>> {
    ensure!(g.c < 65536 && g.r < 256 && g.s < 256, "conv kernel too large for the column table");
    let crs = g.crs();
    let mut t = Vec::with_capacity(kept.len() + crs);
    for &j in kept {
        let j = j as usize;
        ensure!(j < crs, "kept column {j} out of range (layer has {crs} columns)");
        let (c, r, s) = (j / (g.r * g.s), (j / g.s) % g.r, j % g.s);
        t.push(((c as u32) << 16) | ((r as u32) << 8) | s as u32);
    }
    let mut inv = vec![u32::MAX; crs];
    for (i, &j) in kept.iter().enumerate() {
        inv[j as usize] = i as u32;
    }
    t.extend(inv);
    Ok(t)
}

/// The data gradient of a stride-1 convolution as a forward one (conv_gemm) over dY: geometry
/// K→C channels on the OH×OW plane with padding R−1−pad, whose output plane is H×W again. `None`
/// where that does not hold (stride above 1, non-square kernel, padding beyond R−1).
pub fn transposed(g: &ConvGeom) -> Option<ConvGeom> {
    (g.stride == 1 && g.r == g.s && g.pad < g.r).then(|| ConvGeom { c: g.k, h: g.oh(), w: g.ow(), k: g.c, pad: g.r - 1 - g.pad, ..*g })
}

/// The column table of `transposed(g)` over the weights dgrad_weights lays out ([C][R·S][Kp]):
/// virtual column tap·Kp + k reads channel k of dY at the flipped tap (R−1−r, S−1−s). Columns
/// past K read filter K−1, against zero weights.
pub fn transposed_table(g: &ConvGeom) -> Result<Vec<u32>> {
    ensure!(g.k < 65536 && g.r < 256 && g.s < 256, "conv kernel too large for the column table");
    let kp = g.k.next_multiple_of(4);
    let mut t = Vec::with_capacity(g.r * g.s * kp);
    for tap in 0..g.r * g.s {
        let (r, s) = (tap / g.s, tap % g.s);
        for k in 0..kp {
            t.push(((k.min(g.k - 1) as u32) << 16) | (((g.r - 1 - r) as u32) << 8) | (g.s - 1 - s) as u32);
        }
    }
    Ok(t)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    v: [u32; 16],
}

fn conv_params(g: &ConvGeom, kc: usize, n0: usize, chunk: usize) -> ConvParams {
    let v = [
        g.c, g.h, g.w, g.oh(), g.ow(), g.ohwp(), g.stride, g.pad, g.r, g.s, kc, kc.next_multiple_of(4), n0, chunk,
        0, 0,
    ];
    ConvParams { v: v.map(|x| x as u32) }
}

/// Columns of images n0..n0+chunk into `col`: [kcp][chunk·ohwp].
#[allow(clippy::too_many_arguments)]
pub fn im2col(gpu: &Gpu, x: &Tensor, tbl: &Tensor, col: &Tensor, g: &ConvGeom, kc: usize, n0: usize, chunk: usize) -> Result<Dispatch> {
    let kcp = kc.next_multiple_of(4);
    ensure!(kcp * chunk * g.ohwp() <= col.len && (n0 + chunk) * g.c * g.h * g.w <= x.len, "im2col out of range");
    let k = gpu.kernel(&conv_src(), "im2col", &[R, R, W], true);
    gpu.dispatch(&k, &[x, tbl, col], &conv_params(g, kc, n0, chunk), grid1d(kcp * chunk * g.oh(), 256))
}

/// The data-gradient weights `wt` [C][R·S][kp] (kp = K rounded up to 4) from `w` [K][kc] and
/// the column table: see `dgrad_weights` in conv2d.wgsl.
pub fn dgrad_weights(gpu: &Gpu, w: &Tensor, tbl: &Tensor, wt: &Tensor, g: &ConvGeom, kc: usize) -> Result<Dispatch> {
    let (rs, kp) = (g.r * g.s, g.k.next_multiple_of(4));
    ensure!(g.k * kc <= w.len && g.crs() * kp <= wt.len && kc + g.crs() <= tbl.len, "dgrad_weights out of range");
    let k = gpu.kernel(&conv_src(), "dgrad_weights", &[R, R, W], false);
    let p = [g.c, g.k, kc, rs, kp, kc, 0, 0].map(|x| x as u32);
    gpu.dispatch(&k, &[w, tbl, wt], &p, grid1d(g.crs() * kp, 256))
}

/// db[k] (+)= Σ_{n,p} dy[(n·K + k)·P + p]
pub fn channel_sum(gpu: &Gpu, dy: &Tensor, db: &Tensor, n: usize, k: usize, p: usize, accumulate: bool) -> Result<Dispatch> {
    ensure!(n * k * p <= dy.len && k <= db.len, "channel_sum out of range");
    let kern = gpu.kernel(&conv_src(), "channel_sum", &[R, W], false);
    gpu.dispatch(&kern, &[dy, db], &[n as u32, k as u32, p as u32, accumulate as u32], [k as u32, 1, 1])
}

fn pool_src() -> Source {
    src("pool", include_str!("../../shaders/pool.wgsl"))
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
    fn params(&self) -> [u32; 8] {
        [self.planes, self.h, self.w, self.oh(), self.ow(), self.k, self.stride, self.pad].map(|x| x as u32)
    }
}

pub fn maxpool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, arg: &Tensor, g: &PoolGeom) -> Result<Dispatch> {
    ensure!(g.pad < g.k, "maxpool padding {} must be smaller than the window {}", g.pad, g.k);
    let n = g.planes * g.oh() * g.ow();
    ensure!(g.planes * g.h * g.w <= x.len && n <= y.len && n <= arg.len, "maxpool out of range");
    let k = gpu.kernel(&pool_src(), "maxpool_forward", &[R, W, W], false);
    gpu.dispatch(&k, &[x, y, arg], &g.params(), grid1d(n, 256))
}

pub fn maxpool_backward(gpu: &Gpu, dy: &Tensor, arg: &Tensor, dx: &Tensor, g: &PoolGeom) -> Result<Dispatch> {
    ensure!(g.pad < g.k && g.planes * g.h * g.w <= dx.len, "maxpool backward out of range");
    let k = gpu.kernel(&pool_src(), "maxpool_backward", &[R, R, W], false);
    gpu.dispatch(&k, &[dy, arg, dx], &g.params(), grid1d(g.planes * g.h, 256))
}

pub fn avgpool_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, planes: usize, hw: usize) -> Result<Dispatch> {
    ensure!(planes * hw <= x.len && planes <= y.len, "avgpool out of range");
    let k = gpu.kernel(&pool_src(), "avgpool_forward", &[R, W], false);
    gpu.dispatch(&k, &[x, y], &[planes as u32, hw as u32, 0, 0], grid1d(planes, 64))
}

pub fn avgpool_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor, planes: usize, hw: usize) -> Result<Dispatch> {
    ensure!(planes <= dy.len && planes * hw <= dx.len, "avgpool backward out of range");
    let k = gpu.kernel(&pool_src(), "avgpool_backward", &[R, W], false);
    gpu.dispatch(&k, &[dy, dx], &[planes as u32, hw as u32, 0, 0], grid1d(planes * hw, 256))
}

fn act_src() -> Source {
    src("activation", include_str!("../../shaders/activation.wgsl"))
}

pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, n: usize) -> Result<Dispatch> {
    ensure!(n <= x.len && n <= y.len, "relu out of range");
    let k = gpu.kernel(&act_src(), "relu_forward", &[R, W], false);
    gpu.dispatch(&k, &[x, y], &[n as u32, 0, 0, 0], grid1d(n, 256))
}

pub fn relu_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor, n: usize) -> Result<Dispatch> {
    ensure!(n <= dy.len && n <= y.len && n <= dx.len, "relu backward out of range");
    let k = gpu.kernel(&act_src(), "relu_backward", &[R, R, W], false);
    gpu.dispatch(&k, &[dy, y, dx], &[n as u32, 0, 0, 0], grid1d(n, 256))
}

fn xent_src() -> Source {
    src("softmax_xent", include_str!("../../shaders/softmax_xent.wgsl"))
}

/// Loss and dlogits for a (batch, classes) logit block; `stats` gets (loss, correct) per row.
/// `distill` holds [alpha, temperature]: with alpha > 0 the loss mixes in distillation from the
/// teacher logits in `teacher` (same layout as `logits`); alpha = 0 is plain cross-entropy.
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    hyper: &Tensor,
    teacher: &Tensor,
    distill: &Tensor,
    dlogits: &Tensor,
    stats: &Tensor,
    batch: usize,
    classes: usize,
) -> Result<Dispatch> {
    ensure!(batch * classes <= logits.len && batch <= labels.len && 2 * batch <= stats.len, "softmax_xent out of range");
    ensure!(batch * classes <= teacher.len && distill.len >= 2, "softmax_xent: teacher logits or distillation parameters too short");
    let k = gpu.kernel(&xent_src(), "softmax_xent", &[R, R, R, R, R, W, W], false);
    gpu.dispatch(&k, &[logits, labels, hyper, teacher, distill, dlogits, stats], &[batch as u32, classes as u32, 0, 0], [batch.div_ceil(64) as u32, 1, 1])
}

/// Slots of the per-step loss ring in the metrics buffer (after the two running sums).
pub const LOSS_RING: usize = 64;

/// metrics[0] += Σ loss, metrics[1] += Σ correct, metrics[2 + hyper[3]] = this batch's Σ loss.
pub fn accumulate_metrics(gpu: &Gpu, stats: &Tensor, hyper: &Tensor, metrics: &Tensor, batch: usize) -> Result<Dispatch> {
    ensure!(metrics.len >= 2 + LOSS_RING && hyper.len >= 4, "metrics buffer too small");
    let k = gpu.kernel(&xent_src(), "accumulate_metrics", &[R, R, W], false);
    gpu.dispatch(&k, &[stats, hyper, metrics], &[batch as u32, 0, 0, 0], [1, 1, 1])
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    weight_decay: f32,
    _p: [u32; 2],
}

/// Momentum SGD step on one parameter tensor; with `mask`, pruned entries stay exactly zero.
pub fn sgd(gpu: &Gpu, grad: &Tensor, hyper: &Tensor, w: &Tensor, v: &Tensor, mask: Option<&Tensor>, weight_decay: f32) -> Result<Dispatch> {
    let n = w.len;
    ensure!(grad.len >= n && v.len >= n, "sgd buffers disagree");
    let s = src("sgd", include_str!("../../shaders/sgd.wgsl"));
    let p = SgdParams { n: n as u32, weight_decay, _p: [0; 2] };
    match mask {
        None => {
            let k = gpu.kernel(&s, "sgd", &[R, R, W, W], false);
            gpu.dispatch(&k, &[grad, hyper, w, v], &p, grid1d(n, 256))
        }
        Some(m) => {
            ensure!(m.len >= n, "mask shorter than its weights");
            let k = gpu.kernel(&s, "sgd_masked", &[R, R, R, W, W], false);
            gpu.dispatch(&k, &[grad, hyper, m, w, v], &p, grid1d(n, 256))
        }
    }
}
