//! Launcher of shaders/sgd.wgsl: momentum SGD with weight decay and an optional 0/1 mask, over
//! flat parameter buffers (`model::store`) in one dispatch.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

wgsl_params! {
    Params = "sgd.wgsl" :: Params { n: u32, n_decay: u32, weight_decay: f32, _p0: u32 }
}

/// One momentum SGD step over `w` (all of a network's parameters, or one tensor): the first
/// `decayed` elements take `weight_decay`, the rest none; with `mask`, entries where it is 0
/// stay exactly zero.
#[allow(clippy::too_many_arguments)]
pub fn sgd(gpu: &Gpu, grad: &Tensor, hyper: &Tensor, w: &Tensor, v: &Tensor, mask: Option<&Tensor>, weight_decay: f32, decayed: usize) -> Result<Dispatch> {
    let n = w.len;
    ensure!(grad.len >= n && v.len >= n && decayed <= n, "sgd buffers disagree");
    let s = Source::new("sgd", include_str!("../../shaders/sgd.wgsl"));
    let p = Params { n: n as u32, n_decay: decayed as u32, weight_decay, ..Params::default() };
    match mask {
        None => {
            let k = gpu.kernel(&s, "sgd", &[R, R, W, W], false)?;
            gpu.dispatch(&k, &[grad, hyper, w, v], &p, gpu.grid1d(n, 256))
        }
        Some(m) => {
            ensure!(m.len >= n, "mask shorter than its weights");
            let k = gpu.kernel(&s, "sgd_masked", &[R, R, R, W, W], false)?;
            gpu.dispatch(&k, &[grad, hyper, m, w, v], &p, gpu.grid1d(n, 256))
        }
    }
}
