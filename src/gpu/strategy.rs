//! Kernel strategies as data (DESIGN.md, "Kernels for GPUs as well as lavapipe"): one
//! configuration type per kernel family and pure functions from an adapter's description and a
//! shape to a configuration. Nothing here touches wgpu beyond reading its adapter description, so
//! tests select for invented adapters (tests/strategy.rs) and run what they chose on lavapipe.
//!
//! Two kinds of matrix-multiply kernels live side by side:
//! - register tiles (`Tile`, shaders/gemm.wgsl and conv_gemm.wgsl): 8-thread workgroups, up to
//!   25×32 outputs a thread, no workgroup memory, no barrier. Right for CPU drivers (lavapipe),
//!   where a barrier is costly and registers are plentiful.
//! - workgroup-memory tiles (`SharedTile`, shaders/tiled.wgsl): 64–128 threads stage A and B
//!   tiles in `var<workgroup>`, each thread owns 4×4 or 8×4 outputs. Right for GPUs, whose warps
//!   are 32–64 lanes and whose threads have at most 255 registers.
//!
//! Vector width is 4 in every variant: operands are packed with rows padded to multiples of 4 and
//! read as vec4 (`VECTOR_WIDTH`).

use anyhow::{bail, Result};

use super::conv::ConvGeom;
use super::gemm::{split_count, Tile};

/// Every kernel reads its packed operands as vec4.
pub const VECTOR_WIDTH: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    IntegratedGpu,
    DiscreteGpu,
    VirtualGpu,
    Other,
}

/// What selection knows of an adapter: wgpu's `AdapterInfo` and `Limits` reduced to plain data,
/// so invented adapters can be written down in tests.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterDesc {
    pub name: String,
    pub driver: String,
    pub kind: DeviceKind,
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa for lavapipe).
    pub vendor: u32,
    pub subgroup_min: u32,
    pub subgroup_max: u32,
    pub max_invocations: u32,
    pub max_size: [u32; 3],
    pub max_workgroup_bytes: u32,
    pub max_groups_per_dim: u32,
    pub max_storage_buffers: u32,
    /// Subgroup operations (wgpu's SUBGROUP feature) are enabled on the device.
    pub subgroups: bool,
}

impl AdapterDesc {
    pub fn from_wgpu(info: &wgpu::AdapterInfo, limits: &wgpu::Limits, features: wgpu::Features) -> AdapterDesc {
        AdapterDesc {
            name: info.name.clone(),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            kind: match info.device_type {
                wgpu::DeviceType::Cpu => DeviceKind::Cpu,
                wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
                wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu,
                wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu,
                wgpu::DeviceType::Other => DeviceKind::Other,
            },
            vendor: info.vendor,
            subgroup_min: info.subgroup_min_size,
            subgroup_max: info.subgroup_max_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            max_size: [limits.max_compute_workgroup_size_x, limits.max_compute_workgroup_size_y, limits.max_compute_workgroup_size_z],
            max_workgroup_bytes: limits.max_compute_workgroup_storage_size,
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers: limits.max_storage_buffers_per_shader_stage,
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        }
    }

    /// CPU drivers (lavapipe) keep today's register-tiled kernels.
    pub fn is_cpu(&self) -> bool {
        self.kind == DeviceKind::Cpu
    }

    /// Workgroups a launch needs to keep the device busy. wgpu does not report compute units,
    /// so this is by device type: a large discrete GPU has 100+ multiprocessors holding two or
    /// more workgroups each, an integrated one 8–32.
    pub fn fill_groups(&self) -> usize {
        match self.kind {
            DeviceKind::Cpu => 1,
            DeviceKind::DiscreteGpu => 256,
            DeviceKind::IntegratedGpu => 32,
            DeviceKind::VirtualGpu | DeviceKind::Other => 64,
        }
    }

    /// Whether a workgroup of `wg` threads using `bytes` of workgroup memory is within limits.
    pub fn check(&self, wg: [u32; 2], bytes: u32) -> Result<()> {
        let threads = wg[0] * wg[1];
        if threads > self.max_invocations || wg[0] > self.max_size[0] || wg[1] > self.max_size[1] {
            bail!("a {}×{} workgroup exceeds {}'s limits ({} invocations, {}×{})", wg[0], wg[1], self.name, self.max_invocations, self.max_size[0], self.max_size[1]);
        }
        if bytes > self.max_workgroup_bytes {
            bail!("{bytes} bytes of workgroup memory exceed {}'s limit of {}", self.name, self.max_workgroup_bytes);
        }
        Ok(())
    }
}

/// A workgroup-memory tile (shaders/tiled.wgsl): a `wx × wy` workgroup computes a block of
/// `wy·tm` rows × `4·wx·tn4` columns, each thread `tm` rows × `tn4` vec4s, stepping K by `bk`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SharedTile {
    pub tm: u32,
    pub tn4: u32,
    pub wx: u32,
    pub wy: u32,
    pub bk: u32,
}

impl SharedTile {
    pub fn threads(&self) -> u32 {
        self.wx * self.wy
    }
    pub fn bm(&self) -> u32 {
        self.wy * self.tm
    }
    pub fn bn(&self) -> u32 {
        4 * self.wx * self.tn4
    }
    /// Workgroup memory: the A and B tiles, and for the convolution the decoded column table
    /// of one K step and the receptive-field origins of the block's pixels (vec4<i32> each).
    pub fn bytes(&self, conv: bool) -> u32 {
        let tiles = 4 * self.bk * (self.bm() + self.bn());
        tiles + if conv { 16 * self.bk + 3 * 4 * self.bn() } else { 0 }
    }
}

/// The matrix-multiply kernel of a GEMM or an implicit-GEMM convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Matmul {
    Register(Tile),
    Workgroup(SharedTile),
}

impl Matmul {
    /// Workgroup shape `[x, y]`.
    pub fn workgroup(&self) -> [u32; 2] {
        match self {
            Matmul::Register(t) => [t.wx, t.wy],
            Matmul::Workgroup(s) => [s.wx, s.wy],
        }
    }
    pub fn threads(&self) -> u32 {
        let [x, y] = self.workgroup();
        x * y
    }
    /// Output rows × columns one workgroup computes.
    pub fn block(&self) -> (usize, usize) {
        match self {
            Matmul::Register(t) => ((t.wy * t.tm) as usize, (4 * t.wx * t.tn4) as usize),
            Matmul::Workgroup(s) => (s.bm() as usize, s.bn() as usize),
        }
    }
    pub fn bytes(&self, conv: bool) -> u32 {
        match self {
            Matmul::Register(_) => 0,
            Matmul::Workgroup(s) => s.bytes(conv),
        }
    }
    /// Workgroups of an m × n output (n in columns, not vec4s).
    pub fn groups(&self, m: usize, n: usize) -> (usize, usize) {
        let (bm, bn) = self.block();
        (n.next_multiple_of(4).div_ceil(bn), m.div_ceil(bm))
    }
    /// "register 16×(4·4) in 8×1" or "workgroup 64×64 k16, 8×(4·1) in 16×8".
    pub fn name(&self) -> String {
        match self {
            Matmul::Register(t) => format!("register {}×(4·{}) in {}×{}", t.tm, t.tn4, t.wx, t.wy),
            Matmul::Workgroup(s) => format!("workgroup {}×{} k{}, {}×(4·{}) in {}×{}", s.bm(), s.bn(), s.bk, s.tm, s.tn4, s.wx, s.wy),
        }
    }
}

/// GEMM and convolution forward: the kernel and the K slices of a split-K launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulConfig {
    pub kernel: Matmul,
    pub split: usize,
}

/// Weight gradient (`conv_wgrad`): its register tile and how many pixel slices it is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WgradConfig {
    pub tile: Tile,
    pub split: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DgradAlgo {
    /// At stride 1 and "same" padding: the forward convolution over dY with flipped taps.
    AsConv,
    /// `conv_dgrad`: a gather of dY over each input pixel's valid taps.
    Gather,
}

/// The data-gradient gather's kernel and tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// `conv_dgrad` (conv_gemm.wgsl): lanes own images, 4·tn4 each, interleaved by wx; a thread
    /// owns tm channels; a workgroup one input pixel. Right for CPU drivers.
    Images(Tile),
    /// `conv_dgrad_pixels` (dgrad_pixels.wgsl): lanes own neighbouring pixels of one image, wx
    /// of them, × wy channel groups of tm (tn4 unused, 1). Coalesced loads for GPUs.
    Pixels(Tile),
}

impl Gather {
    pub fn tile(&self) -> Tile {
        match self {
            Gather::Images(t) | Gather::Pixels(t) => *t,
        }
    }

    /// Workgroups over `g`.
    pub fn groups(&self, g: &ConvGeom) -> [usize; 3] {
        match self {
            Gather::Images(t) => [g.h * g.w, g.c.div_ceil((t.tm * t.wy) as usize), g.n.div_ceil((t.wx * 4 * t.tn4) as usize)],
            Gather::Pixels(t) => [(g.h * g.w).div_ceil(t.wx as usize), g.c.div_ceil((t.tm * t.wy) as usize), g.n],
        }
    }
}

/// Data gradient: the algorithm, and the gather where it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DgradConfig {
    pub algo: DgradAlgo,
    pub gather: Gather,
}

/// Grid-stride reductions and element-wise kernels: threads per workgroup and the most
/// workgroups a launch gets (the grid-stride loop covers the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceConfig {
    pub threads: u32,
    pub max_groups: usize,
}

/// Workgroup-memory tiles selection may choose, largest first: 64×64 at 8×4 a thread (128
/// threads), 32×64 and 32×32 at 4×4 (128 and 64 threads).
pub const SHARED_TILES: [SharedTile; 3] = [
    SharedTile { tm: 8, tn4: 1, wx: 16, wy: 8, bk: 16 },
    SharedTile { tm: 4, tn4: 1, wx: 16, wy: 8, bk: 16 },
    SharedTile { tm: 4, tn4: 1, wx: 8, wy: 8, bk: 16 },
];

/// The largest workgroup-memory tile that fits `a` and still launches `fill_groups` workgroups
/// for an m × n output; else the one launching the most. A long K (≥ 1024) takes K steps of 32
/// where the memory allows. `None` if no tile fits the adapter.
fn shared_tile(a: &AdapterDesc, m: usize, n: usize, kp: usize, conv: bool) -> Option<Matmul> {
    let fits = |s: &SharedTile| {
        let groups = Matmul::Workgroup(*s).groups(m, n);
        s.threads().is_multiple_of(a.subgroup_max.max(1))
            && a.check([s.wx, s.wy], s.bytes(conv)).is_ok()
            && groups.0 <= a.max_groups_per_dim as usize
            && groups.1 <= a.max_groups_per_dim as usize
    };
    let count = |s: &SharedTile| {
        let (x, y) = Matmul::Workgroup(*s).groups(m, n);
        x * y
    };
    let ok: Vec<SharedTile> = SHARED_TILES.iter().copied().filter(fits).collect();
    let mut best = *ok.iter().find(|s| count(s) >= a.fill_groups()).or_else(|| ok.iter().max_by_key(|s| count(s)))?;
    let deep = SharedTile { bk: 32, ..best };
    if kp >= 1024 && a.check([deep.wx, deep.wy], deep.bytes(conv)).is_ok() {
        best = deep;
    }
    Some(Matmul::Workgroup(best))
}

/// K slices that bring `groups` workgroups up to the adapter's fill, each slice at least
/// `min_k` long, at most 128 slices (or the adapter's grid z limit). Small outputs only get
/// here, so the partial sums stay small (LeNet conv1's weight gradient: 128 × 20 × 25 floats).
fn split_for(a: &AdapterDesc, groups: usize, k: usize, min_k: usize) -> usize {
    if groups >= a.fill_groups() {
        return 1;
    }
    a.fill_groups().div_ceil(groups).min(k / min_k.max(1)).clamp(1, 128.min(a.max_groups_per_dim as usize))
}

/// C [m][np] = A [m][kp] · B [kp][np]; `may_split`: the caller can take a split-K launch.
pub fn select_gemm(a: &AdapterDesc, m: usize, np: usize, kp: usize, may_split: bool) -> MatmulConfig {
    if a.is_cpu() {
        let split = if may_split { split_count(m, np, kp) } else { 1 };
        return MatmulConfig { kernel: Matmul::Register(Tile::for_shape(m, np)), split };
    }
    let Some(kernel) = shared_tile(a, m, np, kp, false) else {
        return MatmulConfig { kernel: Matmul::Register(Tile::for_shape(m, np)), split: 1 };
    };
    let (x, y) = kernel.groups(m, np);
    let split = if may_split { split_for(a, x * y, kp, 256) } else { 1 };
    MatmulConfig { kernel, split }
}

/// Implicit-GEMM convolution forward of `m` filters over `n` columns (pixels of a chunk) and
/// `kp` packed kept columns.
pub fn select_conv(a: &AdapterDesc, m: usize, n: usize, kp: usize) -> MatmulConfig {
    let kernel = match a.is_cpu() {
        true => None,
        false => shared_tile(a, m, n, kp, true),
    };
    MatmulConfig { kernel: kernel.unwrap_or(Matmul::Register(Tile::for_conv(m, n))), split: 1 }
}

/// Weight gradient dW [k][kcp] over `pixels` (a chunk's, padded per image to 4). On GPUs a
/// 64-thread register tile of 4×4 outputs a thread, narrowed to the columns there are, and
/// split-K up to the adapter's fill.
pub fn select_wgrad(a: &AdapterDesc, k: usize, kcp: usize, pixels: usize) -> WgradConfig {
    if a.is_cpu() {
        return WgradConfig { tile: Tile::for_conv(k, kcp), split: split_count(k, kcp, pixels) };
    }
    let wx = ((kcp / 4).next_power_of_two() as u32).clamp(1, 16);
    let threads = 64u32.max(a.subgroup_max).min(a.max_invocations);
    let tile = Tile { tm: 4, tn4: 1, wx, wy: (threads / wx).max(1) };
    let (x, y) = Matmul::Register(tile).groups(k, kcp);
    WgradConfig { tile, split: split_for(a, x * y, pixels / 4, 64) }
}

/// Data gradient of `g`: as a forward convolution over dY where stride 1 and "same" padding
/// allow (the caller checks `conv::transposed`), else the gather. CPU drivers gather with lanes
/// over images (`Tile::for_dgrad`); GPUs with lanes over pixels: 4 channels a thread, a row of
/// up to 64 pixels (at least a subgroup) and enough channel groups for 128 threads.
pub fn select_dgrad(a: &AdapterDesc, g: &ConvGeom) -> DgradConfig {
    let gather = if a.is_cpu() {
        Gather::Images(Tile::for_dgrad(g.c))
    } else {
        let wx = ((g.h * g.w).next_power_of_two() as u32).clamp(a.subgroup_max.clamp(8, 64), 64);
        let wy = (128 / wx).min(a.max_invocations / wx).max(1);
        Gather::Pixels(Tile { tm: 4, tn4: 1, wx, wy })
    };
    DgradConfig { algo: DgradAlgo::AsConv, gather }
}

/// Workgroups per channel of the batch-norm training reductions over `m` values a channel: one
/// on CPU drivers; on GPUs enough to bring `c` channels up to the adapter's fill, each slice at
/// least 1024 values (16 per lane), at most 256 or the grid limit.
pub fn select_bn_slices(a: &AdapterDesc, c: usize, m: usize) -> usize {
    if a.is_cpu() {
        return 1;
    }
    a.fill_groups().div_ceil(c.max(1)).min(m / 1024).clamp(1, 256.min(a.max_groups_per_dim as usize))
}

/// Whether batch-norm reductions sum each lane group with subgroup operations: on GPUs that have
/// them; CPU drivers keep the workgroup-memory tree, as they ran before subgroups existed here.
pub fn select_bn_subgroups(a: &AdapterDesc) -> bool {
    a.subgroups && !a.is_cpu()
}

pub fn select_reduce(a: &AdapterDesc) -> ReduceConfig {
    // a CPU driver pays a fixed cost per workgroup: 64 ran LeNet-5 training 1.1–1.4× faster
    // than 1024 on lavapipe's two cores
    ReduceConfig { threads: 256, max_groups: if a.is_cpu() { 64 } else { 1024 } }
}

/// The adapter a `Gpu` plans for, and the overrides read once from the environment when it was
/// opened: `AUTOCOMPRESS_GEMM_TILE=tm,tn4,wx,wy` (every GEMM and convolution on that register
/// tile) and `AUTOCOMPRESS_DGRAD=gather|conv`, both for A/B timing.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategy {
    pub target: AdapterDesc,
    pub tile: Option<Tile>,
    pub dgrad: Option<DgradAlgo>,
}

impl Strategy {
    pub fn new(target: AdapterDesc) -> Strategy {
        Strategy { target, tile: None, dgrad: None }
    }

    /// Reads the overrides; a malformed value is an error naming the variable.
    pub fn from_env(target: AdapterDesc) -> Result<Strategy> {
        let mut s = Strategy::new(target);
        if let Ok(v) = std::env::var("AUTOCOMPRESS_GEMM_TILE") {
            let f: Vec<u32> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if f.len() != 4 || f.contains(&0) || v.split(',').count() != 4 {
                bail!("AUTOCOMPRESS_GEMM_TILE={v}: expected four positive integers tm,tn4,wx,wy (e.g. 16,4,8,1)");
            }
            s.tile = Some(Tile { tm: f[0], tn4: f[1], wx: f[2], wy: f[3] });
        }
        if let Ok(v) = std::env::var("AUTOCOMPRESS_DGRAD") {
            s.dgrad = Some(match v.as_str() {
                "gather" => DgradAlgo::Gather,
                "conv" => DgradAlgo::AsConv,
                _ => bail!("AUTOCOMPRESS_DGRAD={v}: expected 'gather' or 'conv'"),
            });
        }
        Ok(s)
    }

    pub fn gemm(&self, m: usize, np: usize, kp: usize, may_split: bool) -> MatmulConfig {
        let c = select_gemm(&self.target, m, np, kp, may_split);
        match self.tile {
            Some(t) => MatmulConfig { kernel: Matmul::Register(t), split: if may_split { split_count(m, np, kp) } else { 1 } },
            None => c,
        }
    }

    pub fn conv(&self, m: usize, n: usize, kp: usize) -> MatmulConfig {
        match self.tile {
            Some(t) => MatmulConfig { kernel: Matmul::Register(t), split: 1 },
            None => select_conv(&self.target, m, n, kp),
        }
    }

    pub fn wgrad(&self, k: usize, kcp: usize, pixels: usize) -> WgradConfig {
        match self.tile {
            Some(t) => WgradConfig { tile: t, split: split_count(k, kcp, pixels) },
            None => select_wgrad(&self.target, k, kcp, pixels),
        }
    }

    pub fn dgrad(&self, g: &ConvGeom) -> DgradConfig {
        let c = select_dgrad(&self.target, g);
        DgradConfig { algo: self.dgrad.unwrap_or(c.algo), ..c }
    }

    pub fn reduce(&self) -> ReduceConfig {
        select_reduce(&self.target)
    }

    pub fn bn_slices(&self, c: usize, m: usize) -> usize {
        select_bn_slices(&self.target, c, m)
    }
}
