//! Epochs, batches, the learning-rate schedule, metrics and the NaN guard.

pub mod checkpoint;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::time::Instant;

use crate::data::{self, Data, Split};
use crate::gpu::loss::LOSS_RING;
use crate::gpu::Gpu;
use crate::model::{Hyper, Network};

/// Knowledge distillation (Hinton et al. 2015, ours): the loss is (1 − alpha)·cross-entropy +
/// alpha·T²·KL(teacher ‖ student), both softmaxes at temperature T.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Distill {
    pub alpha: f32,
    pub temperature: f32,
}

/// The weight and temperature `compress` distils LeNet-5 with and `train --teacher` uses.
pub const DEFAULT_DISTILL: Distill = Distill { alpha: 0.5, temperature: 2.0 };

impl Distill {
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha), "--distill must be in [0, 1], found {}", self.alpha);
        anyhow::ensure!(self.temperature.is_finite() && self.temperature > 0.0, "--distill-temperature must be positive, found {}", self.temperature);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// Cosine decay from the base rate to zero over the run.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step { every: usize, gamma: f32 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub schedule: Schedule,
    /// Linear warm-up from lr/10 over this many epochs (may be fractional).
    pub warmup_epochs: f32,
    pub seed: u64,
    /// Cap on the steps of one epoch: an epoch is then a partial pass over a fresh shuffle
    /// (ADMM periods and retraining shorter than one pass over a large data set).
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    /// Random 4-pixel-padded crops and horizontal flips of the training images (CIFAR).
    #[serde(default)]
    pub augment: bool,
    /// Distillation from the teacher logits stored with the training split (ours).
    #[serde(default)]
    pub distill: Option<Distill>,
}

impl TrainConfig {
    /// Per-model defaults: the schedules the README's figures were measured with.
    pub fn defaults_for(model: &str) -> TrainConfig {
        let base = TrainConfig {
            epochs: 10,
            batch_size: 64,
            lr: 0.02,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 0.0,
            seed: 1,
            steps_per_epoch: None,
            augment: false,
            distill: None,
        };
        match model {
            "digits-cnn" => TrainConfig { epochs: 30, batch_size: 32, lr: 0.05, ..base },
            // Caffe's LeNet-5 solver rate, with a short warm-up and cosine decay.
            "lenet5" => TrainConfig { lr: 0.01, warmup_epochs: 0.2, ..base },
            // the usual CIFAR recipe: SGD 0.05 with momentum, one warm-up epoch, cosine decay
            "vgg16" | "resnet18" => TrainConfig { lr: 0.05, warmup_epochs: 1.0, epochs: 30, ..base },
            _ => base,
        }
    }

    /// Learning rate at fractional epoch `t` of `epochs`.
    pub fn lr_at(&self, t: f32) -> f32 {
        let base = match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f32::consts::PI * t / self.epochs.max(1) as f32).cos()),
            Schedule::Step { every, gamma } => self.lr * gamma.powi((t as usize / every.max(1)) as i32),
        };
        if t < self.warmup_epochs {
            base * (0.1 + 0.9 * t / self.warmup_epochs)
        } else {
            base
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("--epochs must be at least 1, found 0");
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1, found 0");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, found {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum must be in [0, 1), found {}", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be ≥ 0, found {}", self.weight_decay);
        }
        if self.steps_per_epoch == Some(0) {
            bail!("steps per epoch must be at least 1, found 0");
        }
        if let Some(d) = &self.distill {
            d.validate()?;
            // the teacher's logits are computed once per training image, unaugmented
            if self.augment {
                bail!("distillation and augmentation exclude each other: the teacher logits are of unaugmented images");
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Trains `net` on `data.train` for `cfg.epochs`, evaluating on `data.val` after each epoch.
/// `on_epoch` sees the logs of every epoch so far after each one (to checkpoint); a non-finite
/// loss stops training with an error naming the epoch and step, before `on_epoch` could save a
/// broken model.
pub fn train(
    gpu: &Gpu,
    net: &Network,
    data: &Data,
    cfg: &TrainConfig,
    progress: bool,
    on_epoch: impl FnMut(&[EpochLog]) -> Result<()>,
) -> Result<Vec<EpochLog>> {
    train_from(gpu, net, data, cfg, Vec::new(), progress, on_epoch)
}

/// As `train`, continuing after the epochs `done` describes: `net` must already hold the
/// weights and momentum they ended with (`checkpoint::Checkpoint::restore`). Each epoch's
/// batches and augmentation follow from (seed, epoch) alone, so a resumed run repeats the
/// uninterrupted one. Returns the logs of every epoch, `done` first.
pub fn train_from(
    gpu: &Gpu,
    net: &Network,
    data: &Data,
    cfg: &TrainConfig,
    done: Vec<EpochLog>,
    progress: bool,
    mut on_epoch: impl FnMut(&[EpochLog]) -> Result<()>,
) -> Result<Vec<EpochLog>> {
    cfg.validate()?;
    if done.len() > cfg.epochs {
        bail!("the checkpoint has {} epochs done, more than the {} this run trains", done.len(), cfg.epochs);
    }
    let n = data.train.len();
    // Full batches only: every step sees the same batch size.
    let steps = n / net.batch;
    if steps == 0 {
        bail!("the training set ({n} images) is smaller than one batch ({}): lower --batch-size", net.batch);
    }
    let steps = cfg.steps_per_epoch.map_or(steps, |cap| cap.min(steps));
    let mut global_step = done.len() * steps;
    let mut logs = done;
    for epoch in logs.len()..cfg.epochs {
        let t0 = Instant::now();
        let order = data::epoch_order(n, cfg.seed, epoch);
        let bar = bar(progress, steps as u64, &format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let lr = run_steps(gpu, net, &data.train, &order[..steps * net.batch], cfg, epoch, &mut global_step, &bar)?;
        let m = net.read_metrics(gpu)?;
        let seen = (steps * net.batch) as f64;
        let train_seconds = t0.elapsed().as_secs_f64();
        let (_, val_accuracy) = evaluate(gpu, net, &data.val)?;
        bar.finish_and_clear();
        let log = EpochLog {
            epoch: epoch + 1,
            lr,
            train_loss: m.loss_sum / seen,
            train_accuracy: m.correct / seen,
            val_accuracy,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_second: seen / train_seconds,
        };
        if progress {
            eprintln!(
                "epoch {:>3}/{}  loss {:.4}  train {:.2}%  val {:.2}%  {:.0} img/s  {:.1}s",
                log.epoch,
                cfg.epochs,
                log.train_loss,
                100.0 * log.train_accuracy,
                100.0 * log.val_accuracy,
                log.images_per_second,
                log.seconds
            );
        }
        logs.push(log);
        on_epoch(&logs)?;
    }
    Ok(logs)
}

/// One pass of SGD steps over `order` (whole batches) at epoch `epoch`'s learning rates, with
/// the NaN guard; returns the last learning rate. Metrics accumulate from their last reset.
#[allow(clippy::too_many_arguments)]
fn run_steps(gpu: &Gpu, net: &Network, split: &Split, order: &[usize], cfg: &TrainConfig, epoch: usize, global_step: &mut usize, bar: &ProgressBar) -> Result<f32> {
    let il = net.image_len();
    let steps = order.len() / net.batch;
    let mut images = vec![0.0f32; net.batch * il];
    let mut labels = vec![0u32; net.batch];
    let classes = net.arch.classes;
    if cfg.distill.is_some() && split.teacher.len() != split.len() * classes {
        bail!("distillation needs the teacher's logits of every training image ({} × {classes}), found {} values", split.len(), split.teacher.len());
    }
    let mut teacher = vec![0.0f32; net.batch * classes];
    net.reset_metrics(gpu);
    let mut checked = 0;
    let mut lr = cfg.lr;
    for s in 0..steps {
        let batch = &order[s * net.batch..(s + 1) * net.batch];
        data::gather(split, batch, il, &mut images, &mut labels);
        if cfg.augment {
            data::augment::crop_flip(&mut images, net.batch, net.arch.input, 4, cfg.seed, epoch, s * net.batch);
        }
        net.load_batch(gpu, &images, &labels)?;
        if cfg.distill.is_some() {
            data::gather_teacher(split, batch, classes, &mut teacher);
            net.load_teacher(gpu, &teacher)?;
        }
        lr = cfg.lr_at(epoch as f32 + s as f32 / steps as f32);
        let distill = cfg.distill.map_or(Hyper::plain(0.0, 0.0).distill, |d| [d.alpha, d.temperature]);
        net.train_step(gpu, Hyper { lr, momentum: cfg.momentum, distill }, net.batch, *global_step)?;
        *global_step += 1;
        if s + 1 - checked >= LOSS_RING / 2 || s + 1 == steps {
            let m = net.read_metrics(gpu)?;
            for q in checked..=s {
                let slot = (*global_step - 1 - (s - q)) % LOSS_RING;
                if !m.ring[slot].is_finite() {
                    bail!("training loss became {} at epoch {}, step {} of {steps}: lower --lr", m.ring[slot], epoch + 1, q + 1);
                }
            }
            let seen = ((s + 1) * net.batch) as f64;
            bar.set_message(format!("loss {:.4} acc {:.2}%", m.loss_sum / seen, 100.0 * m.correct / seen));
            checked = s + 1;
        }
        bar.inc(1);
    }
    Ok(lr)
}

/// `steps` SGD steps on `split` at `cfg`'s learning-rate schedule squeezed into those steps,
/// batches drawn in the order `seed` fixes (the quick retraining of SPEC.md §5).
pub fn train_steps(gpu: &Gpu, net: &Network, split: &Split, cfg: &TrainConfig, steps: usize, seed: u64) -> Result<()> {
    if steps == 0 {
        return Ok(());
    }
    let per_epoch = split.len() / net.batch;
    if per_epoch == 0 {
        bail!("the training set ({} images) is smaller than one batch ({})", split.len(), net.batch);
    }
    // as many shuffled passes as the steps need, cut to whole batches
    let mut order = Vec::with_capacity(steps * net.batch);
    let mut pass = 0;
    while order.len() < steps * net.batch {
        let o = data::epoch_order(split.len(), seed, pass);
        order.extend_from_slice(&o[..per_epoch * net.batch]);
        pass += 1;
    }
    order.truncate(steps * net.batch);
    let one = TrainConfig { epochs: 1, warmup_epochs: 0.0, ..cfg.clone() };
    run_steps(gpu, net, split, &order, &one, 0, &mut 0, &ProgressBar::hidden())?;
    Ok(())
}

/// Recalibrates `net`'s batch-norm running statistics on the full batches of `split`, in order
/// (see `Network::recalibrate`).
pub fn recalibrate_batch_norm(gpu: &Gpu, net: &Network, split: &Split) -> Result<()> {
    let il = net.image_len();
    let mut images = vec![0.0f32; net.batch * il];
    let mut labels = vec![0u32; net.batch];
    let idx: Vec<usize> = (0..split.len()).collect();
    net.recalibrate(gpu, split.len() / net.batch, |net, i| {
        data::gather(split, &idx[i * net.batch..(i + 1) * net.batch], il, &mut images, &mut labels);
        net.load_batch(gpu, &images, &labels)
    })
}

/// `net`'s logits (evaluation mode) for every image of `split`, in order: `[n][classes]`, the
/// teacher logits of distillation.
pub fn logits(gpu: &Gpu, net: &Network, split: &Split) -> Result<Vec<f32>> {
    let classes = net.arch.classes;
    let mut out = Vec::with_capacity(split.len() * classes);
    eval_batches(gpu, net, split, |rows| {
        out.extend_from_slice(&net.logits(gpu)?[..rows * classes]);
        Ok(())
    })?;
    if let Some(bad) = out.iter().position(|v| !v.is_finite()) {
        bail!("the teacher's logit {} of image {} is {}", bad % classes, bad / classes, out[bad]);
    }
    Ok(out)
}

/// Whether `net` classifies each image of `split` right, in order: the loss kernel's rule (the
/// first largest logit is the prediction), so the mean is `evaluate`'s accuracy.
pub fn correctness(gpu: &Gpu, net: &Network, split: &Split) -> Result<Vec<bool>> {
    let classes = net.arch.classes;
    let mut out = Vec::with_capacity(split.len());
    eval_batches(gpu, net, split, |rows| {
        let logits = net.logits(gpu)?;
        for row in logits[..rows * classes].chunks(classes) {
            let mut arg = 0;
            for c in 1..classes {
                if row[c] > row[arg] {
                    arg = c;
                }
            }
            let label = split.labels[out.len()] as usize;
            out.push(arg == label);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Mean loss and accuracy of `net` on `split` (the final partial batch included).
pub fn evaluate(gpu: &Gpu, net: &Network, split: &Split) -> Result<(f64, f64)> {
    if split.is_empty() {
        return Ok((0.0, 0.0));
    }
    net.reset_metrics(gpu);
    eval_batches(gpu, net, split, |_| Ok(()))?;
    let m = net.read_metrics(gpu)?;
    let n = split.len() as f64;
    Ok((m.loss_sum / n, m.correct / n))
}

/// The evaluation forward and loss over `split` in order, one batch at a time (the last one
/// partial); `after` sees each batch's row count once it has run.
fn eval_batches(gpu: &Gpu, net: &Network, split: &Split, mut after: impl FnMut(usize) -> Result<()>) -> Result<()> {
    let il = net.image_len();
    let mut images = vec![0.0f32; net.batch * il];
    let mut labels = vec![0u32; net.batch];
    let idx: Vec<usize> = (0..split.len()).collect();
    for chunk in idx.chunks(net.batch) {
        data::gather(split, chunk, il, &mut images, &mut labels);
        net.load_batch(gpu, &images[..chunk.len() * il], &labels[..chunk.len()])?;
        net.eval_step(gpu, chunk.len())?;
        after(chunk.len())?;
    }
    Ok(())
}

pub fn bar(show: bool, len: u64, prefix: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_prefix(prefix.to_string());
    b
}
