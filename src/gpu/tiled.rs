//! Launchers for `shaders/tiled.wgsl`, the workgroup-memory variants of the GEMM and of the
//! implicit-GEMM convolution forward (see `strategy::SharedTile`). They take the same parameters
//! as their register-tiled twins, whose launchers (gemm.rs, conv.rs) check every range and pick
//! the variant; only the kernel and its grid differ.

use anyhow::Result;

use super::conv::ConvGemmParams;
use super::context::{Gpu, Tensor};
use super::gemm::GemmParams;
use super::kernel::{Access, Dispatch, Source};
use super::strategy::{Matmul, SharedTile};

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

impl SharedTile {
    /// tiled.wgsl with this tile's constants filled in.
    pub fn source(&self) -> Source {
        let text = include_str!("../../shaders/tiled.wgsl")
            .replace("{{TM}}", &self.tm.to_string())
            .replace("{{TN4}}", &self.tn4.to_string())
            .replace("{{WX}}", &self.wx.to_string())
            .replace("{{WY}}", &self.wy.to_string())
            .replace("{{BK}}", &self.bk.to_string());
        Source::new("tiled", &text)
    }

    /// Refuses a tile the shader cannot run (K step not a multiple of 4, an empty dimension).
    fn check_shape(&self) -> Result<()> {
        anyhow::ensure!(
            self.bk.is_multiple_of(4) && self.bk > 0 && self.tm > 0 && self.tn4 > 0 && self.wx > 0 && self.wy > 0,
            "workgroup tile {self:?} is malformed: every field positive and bk a multiple of 4"
        );
        Ok(())
    }
}

impl Gpu {
    /// Refuses a kernel whose workgroup or workgroup memory exceeds this adapter's limits, before
    /// wgpu sees it (whose handler would panic).
    pub fn check_matmul(&self, k: &Matmul, conv: bool) -> Result<()> {
        self.adapter.check(k.workgroup(), k.bytes(conv))
    }
}

/// `gemm_tiled` on the buffers of gemm.wgsl's `gemm` (a, b, bias, c) with its parameters.
pub(super) fn gemm_tiled(gpu: &Gpu, s: SharedTile, bufs: [&Tensor; 4], p: &GemmParams, groups: [u32; 3]) -> Result<Dispatch> {
    s.check_shape()?;
    gpu.check_matmul(&Matmul::Workgroup(s), false)?;
    let k = gpu.kernel(&s.source(), "gemm_tiled", &[R, R, R, W], false)?;
    gpu.dispatch(&k, &bufs, p, groups)
}

/// `conv_tiled` on the buffers of conv_gemm.wgsl's `conv_gemm` (w, x, tbl, bias, y).
pub(super) fn conv_tiled(gpu: &Gpu, s: SharedTile, bufs: [&Tensor; 5], p: &ConvGemmParams, groups: [u32; 3]) -> Result<Dispatch> {
    s.check_shape()?;
    gpu.check_matmul(&Matmul::Workgroup(s), true)?;
    let k = gpu.kernel(&s.source(), "conv_tiled", &[R, R, R, R, W], false)?;
    gpu.dispatch(&k, &bufs, p, groups)
}
