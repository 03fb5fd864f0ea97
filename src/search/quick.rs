//! Quick evaluation (SPEC.md §5): prune a copy of the current weights one-shot by the action,
//! retrain a few masked SGD steps, measure accuracy on a fixed validation subset. Cached by what
//! the action prunes. Batch-norm running statistics are re-estimated before the measurement.

use anyhow::Result;
use std::collections::HashMap;

use super::cost::{key, to_action, Plan, Slot};
use crate::data::{Data, Split};
use crate::gpu::Gpu;
use crate::model::{Architecture, Network, Weights};
use crate::prune::admm::hard_prune;
use crate::train::{self, TrainConfig};

/// Training batches whose statistics replace a candidate's batch-norm running statistics.
const RECALIBRATION_BATCHES: usize = 8;

pub struct QuickEval<'a> {
    gpu: &'a Gpu,
    net: Network,
    base: Weights,
    train: &'a Split,
    val: Split,
    /// Unaugmented training images whose batches recalibrate batch norms; empty without them.
    calibration: Split,
    cfg: TrainConfig,
    steps: usize,
    seed: u64,
    cache: HashMap<String, f64>,
}

impl<'a> QuickEval<'a> {
    /// `val_images` of the validation part (the first ones: the subset is fixed) and `steps`
    /// retraining steps at `cfg`'s rate and batch, batches drawn from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(gpu: &'a Gpu, arch: &Architecture, weights: &Weights, data: &'a Data, cfg: &TrainConfig, steps: usize, val_images: usize, seed: u64) -> Result<QuickEval<'a>> {
        let net = Network::new(gpu, arch, weights, cfg.batch_size, cfg.weight_decay)?;
        let n = val_images.min(data.val.len());
        let idx: Vec<usize> = (0..n).collect();
        // the same batches for every candidate, drawn once
        let take = if net.has_batch_norm() { RECALIBRATION_BATCHES * cfg.batch_size } else { 0 };
        let order = crate::data::epoch_order(data.train.len(), seed, 0);
        let calibration = data.train.subset(&order[..take.min(order.len())], data.image_len());
        Ok(QuickEval {
            gpu,
            net,
            base: weights.clone(),
            train: &data.train,
            val: data.val.subset(&idx, data.image_len()),
            calibration,
            cfg: cfg.clone(),
            steps,
            seed,
            cache: HashMap::new(),
        })
    }

    /// Validation-subset accuracy (0..1) after pruning by `plan`, and whether it came from the cache.
    pub fn accuracy(&mut self, slots: &[Slot], plan: &Plan) -> Result<(f64, bool)> {
        let k = key(slots, plan);
        if let Some(&acc) = self.cache.get(&k) {
            return Ok((acc, true));
        }
        self.net.set_weights(self.gpu, &self.base)?;
        self.net.clear_masks(self.gpu)?;
        hard_prune(self.gpu, &mut self.net, &to_action(slots, plan))?;
        train::train_steps(self.gpu, &self.net, self.train, &self.cfg, self.steps, self.seed)?;
        // a few quick steps leave the running statistics of the unpruned network, which put
        // every candidate of a batch-norm network at chance
        train::recalibrate_batch_norm(self.gpu, &self.net, &self.calibration)?;
        let (_, acc) = train::evaluate(self.gpu, &self.net, &self.val)?;
        self.cache.insert(k, acc);
        Ok((acc, false))
    }
}
