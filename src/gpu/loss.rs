//! Launchers of shaders/softmax_xent.wgsl: softmax cross-entropy (optionally mixed with
//! distillation from teacher logits) and the running loss and accuracy sums.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn src() -> Source {
    Source::new("softmax_xent", include_str!("../../shaders/softmax_xent.wgsl"))
}

wgsl_params! {
    XentParams = "softmax_xent.wgsl" :: Params { batch: u32, classes: u32, _p0: u32, _p1: u32 }
    MetricsParams = "softmax_xent.wgsl" :: SumParams { batch: u32, _p0: u32, _p1: u32, _p2: u32 }
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
    let k = gpu.kernel(&src(), "softmax_xent", &[R, R, R, R, R, W, W], false)?;
    let p = XentParams { batch: batch as u32, classes: classes as u32, ..XentParams::default() };
    gpu.dispatch(&k, &[logits, labels, hyper, teacher, distill, dlogits, stats], &p, [batch.div_ceil(64) as u32, 1, 1])
}

/// Slots of the per-step loss ring in the metrics buffer (after the two running sums).
pub const LOSS_RING: usize = 64;

/// metrics[0] += Σ loss, metrics[1] += Σ correct, metrics[2 + hyper[3]] = this batch's Σ loss.
pub fn accumulate_metrics(gpu: &Gpu, stats: &Tensor, hyper: &Tensor, metrics: &Tensor, batch: usize) -> Result<Dispatch> {
    ensure!(metrics.len >= 2 + LOSS_RING && hyper.len >= 4, "metrics buffer too small");
    let k = gpu.kernel(&src(), "accumulate_metrics", &[R, R, W], false)?;
    gpu.dispatch(&k, &[stats, hyper, metrics], &MetricsParams { batch: batch as u32, ..MetricsParams::default() }, [1, 1, 1])
}
