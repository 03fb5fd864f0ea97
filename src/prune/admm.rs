//! ADMM structured pruning (SPEC.md §3): W-updates by SGD with the penalty ρ/2‖W − Z + U‖²,
//! Z = Π(W + U) and U += W − Z every period, ρ growing each time, then hard pruning and masked
//! retraining. Every tensor step is a kernel of shaders/admm.wgsl; the host only orchestrates and
//! reads back two sums per layer per update for the primal residual.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::action::{Action, Scheme};
use crate::data::Data;
use crate::gpu::admm::{self as k, keep_count, primal_residual, GroupView};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::model::Network;
use crate::prune::topology::chain;
use crate::train::{self, EpochLog, TrainConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdmmConfig {
    pub rho0: f32,
    pub rho_growth: f32,
    /// Z-updates (each ends one W-update period).
    pub updates: usize,
    pub epochs_per_update: usize,
    pub retrain_epochs: usize,
    /// Cap on the steps of one ADMM period or retraining epoch (`None`: a full pass).
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    /// Rescale the scaled dual U by 1/rho_growth whenever ρ grows, keeping λ = ρU continuous
    /// (ours: SPEC.md §3 leaves it open; without it λ grows with ρ and W chases a moving Z).
    pub rescale_dual: bool,
}

impl Default for AdmmConfig {
    fn default() -> Self {
        AdmmConfig { rho0: 1.5e-3, rho_growth: 1.9, updates: 10, epochs_per_update: 1, retrain_epochs: 3, steps_per_epoch: None, rescale_dual: true }
    }
}

/// One pruned layer's ADMM state on the GPU.
struct LayerState {
    name: String,
    view: GroupView,
    keep: usize,
    z: Tensor,
    u: Tensor,
    norms: Tensor,
    keep_mask: Tensor,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UpdateLog {
    pub update: usize,
    pub rho: f32,
    /// ‖W − Z‖ / ‖W‖ per pruned layer, after the Z-update.
    pub residual: Vec<(String, f32)>,
    pub val_accuracy: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AdmmLog {
    pub updates: Vec<UpdateLog>,
    pub retrain: Vec<EpochLog>,
}

/// Runs ADMM for `action` on `net`, then hard-prunes and retrains with masks. `cfg` is the
/// SGD schedule of one period (its `epochs` is replaced by the ADMM period lengths).
pub fn prune(
    gpu: &Gpu,
    net: &mut Network,
    data: &Data,
    action: &Action,
    admm: &AdmmConfig,
    cfg: &TrainConfig,
    progress: bool,
) -> Result<AdmmLog> {
    let mut layers = Vec::new();
    for node in chain(&net.arch)?.nodes {
        let Some(a) = action.get(&node.name) else { continue };
        if a.rate == 0.0 {
            continue;
        }
        let view = GroupView::new(node.rows, node.cols(), a.scheme);
        let t = |len: usize, what: &str| gpu.tensor(len, &format!("{} {what}", node.name));
        layers.push(LayerState {
            name: node.name.clone(),
            view,
            keep: keep_count(view.groups(), a.rate),
            z: t(view.len(), "Z")?,
            u: t(view.len(), "U")?,
            norms: t(view.groups(), "norms")?,
            keep_mask: t(view.groups(), "keep")?,
        });
    }
    let sums = gpu.tensor(2 * layers.len().max(1), "residual sums")?;
    let weight = |net: &Network, l: &LayerState| net.param(&format!("{}.weight", l.name)).map(|p| (p.w.clone(), p.g.clone()));

    // Z = Π(W), U = 0
    let mut init = Vec::new();
    for l in &layers {
        let (w, _) = weight(net, l)?;
        init.extend(k::projection(gpu, &w, None, &l.norms, &l.keep_mask, &l.z, None, &l.view, l.keep)?);
    }
    gpu.run(&init);

    let mut log = AdmmLog::default();
    let mut rho = admm.rho0;
    for update in 0..admm.updates {
        let mut penalty = Vec::new();
        for l in &layers {
            let (w, g) = weight(net, l)?;
            penalty.push(k::admm_penalty(gpu, &w, &l.z, &l.u, &g, rho, &l.view)?);
        }
        net.set_penalty(penalty);
        let period = TrainConfig { epochs: admm.epochs_per_update, steps_per_epoch: admm.steps_per_epoch, seed: cfg.seed.wrapping_add(1 + update as u64), ..cfg.clone() };
        let logs = train::train(gpu, net, data, &period, progress, |_| Ok(()))?;

        // Z-update, dual update, residual sums
        let mut plan: Vec<Dispatch> = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let (w, _) = weight(net, l)?;
            plan.extend(k::projection(gpu, &w, Some(&l.u), &l.norms, &l.keep_mask, &l.z, None, &l.view, l.keep)?);
            plan.push(k::sq_diff_sum(gpu, &w, &l.z, &sums, 2 * i, &l.view)?);
            let rescale = if admm.rescale_dual { 1.0 / admm.rho_growth } else { 1.0 };
            plan.push(k::dual_update(gpu, &w, &l.z, &l.u, rescale, &l.view)?);
        }
        gpu.run(&plan);
        let s: Vec<f32> = gpu.read(&sums)?;
        let residual: Vec<(String, f32)> = layers.iter().enumerate().map(|(i, l)| (l.name.clone(), primal_residual([s[2 * i], s[2 * i + 1]]))).collect();
        let entry = UpdateLog { update: update + 1, rho, residual, val_accuracy: logs.last().map_or(0.0, |l| l.val_accuracy) };
        if progress {
            let r: Vec<String> = entry.residual.iter().map(|(n, r)| format!("{n} {r:.2e}")).collect();
            eprintln!("ADMM update {:>2}/{}  rho {:.2e}  residual ‖W−Z‖/‖W‖: {}", update + 1, admm.updates, rho, r.join(", "));
        }
        log.updates.push(entry);
        rho *= admm.rho_growth;
    }
    net.set_penalty(Vec::new());

    hard_prune(gpu, net, action)?;
    if admm.retrain_epochs > 0 {
        let retrain = TrainConfig { epochs: admm.retrain_epochs, steps_per_epoch: admm.steps_per_epoch, seed: cfg.seed.wrapping_add(1000), ..cfg.clone() };
        log.retrain = train::train(gpu, net, data, &retrain, progress, |_| Ok(()))?;
    }
    Ok(log)
}

/// Hard pruning W = Π(W) for every layer `action` prunes (the group-norm projection of §3),
/// with masks that keep the removed groups at zero in later training; a removed filter takes
/// its bias and batch-norm entries with it. Layers the action leaves alone keep their masks.
pub fn hard_prune(gpu: &Gpu, net: &mut Network, action: &Action) -> Result<()> {
    let t = chain(&net.arch)?;
    let mut plan = Vec::new();
    let mut masks = Vec::new();
    for node in &t.nodes {
        let Some(a) = action.get(&node.name).filter(|a| a.rate > 0.0) else { continue };
        let view = GroupView::new(node.rows, node.cols(), a.scheme);
        let w = net.param(&format!("{}.weight", node.name))?.w.clone();
        let norms = gpu.tensor(view.groups(), "norms")?;
        let keep_mask = gpu.tensor(view.groups(), "keep")?;
        let mask = gpu.tensor(view.len(), "mask")?;
        plan.push(k::group_norms(gpu, &w, None, &norms, &view)?);
        plan.push(k::select_top(gpu, &norms, &keep_mask, view.groups(), keep_count(view.groups(), a.rate))?);
        plan.push(k::hard_prune(gpu, &w, &keep_mask, &mask, &view)?);
        masks.push((node, a.scheme, keep_mask, mask));
    }
    gpu.run(&plan);
    for (node, scheme, keep_mask, mask) in masks {
        net.set_mask_tensor(gpu, &format!("{}.weight", node.name), Some(mask))?;
        if scheme == Scheme::Filter {
            let keep: Vec<f32> = gpu.read(&keep_mask)?;
            net.set_mask(gpu, &format!("{}.bias", node.name), Some(&keep))?;
            for norm in &t.spaces[node.output].norms {
                net.set_mask(gpu, &format!("{norm}.weight"), Some(&keep))?;
                net.set_mask(gpu, &format!("{norm}.bias"), Some(&keep))?;
            }
        }
    }
    Ok(())
}
