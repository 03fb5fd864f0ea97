//! Launchers of the convolution kernels: the implicit-GEMM forward, weight gradient and data
//! gradient (shaders/conv_gemm.wgsl, register tiles shared with gemm.wgsl) and their helpers in
//! shaders/conv2d.wgsl (explicit im2col, the data gradient's weight layout, bias gradients).

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::gemm::{self, split_reduce, OutMap, Tile};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;
use super::strategy::{Gather, Matmul, WgradConfig};
use super::tiled;

const R: Access = Access::Read;
const W: Access = Access::ReadWrite;

fn conv2d_src() -> Source {
    Source::new("conv2d", include_str!("../../shaders/conv2d.wgsl"))
}

/// One convolution's geometry for a batch of `n` images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// Each channel's kept columns, for `col2im`: C + 1 offsets, then the pairs (j, r << 8 | s) of
/// the kept columns j = (c, r, s), grouped by channel.
pub fn channel_table(g: &ConvGeom, kept: &[u32]) -> Result<Vec<u32>> {
    ensure!(g.r < 256 && g.s < 256, "conv kernel too large for the channel table");
    let mut by_channel: Vec<Vec<(u32, u32)>> = vec![Vec::new(); g.c];
    for (j, &col) in kept.iter().enumerate() {
        let col = col as usize;
        ensure!(col < g.crs(), "kept column {col} out of range (layer has {} columns)", g.crs());
        let (c, r, s) = (col / (g.r * g.s), (col / g.s) % g.r, col % g.s);
        by_channel[c].push((j as u32, ((r as u32) << 8) | s as u32));
    }
    let mut t = vec![0u32];
    for list in &by_channel {
        t.push(t[t.len() - 1] + list.len() as u32);
    }
    t.extend(by_channel.iter().flatten().flat_map(|&(j, rs)| [j, rs]));
    Ok(t)
}

/// dX of images n0..n0+chunk from `dcol` [kc][cols] (cols = chunk·ohwp) and `channel_table`:
/// see `col2im` in conv2d.wgsl. Overwrites those images of dx.
#[allow(clippy::too_many_arguments)]
pub fn col2im(gpu: &Gpu, dcol: &Tensor, ctab: &Tensor, dx: &Tensor, g: &ConvGeom, kc: usize, n0: usize, chunk: usize) -> Result<Dispatch> {
    let (chw, cols) = (g.c * g.h * g.w, chunk * g.ohwp());
    ensure!(chunk > 0 && n0 + chunk <= g.n && (n0 + chunk) * chw <= dx.len, "col2im images out of range");
    ensure!(kc * cols <= dcol.len && ctab.len == g.c + 1 + 2 * kc, "col2im column gradients or channel table do not match {kc} kept columns");
    let k = gpu.kernel(&conv2d_src(), "col2im", &[R, R, W], false)?;
    let p = Col2imParams {
        c: u(g.c), h: u(g.h), w: u(g.w), oh: u(g.oh()),
        ow: u(g.ow()), ohwp: u(g.ohwp()), stride: u(g.stride), pad: u(g.pad),
        n0: u(n0), chunk: u(chunk), cols: u(cols), chw: u(chw),
    };
    // one workgroup per image plane
    gpu.dispatch(&k, &[dcol, ctab, dx], &p, gpu.grid_items(chunk * g.c)?)
}

/// Whether `dgrad_columns` packs dY into its scratch buffer: dY [n][K][ohw] is already the
/// GEMM's B, [K][chunk·ohw] in blocks of one image, where its planes and channels need no
/// padding to vec4s.
pub fn dgrad_columns_packs(g: &ConvGeom) -> bool {
    !g.ohw().is_multiple_of(4) || !g.k.is_multiple_of(4)
}

/// A column-pruned layer's data gradient, whose work shrinks with the columns kept: Wᵀ [kc][Kp]
/// packed into `wt_scratch` once, then per chunk of images dcol = Wᵀ·dY (a GEMM of kc rows, dY
/// read in place, or first packed to [Kp][chunk·ohwp] in `dy_scratch` where its planes or
/// channels are not whole vec4s) in `dcol`, and `col2im` into dx.
#[allow(clippy::too_many_arguments)]
pub fn dgrad_columns(gpu: &Gpu, g: &ConvGeom, kc: usize, chunk: usize, w: &Tensor, dy: &Tensor, ctab: &Tensor, wt_scratch: &Tensor, dy_scratch: &Tensor, dcol: &Tensor, dx: &Tensor) -> Result<Vec<Dispatch>> {
    let (kp, ohw, ohwp) = (g.k.next_multiple_of(4), g.ohw(), g.ohwp());
    let mut plan = vec![gemm::pack(gpu, w, wt_scratch, &gemm::Pack::matrix(kc, g.k, 1, kc, false))?];
    let in_place = !dgrad_columns_packs(g);
    for n0 in (0..g.n).step_by(chunk) {
        let c = chunk.min(g.n - n0);
        let cols = c * ohwp;
        let kernel = gpu.strategy.gemm(kc, cols, kp, false).kernel;
        if in_place {
            let prod = gemm::Gemm { a: wt_scratch, a_off: 0, b: dy, b_off: n0 * g.k * ohw, m: kc, n: cols, kp, np: cols };
            let blocks = gemm::Blocks { cols: ohw, stride: g.k * ohw, row_stride: ohw };
            plan.push(gemm::gemm_blocks(gpu, kernel, &prod, blocks, dcol, OutMap::rows(cols))?);
        } else {
            let all = u32::MAX as usize;
            let b = gemm::Pack { rows: g.k, cols, rp: kp, cp: cols, r_in: all, r_valid: all, c_in: ohwp, c_valid: ohw, s_off: n0 * g.k * ohw, s_rb: 0, s_rs: ohw, s_cb: g.k * ohw, s_cs: 1, d_off: 0 };
            plan.push(gemm::pack(gpu, dy, dy_scratch, &b)?);
            let prod = gemm::Gemm { a: wt_scratch, a_off: 0, b: dy_scratch, b_off: 0, m: kc, n: cols, kp, np: cols };
            plan.push(gemm::gemm_with(gpu, kernel, &prod, gemm::Bias::None, dcol, OutMap::rows(cols))?);
        }
        plan.push(col2im(gpu, dcol, ctab, dx, g, kc, n0, c)?);
    }
    Ok(plan)
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


impl Tile {
    /// The implicit-GEMM convolutions (conv_gemm.wgsl) decode a column-table entry and its index
    /// arithmetic per k, shared by all of a thread's columns, so wide outputs take twice the
    /// columns per thread (LeNet conv2 forward and weight gradient on lavapipe: 0.7–0.85× the
    /// time of 4·4 columns).
    /// Narrow ones (weight gradients of layers with few columns: LeNet conv1 has 25) take only
    /// as many columns per thread as there are, so lanes do not all repeat a clamped column.
    /// Wide ones take up to 8 vec4s a thread, in as few column tiles as that allows, each only
    /// as wide as covers the columns evenly: vgg_mid's weight gradient at 4× fewer columns (288)
    /// ran 2 tiles of 160 instead of 256 + 256 (the second seven-eighths idle).
    pub fn for_conv(m: usize, np: usize) -> Tile {
        let t = Tile::for_shape(m, np);
        if np > 256 {
            let per = 4 * t.wx as usize;
            let tiles = np.div_ceil(8 * per);
            return Tile { tn4: np.div_ceil(tiles * per) as u32, ..t };
        }
        Tile { tn4: (np / 4).div_ceil(t.wx as usize).clamp(1, t.tn4 as usize) as u32, ..t }
    }

    /// The data-gradient gather (`conv_dgrad`): TM channels as for a GEMM of C rows, 4·2 images
    /// per lane, 8 lanes, so a workgroup covers a batch of 64 at one pixel.
    pub fn for_dgrad(c: usize) -> Tile {
        Tile { tm: Tile::for_shape(c, 0).tm, tn4: 2, wx: 8, wy: 1 }
    }

    /// The pixel-lane data-gradient gather (shaders/dgrad_pixels.wgsl) with this tile.
    pub fn dgrad_pixels_source(&self) -> Source {
        self.fill("dgrad_pixels", include_str!("../../shaders/dgrad_pixels.wgsl"))
    }

    /// The implicit-GEMM convolution (shaders/conv_gemm.wgsl) with this tile.
    pub fn conv_source(&self) -> Source {
        self.conv_source_dy4(false)
    }

    /// As `conv_source`, with conv_wgrad reading dY as vec4s (`dy4`: every plane 4-aligned).
    pub fn conv_source_dy4(&self, dy4: bool) -> Source {
        self.fill("conv_gemm", &include_str!("../../shaders/conv_gemm.wgsl").replace("{{DY4}}", &dy4.to_string()))
    }

}

wgsl_params! {
    /// `Params` of conv2d.wgsl's `im2col`.
    Im2colParams = "conv2d.wgsl" :: Params {
        c: u32, h: u32, w: u32, oh: u32,
        ow: u32, ohwp: u32, stride: u32, pad: u32,
        r: u32, s: u32, kc: u32, kcp: u32,
        n0: u32, chunk: u32, _p0: u32, _p1: u32,
    }
    DgradWeightsParams = "conv2d.wgsl" :: DwParams { c: u32, k: u32, kc: u32, rs: u32, kp: u32, inv_off: u32, _p0: u32, _p1: u32 }
    ChannelSumParams = "conv2d.wgsl" :: SumParams { n: u32, k: u32, p: u32, accumulate: u32 }
    Col2imParams = "conv2d.wgsl" :: Col2imParams {
        c: u32, h: u32, w: u32, oh: u32,
        ow: u32, ohwp: u32, stride: u32, pad: u32,
        n0: u32, chunk: u32, cols: u32, chw: u32,
    }
    /// `Params` of conv_gemm.wgsl's `conv_gemm`, and `CParams` of tiled.wgsl's `conv_tiled`.
    ConvGemmParams = "conv_gemm.wgsl" :: Params, "tiled.wgsl" :: CParams {
        m: u32, n: u32, kp4: u32, kc: u32,
        c_off: u32, ohw: u32, c_bs: u32, ohwp: u32,
        ow: u32, hw: u32, w: u32, h: u32,
        chw: u32, stride: u32, pad: u32, n0: u32,
    }
    WgradParams = "conv_gemm.wgsl" :: WParams {
        m: u32, n: u32, t4: u32, k_split4: u32,
        ohw: u32, ohwp: u32, ow: u32, hw: u32,
        w: u32, h: u32, chw: u32, stride: u32,
        pad: u32, n0: u32, accumulate: u32, split_stride: u32,
    }
    DgradParams = "conv_gemm.wgsl" :: DParams, "dgrad_pixels.wgsl" :: DParams {
        c: u32, k: u32, kp4: u32, n: u32,
        h: u32, w: u32, oh: u32, ow: u32,
        r: u32, s: u32, stride: u32, pad: u32,
        ohw: u32, kohw: u32, chw: u32, hw: u32,
    }
}

/// The shaders index with u32: every launcher checks its ranges fit before narrowing.
fn u(x: usize) -> u32 {
    x as u32
}

/// Columns of images n0..n0+chunk into `col`: [kcp][chunk·ohwp].
#[allow(clippy::too_many_arguments)]
pub fn im2col(gpu: &Gpu, x: &Tensor, tbl: &Tensor, col: &Tensor, g: &ConvGeom, kc: usize, n0: usize, chunk: usize) -> Result<Dispatch> {
    let kcp = kc.next_multiple_of(4);
    ensure!(kcp * chunk * g.ohwp() <= col.len && (n0 + chunk) * g.c * g.h * g.w <= x.len, "im2col out of range");
    let k = gpu.kernel(&conv2d_src(), "im2col", &[R, R, W], true)?;
    let p = Im2colParams {
        c: u(g.c), h: u(g.h), w: u(g.w), oh: u(g.oh()),
        ow: u(g.ow()), ohwp: u(g.ohwp()), stride: u(g.stride), pad: u(g.pad),
        r: u(g.r), s: u(g.s), kc: u(kc), kcp: u(kcp),
        n0: u(n0), chunk: u(chunk), _p0: 0, _p1: 0,
    };
    gpu.dispatch(&k, &[x, tbl, col], &p, gpu.grid1d(kcp * chunk * g.oh(), 256))
}

/// The data-gradient weights `wt` [C][R·S][kp] (kp = K rounded up to 4) from `w` [K][kc] and
/// the column table: see `dgrad_weights` in conv2d.wgsl.
pub fn dgrad_weights(gpu: &Gpu, w: &Tensor, tbl: &Tensor, wt: &Tensor, g: &ConvGeom, kc: usize) -> Result<Dispatch> {
    let (rs, kp) = (g.r * g.s, g.k.next_multiple_of(4));
    ensure!(g.k * kc <= w.len && g.crs() * kp <= wt.len && kc + g.crs() <= tbl.len, "dgrad_weights out of range");
    let k = gpu.kernel(&conv2d_src(), "dgrad_weights", &[R, R, W], false)?;
    // the table's inverse map starts after its `kc` kept columns
    let p = DgradWeightsParams { c: u(g.c), k: u(g.k), kc: u(kc), rs: u(rs), kp: u(kp), inv_off: u(kc), _p0: 0, _p1: 0 };
    gpu.dispatch(&k, &[w, tbl, wt], &p, gpu.grid1d(g.crs() * kp, 256))
}

/// db[k] (+)= Σ_{n,p} dy[(n·K + k)·P + p]
pub fn channel_sum(gpu: &Gpu, dy: &Tensor, db: &Tensor, n: usize, k: usize, p: usize, accumulate: bool) -> Result<Dispatch> {
    ensure!(n * k * p <= dy.len && k <= db.len, "channel_sum out of range");
    let kern = gpu.kernel(&conv2d_src(), "channel_sum", &[R, W], false)?;
    gpu.dispatch(&kern, &[dy, db], &ChannelSumParams { n: u(n), k: u(k), p: u(p), accumulate: accumulate as u32 }, [u(k), 1, 1])
}

/// Convolution forward as an implicit GEMM (shaders/conv_gemm.wgsl) for images n0..n0+chunk:
/// `w` is the packed A operand [K][kcp], `tbl` the column table of conv2d.wgsl. The kernel is
/// the tuned or selected one for this shape (`Gpu::conv_kernel`).
#[allow(clippy::too_many_arguments)]
pub fn conv_gemm(gpu: &Gpu, g: &ConvGeom, kc: usize, n0: usize, chunk: usize, w: &Tensor, x: &Tensor, tbl: &Tensor, bias: &Tensor, y: &Tensor) -> Result<Dispatch> {
    let kernel = gpu.conv_kernel(g, kc, chunk)?;
    conv_gemm_with(gpu, kernel, g, kc, n0, chunk, w, x, tbl, bias, y)
}

/// `conv_gemm` with the kernel given: a register tile (conv_gemm.wgsl) or a workgroup-memory
/// tile (tiled.wgsl's `conv_tiled`).
#[allow(clippy::too_many_arguments)]
pub fn conv_gemm_with(
    gpu: &Gpu,
    kernel: Matmul,
    g: &ConvGeom,
    kc: usize,
    n0: usize,
    chunk: usize,
    w: &Tensor,
    x: &Tensor,
    tbl: &Tensor,
    bias: &Tensor,
    y: &Tensor,
) -> Result<Dispatch> {
    let (kcp, ohw, ohwp) = (kc.next_multiple_of(4), g.ohw(), g.ohwp());
    let n = chunk * ohwp;
    ensure!(chunk > 0 && n0 + chunk <= g.n, "conv_gemm chunk out of range");
    ensure!(g.k * kcp <= w.len && bias.len >= g.k && tbl.len >= kc, "conv_gemm weights, bias or table too short");
    ensure!((n0 + chunk) * g.c * g.h * g.w <= x.len && (n0 + chunk) * g.k * ohw <= y.len, "conv_gemm input or output too short");
    ensure!(x.len < (1 << 31), "conv_gemm indexes its input with 32-bit signed offsets");
    ensure!(kc > 0, "conv_gemm needs at least one kept column");
    let (cols, rows) = kernel.groups(g.k, n);
    let p = ConvGemmParams {
        m: u(g.k), n: u(n), kp4: u(kcp / 4), kc: u(kc),
        c_off: u(n0 * g.k * ohw), ohw: u(ohw), c_bs: u(g.k * ohw), ohwp: u(ohwp),
        ow: u(g.ow()), hw: u(g.h * g.w), w: u(g.w), h: u(g.h),
        chw: u(g.c * g.h * g.w), stride: u(g.stride), pad: u(g.pad), n0: u(n0),
    };
    let groups = [cols as u32, rows as u32, 1];
    match kernel {
        Matmul::Register(tile) => {
            gpu.check_matmul(&kernel, true)?;
            let k = gpu.kernel(&tile.conv_source(), "conv_gemm", &[Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite], true)?;
            gpu.dispatch(&k, &[w, x, tbl, bias, y], &p, groups)
        }
        Matmul::Workgroup(s) => tiled::conv_tiled(gpu, s, [w, x, tbl, bias, y], &p, groups),
    }
}

/// Convolution weight gradient as an implicit GEMM (`conv_wgrad` in shaders/conv_gemm.wgsl):
/// dw [K][kc] (+)= dY · colᵀ over images n0..n0+chunk, reading x and dy (N, K, OH·OW) in place.
/// Like `gemm_split_k`, a long pixel axis is split over slices of `partial`, then summed.
/// dy is bound twice, the second time read as vec4s where every plane is 4-aligned (see DY4).
/// The tile and split are the GPU's strategy's; `partial` holds `split` slices of [K][kc].
#[allow(clippy::too_many_arguments)]
pub fn conv_wgrad(gpu: &Gpu, g: &ConvGeom, kc: usize, n0: usize, chunk: usize, dy: &Tensor, x: &Tensor, tbl: &Tensor, dw: &Tensor, partial: &Tensor, accumulate: bool) -> Result<Vec<Dispatch>> {
    let cfg = gpu.strategy.wgrad(g.k, kc.next_multiple_of(4), chunk * g.ohwp());
    conv_wgrad_with(gpu, cfg, g, kc, n0, chunk, dy, x, tbl, dw, partial, accumulate)
}

/// `conv_wgrad` with the tile and split given.
#[allow(clippy::too_many_arguments)]
pub fn conv_wgrad_with(
    gpu: &Gpu,
    cfg: WgradConfig,
    g: &ConvGeom,
    kc: usize,
    n0: usize,
    chunk: usize,
    dy: &Tensor,
    x: &Tensor,
    tbl: &Tensor,
    dw: &Tensor,
    partial: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let (kcp, ohw, ohwp) = (kc.next_multiple_of(4), g.ohw(), g.ohwp());
    let pixels = chunk * ohwp;
    ensure!(chunk > 0 && n0 + chunk <= g.n && kc > 0, "conv_wgrad chunk out of range");
    ensure!(g.k * kc <= dw.len && tbl.len >= kc, "conv_wgrad gradient or table too short");
    ensure!((n0 + chunk) * g.c * g.h * g.w <= x.len && (n0 + chunk) * g.k * ohw <= dy.len, "conv_wgrad input or output gradient too short");
    ensure!(x.len < (1 << 31), "conv_wgrad indexes its input with 32-bit signed offsets");
    let splits = cfg.split.clamp(1, (pixels / 4).max(1));
    ensure!(splits == 1 || partial.len >= splits * g.k * kc, "conv_wgrad split-K buffer too small");
    let (cols, rows, tile) = gemm::grid(g.k, kcp, cfg.tile);
    gpu.check_matmul(&Matmul::Register(tile), false)?;
    let dy4 = ohw % 4 == 0;
    let k = gpu.kernel(&tile.conv_source_dy4(dy4), "conv_wgrad", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read], true)?;
    let direct = splits == 1;
    let p = WgradParams {
        m: u(g.k), n: u(kc), t4: u(pixels / 4), k_split4: u((pixels / 4).div_ceil(splits)),
        ohw: u(ohw), ohwp: u(ohwp), ow: u(g.ow()), hw: u(g.h * g.w),
        w: u(g.w), h: u(g.h), chw: u(g.c * g.h * g.w), stride: u(g.stride),
        pad: u(g.pad), n0: u(n0), accumulate: (direct && accumulate) as u32, split_stride: u(g.k * kc),
    };
    let out = if direct { dw } else { partial };
    let launch = gpu.dispatch(&k, &[dy, x, tbl, out, dy], &p, [cols as u32, rows as u32, splits as u32])?;
    if direct {
        return Ok(vec![launch]);
    }
    Ok(vec![launch, split_reduce(gpu, partial, dw, g.k, kc, splits, OutMap { accumulate, ..OutMap::rows(kc) })?])
}

/// Convolution data gradient as a gather, any stride and padding: dx (N, C, H, W) = the gather
/// of dy (N, K, OH·OW) over the valid taps of each input pixel, with `wt` the [C][R·S][kp]
/// weights of `dgrad_weights`. Overwrites dx. The kernel is the GPU's strategy's.
pub fn conv_dgrad(gpu: &Gpu, g: &ConvGeom, wt: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    conv_dgrad_with(gpu, gpu.strategy.dgrad(g).gather, g, wt, dy, dx)
}

/// `conv_dgrad` with the kernel given: `conv_dgrad` (conv_gemm.wgsl, lanes over images) or
/// `conv_dgrad_pixels` (dgrad_pixels.wgsl, lanes over pixels).
pub fn conv_dgrad_with(gpu: &Gpu, gather: Gather, g: &ConvGeom, wt: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let tile = gather.tile();
    let (kp, ohw) = (g.k.next_multiple_of(4), g.ohw());
    ensure!(g.n > 0 && g.crs() * kp <= wt.len, "conv_dgrad weights too short");
    ensure!(g.n * g.k * ohw <= dy.len && g.n * g.c * g.h * g.w <= dx.len, "conv_dgrad output gradient or input gradient too short");
    ensure!(dy.len < (1 << 32) && dx.len < (1 << 32), "conv_dgrad indexes with 32-bit offsets");
    gpu.check_matmul(&Matmul::Register(tile), false)?;
    let access = [Access::Read, Access::Read, Access::ReadWrite];
    let k = match gather {
        Gather::Images(t) => gpu.kernel(&t.conv_source(), "conv_dgrad", &access, true)?,
        Gather::Pixels(t) => gpu.kernel(&t.dgrad_pixels_source(), "conv_dgrad_pixels", &access, false)?,
    };
    let p = DgradParams {
        c: u(g.c), k: u(g.k), kp4: u(kp / 4), n: u(g.n),
        h: u(g.h), w: u(g.w), oh: u(g.oh()), ow: u(g.ow()),
        r: u(g.r), s: u(g.s), stride: u(g.stride), pad: u(g.pad),
        ohw: u(ohw), kohw: u(g.k * ohw), chw: u(g.c * g.h * g.w), hw: u(g.h * g.w),
    };
    let groups = gather.groups(g);
    ensure!(groups.iter().all(|&v| v <= gpu.adapter.max_groups_per_dim as usize), "conv_dgrad grid {groups:?} exceeds the adapter's {} workgroups per dimension", gpu.adapter.max_groups_per_dim);
    gpu.dispatch(&k, &[wt, dy, dx], &p, groups.map(|v| v as u32))
}
