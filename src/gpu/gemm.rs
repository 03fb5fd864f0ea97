//! Launchers for `shaders/gemm.wgsl`: the register-tiled GEMM and the `pack` gather.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{grid1d, Access, Dispatch, Source};

/// Register-tile shape of the GEMM: each thread computes `tm` rows × `4·tn4` columns, a workgroup
/// is `wx × wy` threads. With `wy = 1` the rows a thread reads from A are the same for every lane,
/// so CPU drivers (lavapipe) load them once and broadcast: measured on the vgg_mid GEMM on two
/// cores, 16×(4·2) tiles in 16-thread workgroups ran 3–5× faster than 4×8 tiles in 8×8 groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub tm: u32,
    pub tn4: u32,
    pub wx: u32,
    pub wy: u32,
}

impl Tile {
    pub const DEFAULT: Tile = Tile { tm: 16, tn4: 4, wx: 8, wy: 1 };
    /// For narrow GEMMs (linear layers: one column per image) a 128-wide tile idles half its lanes.
    pub const NARROW: Tile = Tile { tm: 16, tn4: 2, wx: 8, wy: 1 };

    /// `AUTOCOMPRESS_GEMM_TILE=tm,tn4,wx,wy` overrides the choice (for benchmarking variants).
    pub fn for_shape(m: usize, np: usize) -> Tile {
        if let Ok(s) = std::env::var("AUTOCOMPRESS_GEMM_TILE") {
            let v: Vec<u32> = s.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if v.len() == 4 && v.iter().all(|&x| x > 0) {
                return Tile { tm: v[0], tn4: v[1], wx: v[2], wy: v[3] };
            }
        }
        // Rows a thread owns: the whole of a short GEMM, else about 16–25, split evenly so the last
        // row tile is not mostly idle (LeNet conv2: 50 = 3 × 17 ran 2× faster than 4 × 16, and
        // 2 × 25 faster again: 0.8× the time of 3 × 17).
        let tm = if m % 16 == 0 {
            16
        } else {
            let tiles = m.div_ceil(25);
            m.div_ceil(tiles) as u32
        };
        let base = if np <= 256 { Tile::NARROW } else { Tile::DEFAULT };
        Tile { tm, ..base }
    }

    /// The implicit-GEMM convolutions (conv_gemm.wgsl) decode a column-table entry and its index
    /// arithmetic per k, shared by all of a thread's columns, so wide outputs take twice the
    /// columns per thread (LeNet conv2 forward and weight gradient on lavapipe: 0.7–0.85× the
    /// time of 4·4 columns).
    /// Narrow ones (weight gradients of layers with few columns: LeNet conv1 has 25) take only
    /// as many columns per thread as there are, so lanes do not all repeat a clamped column.
    pub fn for_conv(m: usize, np: usize) -> Tile {
        let t = Tile::for_shape(m, np);
        if std::env::var("AUTOCOMPRESS_GEMM_TILE").is_ok() {
            return t;
        }
        if np > 256 {
            return Tile { tn4: 8, ..t };
        }
        Tile { tn4: (np / 4).div_ceil(t.wx as usize).clamp(1, t.tn4 as usize) as u32, ..t }
    }

    /// The data-gradient gather (`conv_dgrad`): TM channels as for a GEMM of C rows, 4·2 images
    /// per lane, 8 lanes, so a workgroup covers a batch of 64 at one pixel.
    pub fn for_dgrad(c: usize) -> Tile {
        Tile { tm: Tile::for_shape(c, 0).tm, tn4: 2, wx: 8, wy: 1 }
    }

    /// The implicit-GEMM convolution (shaders/conv_gemm.wgsl) with this tile.
    pub fn conv_source(&self) -> Source {
        self.conv_source_dy4(false)
    }

    /// As `conv_source`, with conv_wgrad reading dY as vec4s (`dy4`: every plane 4-aligned).
    pub fn conv_source_dy4(&self, dy4: bool) -> Source {
        self.fill("conv_gemm", &include_str!("../../shaders/conv_gemm.wgsl").replace("{{DY4}}", &dy4.to_string()))
    }

    fn fill(&self, family: &'static str, text: &str) -> Source {
        let text = text
            .replace("{{TM}}", &self.tm.to_string())
            .replace("{{TN4}}", &self.tn4.to_string())
            .replace("{{WX}}", &self.wx.to_string())
            .replace("{{WY}}", &self.wy.to_string());
        Source::new(family, &text)
    }

    pub fn source(&self) -> Source {
        self.fill("gemm", include_str!("../../shaders/gemm.wgsl"))
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    m: u32,
    n: u32,
    kp4: u32,
    np4: u32,
    a_off4: u32,
    b_off4: u32,
    c_off: u32,
    c_rs: u32,
    c_bs: u32,
    c_cs: u32,
    n_inner: u32,
    n_valid: u32,
    accumulate: u32,
    bias_mode: u32,
    bias_off: u32,
    k_split4: u32,
    split_stride: u32,
    _p: [u32; 3],
}

/// Where and how the GEMM writes C (see the index map in gemm.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct OutMap {
    pub off: usize,
    pub rs: usize,
    pub bs: usize,
    pub cs: usize,
    pub n_inner: usize,
    pub n_valid: usize,
    pub accumulate: bool,
}

impl OutMap {
    /// Plain row-major C with row stride `ld`.
    pub fn rows(ld: usize) -> OutMap {
        OutMap { off: 0, rs: ld, bs: 0, cs: 1, n_inner: u32::MAX as usize, n_valid: u32::MAX as usize, accumulate: false }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Bias<'a> {
    None,
    /// bias[off + m]: one per output row (conv filters, linear outputs in the transposed form).
    PerRow(&'a Tensor, usize),
}

/// A GEMM problem on packed operands: A is [m][kp] at element offset `a_off`, B is [kp][np] at `b_off`.
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    pub a: &'a Tensor,
    pub a_off: usize,
    pub b: &'a Tensor,
    pub b_off: usize,
    pub m: usize,
    /// Columns of C actually computed (≤ np).
    pub n: usize,
    pub kp: usize,
    pub np: usize,
}

pub fn gemm(gpu: &Gpu, g: &Gemm, bias: Bias, c: &Tensor, out: OutMap) -> Result<Dispatch> {
    gemm_launch(gpu, g, bias, c, out, 1)
}

/// Column and row tile counts of a GEMM launch.
fn tiles(m: usize, np: usize) -> (usize, usize, Tile) {
    grid(m, np, Tile::for_shape(m, np))
}

fn grid(m: usize, np: usize, tile: Tile) -> (usize, usize, Tile) {
    ((np / 4).div_ceil((tile.wx * tile.tn4) as usize), m.div_ceil((tile.wy * tile.tm) as usize), tile)
}

/// How many K-slices a GEMM should be split into: weight gradients have tiny outputs and long
/// reductions (LeNet conv1: 20×28 outputs over 36,864 pixels), which leave cores idle.
pub fn split_count(m: usize, np: usize, kp: usize) -> usize {
    let (cols, rows, _) = tiles(m, np);
    let groups = cols * rows;
    if groups >= 32 || kp < 1024 {
        return 1;
    }
    (64 / groups).clamp(1, kp / 512).min(32)
}

/// C (+)= A·B for an unblocked output map (`n_inner` beyond every column), with the reduction
/// split over `split_count` workgroup slices written to `partial`, then summed by `split_reduce`.
pub fn gemm_split_k(gpu: &Gpu, g: &Gemm, c: &Tensor, out: OutMap, partial: &Tensor) -> Result<Vec<Dispatch>> {
    let splits = split_count(g.m, g.np, g.kp);
    if splits == 1 {
        return Ok(vec![gemm(gpu, g, Bias::None, c, out)?]);
    }
    ensure!(out.n_inner >= g.np && out.n_valid >= g.n, "split-K needs an unblocked output map");
    let len = g.m * g.n;
    let last = out.off + (g.m - 1) * out.rs + (g.n - 1) * out.cs;
    ensure!(partial.len >= splits * len && last < c.len, "split-K buffers too small");
    let part = OutMap { off: 0, accumulate: false, ..OutMap::rows(g.n) };
    Ok(vec![gemm_launch(gpu, g, Bias::None, partial, part, splits)?, split_reduce(gpu, partial, c, g.m, g.n, splits, out)?])
}

/// c (+)= the sum of the `splits` [m][n] slices of `partial`, written through `out`.
fn split_reduce(gpu: &Gpu, partial: &Tensor, c: &Tensor, m: usize, n: usize, splits: usize, out: OutMap) -> Result<Dispatch> {
    let k = gpu.kernel(&Tile::DEFAULT.source(), "split_reduce", &[Access::Read, Access::ReadWrite], true);
    let p = [m, n, splits, out.off, out.rs, out.cs, out.accumulate as usize, 0].map(|x| x as u32);
    gpu.dispatch(&k, &[partial, c], &p, grid1d(m * n, 256))
}

fn gemm_launch(gpu: &Gpu, g: &Gemm, bias: Bias, c: &Tensor, out: OutMap, splits: usize) -> Result<Dispatch> {
    // The kernel runs without bounds checks, so every range it touches is checked here.
    ensure!(g.kp % 4 == 0 && g.np % 4 == 0 && g.a_off % 4 == 0 && g.b_off % 4 == 0, "gemm operands not vec4-aligned");
    ensure!(out.n_inner % 4 == 0 || out.n_inner >= g.np, "gemm output blocks must be vec4-aligned");
    ensure!(g.m > 0 && g.n > 0 && g.n <= g.np, "gemm shape {}x{} (np {}) is empty or inconsistent", g.m, g.n, g.np);
    ensure!(g.a_off + g.m * g.kp <= g.a.len && g.b_off + g.kp * g.np <= g.b.len, "gemm operand out of range");
    let last_n = g.n - 1;
    let inner = (last_n % out.n_inner).min(out.n_valid.saturating_sub(1));
    let split_stride = g.m * g.n;
    let last = out.off + (g.m - 1) * out.rs + (last_n / out.n_inner) * out.bs + inner * out.cs + (splits - 1) * split_stride;
    ensure!(last < c.len, "gemm output index {last} beyond C of {} elements", c.len);
    if let Bias::PerRow(t, off) = bias {
        ensure!(off + g.m <= t.len, "gemm bias out of range");
    }
    let (cols, rows, tile) = tiles(g.m, g.np);
    let k = gpu.kernel(&tile.source(), "gemm", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite], true);
    let (bias_t, bias_mode, bias_off) = match bias {
        Bias::None => (g.a, 0, 0),
        Bias::PerRow(t, off) => (t, 1, off),
    };
    let p = GemmParams {
        m: g.m as u32,
        n: g.n as u32,
        kp4: (g.kp / 4) as u32,
        np4: (g.np / 4) as u32,
        a_off4: (g.a_off / 4) as u32,
        b_off4: (g.b_off / 4) as u32,
        c_off: out.off as u32,
        c_rs: out.rs as u32,
        c_bs: out.bs as u32,
        c_cs: out.cs as u32,
        n_inner: out.n_inner.min(u32::MAX as usize) as u32,
        n_valid: out.n_valid.min(u32::MAX as usize) as u32,
        accumulate: out.accumulate as u32,
        bias_mode,
        bias_off: bias_off as u32,
        k_split4: (g.kp / 4).div_ceil(splits) as u32,
        split_stride: split_stride as u32,
        _p: [0; 3],
    };
    gpu.dispatch(&k, &[g.a, g.b, bias_t, c], &p, [cols as u32, rows as u32, splits as u32])
}

/// A strided gather into a zero-padded row-major [rp][cp] block (see `pack` in gemm.wgsl).
#[derive(Clone, Copy, Debug)]
pub struct Pack {
    pub rows: usize,
    pub cols: usize,
    pub rp: usize,
    pub cp: usize,
    pub r_in: usize,
    pub r_valid: usize,
    pub c_in: usize,
    pub c_valid: usize,
    pub s_off: usize,
    pub s_rb: usize,
    pub s_rs: usize,
    pub s_cb: usize,
    pub s_cs: usize,
    pub d_off: usize,
}

impl Pack {
    /// src is a [rows][cols] matrix with strides (rs, cs); pad to multiples of 4 where asked.
    pub fn matrix(rows: usize, cols: usize, rs: usize, cs: usize, pad_rows: bool) -> Pack {
        let big = u32::MAX as usize;
        Pack {
            rows,
            cols,
            rp: if pad_rows { rows.next_multiple_of(4) } else { rows },
            cp: cols.next_multiple_of(4),
            r_in: big,
            r_valid: big,
            c_in: big,
            c_valid: big,
            s_off: 0,
            s_rb: 0,
            s_rs: rs,
            s_cb: 0,
            s_cs: cs,
            d_off: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    v: [u32; 16],
}

pub fn pack(gpu: &Gpu, src: &Tensor, dst: &Tensor, p: &Pack) -> Result<Dispatch> {
    ensure!(p.d_off + p.rp * p.cp <= dst.len, "pack destination too small");
    let (ro, ri) = (p.rows.saturating_sub(1) / p.r_in, (p.rows.saturating_sub(1) % p.r_in).min(p.r_valid.saturating_sub(1)));
    let (co, ci) = (p.cols.saturating_sub(1) / p.c_in, (p.cols.saturating_sub(1) % p.c_in).min(p.c_valid.saturating_sub(1)));
    let last = p.s_off + ro * p.s_rb + ri * p.s_rs + co * p.s_cb + ci * p.s_cs;
    ensure!(p.rows == 0 || p.cols == 0 || last < src.len, "pack reads index {last} beyond a source of {} elements", src.len);
    let k = gpu.kernel(&Tile::DEFAULT.source(), "pack", &[Access::Read, Access::ReadWrite], false);
    let c = |x: usize| x.min(u32::MAX as usize) as u32;
    let params = PackParams {
        v: [
            c(p.rows),
            c(p.cols),
            c(p.rp),
            c(p.cp),
            c(p.r_in),
            c(p.r_valid),
            c(p.c_in),
            c(p.c_valid),
            c(p.s_off),
            c(p.s_rb),
            c(p.s_rs),
            c(p.s_cb),
            c(p.s_cs),
            c(p.d_off),
            0,
            0,
        ],
    };
    gpu.dispatch(&k, &[src, dst], &params, grid1d(p.rp * p.cp, 256))
}

/// Convolution forward as an implicit GEMM (shaders/conv_gemm.wgsl) for images n0..n0+chunk:
/// `w` is the packed A operand [K][kcp], `tbl` the column table of conv2d.wgsl.
#[allow(clippy::too_many_arguments)]
pub fn conv_gemm(
    gpu: &Gpu,
    g: &super::ops::ConvGeom,
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
    let (cols, rows, tile) = grid(g.k, n, Tile::for_conv(g.k, n));
    let k = gpu.kernel(&tile.conv_source(), "conv_gemm", &[Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite], true);
    let p = [
        g.k,
        n,
        kcp / 4,
        kc,
        n0 * g.k * ohw,
        ohw,
        g.k * ohw,
        ohwp,
        g.ow(),
        g.h * g.w,
        g.w,
        g.h,
        g.c * g.h * g.w,
        g.stride,
        g.pad,
        n0,
    ]
    .map(|v| v as u32);
    gpu.dispatch(&k, &[w, x, tbl, bias, y], &p, [cols as u32, rows as u32, 1])
}

/// Convolution weight gradient as an implicit GEMM (`conv_wgrad` in shaders/conv_gemm.wgsl):
/// dw [K][kc] (+)= dY · colᵀ over images n0..n0+chunk, reading x and dy (N, K, OH·OW) in place.
/// Like `gemm_split_k`, a long pixel axis is split over slices of `partial`, then summed.
/// dy is bound twice, the second time read as vec4s where every plane is 4-aligned (see DY4).
#[allow(clippy::too_many_arguments)]
pub fn conv_wgrad(
    gpu: &Gpu,
    g: &super::ops::ConvGeom,
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
    let splits = split_count(g.k, kcp, pixels);
    ensure!(splits == 1 || partial.len >= splits * g.k * kc, "conv_wgrad split-K buffer too small");
    let (cols, rows, tile) = grid(g.k, kcp, Tile::for_conv(g.k, kcp));
    let dy4 = ohw % 4 == 0;
    let k = gpu.kernel(&tile.conv_source_dy4(dy4), "conv_wgrad", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read], true);
    let direct = splits == 1;
    let p = [
        g.k,
        kc,
        pixels / 4,
        (pixels / 4).div_ceil(splits),
        ohw,
        ohwp,
        g.ow(),
        g.h * g.w,
        g.w,
        g.h,
        g.c * g.h * g.w,
        g.stride,
        g.pad,
        n0,
        (direct && accumulate) as usize,
        g.k * kc,
    ]
    .map(|v| v as u32);
    let out = if direct { dw } else { partial };
    let launch = gpu.dispatch(&k, &[dy, x, tbl, out, dy], &p, [cols as u32, rows as u32, splits as u32])?;
    if direct {
        return Ok(vec![launch]);
    }
    Ok(vec![launch, split_reduce(gpu, partial, dw, g.k, kc, splits, OutMap { accumulate, ..OutMap::rows(kc) })?])
}

/// Convolution data gradient (`conv_dgrad` in shaders/conv_gemm.wgsl), any stride and padding:
/// dx (N, C, H, W) = the gather of dy (N, K, OH·OW) over the valid taps of each input pixel,
/// with `wt` the [C][R·S][kp] weights of `ops::dgrad_weights`. Overwrites dx.
pub fn conv_dgrad(gpu: &Gpu, g: &super::ops::ConvGeom, wt: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<Dispatch> {
    let (kp, ohw) = (g.k.next_multiple_of(4), g.ohw());
    ensure!(g.n > 0 && g.crs() * kp <= wt.len, "conv_dgrad weights too short");
    ensure!(g.n * g.k * ohw <= dy.len && g.n * g.c * g.h * g.w <= dx.len, "conv_dgrad output gradient or input gradient too short");
    ensure!(dy.len < (1 << 32) && dx.len < (1 << 32), "conv_dgrad indexes with 32-bit offsets");
    let tile = Tile::for_dgrad(g.c);
    let k = gpu.kernel(&tile.conv_source(), "conv_dgrad", &[Access::Read, Access::Read, Access::ReadWrite], true);
    let p = [g.c, g.k, kp / 4, g.n, g.h, g.w, g.oh(), g.ow(), g.r, g.s, g.stride, g.pad, ohw, g.k * ohw, g.c * g.h * g.w, g.h * g.w]
        .map(|v| v as u32);
    let groups = [g.h * g.w, g.c.div_ceil((tile.tm * tile.wy) as usize), g.n.div_ceil((tile.wx * 4 * tile.tn4) as usize)];
    gpu.dispatch(&k, &[wt, dy, dx], &p, groups.map(|v| v as u32))
}
