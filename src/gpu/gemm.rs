//! Launchers for `shaders/gemm.wgsl`: the register-tiled GEMM and the `pack` gather.

use anyhow::{ensure, Result};

use super::context::{Gpu, Tensor};
use super::kernel::{Access, Dispatch, Source};
use super::params::wgsl_params;
use super::strategy::{Matmul, MatmulConfig};
use super::tiled;

/// Register-tile shape of the GEMM: each thread computes `tm` rows × `4·tn4` columns, a workgroup
/// is `wx × wy` threads. With `wy = 1` the rows a thread reads from A are the same for every lane,
/// so CPU drivers (lavapipe) load them once and broadcast: measured on the vgg_mid GEMM on two
/// cores, 16×(4·2) tiles in 16-thread workgroups ran 3–5× faster than 4×8 tiles in 8×8 groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// Today's register tile for an m × np GEMM (the CPU adapters' choice; the environment's
    /// AUTOCOMPRESS_GEMM_TILE override lives in `strategy::Strategy`).
    pub fn for_shape(m: usize, np: usize) -> Tile {
        // Rows a thread owns: the whole of a short GEMM, else about 16–25, split evenly so the last
        // row tile is not mostly idle (LeNet conv2: 50 = 3 × 17 ran 2× faster than 4 × 16, and
        // 2 × 25 faster again: 0.8× the time of 3 × 17).
        let tm = if m.is_multiple_of(16) {
            16
        } else {
            let tiles = m.div_ceil(25);
            m.div_ceil(tiles) as u32
        };
        let base = if np <= 256 { Tile::NARROW } else { Tile::DEFAULT };
        Tile { tm, ..base }
    }

    pub(super) fn fill(&self, family: &'static str, text: &str) -> Source {
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

wgsl_params! {
    /// Also tiled.wgsl's `gemm_tiled`, which takes the same parameters.
    GemmParams = "gemm.wgsl" :: Params, "tiled.wgsl" :: Params {
        m: u32, n: u32, kp4: u32, np4: u32,
        a_off4: u32, b_off4: u32, c_off: u32, c_rs: u32,
        c_bs: u32, c_cs: u32, n_inner: u32, n_valid: u32,
        accumulate: u32, bias_mode: u32, bias_off: u32, k_split4: u32,
        split_stride: u32, b_rs4: u32, b_seg4: u32, b_bs4: u32,
    }
    ReduceParams = "gemm.wgsl" :: ReduceParams { m: u32, n: u32, splits: u32, off: u32, rs: u32, cs: u32, accumulate: u32, _p: u32 }
    /// See `pack` in gemm.wgsl: a strided gather into a zero-padded block.
    PackParams = "gemm.wgsl" :: PackParams {
        rows: u32, cols: u32, rp: u32, cp: u32,
        r_in: u32, r_valid: u32, c_in: u32, c_valid: u32,
        s_off: u32, s_rb: u32, s_rs: u32, s_cb: u32,
        s_cs: u32, d_off: u32, _p0: u32, _p1: u32,
    }
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

/// C (+)= A·B (+ bias) with the kernel the GPU's strategy selects for this shape.
pub fn gemm(gpu: &Gpu, g: &Gemm, bias: Bias, c: &Tensor, out: OutMap) -> Result<Dispatch> {
    gemm_with(gpu, gpu.strategy.gemm(g.m, g.np, g.kp, false).kernel, g, bias, c, out)
}

/// `gemm` with the kernel given (tests force every variant the selection can produce).
pub fn gemm_with(gpu: &Gpu, kernel: Matmul, g: &Gemm, bias: Bias, c: &Tensor, out: OutMap) -> Result<Dispatch> {
    gemm_launch(gpu, kernel, g, None, bias, c, out, 1)
}

/// B read in place as blocks of columns: B[k][j] = b[b_off + k·row_stride + (j / cols)·stride +
/// j % cols]. A batch of [K][P] images (dY of a convolution) is then a [K][batch·P] matrix with
/// cols = P, stride = K·P and row_stride = P, with no packing pass. All three are multiples of 4.
#[derive(Clone, Copy, Debug)]
pub struct Blocks {
    pub cols: usize,
    pub stride: usize,
    pub row_stride: usize,
}

/// `gemm_with` on a B laid out in `blocks` (its `np` columns are whole blocks).
pub fn gemm_blocks(gpu: &Gpu, kernel: Matmul, g: &Gemm, blocks: Blocks, c: &Tensor, out: OutMap) -> Result<Dispatch> {
    gemm_launch(gpu, kernel, g, Some(blocks), Bias::None, c, out, 1)
}

/// Column and row tile counts of a GEMM launch.
fn tiles(m: usize, np: usize) -> (usize, usize, Tile) {
    grid(m, np, Tile::for_shape(m, np))
}

pub(super) fn grid(m: usize, np: usize, tile: Tile) -> (usize, usize, Tile) {
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
    gemm_split_k_with(gpu, gpu.strategy.gemm(g.m, g.np, g.kp, true), g, c, out, partial)
}

/// `gemm_split_k` with the kernel and split count given; `partial` holds `cfg.split` slices.
pub fn gemm_split_k_with(gpu: &Gpu, cfg: MatmulConfig, g: &Gemm, c: &Tensor, out: OutMap, partial: &Tensor) -> Result<Vec<Dispatch>> {
    let splits = cfg.split.max(1);
    if splits == 1 {
        return Ok(vec![gemm_with(gpu, cfg.kernel, g, Bias::None, c, out)?]);
    }
    ensure!(out.n_inner >= g.np && out.n_valid >= g.n, "split-K needs an unblocked output map");
    let len = g.m * g.n;
    let last = out.off + (g.m - 1) * out.rs + (g.n - 1) * out.cs;
    ensure!(partial.len >= splits * len && last < c.len, "split-K buffers too small");
    let part = OutMap { off: 0, accumulate: false, ..OutMap::rows(g.n) };
    Ok(vec![gemm_launch(gpu, cfg.kernel, g, None, Bias::None, partial, part, splits)?, split_reduce(gpu, partial, c, g.m, g.n, splits, out)?])
}

/// c (+)= the sum of the `splits` [m][n] slices of `partial`, written through `out`.
pub(super) fn split_reduce(gpu: &Gpu, partial: &Tensor, c: &Tensor, m: usize, n: usize, splits: usize, out: OutMap) -> Result<Dispatch> {
    let k = gpu.kernel(&Tile::DEFAULT.source(), "split_reduce", &[Access::Read, Access::ReadWrite], true)?;
    let u = |x: usize| x as u32;
    let p = ReduceParams { m: u(m), n: u(n), splits: u(splits), off: u(out.off), rs: u(out.rs), cs: u(out.cs), accumulate: out.accumulate as u32, _p: 0 };
    gpu.dispatch(&k, &[partial, c], &p, gpu.grid1d(m * n, 256))
}

#[allow(clippy::too_many_arguments)]
fn gemm_launch(gpu: &Gpu, kernel: Matmul, g: &Gemm, blocks: Option<Blocks>, bias: Bias, c: &Tensor, out: OutMap, splits: usize) -> Result<Dispatch> {
    // The kernel runs without bounds checks, so every range it touches is checked here.
    ensure!(g.kp.is_multiple_of(4) && g.np.is_multiple_of(4) && g.a_off.is_multiple_of(4) && g.b_off.is_multiple_of(4), "gemm operands not vec4-aligned");
    ensure!(out.n_inner.is_multiple_of(4) || out.n_inner >= g.np, "gemm output blocks must be vec4-aligned");
    ensure!(g.m > 0 && g.n > 0 && g.n <= g.np, "gemm shape {}x{} (np {}) is empty or inconsistent", g.m, g.n, g.np);
    let b = blocks.unwrap_or(Blocks { cols: g.np, stride: 0, row_stride: g.np });
    ensure!(b.cols.is_multiple_of(4) && b.stride.is_multiple_of(4) && b.row_stride.is_multiple_of(4) && b.cols > 0 && g.np.is_multiple_of(b.cols), "gemm B blocks {b:?} not vec4-aligned or not whole for np {}", g.np);
    let b_last = g.b_off + (g.kp - 1) * b.row_stride + (g.np / b.cols - 1) * b.stride + b.cols - 1;
    ensure!(g.a_off + g.m * g.kp <= g.a.len && b_last < g.b.len, "gemm operand out of range");
    let last_n = g.n - 1;
    let inner = (last_n % out.n_inner).min(out.n_valid.saturating_sub(1));
    let split_stride = g.m * g.n;
    let last = out.off + (g.m - 1) * out.rs + (last_n / out.n_inner) * out.bs + inner * out.cs + (splits - 1) * split_stride;
    ensure!(last < c.len, "gemm output index {last} beyond C of {} elements", c.len);
    if let Bias::PerRow(t, off) = bias {
        ensure!(off + g.m <= t.len, "gemm bias out of range");
    }
    let (cols, rows) = kernel.groups(g.m, g.np);
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
        b_rs4: (b.row_stride / 4) as u32,
        b_seg4: (b.cols / 4) as u32,
        b_bs4: (b.stride / 4) as u32,
    };
    let groups = [cols as u32, rows as u32, splits as u32];
    match kernel {
        Matmul::Register(tile) => {
            gpu.check_matmul(&kernel, false)?;
            let k = gpu.kernel(&tile.source(), "gemm", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite], true)?;
            gpu.dispatch(&k, &[g.a, g.b, bias_t, c], &p, groups)
        }
        Matmul::Workgroup(s) => tiled::gemm_tiled(gpu, s, [g.a, g.b, bias_t, c], &p, groups),
    }
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

pub fn pack(gpu: &Gpu, src: &Tensor, dst: &Tensor, p: &Pack) -> Result<Dispatch> {
    ensure!(p.d_off + p.rp * p.cp <= dst.len, "pack destination too small");
    let (ro, ri) = (p.rows.saturating_sub(1) / p.r_in, (p.rows.saturating_sub(1) % p.r_in).min(p.r_valid.saturating_sub(1)));
    let (co, ci) = (p.cols.saturating_sub(1) / p.c_in, (p.cols.saturating_sub(1) % p.c_in).min(p.c_valid.saturating_sub(1)));
    let last = p.s_off + ro * p.s_rb + ri * p.s_rs + co * p.s_cb + ci * p.s_cs;
    ensure!(p.rows == 0 || p.cols == 0 || last < src.len, "pack reads index {last} beyond a source of {} elements", src.len);
    let k = gpu.kernel(&Tile::DEFAULT.source(), "pack", &[Access::Read, Access::ReadWrite], false)?;
    let c = |x: usize| x.min(u32::MAX as usize) as u32;
    let params = PackParams {
        rows: c(p.rows),
        cols: c(p.cols),
        rp: c(p.rp),
        cp: c(p.cp),
        r_in: c(p.r_in),
        r_valid: c(p.r_valid),
        c_in: c(p.c_in),
        c_valid: c(p.c_valid),
        s_off: c(p.s_off),
        s_rb: c(p.s_rb),
        s_rs: c(p.s_rs),
        s_cb: c(p.s_cb),
        s_cs: c(p.s_cs),
        d_off: c(p.d_off),
        _p0: 0,
        _p1: 0,
    };
    gpu.dispatch(&k, &[src, dst], &params, gpu.grid1d(p.rp * p.cp, 256))
}
