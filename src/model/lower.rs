//! Lowering: a flattened architecture becomes prepared dispatches. Each layer is first planned
//! (its geometry for the batch, so shared scratch can be sized before any buffer exists), then
//! built into its forward, evaluation-forward and backward dispatches.

use anyhow::{ensure, Context, Result};

use super::flat::{Flat, Op};
use super::graph::{channels, Layer, Shape};
use super::network::{Param, RunningStats};
use crate::gpu::conv::{self, conv_dgrad, conv_gemm, conv_wgrad, ConvGeom};
use crate::gpu::gemm::{gemm, gemm_split_k, pack, Bias, Gemm, OutMap, Pack};
use crate::gpu::strategy::DgradAlgo;
use crate::gpu::norm::{self, BnGeom};
use crate::gpu::pool::{self, PoolGeom};
use crate::gpu::{activation, elementwise, Dispatch, Gpu, Tensor};

/// The prepared passes of a whole network, and the buffers they hold.
pub struct Lowered {
    /// Training forward (batch-norm batch statistics) and evaluation forward (running ones).
    pub forward: Vec<Dispatch>,
    pub forward_eval: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    pub logits: Tensor,
    /// The gradient buffer the loss writes: d loss / d logits.
    pub dlogits: Tensor,
    /// Activations, their gradients and scratch: only the dispatches refer to them.
    pub keep: Vec<Tensor>,
}

/// Shared scratch sizes (elements): packed A operands (and conv data-gradient weights), and the
/// linear layers' packed dY and x.
#[derive(Default)]
struct Scratch {
    a: usize,
    b: usize,
    col: usize,
    /// split-K partial sums of weight gradients
    part: usize,
}

/// Plans and builds every layer of `flat` for `batch` images read from `input`; `params` and
/// `running` are the network's tensors in layer order. `budget` caps one conv chunk's columns.
pub fn lower(gpu: &Gpu, flat: &Flat, params: &[Param], running: &[RunningStats], input: &Tensor, batch: usize, budget: usize) -> Result<Lowered> {
    // value and gradient buffers; value 0 is the input
    let mut vals = vec![input.clone()];
    for &len in &flat.vals[1..] {
        vals.push(gpu.tensor(batch * len, "activation")?);
    }
    let grads = flat.grads.iter().map(|&len| gpu.tensor(batch * len, "activation grad")).collect::<Result<Vec<_>>>()?;

    let mut need = Scratch::default();
    let mut plans = Vec::new();
    for op in &flat.ops {
        plans.push(match op {
            Op::Leaf { layer, input, output, .. } => Some(LayerPlan::new(gpu, layer, *input, *output, batch, budget, &mut need)?),
            _ => None,
        });
    }
    let sa = gpu.tensor(need.a, "scratch a")?;
    let sb = gpu.tensor(need.b, "scratch b")?;
    let col = gpu.tensor(need.col, "scratch col")?;
    let part = gpu.tensor(need.part, "scratch split-k")?;

    let (mut net_forward, mut net_forward_eval, mut net_backward) = (Vec::new(), Vec::new(), Vec::new());
let mut keep = vec![sa.clone(), sb.clone(), col.clone(), part.clone()];
    let (mut pi, mut ri) = (0, 0);
    for (i, (op, plan)) in flat.ops.iter().zip(&plans).enumerate() {
        let (f, fe, bw) = match (op, plan) {
            (Op::Leaf { x, y, dx, dy, .. }, Some(plan)) => {
                // parameters come in (weight, bias) pairs, in the order of the layers
                let affine = plan.has_params().then(|| {
                    pi += 2;
                    Affine { weight: &params[pi - 2], bias: &params[pi - 1] }
                });
                let run = matches!(plan, LayerPlan::BatchNorm { .. }).then(|| {
                    ri += 1;
                    &running[ri - 1].stats
                });
                let io = LayerIo { x: &vals[*x], y: &vals[*y], dy: &grads[*dy], dx: dx.map(|d| &grads[d]), affine, running: run, sa: &sa, sb: &sb, col: &col, part: &part };
                let built = plan.build(gpu, &io).with_context(|| format!("preparing layer {i}"))?;
                keep.extend(built.keep);
                (built.forward, built.forward_eval, built.backward)
            }
            (Op::Join { a, b, y, len }, _) => {
                let f = vec![elementwise::add(gpu, &vals[*a], &vals[*b], &vals[*y], batch * len)?];
                (f.clone(), f, vec![])
            }
            (Op::Fork { g, body, short, len }, _) => (vec![], vec![], vec![elementwise::add(gpu, &grads[*body], &grads[*short], &grads[*g], batch * len)?]),
            (Op::Leaf { .. }, None) => unreachable!("every leaf has a plan"),
        };
        net_forward.extend(f);
        net_forward_eval.extend(fe);
        // backward runs in reverse order
        net_backward.splice(0..0, bw);
    }

    let (logits, dlogits) = (vals[flat.out].clone(), grads[flat.dout].clone());
    keep.extend(grads);
    keep.extend(vals);
    Ok(Lowered { forward: net_forward, forward_eval: net_forward_eval, backward: net_backward, logits, dlogits, keep })
}

/// A layer's weight and bias parameters.
#[derive(Clone, Copy)]
struct Affine<'a> {
    weight: &'a Param,
    bias: &'a Param,
}

/// Buffers one layer's dispatches read and write.
struct LayerIo<'a> {
    x: &'a Tensor,
    y: &'a Tensor,
    dy: &'a Tensor,
    dx: Option<&'a Tensor>,
    /// Weight and bias (γ and β of a batch norm), for layers with parameters.
    affine: Option<Affine<'a>>,
    /// A batch norm's running statistics.
    running: Option<&'a Tensor>,
    sa: &'a Tensor,
    sb: &'a Tensor,
    col: &'a Tensor,
    part: &'a Tensor,
}

/// A layer's geometry for this batch, decided before any buffer exists so scratch can be sized.
enum LayerPlan {
    Conv { g: ConvGeom, kept: Vec<u32>, chunk: usize },
    Linear { n: usize, inputs: usize, units: usize },
    Relu { n: usize },
    MaxPool { g: PoolGeom },
    AvgPool { planes: usize, hw: usize },
    BatchNorm { g: BnGeom },
}

/// One layer's prepared dispatches and the buffers only they refer to.
struct Built {
    forward: Vec<Dispatch>,
    forward_eval: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    keep: Vec<Tensor>,
}

impl Built {
    /// A layer that runs the same in training and evaluation.
    fn same(forward: Vec<Dispatch>, backward: Vec<Dispatch>, keep: Vec<Tensor>) -> Built {
        Built { forward_eval: forward.clone(), forward, backward, keep }
    }
}

impl LayerPlan {
    fn new(gpu: &Gpu, layer: &Layer, inp: Shape, out: Shape, batch: usize, budget: usize, need: &mut Scratch) -> Result<LayerPlan> {
        let st = &gpu.strategy;
        Ok(match (layer, inp) {
            (Layer::Conv2d { filters, kernel, stride, padding, columns, .. }, Shape::Chw(c, h, w)) => {
                let g = ConvGeom { n: batch, c, h, w, k: *filters, r: *kernel, s: *kernel, stride: *stride, pad: *padding };
                let kept: Vec<u32> = match columns {
                    Some(cols) => cols.clone(),
                    None => (0..g.crs() as u32).collect(),
                };
                // sa holds the packed forward weights, then the data-gradient weights; the
                // implicit kernels need no column buffers
                let kcp = kept.len().next_multiple_of(4);
                let chunk = conv_chunk(&g, kept.len(), budget)?;
                need.a = need.a.max(g.k * kcp).max(g.crs() * g.k.next_multiple_of(4));
                if kept.len() < g.crs() {
                    // the column-pruned data gradient: dcol in `col`, dY of a chunk in `b` where
                    // it is packed
                    if conv::dgrad_columns_packs(&g) {
                        need.b = need.b.max(g.k.next_multiple_of(4) * chunk * g.ohwp());
                    }
                    need.col = need.col.max(kept.len() * chunk * g.ohwp());
                }
                need.part = need.part.max(st.wgrad(g.k, kcp, chunk * g.ohwp()).split * g.k * kept.len());
                LayerPlan::Conv { g, kept, chunk }
            }
            // A column-pruned linear layer is a 1×1 convolution on a 1×1 map (SPEC.md §1), so
            // the kept-column table of the convolution path serves it.
            (Layer::Linear { name, units, columns: Some(cols) }, Shape::Flat(inputs)) => {
                let conv = Layer::Conv2d { name: name.clone(), filters: *units, kernel: 1, stride: 1, padding: 0, columns: Some(cols.clone()) };
                return LayerPlan::new(gpu, &conv, Shape::Chw(inputs, 1, 1), out, batch, budget, need);
            }
            (Layer::Linear { units, .. }, Shape::Flat(inputs)) => {
                let (bp, ip, op) = (batch.next_multiple_of(4), inputs.next_multiple_of(4), units.next_multiple_of(4));
                need.a = need.a.max(units * ip).max(op * ip);
                need.b = need.b.max(op * bp).max(batch * op);
                need.col = need.col.max(ip * bp);
                need.part = need.part.max(st.gemm(*units, ip, bp, true).split * units * inputs);
                LayerPlan::Linear { n: batch, inputs, units: *units }
            }
            (Layer::Relu, s) => LayerPlan::Relu { n: batch * s.len() },
            (Layer::MaxPool { size, stride, padding }, Shape::Chw(c, h, w)) => {
                LayerPlan::MaxPool { g: PoolGeom { planes: batch * c, h, w, k: *size, stride: *stride, pad: *padding } }
            }
            (Layer::GlobalAvgPool, Shape::Chw(c, h, w)) => LayerPlan::AvgPool { planes: batch * c, hw: h * w },
            (Layer::BatchNorm { .. }, s) => {
                let c = channels(s);
                let p = s.len() / c;
                let slices = st.bn_slices(c, batch * p);
                LayerPlan::BatchNorm { g: BnGeom { n: batch, c, p, training: true, eps: BN_EPS, momentum: BN_MOMENTUM, slices, subgroups: gpu.bn_subgroups() } }
            }
            (l, s) => anyhow::bail!("layer {l:?} cannot take input {s:?} (output {out:?})"),
        })
    }

    fn has_params(&self) -> bool {
        matches!(self, LayerPlan::Conv { .. } | LayerPlan::Linear { .. } | LayerPlan::BatchNorm { .. })
    }

    fn build(&self, gpu: &Gpu, io: &LayerIo) -> Result<Built> {
        match self {
            LayerPlan::Conv { g, kept, chunk } => conv(gpu, io, g, kept, *chunk),
            LayerPlan::Linear { n, inputs, units } => linear(gpu, io, *n, *inputs, *units),
            LayerPlan::Relu { n } => {
                let b = match io.dx {
                    Some(dx) => vec![activation::relu_backward(gpu, io.dy, io.y, dx, *n)?],
                    None => vec![],
                };
                Ok(Built::same(vec![activation::relu_forward(gpu, io.x, io.y, *n)?], b, vec![]))
            }
            LayerPlan::MaxPool { g } => {
                let arg = gpu.tensor(g.planes * g.oh() * g.ow(), "argmax")?;
                let f = vec![pool::maxpool_forward(gpu, io.x, io.y, &arg, g)?];
                let b = match io.dx {
                    Some(dx) => vec![pool::maxpool_backward(gpu, io.dy, &arg, dx, g)?],
                    None => vec![],
                };
                Ok(Built::same(f, b, vec![arg]))
            }
            LayerPlan::AvgPool { planes, hw } => {
                let f = vec![pool::avgpool_forward(gpu, io.x, io.y, *planes, *hw)?];
                let b = match io.dx {
                    Some(dx) => vec![pool::avgpool_backward(gpu, io.dy, dx, *planes, *hw)?],
                    None => vec![],
                };
                Ok(Built::same(f, b, vec![]))
            }
            LayerPlan::BatchNorm { g } => batch_norm(gpu, io, g),
        }
    }
}

const ALL: usize = u32::MAX as usize;

/// Convolution as GEMM over chunks of images (SPEC.md §1 GEMM view):
///   forward  Y_n = W · col(X_n)            implicit GEMM reading X (conv_gemm)
///   data     with the weights laid out [C][R·S][Kp] in `sa` first (dgrad_weights): at stride 1
///            and "same" padding dX = the forward implicit GEMM over dY with the taps flipped
///            (conv::transposed);
///            otherwise a gather of dY over the valid taps of each input pixel (conv_dgrad)
///   weight   dW += dY · colᵀ               implicit GEMM reading X and dY (conv_wgrad)
fn conv(gpu: &Gpu, io: &LayerIo, g: &ConvGeom, kept: &[u32], chunk: usize) -> Result<Built> {
    let Affine { weight: w, bias: b } = io.affine.context("conv without weights")?;
    let kc = kept.len();
    let tbl = gpu.upload(&conv::column_table(g, kept)?, "column table")?;
    let f = conv_forward(gpu, g, kc, chunk, &tbl, io.x, &w.w, &b.w, io.y, io.sa, None)?;
    let mut bw = vec![conv::channel_sum(gpu, io.dy, &b.grad, g.n, g.k, g.ohw(), false)?];
    let mut keep = Vec::new();
    match io.dx {
        // column-pruned: dcol = Wᵀ·dY over the kept columns, then col2im, so the work shrinks
        // with the columns (the paths below visit every tap of every channel against zeros)
        Some(dx) if kc < g.crs() => {
            let ctab = gpu.upload(&conv::channel_table(g, kept)?, "channel table")?;
            bw.extend(conv::dgrad_columns(gpu, g, kc, chunk, &w.w, io.dy, &ctab, io.sa, io.sb, io.col, dx)?);
            keep.push(ctab);
        }
        Some(dx) => {
            bw.push(conv::dgrad_weights(gpu, &w.w, &tbl, io.sa, g, kc)?);
            // only at "same" padding: with less (LeNet's 5×5 at padding 0) the flipped taps mostly
            // read zeros past the border, and the gather, which skips them, was faster (35 against
            // 46–68 ms for LeNet conv2; ResNet-18 at width 0.25: 0.30–0.33 against 0.43–0.47 s of
            // data gradients a step, quiet A/B profiles)
            match conv::transposed(g).filter(|t| t.pad == g.pad && gpu.strategy.dgrad(g).algo == DgradAlgo::AsConv) {
                Some(t) => {
                    let (ttbl, zero) = (gpu.upload(&conv::transposed_table(g)?, "transposed column table")?, gpu.tensor(g.c, "zero bias")?);
                    for n0 in (0..g.n).step_by(chunk) {
                        bw.push(conv_gemm(gpu, &t, g.r * g.s * g.k.next_multiple_of(4), n0, chunk.min(g.n - n0), io.sa, io.dy, &ttbl, &zero, dx)?);
                    }
                    keep.extend([ttbl, zero]);
                }
                None => bw.push(conv_dgrad(gpu, g, io.sa, io.dy, dx)?),
            }
        }
        None => {}
    }
    for n0 in (0..g.n).step_by(chunk) {
        bw.extend(conv_wgrad(gpu, g, kc, n0, chunk.min(g.n - n0), io.dy, io.x, &tbl, &w.grad, io.part, n0 > 0)?);
    }
    keep.push(tbl);
    Ok(Built::same(f, bw, keep))
}

/// Images per im2col chunk, so no column buffer exceeds `budget` elements.
pub fn conv_chunk(g: &ConvGeom, kc: usize, budget: usize) -> Result<usize> {
    let per_image = kc.next_multiple_of(4).max(g.k.next_multiple_of(4)) * g.ohwp();
    ensure!(per_image <= budget, "one image's columns ({per_image} values) exceed the adapter's binding limit");
    Ok((budget / per_image).clamp(1, g.n))
}

/// Forward dispatches of one convolution: pack W to [K][kcp] in `sa` (unless aligned already),
/// then per chunk of images either im2col into `col` and one GEMM (explicit), or, with no `col`,
/// one implicit GEMM that reads the input directly. Both write NCHW output with the bias.
#[allow(clippy::too_many_arguments)]
pub fn conv_forward(
    gpu: &Gpu,
    g: &ConvGeom,
    kc: usize,
    chunk: usize,
    tbl: &Tensor,
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    y: &Tensor,
    sa: &Tensor,
    col: Option<&Tensor>,
) -> Result<Vec<Dispatch>> {
    let (kcp, ohw, ohwp) = (kc.next_multiple_of(4), g.ohw(), g.ohwp());
    let mut f = Vec::new();
    let wa = operand(gpu, w, &Pack::matrix(g.k, kc, kc, 1, false), sa, &mut f)?;
    let Some(col) = col else {
        // implicit GEMM: no column buffer, the kernel reads the receptive fields from x
        for n0 in (0..g.n).step_by(chunk) {
            f.push(conv_gemm(gpu, g, kc, n0, chunk.min(g.n - n0), wa, x, tbl, b, y)?);
        }
        return Ok(f);
    };
    for n0 in (0..g.n).step_by(chunk) {
        let cols = chunk.min(g.n - n0) * ohwp;
        f.push(conv::im2col(gpu, x, tbl, col, g, kc, n0, chunk.min(g.n - n0))?);
        let fwd = Gemm { a: wa, a_off: 0, b: col, b_off: 0, m: g.k, n: cols, kp: kcp, np: cols };
        let out = OutMap { off: n0 * g.k * ohw, rs: ohw, bs: g.k * ohw, cs: 1, n_inner: ohwp, n_valid: ohw, accumulate: false };
        f.push(gemm(gpu, &fwd, Bias::PerRow(b, 0), y, out)?);
    }
    Ok(f)
}

/// `src` itself when it already has the packed layout `p` asks for (vec4-aligned, no padding,
/// no transpose), so aligned layers skip the copy; otherwise a pack into `scratch` is planned.
fn operand<'a>(gpu: &Gpu, src: &'a Tensor, p: &Pack, scratch: &'a Tensor, plan: &mut Vec<Dispatch>) -> Result<&'a Tensor> {
    let plain = p.s_off == 0 && p.d_off == 0 && p.s_cs == 1 && p.s_rs == p.cp && p.rows == p.rp && p.cols == p.cp;
    if plain && p.r_in == ALL && p.c_in == ALL {
        return Ok(src);
    }
    plan.push(pack(gpu, src, scratch, p)?);
    Ok(scratch)
}

/// Linear layer y = x·Wᵀ + b for x [n][inputs]; each GEMM uses W, x and dy in their stored
/// layouts where they are vec4-aligned:
///   forward  yᵀ = W · xᵀ   A = W [units][Ip],   B = xᵀ [Ip][Bp]     (bias per row of yᵀ)
///   data     dx = dy · W   A = dy [n][Op],      B = W [Op][Ip]
///   weight   dW = dyᵀ · x  A = dyᵀ [units][Bp], B = x [Bp][Ip]
fn linear(gpu: &Gpu, io: &LayerIo, n: usize, inputs: usize, units: usize) -> Result<Built> {
    let Affine { weight: w, bias: b } = io.affine.context("linear without weights")?;
    let (bp, ip, op) = (n.next_multiple_of(4), inputs.next_multiple_of(4), units.next_multiple_of(4));
    let mut f = Vec::new();
    let wa = operand(gpu, &w.w, &Pack::matrix(units, inputs, inputs, 1, false), io.sa, &mut f)?;
    f.push(pack(gpu, io.x, io.col, &Pack::matrix(inputs, n, 1, inputs, true))?);
    let yt = OutMap { off: 0, rs: 1, bs: 0, cs: units, n_inner: ALL, n_valid: ALL, accumulate: false };
    f.push(gemm(gpu, &Gemm { a: wa, a_off: 0, b: io.col, b_off: 0, m: units, n, kp: ip, np: bp }, Bias::PerRow(&b.w, 0), io.y, yt)?);

    let mut bw = vec![conv::channel_sum(gpu, io.dy, &b.grad, n, units, 1, false)?];
    if let Some(dx) = io.dx {
        let dya = operand(gpu, io.dy, &Pack::matrix(n, units, units, 1, false), io.sb, &mut bw)?;
        let wb = operand(gpu, &w.w, &Pack::matrix(units, inputs, inputs, 1, true), io.sa, &mut bw)?;
        let data = Gemm { a: dya, a_off: 0, b: wb, b_off: 0, m: n, n: inputs, kp: op, np: ip };
        bw.push(gemm(gpu, &data, Bias::None, dx, OutMap::rows(inputs))?);
    }
    bw.push(pack(gpu, io.dy, io.sb, &Pack::matrix(units, n, 1, units, true))?);
    let xb = operand(gpu, io.x, &Pack::matrix(n, inputs, inputs, 1, true), io.col, &mut bw)?;
    let wgt = Gemm { a: io.sb, a_off: 0, b: xb, b_off: 0, m: units, n: inputs, kp: bp, np: ip };
    bw.extend(gemm_split_k(gpu, &wgt, &w.grad, OutMap::rows(inputs), io.part)?);
    Ok(Built::same(f, bw, vec![]))
}

/// PyTorch's defaults: ε = 1e-5, running statistics move 10% toward each batch's.
pub const BN_EPS: f32 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

/// Batch norm: statistics then the affine map; in training from the batch (updating the
/// running statistics), in evaluation from the running statistics.
fn batch_norm(gpu: &Gpu, io: &LayerIo, g: &BnGeom) -> Result<Built> {
    let Affine { weight: gamma, bias: beta } = io.affine.context("batch norm without γ and β")?;
    let running = io.running.context("batch norm without running statistics")?;
    let stats = gpu.tensor(2 * g.c, "batch-norm statistics")?;
    let part = gpu.tensor(g.partial_len().max(1), "batch-norm partial sums")?;
    let eval = BnGeom { training: false, ..*g };
    let mut forward = norm::bn_stats(gpu, io.x, &stats, running, &part, g)?;
    forward.push(norm::bn_apply(gpu, io.x, &stats, &gamma.w, &beta.w, io.y, g)?);
    let mut forward_eval = norm::bn_stats(gpu, io.x, &stats, running, &part, &eval)?;
    forward_eval.push(norm::bn_apply(gpu, io.x, &stats, &gamma.w, &beta.w, io.y, &eval)?);
    let mut backward = norm::bn_backward_reduce(gpu, io.dy, io.x, &stats, &gamma.grad, &beta.grad, &part, g)?;
    if let Some(dx) = io.dx {
        backward.push(norm::bn_backward_dx(gpu, io.dy, io.x, &stats, &gamma.w, &gamma.grad, &beta.grad, dx, g)?);
    }
    Ok(Built { forward, forward_eval, backward, keep: vec![stats, part] })
}
