//! A model on the GPU for a fixed batch size: parameters, gradients, velocities and activations
//! allocated once, and the forward, loss, backward and update passes prepared once as lists of
//! dispatches. A training step writes one batch, records the four lists into one encoder and
//! submits it; metrics stay on the GPU until the host asks for them.

use anyhow::{ensure, Context, Result};

use super::flat::flatten;
use super::graph::{Architecture, Shape};
use super::lower::{lower, BN_MOMENTUM};
use super::store::Store;
use super::weights::{NamedTensor, Weights};
use crate::gpu::loss::{self, LOSS_RING};
use crate::gpu::{record, sgd, Dispatch, Gpu, Tensor};

/// One parameter tensor with its gradient, momentum and 0/1 mask: views of the network's flat
/// parameter buffers (`store`).
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub w: Tensor,
    /// d loss / d w of the last backward pass.
    pub grad: Tensor,
    /// SGD momentum.
    pub velocity: Tensor,
    /// Ones unless `masked`.
    pub mask: Tensor,
    /// Whether the mask holds this parameter's pruning (SGD keeps its zeros at zero).
    pub masked: bool,
}

/// Training hyper-parameters that the loss and update passes read from the GPU every step.
#[derive(Clone, Copy, Debug)]
pub struct Hyper {
    pub lr: f32,
    pub momentum: f32,
    /// [α, T] of the loss kernel: (1 − α)·cross-entropy + α·T²·KL to the teacher logits loaded
    /// with the batch (`train::Distill`); α = 0 is plain cross-entropy.
    pub distill: [f32; 2],
}

impl Hyper {
    /// Plain cross-entropy, no distillation.
    pub fn plain(lr: f32, momentum: f32) -> Hyper {
        Hyper { lr, momentum, distill: [0.0, 1.0] }
    }
}

/// One batch norm's running statistics on the GPU: mean[C] then variance[C]. Not trained.
pub struct RunningStats {
    pub layer: String,
    pub channels: usize,
    pub stats: Tensor,
}

pub struct Network {
    pub arch: Architecture,
    pub batch: usize,
    pub shapes: Vec<Shape>,
    pub params: Vec<Param>,
    /// The flat buffers the parameters are views of.
    store: Store,
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
    running: Vec<RunningStats>,
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

        let mut tensors = Vec::new();
        let mut running = Vec::new();
        for ps in arch.param_shapes()? {
            for (name, _) in ps.tensors().into_iter().take(2) {
                // weight decay applies to conv and linear weights, not to biases or γ
                tensors.push((weights.get(&name)?, !ps.batch_norm && name.ends_with(".weight")));
            }
            if ps.batch_norm {
                let mut stats = weights.get(&format!("{}.running_mean", ps.name))?.data.clone();
                stats.extend_from_slice(&weights.get(&format!("{}.running_var", ps.name))?.data);
                running.push(RunningStats { layer: ps.name.clone(), channels: ps.bias, stats: gpu.upload(&stats, "running statistics")? });
            }
        }

        let data: Vec<(&[f32], bool)> = tensors.iter().map(|(t, decay)| (&t.data[..], *decay)).collect();
        let (store, views) = Store::new(gpu, &data)?;
        let params: Vec<Param> = tensors
            .iter()
            .zip(views)
            .map(|((t, _), v)| Param {
                name: t.name.clone(),
                shape: t.shape.clone(),
                w: v.w,
                grad: v.grad,
                velocity: v.velocity,
                mask: v.mask,
                masked: false,
            })
            .collect();

        let passes = lower(gpu, &flat, &params, &running, &input, batch, budget)?;
        let mut keep = passes.keep;
        let classes = arch.classes;
        let labels = gpu.tensor(batch, "labels")?;
        let hyper = gpu.tensor(4, "hyper")?;
        let teacher = gpu.tensor(batch * classes, "teacher logits")?;
        let distill = gpu.tensor(2, "distillation")?;
        let stats = gpu.tensor(2 * batch, "stats")?;
        let metrics = gpu.tensor(2 + LOSS_RING, "metrics")?;
        let logits = passes.logits;
        let loss = vec![
            loss::softmax_xent(gpu, &logits, &labels, &hyper, &teacher, &distill, &passes.dlogits, &stats, batch, classes)?,
            loss::accumulate_metrics(gpu, &stats, &hyper, &metrics, batch)?,
        ];
        keep.push(stats);

        let mut net = Network {
            arch: arch.clone(),
            batch,
            shapes,
            params,
            store,
            weight_decay,
            input,
            labels,
            teacher,
            hyper,
            distill,
            metrics,
            logits,
            running,
            forward: passes.forward,
            forward_eval: passes.forward_eval,
            loss,
            backward: passes.backward,
            penalty: Vec::new(),
            update: Vec::new(),
            _keep: keep,
        };
        net.rebuild_update(gpu)?;
        Ok(net)
    }

    /// The update: one SGD dispatch over each chunk of flat buffers (one chunk unless the
    /// parameters exceed a storage binding), reading the masks only while some parameter is masked.
    fn rebuild_update(&mut self, gpu: &Gpu) -> Result<()> {
        let masked = self.params.iter().any(|p| p.masked);
        self.update = self
            .store
            .chunks
            .iter()
            .map(|c| sgd::sgd(gpu, &c.grads, &self.hyper, &c.weights, &c.velocities, masked.then_some(&c.masks), self.weight_decay, c.decayed))
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

    /// The weight tensor of the conv, linear or batch-norm layer `layer`.
    pub fn weight(&self, layer: &str) -> Result<&Param> {
        self.param(&super::weights::weight_name(layer))
    }

    /// Marks parameters whose mask views (`Param::mask`) a kernel has filled: the weights must
    /// already be zero where their masks are.
    pub fn mark_masked(&mut self, gpu: &Gpu, names: &[String]) -> Result<()> {
        for name in names {
            let i = self.position(name)?;
            self.params[i].masked = true;
        }
        self.rebuild_update(gpu)
    }

    /// Drops every parameter's mask.
    pub fn clear_masks(&mut self, gpu: &Gpu) -> Result<()> {
        self.store.fill(gpu, |c| &c.masks, 1.0);
        self.params.iter_mut().for_each(|p| p.masked = false);
        self.rebuild_update(gpu)
    }

    fn position(&self, name: &str) -> Result<usize> {
        self.params.iter().position(|p| p.name == name).with_context(|| format!("no parameter '{name}'"))
    }

    /// Sets (or clears) the 0/1 mask of a parameter; masked entries are zeroed at once and stay
    /// zero through every later update.
    pub fn set_mask(&mut self, gpu: &Gpu, name: &str, mask: Option<&[f32]>) -> Result<()> {
        let i = self.position(name)?;
        let p = &mut self.params[i];
        match mask {
            Some(m) => {
                ensure!(m.len() == p.w.len, "mask for {name} has {} entries, the tensor {}", m.len(), p.w.len);
                let w: Vec<f32> = gpu.read(&p.w)?;
                let masked: Vec<f32> = w.iter().zip(m).map(|(a, b)| a * b).collect();
                gpu.write(&p.w, &masked);
                gpu.write(&p.mask, m);
            }
            None => gpu.write(&p.mask, &vec![1.0f32; p.mask.len]),
        }
        p.masked = mask.is_some();
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
        ensure!(logits.len() <= self.teacher.len && logits.len().is_multiple_of(self.arch.classes), "teacher logits do not match the batch");
        gpu.write(&self.teacher, logits);
        Ok(())
    }

    pub fn image_len(&self) -> usize {
        self.arch.input.iter().product()
    }

    fn set_hyper(&self, gpu: &Gpu, h: Hyper, valid: usize, step: usize) {
        gpu.write(&self.hyper, &[h.lr, h.momentum, valid as f32, (step % LOSS_RING) as f32]);
        gpu.write(&self.distill, &h.distill);
    }

    /// Forward, loss, backward and SGD update on the loaded batch, submitted as one command buffer.
    pub fn train_step(&self, gpu: &Gpu, h: Hyper, valid: usize, step: usize) -> Result<()> {
        self.set_hyper(gpu, h, valid, step);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for plan in [&self.forward, &self.loss, &self.backward, &self.penalty, &self.update] {
            record(&mut enc, plan);
        }
        gpu.submit(enc)
    }

    /// Forward and loss only: accumulates loss and correct counts for the loaded batch.
    pub fn eval_step(&self, gpu: &Gpu, valid: usize) -> Result<()> {
        self.run_passes(gpu, valid, &[&self.forward_eval, &self.loss])
    }

    /// Forward (training mode: batch-norm batch statistics, running averages updated) and loss
    /// only, as `gradient_step` sees the loss: for gradient checks.
    pub fn train_loss_step(&self, gpu: &Gpu, valid: usize) -> Result<()> {
        self.run_passes(gpu, valid, &[&self.forward, &self.loss])
    }

    /// Forward, loss and backward without the update: gradients land in each `Param::grad`.
    pub fn gradient_step(&self, gpu: &Gpu, valid: usize) -> Result<()> {
        self.run_passes(gpu, valid, &[&self.forward, &self.loss, &self.backward])
    }

    /// Records `passes` (no update, so a zero learning rate) into one command buffer.
    fn run_passes(&self, gpu: &Gpu, valid: usize, passes: &[&Vec<Dispatch>]) -> Result<()> {
        self.set_hyper(gpu, Hyper::plain(0.0, 0.0), valid, 0);
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for plan in passes {
            record(&mut enc, plan);
        }
        gpu.submit(enc)
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
        let mut data = self.store.read_each(gpu, |c| &c.weights)?.into_iter();
        for pair in self.params.chunks(2) {
            for (p, data) in pair.iter().zip(data.by_ref()) {
                tensors.push(NamedTensor { name: p.name.clone(), shape: p.shape.clone(), data });
            }
            let layer = pair[0].name.trim_end_matches(".weight");
            if let Some(r) = run.next_if(|r| r.layer == layer) {
                let (name, c) = (&r.layer, r.channels);
                let stats: Vec<f32> = gpu.read(&r.stats)?;
                tensors.push(NamedTensor { name: format!("{name}.running_mean"), shape: vec![c], data: stats[..c].to_vec() });
                tensors.push(NamedTensor { name: format!("{name}.running_var"), shape: vec![c], data: stats[c..2 * c].to_vec() });
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
        let mut before: Vec<Vec<f32>> = self.running.iter().map(|r| gpu.read(&r.stats)).collect::<Result<_>>()?;
        let mut sum: Vec<Vec<f64>> = before.iter().map(|b| vec![0.0; b.len()]).collect();
        for i in 0..batches {
            load(self, i)?;
            self.train_loss_step(gpu, self.batch)?;
            for ((r, prev), acc) in self.running.iter().zip(&mut before).zip(&mut sum) {
                let after: Vec<f32> = gpu.read(&r.stats)?;
                for ((a, p), s) in after.iter().zip(prev.iter()).zip(acc.iter_mut()) {
                    *s += ((a - (1.0 - m) * p) / m) as f64;
                }
                *prev = after;
            }
        }
        for (r, acc) in self.running.iter().zip(&sum) {
            let c = r.channels;
            // variances clamped at 0: the read-back can round a constant channel's to −1e-9
            let mean = |s: &f64| (s / batches as f64) as f32;
            let stats: Vec<f32> = acc.iter().enumerate().map(|(j, s)| if j >= c { mean(s).max(0.0) } else { mean(s) }).collect();
            gpu.write(&r.stats, &stats);
        }
        Ok(())
    }

    /// Copies the gradients of the last backward pass to the host, named like the parameters.
    pub fn gradients(&self, gpu: &Gpu) -> Result<Weights> {
        let data = self.store.read_each(gpu, |c| &c.grads)?;
        let tensors = self.params.iter().zip(data).map(|(p, data)| NamedTensor { name: p.name.clone(), shape: p.shape.clone(), data }).collect();
        Ok(Weights { tensors })
    }

    /// Copies the SGD momentum of every parameter to the host, named `velocity.<parameter>`.
    pub fn velocities(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>> {
        let data = self.store.read_each(gpu, |c| &c.velocities)?;
        Ok(self.params.iter().zip(data).map(|(p, data)| NamedTensor { name: velocity_name(&p.name), shape: p.shape.clone(), data }).collect())
    }

    /// The names `velocities` gives, in its order.
    pub fn velocity_names(&self) -> Vec<String> {
        self.params.iter().map(|p| velocity_name(&p.name)).collect()
    }

    /// Overwrites the SGD momentum (after `set_weights`, which clears it).
    pub fn set_velocities(&self, gpu: &Gpu, v: &[NamedTensor]) -> Result<()> {
        ensure!(v.len() == self.params.len(), "{} momentum tensors for {} parameters", v.len(), self.params.len());
        for (p, t) in self.params.iter().zip(v) {
            ensure!(t.name == velocity_name(&p.name) && t.shape == p.shape, "momentum tensor {} {:?} does not fit parameter {} {:?}", t.name, t.shape, p.name, p.shape);
            gpu.write(&p.velocity, &t.data);
        }
        Ok(())
    }

    /// Overwrites the parameters and running statistics (same architecture) and clears the
    /// momentum.
    pub fn set_weights(&self, gpu: &Gpu, w: &Weights) -> Result<()> {
        for p in &self.params {
            let t = w.get(&p.name)?;
            ensure!(t.shape == p.shape, "tensor {} has shape {:?}, the network {:?}", p.name, t.shape, p.shape);
            gpu.write(&p.w, &t.data);
        }
        self.store.fill(gpu, |c| &c.velocities, 0.0);
        for r in &self.running {
            let (name, c) = (&r.layer, r.channels);
            let mut stats = w.get(&format!("{name}.running_mean"))?.data.clone();
            stats.extend_from_slice(&w.get(&format!("{name}.running_var"))?.data);
            ensure!(stats.len() == 2 * c, "running statistics of {name} do not have {c} channels");
            gpu.write(&r.stats, &stats);
        }
        Ok(())
    }
}

fn velocity_name(param: &str) -> String {
    format!("velocity.{param}")
}
