//! One action applied for real (SPEC.md §2 step 4): ADMM, hard pruning and masked retraining
//! (§3), purification (§4), compaction (§6), and the check that the compacted model computes
//! what the masked one does. `prune` runs it once; every `compress` round runs it on the action
//! its search chose.

use anyhow::Result;

use super::action::Action;
use super::admm::{self, AdmmConfig, AdmmLog};
use super::compact::compact;
use super::count::{count, Count};
use super::purify::{self, PurifyConfig, PurifyLog};
use crate::data::{self, Data, Split};
use crate::gpu::Gpu;
use crate::model::{Architecture, Network, Weights};
use crate::train::{self, TrainConfig};

/// Validation and test accuracy of one model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accuracy {
    pub val: f64,
    pub test: f64,
}

/// What the pipeline made of one model.
pub struct Pruned {
    pub admm: AdmmLog,
    /// The masked model after ADMM and retraining, before purification: its accuracies...
    pub before_purification: Accuracy,
    /// ...and its size once compacted.
    pub before_purification_size: Count,
    /// None when purification was off.
    pub purification: Option<PurifyLog>,
    /// The compacted model, and a network of it (`cfg`'s batch size and weight decay).
    pub arch: Architecture,
    pub weights: Weights,
    pub net: Network,
    /// Largest relative difference between the compacted and the masked model's logits.
    pub compacted_vs_masked: f64,
}

/// Prunes `net` (a trainable network of the model) with `action`: ADMM with `admm_cfg`, each
/// period an SGD schedule of `cfg`; then purification with `purify_cfg` unless None; then
/// compaction. The masked network is dropped once the compacted one is checked against it.
#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: &Gpu,
    mut net: Network,
    data: &Data,
    action: &Action,
    admm_cfg: &AdmmConfig,
    cfg: &TrainConfig,
    purify_cfg: Option<&PurifyConfig>,
    progress: bool,
) -> Result<Pruned> {
    let arch = net.arch.clone();
    let admm_log = admm::prune(gpu, &mut net, data, action, admm_cfg, cfg, progress)?;
    let (parch, _, _) = compact(&arch, &net.weights(gpu)?)?;
    let before_purification_size = count(&parch)?;
    let before_purification = Accuracy { val: train::evaluate(gpu, &net, &data.val)?.1, test: train::evaluate(gpu, &net, &data.test)?.1 };
    let purification = match purify_cfg {
        Some(p) => Some(purify::purify(gpu, &mut net, data, p, progress)?),
        None => None,
    };
    let (carch, cw, _) = compact(&arch, &net.weights(gpu)?)?;
    if progress && purification.is_some() {
        let after = count(&carch)?.params;
        eprintln!("purification: the compacted model keeps {after} params ({} before purification)", before_purification_size.params);
    }
    let cnet = Network::new(gpu, &carch, &cw, cfg.batch_size, cfg.weight_decay)?;
    let compacted_vs_masked = compare_outputs(gpu, &net, &cnet, &data.test)?;
    Ok(Pruned { admm: admm_log, before_purification, before_purification_size, purification, arch: carch, weights: cw, net: cnet, compacted_vs_masked })
}

/// Largest relative difference between two networks' logits over the first batch of `split`.
pub fn compare_outputs(gpu: &Gpu, a: &Network, b: &Network, split: &Split) -> Result<f64> {
    let n = a.batch.min(b.batch).min(split.len());
    let il = a.image_len();
    let idx: Vec<usize> = (0..n).collect();
    let mut images = vec![0.0f32; n * il];
    let mut labels = vec![0u32; n];
    data::gather(split, &idx, il, &mut images, &mut labels);
    let mut outs = Vec::new();
    for net in [a, b] {
        net.load_batch(gpu, &images, &labels)?;
        net.eval_step(gpu, n)?;
        outs.push(net.logits(gpu)?[..n * a.arch.classes].to_vec());
    }
    let scale = outs[0].iter().fold(1e-6f32, |m, x| m.max(x.abs())) as f64;
    Ok(outs[0].iter().zip(&outs[1]).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max) / scale)
}
