//! A model on the GPU for a fixed batch size: parameters, gradients, velocities and activations
//! allocated once, and the forward, loss, backward and update passes prepared once as lists of
//! dispatches. A training step writes one batch, records the four lists into one encoder and
//! submits it; metrics stay on the GPU until the host asks for them.

use anyhow::{ensure, Context, Result};

use super::flat::{flatten, Op};
use super::graph::{channels, Architecture, Layer, Shape};
use super::weights::{NamedTensor, Weights};
use crate::gpu::gemm::{conv_dgrad, conv_gemm, conv_wgrad, gemm, gemm_split_k, pack, split_count, Bias, Gemm, OutMap, Pack};
use crate::gpu::norm::{self, BnGeom};
use crate::gpu::ops::{self, ConvGeom, PoolGeom, LOSS_RING};
use crate::gpu::{record, Dispatch, Gpu, Tensor};

/// One parameter tensor with its gradient, momentum and optional 0/1 mask.
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub w: Tensor,
    pub g: Tensor,
    pub v: Tensor,
    pub mask: Option<Tensor>,
    /// Weight decay applies to weights, not biases.
    pub decay: bool,
}

/// Training hyper-parameters that the loss and update passes read from the GPU every step.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    pub lr: f32,
    pub momentum: f32,
    /// Distillation from the teacher logits loaded with the batch; `None`: plain cross-entropy.
    pub distill: Option<Distill>,
}

/// Knowledge distillation (Hinton et al. 2015, ours): the loss is (1 − alpha)·cross-entropy +
/// alpha·T²·KL(teacher ‖ student), both softmaxes at temperature T.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Distill {
    pub alpha: f32,
    pub temperature: f32,
}

/// The weight and temperature `compress` distils LeNet-5 with and `train --teacher` uses.
pub const DEFAULT_DISTILL: Distill = Distill { alpha: 0.5, temperature: 2.0 };

impl Distill {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha), "--distill must be in [0, 1], found {}", self.alpha);
        ensure!(self.temperature.is_finite() && self.temperature > 0.0, "--distill-temperature must be positive, found {}", self.temperature);
        Ok(())
    }
}

pub struct Network {
    pub arch: Architecture,
    pub batch: usize,
    pub shapes: Vec<Shape>,
    pub params: Vec<Param>,
    pub weight_decay: f32,
    input: Tensor,
    labels: Tensor,
    /// The batch's teacher logits (read only while distilling).
    teacher: Tensor,
    /// [lr, momentum, valid rows, loss-ring slot]
    hyper: Tensor,
    /// [alpha, temperature]; alpha 0 without distillation.
    distill: Tensor,
    metrics: Tensor,
    logits: Tensor,
    /// Batch-norm running statistics (mean[C] then variance[C]) by layer name; not trained.
    running: Vec<(String, usize, Tensor)>,
    /// Training forward (batch-norm batch statistics) and evaluation forward (running ones).
    forward: Vec<Dispatch>,
    forward_eval: Vec<Dispatch>,
    loss: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    /// Extra gradient terms added after the backward pass (the ADMM penalty, SPEC.md §3).
    penalty: Vec<Dispatch>,
    update: Vec<Dispatch>,
    /// Buffers only the prepared dispatches refer to, kept alive here.
    _keep: Vec<Tensor>,
}

/// Running sums since the last reset, read back from the GPU.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub loss_sum: f64,
    pub correct: f64,
    /// Loss sum of each step, by ring slot (step % LOSS_RING).
    pub ring: Vec<f32>,
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

impl Network {
    pub fn new(gpu: &Gpu, arch: &Architecture, weights: &Weights, batch: usize, weight_decay: f32) -> Result<Network> {
        let budget = (gpu.max_binding_bytes().min(256 << 20) / 4) as usize;
        Network::with_column_budget(gpu, arch, weights, batch, weight_decay, budget)
    }

    /// A network for evaluation (no weight decay; it can still compute gradients).
    pub fn inference(gpu: &Gpu, arch: &Architecture, weights: &Weights, batch: usize) -> Result<Network> {
        Network::new(gpu, arch, weights, batch, 0.0)
    }

    /// As `new`, with at most `budget` elements per image chunk's column view: convolutions whose
    /// batch does not fit run their forward and weight gradient in chunks of images.
    pub fn with_column_budget(gpu: &Gpu, arch: &Architecture, weights: &Weights, batch: usize, weight_decay: f32, budget: usize) -> Result<Network> {
        ensure!(batch > 0, "batch size must be positive");
        weights.check(arch)?;
        let shapes = arch.shapes()?;
        let flat = flatten(arch)?;
        let input = gpu.tensor(batch * flat.vals[0], "input")?;

        let mut params = Vec::new();
        let mut running = Vec::new();
        for ps in arch.param_shapes()? {
            for (name, _) in ps.tensors().into_iter().take(2) {
                let t = weights.get(&name)?;
                params.push(Param {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    w: gpu.upload(&t.data, &t.name)?,
                    g: gpu.tensor(t.data.len(), "grad")?,
                    v: gpu.tensor(t.data.len(), "velocity")?,
                    mask: None,
                    // weight decay applies to conv and linear weights, not to biases or γ
                    decay: !ps.batch_norm && name.ends_with(".weight"),
                });
            }
            if ps.batch_norm {
                let mut stats = weights.get(&format!("{}.running_mean", ps.name))?.data.clone();
                stats.extend_from_slice(&weights.get(&format!("{}.running_var", ps.name))?.data);
                running.push((ps.name.clone(), ps.bias, gpu.upload(&stats, "running statistics")?));
            }
        }

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
                Op::Leaf { layer, input, output, .. } => Some(LayerPlan::new(layer, *input, *output, batch, budget, &mut need)?),
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
                    let (w, b) = if plan.has_params() {
                        pi += 2;
                        (Some(&params[pi - 2]), Some(&params[pi - 1]))
                    } else {
                        (None, None)
                    };
                    let run = if matches!(plan, LayerPlan::BatchNorm { .. }) {
                        ri += 1;
                        Some(&running[ri - 1].2)
                    } else {
                        None
                    };
                    let io = LayerIo { x: &vals[*x], y: &vals[*y], dy: &grads[*dy], dx: dx.map(|d| &grads[d]), w, b, running: run, sa: &sa, sb: &sb, col: &col, part: &part };
                    let built = plan.build(gpu, &io).with_context(|| format!("preparing layer {i}"))?;
                    keep.extend(built.keep);
                    (built.forward, built.forward_eval, built.backward)
                }
                (Op::Join { a, b, y, len }, _) => {
                    let f = vec![norm::add(gpu, &vals[*a], &vals[*b], &vals[*y], batch * len)?];
                    (f.clone(), f, vec![])
                }
                (Op::Fork { g, body, short, len }, _) => (vec![], vec![], vec![norm::add(gpu, &grads[*body], &grads[*short], &grads[*g], batch * len)?]),
                (Op::Leaf { .. }, None) => unreachable!("every leaf has a plan"),
            };
            net_forward.extend(f);
            net_forward_eval.extend(fe);
            // backward runs in reverse order
            net_backward.splice(0..0, bw);
        }

        let classes = arch.classes;
        let labels = gpu.tensor(batch, "labels")?;
        let hyper = gpu.tensor(4, "hyper")?;
        let teacher = gpu.tensor(batch * classes, "teacher logits")?;
        let distill = gpu.tensor(2, "distillation")?;
        let stats = gpu.tensor(2 * batch, "stats")?;
        let metrics = gpu.tensor(2 + LOSS_RING, "metrics")?;
        let logits = vals[flat.out].clone();
        let loss = vec![
            ops::softmax_xent(gpu, &logits, &labels, &hyper, &teacher, &distill, &grads[flat.dout], &stats, batch, classes)?,
            ops::accumulate_metrics(gpu, &stats, &hyper, &metrics, batch)?,
        ];
        keep.push(stats);
        keep.extend(grads);
        keep.extend(vals);

        let mut net = Network {
            arch: arch.clone(),
            batch,
            shapes,
            params,
            weight_decay,
            input,
            labels,
            teacher,
            hyper,
            distill,
            metrics,
            logits,
            running,
            forward: net_forward,
            forward_eval: net_forward_eval,
            loss,
            backward: net_backward,
            penalty: Vec::new(),
            update: Vec::new(),
            _keep: keep,
        };
        net.rebuild_update(gpu)?;
        Ok(net)
    }

    fn rebuild_update(&mut self, gpu: &Gpu) -> Result<()> {
        self.update = self
            .params
            .iter()
            .map(|p| ops::sgd(gpu, &p.g, &self.hyper, &p.w, &p.v, p.mask.as_ref(), if p.decay { self.weight_decay } else { 0.0 }))
            .collect::<Result<_>>()?;
        Ok(())
    }

    /// Dispatches run after every backward pass, before the update: they add to gradients.
    pub fn set_penalty(&mut self, plan: Vec<Dispatch>) {
        self.penalty = plan;
    }

    pub fn param(&self, name: &str) -> Result<&Param> {
        self.params.iter().find(|p| p.name == name).with_context(|| format!("no parameter '{name}'"))
    }

    /// Sets (or clears) a parameter's 0/1 mask already on the GPU; the weights must already be
    /// zero where it is.
    pub fn set_mask_tensor(&mut self, gpu: &Gpu, name: &str, mask: Option<Tensor>) -> Result<()> {
        let i = self.params.iter().position(|p| p.name == name).with_context(|| format!("no parameter '{name}'"))?;
        ensure!(mask.as_ref().is_none_or(|m| m.len >= self.params[i].w.len), "mask for {name} is too short");
        self.params[i].mask = mask;
        self.rebuild_update(gpu)
    }

    /// Drops every parameter's mask (one rebuild of the update dispatches).
    pub fn clear_masks(&mut self, gpu: &Gpu) -> Result<()> {
        self.params.iter_mut().for_each(|p| p.mask = None);
        self.rebuild_update(gpu)
    }

    /// Sets (or clears) the 0/1 mask of a parameter; masked entries are zeroed at once and stay
    /// zero through every later update.
    pub fn set_mask(&mut self, gpu: &Gpu, name: &str, mask: Option<&[f32]>) -> Result<()> {
        let i = self.params.iter().position(|p| p.name == name).with_context(|| format!("no parameter '{name}'"))?;
        match mask {
            Some(m) => {
                ensure!(m.len() == self.params[i].w.len, "mask for {name} has {} entries, the tensor {}", m.len(), self.params[i].w.len);
                let w: Vec<f32> = gpu.read(&self.params[i].w)?;
                let masked: Vec<f32> = w.iter().zip(m).map(|(a, b)| a * b).collect();
                gpu.write(&self.params[i].w, &masked);
                self.params[i].mask = Some(gpu.upload(m, "mask")?);
            }
            None => self.params[i].mask = None,
        }
        self.rebuild_update(gpu)
    }

    /// Uploads one batch: `images` holds `valid` ≤ batch images; the rest of the batch is ignored
    /// by the loss.
    pub fn load_batch(&self, gpu: &Gpu, images: &[f32], labels: &[u32]) -> Result<()> {
        let valid = labels.len();
        ensure!(valid > 0 && valid <= self.batch, "batch of {valid} rows for a network of batch {}", self.batch);
        ensure!(images.len() == valid * self.image_len(), "batch images do not match the model input");
        gpu.write(&self.input, images);
        gpu.write(&self.labels, labels);
        Ok(())
    }

    /// Uploads the teacher logits of the loaded batch ([rows][classes]), read by a step whose
    /// `Hyper::distill` is set.
    pub fn load_teacher(&self, gpu: &Gpu, logits: &[f32]) -> Result<()> {
        ensure!(logits.len() <= self.teacher.len && logits.len() % self.arch.classes == 0, "teacher logits do not match the batch");
        gpu.write(&self.teacher, logits);
        Ok(())
    }

    pub fn image_len(&self) -> usize {
        self.arch.input.iter().product()
    }

    fn set_hyper(&self, gpu: &Gpu, h: Hyper, valid: usize, step: usize) {
        gpu.write(&self.hyper, &[h.lr, h.momentum, valid as f32, (step % LOSS_RING) as f32]);
        let d = h.distill.map_or([0.0, 1.0], |d| [d.alpha, d.temperature]);
        gpu.write(&self.distill, &d);
    }

    /// Forward, loss, backward and SGD update on the loaded batch, submitted as one command buffer.
    pub fn train_step(&self, gpu: &Gpu, h: Hyper, valid: usize, step: usize) {
        self.set_hyper(gpu, h, valid, step);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for plan in [&self.forward, &self.loss, &self.backward, &self.penalty, &self.update] {
            record(&mut enc, plan);
        }
        gpu.queue.submit([enc.finish()]);
    }

    /// Forward and loss only: accumulates loss and correct counts for the loaded batch.
    pub fn eval_step(&self, gpu: &Gpu, valid: usize) {
        self.run_passes(gpu, valid, &[&self.forward_eval, &self.loss]);
    }

    /// Forward (training mode: batch-norm batch statistics, running averages updated) and loss
    /// only, as `gradient_step` sees the loss: for gradient checks.
    pub fn train_loss_step(&self, gpu: &Gpu, valid: usize) {
        self.run_passes(gpu, valid, &[&self.forward, &self.loss]);
    }

    /// Forward, loss and backward without the update: gradients land in each `Param::g`.
    pub fn gradient_step(&self, gpu: &Gpu, valid: usize) {
        self.run_passes(gpu, valid, &[&self.forward, &self.loss, &self.backward]);
    }

    /// Records `passes` (no update, so a zero learning rate) into one command buffer.
    fn run_passes(&self, gpu: &Gpu, valid: usize, passes: &[&Vec<Dispatch>]) {
        self.set_hyper(gpu, Hyper { lr: 0.0, momentum: 0.0, distill: None }, valid, 0);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for plan in passes {
            record(&mut enc, plan);
        }
        gpu.queue.submit([enc.finish()]);
    }

    /// Every dispatch of a training step, by pass, for per-kernel timing.
    pub fn passes(&self) -> [(&'static str, &[Dispatch]); 5] {
        [("forward", &self.forward), ("loss", &self.loss), ("backward", &self.backward), ("penalty", &self.penalty), ("update", &self.update)]
    }

    pub fn read_metrics(&self, gpu: &Gpu) -> Result<Metrics> {
        let m: Vec<f32> = gpu.read(&self.metrics)?;
        Ok(Metrics { loss_sum: m[0] as f64, correct: m[1] as f64, ring: m[2..].to_vec() })
    }

    pub fn reset_metrics(&self, gpu: &Gpu) {
        gpu.write(&self.metrics, &[0.0f32; 2]);
    }

    /// The logits of the loaded batch after the last forward pass: [batch][classes].
    pub fn logits(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        gpu.read(&self.logits)
    }

    /// Copies the parameters (and batch-norm running statistics) back to the host, in the
    /// order `Weights::init` gives them.
    pub fn weights(&self, gpu: &Gpu) -> Result<Weights> {
        let mut tensors = Vec::new();
        let mut run = self.running.iter().peekable();
        for pair in self.params.chunks(2) {
            for p in pair {
                tensors.push(NamedTensor { name: p.name.clone(), shape: p.shape.clone(), data: gpu.read(&p.w)? });
            }
            let layer = pair[0].name.trim_end_matches(".weight");
            if let Some((name, c, t)) = run.next_if(|r| r.0 == layer) {
                let stats: Vec<f32> = gpu.read(t)?;
                tensors.push(NamedTensor { name: format!("{name}.running_mean"), shape: vec![*c], data: stats[..*c].to_vec() });
                tensors.push(NamedTensor { name: format!("{name}.running_var"), shape: vec![*c], data: stats[*c..2 * *c].to_vec() });
            }
        }
        Ok(Weights { tensors })
    }

    /// Whether the network has batch norms (running statistics to recalibrate).
    pub fn has_batch_norm(&self) -> bool {
        !self.running.is_empty()
    }

    /// Re-estimates every batch norm's running statistics as the plain mean of the batch
    /// statistics of the batches `load` puts in place (`batches` of them, each a training-mode
    /// forward pass without update). A pruned copy needs this before it is evaluated: its running
    /// averages still describe the unpruned network (AdaBN-style recalibration, as in EagleEye).
    /// Each batch's statistics are read back from its momentum update r' = (1 − m)·r + m·b.
    pub fn recalibrate(&self, gpu: &Gpu, batches: usize, mut load: impl FnMut(&Network, usize) -> Result<()>) -> Result<()> {
        if self.running.is_empty() || batches == 0 {
            return Ok(());
        }
        let m = BN_MOMENTUM;
        let mut before: Vec<Vec<f32>> = self.running.iter().map(|r| gpu.read(&r.2)).collect::<Result<_>>()?;
        let mut sum: Vec<Vec<f64>> = before.iter().map(|b| vec![0.0; b.len()]).collect();
        for i in 0..batches {
            load(self, i)?;
            self.train_loss_step(gpu, self.batch);
            for ((r, prev), acc) in self.running.iter().zip(&mut before).zip(&mut sum) {
                let after: Vec<f32> = gpu.read(&r.2)?;
                for ((a, p), s) in after.iter().zip(prev.iter()).zip(acc.iter_mut()) {
                    *s += ((a - (1.0 - m) * p) / m) as f64;
                }
                *prev = after;
            }
        }
        for (r, acc) in self.running.iter().zip(&sum) {
            let c = r.1;
            // variances clamped at 0: the read-back can round a constant channel's to −1e-9
            let mean = |s: &f64| (s / batches as f64) as f32;
            let stats: Vec<f32> = acc.iter().enumerate().map(|(j, s)| if j >= c { mean(s).max(0.0) } else { mean(s) }).collect();
            gpu.write(&r.2, &stats);
        }
        Ok(())
    }

    /// Copies the gradients of the last backward pass to the host, named like the parameters.
    pub fn gradients(&self, gpu: &Gpu) -> Result<Weights> {
        self.params
            .iter()
            .map(|p| Ok(NamedTensor { name: p.name.clone(), shape: p.shape.clone(), data: gpu.read(&p.g)? }))
            .collect::<Result<Vec<_>>>()
            .map(|tensors| Weights { tensors })
    }

    /// Overwrites the parameters and running statistics (same architecture) and clears the
    /// momentum.
    pub fn set_weights(&self, gpu: &Gpu, w: &Weights) -> Result<()> {
        for p in &self.params {
            let t = w.get(&p.name)?;
            ensure!(t.shape == p.shape, "tensor {} has shape {:?}, the network {:?}", p.name, t.shape, p.shape);
            gpu.write(&p.w, &t.data);
            gpu.write(&p.v, &vec![0.0f32; p.v.len]);
        }
        for (name, c, t) in &self.running {
            let mut stats = w.get(&format!("{name}.running_mean"))?.data.clone();
            stats.extend_from_slice(&w.get(&format!("{name}.running_var"))?.data);
            ensure!(stats.len() == 2 * c, "running statistics of {name} do not have {c} channels");
            gpu.write(t, &stats);
        }
        Ok(())
    }
}

/// Buffers one layer's dispatches read and write.
struct LayerIo<'a> {
    x: &'a Tensor,
    y: &'a Tensor,
    dy: &'a Tensor,
    dx: Option<&'a Tensor>,
    w: Option<&'a Param>,
    b: Option<&'a Param>,
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
    fn new(layer: &Layer, inp: Shape, out: Shape, batch: usize, budget: usize, need: &mut Scratch) -> Result<LayerPlan> {
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
                need.part = need.part.max(split_count(g.k, kcp, chunk * g.ohwp()) * g.k * kept.len());
                LayerPlan::Conv { g, kept, chunk }
            }
            // A column-pruned linear layer is a 1×1 convolution on a 1×1 map (SPEC.md §1), so
            // the kept-column table of the convolution path serves it.
            (Layer::Linear { name, units, columns: Some(cols) }, Shape::Flat(inputs)) => {
                let conv = Layer::Conv2d { name: name.clone(), filters: *units, kernel: 1, stride: 1, padding: 0, columns: Some(cols.clone()) };
                return LayerPlan::new(&conv, Shape::Chw(inputs, 1, 1), out, batch, budget, need);
            }
            (Layer::Linear { units, .. }, Shape::Flat(inputs)) => {
                let (bp, ip, op) = (batch.next_multiple_of(4), inputs.next_multiple_of(4), units.next_multiple_of(4));
                need.a = need.a.max(units * ip).max(op * ip);
                need.b = need.b.max(op * bp).max(batch * op);
                need.col = need.col.max(ip * bp);
                need.part = need.part.max(split_count(*units, ip, bp) * units * inputs);
                LayerPlan::Linear { n: batch, inputs, units: *units }
            }
            (Layer::Relu, s) => LayerPlan::Relu { n: batch * s.len() },
            (Layer::MaxPool { size, stride, padding }, Shape::Chw(c, h, w)) => {
                LayerPlan::MaxPool { g: PoolGeom { planes: batch * c, h, w, k: *size, stride: *stride, pad: *padding } }
            }
            (Layer::GlobalAvgPool, Shape::Chw(c, h, w)) => LayerPlan::AvgPool { planes: batch * c, hw: h * w },
            (Layer::BatchNorm { .. }, s) => {
                let c = channels(s);
                LayerPlan::BatchNorm { g: BnGeom { n: batch, c, p: s.len() / c, training: true, eps: BN_EPS, momentum: BN_MOMENTUM } }
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
                    Some(dx) => vec![ops::relu_backward(gpu, io.dy, io.y, dx, *n)?],
                    None => vec![],
                };
                Ok(Built::same(vec![ops::relu_forward(gpu, io.x, io.y, *n)?], b, vec![]))
            }
            LayerPlan::MaxPool { g } => {
                let arg = gpu.tensor(g.planes * g.oh() * g.ow(), "argmax")?;
                let f = vec![ops::maxpool_forward(gpu, io.x, io.y, &arg, g)?];
                let b = match io.dx {
                    Some(dx) => vec![ops::maxpool_backward(gpu, io.dy, &arg, dx, g)?],
                    None => vec![],
                };
                Ok(Built::same(f, b, vec![arg]))
            }
            LayerPlan::AvgPool { planes, hw } => {
                let f = vec![ops::avgpool_forward(gpu, io.x, io.y, *planes, *hw)?];
                let b = match io.dx {
                    Some(dx) => vec![ops::avgpool_backward(gpu, io.dy, dx, *planes, *hw)?],
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
///            (ops::transposed);
///            otherwise a gather of dY over the valid taps of each input pixel (conv_dgrad)
///   weight   dW += dY · colᵀ               implicit GEMM reading X and dY (conv_wgrad)
fn conv(gpu: &Gpu, io: &LayerIo, g: &ConvGeom, kept: &[u32], chunk: usize) -> Result<Built> {
    let (w, b) = (io.w.context("conv without weights")?, io.b.context("conv without bias")?);
    let kc = kept.len();
    let tbl = gpu.upload(&ops::column_table(g, kept)?, "column table")?;
    let f = conv_forward(gpu, g, kc, chunk, &tbl, io.x, &w.w, &b.w, io.y, io.sa, None)?;
    let mut bw = vec![ops::channel_sum(gpu, io.dy, &b.g, g.n, g.k, g.ohw(), false)?];
    let mut keep = Vec::new();
    if let Some(dx) = io.dx {
        bw.push(ops::dgrad_weights(gpu, &w.w, &tbl, io.sa, g, kc)?);
        // only at "same" padding: with less (LeNet's 5×5 at padding 0) the flipped taps mostly
        // read zeros past the border, and the gather, which skips them, was faster (35 against
        // 46–68 ms for LeNet conv2; ResNet-18 at width 0.25: 0.30–0.33 against 0.43–0.47 s of
        // data gradients a step, quiet A/B profiles)
        match ops::transposed(g).filter(|t| t.pad == g.pad && dgrad_as_conv()) {
            Some(t) => {
                let (ttbl, zero) = (gpu.upload(&ops::transposed_table(g)?, "transposed column table")?, gpu.tensor(g.c, "zero bias")?);
                for n0 in (0..g.n).step_by(chunk) {
                    bw.push(conv_gemm(gpu, &t, g.r * g.s * g.k.next_multiple_of(4), n0, chunk.min(g.n - n0), io.sa, io.dy, &ttbl, &zero, dx)?);
                }
                keep.extend([ttbl, zero]);
            }
            None => bw.push(conv_dgrad(gpu, g, io.sa, io.dy, dx)?),
        }
    }
    for n0 in (0..g.n).step_by(chunk) {
        bw.extend(conv_wgrad(gpu, g, kc, n0, chunk.min(g.n - n0), io.dy, io.x, &tbl, &w.g, io.part, n0 > 0)?);
    }
    keep.push(tbl);
    Ok(Built::same(f, bw, keep))
}

/// Whether "same"-padded stride-1 data gradients run as a forward convolution over dY (the
/// default) rather than conv_dgrad's gather; AUTOCOMPRESS_DGRAD=gather picks the gather, for A/B
/// timing.
fn dgrad_as_conv() -> bool {
    std::env::var("AUTOCOMPRESS_DGRAD").map_or(true, |v| v != "gather")
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
        f.push(ops::im2col(gpu, x, tbl, col, g, kc, n0, chunk.min(g.n - n0))?);
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
    let (w, b) = (io.w.context("linear without weights")?, io.b.context("linear without bias")?);
    let (bp, ip, op) = (n.next_multiple_of(4), inputs.next_multiple_of(4), units.next_multiple_of(4));
    let mut f = Vec::new();
    let wa = operand(gpu, &w.w, &Pack::matrix(units, inputs, inputs, 1, false), io.sa, &mut f)?;
    f.push(pack(gpu, io.x, io.col, &Pack::matrix(inputs, n, 1, inputs, true))?);
    let yt = OutMap { off: 0, rs: 1, bs: 0, cs: units, n_inner: ALL, n_valid: ALL, accumulate: false };
    f.push(gemm(gpu, &Gemm { a: wa, a_off: 0, b: io.col, b_off: 0, m: units, n, kp: ip, np: bp }, Bias::PerRow(&b.w, 0), io.y, yt)?);

    let mut bw = vec![ops::channel_sum(gpu, io.dy, &b.g, n, units, 1, false)?];
    if let Some(dx) = io.dx {
        let dya = operand(gpu, io.dy, &Pack::matrix(n, units, units, 1, false), io.sb, &mut bw)?;
        let wb = operand(gpu, &w.w, &Pack::matrix(units, inputs, inputs, 1, true), io.sa, &mut bw)?;
        let data = Gemm { a: dya, a_off: 0, b: wb, b_off: 0, m: n, n: inputs, kp: op, np: ip };
        bw.push(gemm(gpu, &data, Bias::None, dx, OutMap::rows(inputs))?);
    }
    bw.push(pack(gpu, io.dy, io.sb, &Pack::matrix(units, n, 1, units, true))?);
    let xb = operand(gpu, io.x, &Pack::matrix(n, inputs, inputs, 1, true), io.col, &mut bw)?;
    let wgt = Gemm { a: io.sb, a_off: 0, b: xb, b_off: 0, m: units, n: inputs, kp: bp, np: ip };
    bw.extend(gemm_split_k(gpu, &wgt, &w.g, OutMap::rows(inputs), io.part)?);
    Ok(Built::same(f, bw, vec![]))
}

/// PyTorch's defaults: ε = 1e-5, running statistics move 10% toward each batch's.
const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

/// Batch norm: statistics then the affine map; in training from the batch (updating the
/// running statistics), in evaluation from the running statistics.
fn batch_norm(gpu: &Gpu, io: &LayerIo, g: &BnGeom) -> Result<Built> {
    let (gamma, beta) = (io.w.context("batch norm without γ")?, io.b.context("batch norm without β")?);
    let running = io.running.context("batch norm without running statistics")?;
    let stats = gpu.tensor(2 * g.c, "batch-norm statistics")?;
    let eval = BnGeom { training: false, ..*g };
    let forward = vec![norm::bn_stats(gpu, io.x, &stats, running, g)?, norm::bn_apply(gpu, io.x, &stats, &gamma.w, &beta.w, io.y, g)?];
    let forward_eval = vec![norm::bn_stats(gpu, io.x, &stats, running, &eval)?, norm::bn_apply(gpu, io.x, &stats, &gamma.w, &beta.w, io.y, &eval)?];
    let mut backward = vec![norm::bn_backward_reduce(gpu, io.dy, io.x, &stats, &gamma.g, &beta.g, g)?];
    if let Some(dx) = io.dx {
        backward.push(norm::bn_backward_dx(gpu, io.dy, io.x, &stats, &gamma.w, &gamma.g, &beta.g, dx, g)?);
    }
    Ok(Built { forward, forward_eval, backward, keep: vec![stats] })
}
