//! `bench`: convolution forward throughput per shape, and training throughput.

use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

use crate::gpu::conv::{self, ConvGeom};
use crate::gpu::strategy::Matmul;
use crate::gpu::timing::Timer;
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::model::lower::{conv_chunk, conv_forward};
use crate::model::{Architecture, Hyper, Layer, Network, Shape, Weights};

/// A named convolution shape; `vgg_mid` is the shape the speed targets are stated on.
pub struct ConvShape {
    pub name: &'static str,
    pub g: ConvGeom,
}

pub fn shapes() -> Vec<ConvShape> {
    let c = |name, n, c, h, k, r, stride, pad| ConvShape { name, g: ConvGeom { n, c, h, w: h, k, r, s: r, stride, pad } };
    vec![
        c("lenet_conv1", 64, 1, 28, 20, 5, 1, 0),
        c("lenet_conv2", 64, 20, 12, 50, 5, 1, 0),
        c("vgg_early", 32, 64, 32, 64, 3, 1, 1),
        c("vgg_mid", 32, 128, 16, 128, 3, 1, 1),
        c("vgg_late", 32, 512, 4, 512, 3, 1, 1),
        c("resnet_down", 32, 64, 32, 128, 3, 2, 1),
        // ResNet-18's first 1×1 projection shortcut at CIFAR resolution
        c("resnet_shortcut", 32, 64, 32, 128, 1, 2, 0),
    ]
}

/// The JSON fields of a `ConvGeom` (the GPU layer's type knows nothing of serde).
#[derive(Serialize)]
#[serde(remote = "ConvGeom")]
struct GeomFields {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    r: usize,
    s: usize,
    stride: usize,
    pad: usize,
}

#[derive(Serialize, Debug)]
pub struct ConvResult {
    pub shape: String,
    pub variant: String,
    /// "im2col" (gather, then GEMM) or "implicit" (GEMM reading the input directly).
    pub algo: String,
    /// n, c, h, w, k, r, s, stride, pad as flat JSON fields.
    #[serde(flatten, with = "GeomFields")]
    pub geom: ConvGeom,
    /// Kept columns of the GEMM view (C·R·S when dense).
    pub kept: usize,
    pub flops: u64,
    pub ms: f64,
    pub gflops: f64,
    /// How `ms` was measured: GPU timestamps or the wall clock.
    pub timer: Timer,
    /// The matrix-multiply kernel (see gpu::strategy), its threads per workgroup and the
    /// workgroups of all its launches.
    pub kernel: String,
    pub threads: u32,
    pub groups: usize,
    /// Compulsory traffic (input, weights, bias and output once each) over `ms`.
    pub gbps: f64,
    /// gflops ÷ `--peak-gflops`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_fraction: Option<f64>,
    /// FLOPs reduction this variant was built for (1 for dense).
    pub factor: usize,
    /// Median backward pass (data and weight gradients) in ms, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backward_ms: Option<f64>,
    /// Dense forward ms ÷ this forward ms, for pruned variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
}

/// Median time in ms of `reps` runs of `plan` after two warm-up runs (see `Gpu::time_plan`).
pub fn time_plan(gpu: &Gpu, plan: &[Dispatch], reps: usize, timer: Timer) -> Result<f64> {
    Ok(gpu.time_plan(plan, reps, timer)?.0)
}

/// The matrix-multiply kernel of a convolution forward and its workgroups over all chunks.
pub fn forward_kernel(gpu: &Gpu, g: &ConvGeom, kc: usize, chunk: usize, implicit: bool) -> Result<(Matmul, usize)> {
    let kcp = kc.next_multiple_of(4);
    let mut groups = 0;
    let mut kernel = None;
    for n0 in (0..g.n).step_by(chunk) {
        let cols = chunk.min(g.n - n0) * g.ohwp();
        let k = if implicit { gpu.conv_kernel(g, kc, chunk.min(g.n - n0))? } else { gpu.strategy.gemm(g.k, cols, kcp, false).kernel };
        let (x, y) = k.groups(g.k, cols);
        groups += x * y;
        kernel.get_or_insert(k);
    }
    Ok((kernel.unwrap_or(Matmul::Register(crate::gpu::gemm::Tile::DEFAULT)), groups))
}

/// Images one forward launch of `g` keeping `kc` columns covers: as many as a binding holds,
/// up to 256 MiB.
pub fn chunk_of(gpu: &Gpu, g: &ConvGeom, kc: usize) -> Result<usize> {
    conv_chunk(g, kc, (gpu.max_binding_bytes().min(256 << 20) / 4) as usize)
}

/// A convolution's forward dispatches on pseudo-random data, with the buffers they use.
pub struct ConvSetup {
    pub plan: Vec<Dispatch>,
    _buffers: Vec<Tensor>,
}

/// Prepares the forward pass of one convolution keeping the columns `kept` (all for dense).
pub fn conv_forward_setup(gpu: &Gpu, g: &ConvGeom, kept: &[u32], implicit: bool) -> Result<ConvSetup> {
    let kc = kept.len();
    let chunk = chunk_of(gpu, g, kc)?;
    let x = gpu.upload(&pseudo_random(g.n * g.c * g.h * g.w), "x")?;
    let w = gpu.upload(&pseudo_random(g.k * kc), "w")?;
    let b = gpu.tensor(g.k, "b")?;
    let y = gpu.tensor(g.n * g.k * g.ohw(), "y")?;
    let sa = gpu.tensor(g.k * kc.next_multiple_of(4), "sa")?;
    let col = gpu.tensor(kc.next_multiple_of(4) * chunk * g.ohwp(), "col")?;
    let tbl = gpu.upload(&conv::column_table(g, kept)?, "tbl")?;
    let plan = conv_forward(gpu, g, kc, chunk, &tbl, &x, &w, &b, &y, &sa, (!implicit).then_some(&col))?;
    Ok(ConvSetup { plan, _buffers: vec![x, w, b, y, sa, col, tbl] })
}

/// Times the forward pass of one convolution keeping the columns `kept` (all for dense).
#[allow(clippy::too_many_arguments)]
pub fn conv_forward_bench(gpu: &Gpu, name: &str, variant: &str, g: &ConvGeom, kept: &[u32], reps: usize, implicit: bool, timer: Timer) -> Result<ConvResult> {
    let kc = kept.len();
    let plan = conv_forward_setup(gpu, g, kept, implicit)?.plan;
    let (ms, timer) = gpu.time_plan(&plan, reps, timer)?;
    let flops = 2 * (g.n * g.k * kc * g.ohw()) as u64;
    let chunk = chunk_of(gpu, g, kc)?;
    let (kernel, groups) = forward_kernel(gpu, g, kc, chunk, implicit)?;
    let bytes = (4 * (g.n * g.c * g.h * g.w + g.k * kc + g.k + g.n * g.k * g.ohw())) as f64;
    Ok(ConvResult {
        shape: name.to_string(),
        variant: variant.to_string(),
        algo: if implicit { "implicit" } else { "im2col" }.to_string(),
        geom: *g,
        kept: kc,
        flops,
        ms,
        gflops: flops as f64 / (ms * 1e6),
        timer,
        kernel: kernel.name(),
        threads: kernel.threads(),
        groups,
        gbps: bytes / (ms * 1e6),
        peak_fraction: None,
        factor: 1,
        backward_ms: None,
        speedup: None,
    })
}

/// Every convolution of `arch` as the benchmark times it: its name, geometry at batch `n` and
/// kept columns.
pub fn model_convs(arch: &Architecture, n: usize) -> Result<Vec<(String, ConvGeom, Vec<u32>)>> {
    let mut out = Vec::new();
    for leaf in arch.leaves()? {
        if let (Layer::Conv2d { name, filters, kernel, stride, padding, columns }, Shape::Chw(c, h, w)) = (leaf.layer, leaf.input) {
            let g = ConvGeom { n, c, h, w, k: *filters, r: *kernel, s: *kernel, stride: *stride, pad: *padding };
            let kept = columns.clone().unwrap_or_else(|| (0..g.crs() as u32).collect());
            out.push((name.clone(), g, kept));
        }
    }
    Ok(out)
}

/// A compacted layer of a model trained at width multiplier `width`, carried to the dense layer
/// `dense` of the full-width model at the same pruning rates: its filters and input channels grow
/// by 1/`width` (capped at the dense layer's), and it keeps the same fraction of its GEMM columns,
/// spread evenly. So a CPU-sized run's result can be timed at the size a GPU user would prune.
pub fn widen(small: &ConvGeom, kept: &[u32], dense: &ConvGeom, width: f32) -> (ConvGeom, Vec<u32>) {
    let grow = |v: usize, cap: usize| (((v as f32) / width).round() as usize).clamp(1, cap);
    let g = ConvGeom { c: grow(small.c, dense.c), k: grow(small.k, dense.k), ..*small };
    let crs = g.crs();
    let n = ((kept.len() as f64 / small.crs() as f64) * crs as f64).round().clamp(1.0, crs as f64) as usize;
    // n evenly spaced columns out of crs
    (g, (0..n).map(|i| (i * crs / n) as u32).collect())
}

/// Whether `small` can be a compaction of `dense`: the same kernel, stride, padding and input
/// size, with no more filters or input channels.
pub fn is_compaction(small: &ConvGeom, dense: &ConvGeom) -> bool {
    let same = |g: &ConvGeom| (g.h, g.w, g.r, g.s, g.stride, g.pad);
    same(small) == same(dense) && small.c <= dense.c && small.k <= dense.k
}

/// The compacted forms of a layer with `factor`× fewer FLOPs: `filter` keeps K/factor filters,
/// `column` keeps every factor-th column of the GEMM view (so every channel stays in use).
pub fn variants(g: &ConvGeom, factor: usize) -> Vec<(&'static str, ConvGeom, Vec<u32>)> {
    let crs = g.crs() as u32;
    let fewer_filters = ConvGeom { k: (g.k / factor).max(1), ..*g };
    vec![
        ("filter", fewer_filters, (0..crs).collect()),
        ("column", *g, (0..crs).step_by(factor).collect()),
    ]
}

/// Median time of the backward pass of one convolution (data and weight gradients), measured
/// inside a minimal network: ReLU → conv → global average pool → 2-way linear, whose other
/// layers cost little beside the convolution.
pub fn conv_backward_ms(gpu: &Gpu, g: &ConvGeom, kept: &[u32], reps: usize, timer: Timer) -> Result<f64> {
    let columns = (kept.len() != g.crs()).then(|| kept.to_vec());
    let arch = Architecture {
        name: "conv-bench".into(),
        input: [g.c, g.h, g.w],
        classes: 2,
        layers: vec![
            Layer::Relu,
            Layer::Conv2d { name: "conv".into(), filters: g.k, kernel: g.r, stride: g.stride, padding: g.pad, columns },
            Layer::GlobalAvgPool,
            Layer::Linear { name: "fc".into(), units: 2, columns: None },
        ],
    };
    let net = Network::new(gpu, &arch, &Weights::init(&arch, 1)?, g.n, 0.0)?;
    let backward = net.passes()[2].1;
    time_plan(gpu, backward, reps, timer)
}

/// Median time of every dispatch of one training step, run one at a time: (pass, kernel, ms).
pub fn profile_step(gpu: &Gpu, net: &Network, reps: usize, timer: Timer) -> Result<Vec<(String, String, f64)>> {
    let mut out = Vec::new();
    for (pass, plan) in net.passes() {
        for d in plan {
            let ms = time_plan(gpu, std::slice::from_ref(d), reps, timer)?;
            let name = d.kernel.name.rsplit_once(':').map_or(d.kernel.name.as_str(), |x| x.0);
            out.push((pass.to_string(), format!("{name} {:?}", d.groups), ms));
        }
    }
    Ok(out)
}

#[derive(Serialize, Debug)]
pub struct TrainResult {
    pub model: String,
    pub batch: usize,
    pub steps: usize,
    pub images_per_second: f64,
    pub ms_per_step: f64,
}

/// Training throughput of a zoo model on synthetic data (the data path is the same as `train`).
pub fn train_bench(gpu: &Gpu, arch: &Architecture, batch: usize, steps: usize) -> Result<TrainResult> {
    let net = Network::new(gpu, arch, &Weights::init(arch, 1)?, batch, 5e-4)?;
    let images = pseudo_random(batch * net.image_len());
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let h = Hyper::plain(0.01, 0.9);
    for s in 0..3 {
        net.load_batch(gpu, &images, &labels)?;
        net.train_step(gpu, h, batch, s)?;
    }
    gpu.wait()?;
    let t = Instant::now();
    for s in 0..steps {
        net.load_batch(gpu, &images, &labels)?;
        net.train_step(gpu, h, batch, s)?;
    }
    net.read_metrics(gpu)?;
    let secs = t.elapsed().as_secs_f64();
    Ok(TrainResult {
        model: arch.name.clone(),
        batch,
        steps,
        images_per_second: (steps * batch) as f64 / secs,
        ms_per_step: secs * 1e3 / steps as f64,
    })
}

/// Deterministic data in [-1, 1) without pulling a generator into the timing path.
fn pseudo_random(n: usize) -> Vec<f32> {
    crate::gpu::tune::pseudo_random(n, 0x2545_f491)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(c: usize, k: usize) -> ConvGeom {
        ConvGeom { n: 2, c, h: 8, w: 8, k, r: 3, s: 3, stride: 1, pad: 1 }
    }

    #[test]
    fn widen_keeps_the_pruning_rates() {
        // a width-0.25 layer 16→32 pruned to 10 input channels (90 columns), 60 of them kept, 7 filters
        let dense = geom(64, 128);
        let small = geom(10, 7);
        let kept: Vec<u32> = (0..60).collect();
        let (g, cols) = widen(&small, &kept, &dense, 0.25);
        assert_eq!((g.c, g.k), (40, 28));
        assert_eq!(cols.len(), 240, "2/3 of 360 columns");
        assert!(cols.windows(2).all(|w| w[0] < w[1]) && *cols.last().unwrap() < 360);
        assert!(is_compaction(&g, &dense));
        // never wider than the dense layer (the RGB input stays 3 channels), never empty
        let (g, cols) = widen(&geom(3, 1), &[5], &geom(3, 64), 0.25);
        assert_eq!((g.c, g.k, cols.len()), (3, 4, 1));
    }

    #[test]
    fn a_compaction_has_no_more_channels_and_the_same_kernel() {
        let dense = geom(16, 16);
        assert!(is_compaction(&geom(16, 5), &dense));
        assert!(!is_compaction(&geom(16, 17), &dense));
        assert!(!is_compaction(&geom(17, 5), &dense));
        assert!(!is_compaction(&ConvGeom { stride: 2, ..geom(8, 8) }, &dense));
    }
}
