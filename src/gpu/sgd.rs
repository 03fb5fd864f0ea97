//! Launcher of shaders/sgd.wgsl: momentum SGD with weight decay and an optional 0/1 mask.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

wgsl_params! {
    Params = "sgd.wgsl" :: Params { n: u32, weight_decay: f32, _p0: u32, _p1: u32 }
}

/// Momentum SGD step on one parameter tensor; with `mask`, pruned entries stay exactly zero.
pub fn sgd(gpu: &Gpu, grad: &Tensor, hyper: &Tensor, w: &Tensor, v: &Tensor, mask: Option<&Tensor>, weight_decay: f32) -> Result<Dispatch> {
    let n = w.len;
    ensure!(grad.len >= n && v.len >= n, "sgd buffers disagree");
    let s = Source::new("sgd", include_str!("../../shaders/sgd.wgsl"));
    let p = Params { n: n as u32, weight_decay, ..Params::default() };
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
