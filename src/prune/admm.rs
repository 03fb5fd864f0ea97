//! ADMM structured pruning (SPEC.md §3): W-updates by SGD with the penalty ρ/2‖W − Z + U‖²,
//! Z = Π(W + U) and U += W − Z every period, ρ growing each time, then hard pruning and masked
//! retraining. Every tensor step is a kernel of shaders/admm.wgsl; the host only orchestrates and
//! reads back two sums per layer per update for the primal residual.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use super::action::Action;
use super::scheme::{keep_count, Scheme};
use crate::data::Data;
use crate::gpu::admm::{self as kernels, GroupView};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::model::Network;
use crate::prune::topology::{topology, Topology};
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

impl AdmmConfig {
    /// Refuses periods of no epochs, a negative ρ and a shrinking one (errors name the flags).
    pub fn validate(&self) -> Result<()> {
        if self.epochs_per_update == 0 {
            bail!("--admm-epochs-per-update must be at least 1");
        }
        if !(self.rho0.is_finite() && self.rho0 >= 0.0 && self.rho_growth.is_finite() && self.rho_growth >= 1.0) {
            bail!("--rho0 must be ≥ 0 and --rho-growth ≥ 1");
        }
        Ok(())
    }
}

/// One pruned layer's ADMM state on the GPU.
struct LayerState {
    name: String,
    view: GroupView,
    z: Tensor,
    u: Tensor,
    norms: Tensor,
}

/// Layers whose groups are selected together: one layer, or under the filter scheme every
/// producer of a coupled space (SPEC.md §4 step 2), whose summed squared row norms decide.
struct GroupState {
    layers: Vec<LayerState>,
    keep: usize,
    /// The summed norms (two buffers, so a sum never reads the buffer it writes).
    sum: [Tensor; 2],
    keep_mask: Tensor,
}

impl GroupState {
    /// Z = Π(W + U) for every member (U omitted when `with_u` is false).
    fn projection(&self, gpu: &Gpu, net: &Network, with_u: bool) -> Result<Vec<Dispatch>> {
        let mut plan = Vec::new();
        let mut members = Vec::new();
        for l in &self.layers {
            members.push((&net.weight(&l.name)?.w, with_u.then_some(&l.u), &l.norms, &l.view));
        }
        select(gpu, &members, &self.sum, &self.keep_mask, self.keep, &mut plan)?;
        for l in &self.layers {
            let w = &net.weight(&l.name)?.w;
            plan.push(kernels::project(gpu, w, with_u.then_some(&l.u), &self.keep_mask, &l.z, None, &l.view)?);
        }
        Ok(plan)
    }
}

/// One member of a group: its weights, the dual U (None: select on W alone), a buffer for its
/// squared group norms, and its GEMM view.
type Member<'a> = (&'a Tensor, Option<&'a Tensor>, &'a Tensor, &'a GroupView);

/// Plans the selection of a group's kept rows (or columns): every member's squared group norms,
/// their element-wise sum (alternating between the `sum` buffers, so an add never reads the
/// buffer it writes), and the `keep` largest into `keep_mask`.
fn select(gpu: &Gpu, members: &[Member], sum: &[Tensor; 2], keep_mask: &Tensor, keep: usize, plan: &mut Vec<Dispatch>) -> Result<()> {
    for &(w, u, norms, view) in members {
        plan.push(kernels::group_norms(gpu, w, u, norms, view)?);
    }
    let groups = members[0].3.groups();
    let mut acc = members[0].2;
    for (i, m) in members.iter().enumerate().skip(1) {
        plan.push(crate::gpu::elementwise::add(gpu, acc, m.2, &sum[i % 2], groups)?);
        acc = &sum[i % 2];
    }
    plan.push(kernels::select_top(gpu, acc, keep_mask, groups, keep)?);
    Ok(())
}

/// The layers each entry of `action` prunes together, with its scheme and rate: a filter action
/// on any producer of a coupled space takes every producer of it. An action that would prune a
/// coupled group two ways is refused.
pub fn groups(t: &Topology, action: &Action) -> Result<Vec<(Vec<usize>, Scheme, f32)>> {
    let mut out: Vec<(Vec<usize>, Scheme, f32)> = Vec::new();
    for (i, node) in t.nodes.iter().enumerate() {
        let Some(a) = action.get(&node.name).filter(|a| a.rate > 0.0) else { continue };
        let members = match a.scheme {
            Scheme::Filter => t.spaces[node.output].producers.clone(),
            Scheme::Column => vec![i],
        };
        for (other, scheme, _) in &out {
            if let Some(&clash) = members.iter().find(|m| other.contains(m)) {
                let names = |ms: &[usize]| ms.iter().map(|&m| t.nodes[m].name.as_str()).collect::<Vec<_>>().join(", ");
                bail!(
                    "the {} entry for layer '{}' prunes layer '{}' a second time: an earlier {} entry already prunes the group ({}); layers feeding one residual sum are filter-pruned as one coupled group, so give the group one filter entry and no column entries",
                    a.scheme.name(),
                    node.name,
                    t.nodes[clash].name,
                    scheme.name(),
                    names(other)
                );
            }
        }
        out.push((members, a.scheme, a.rate));
    }
    Ok(out)
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
    let t = topology(&net.arch)?;
    let mut groups_st = Vec::new();
    for (members, scheme, rate) in groups(&t, action)? {
        let mut layers = Vec::new();
        for m in members {
            let node = &t.nodes[m];
            let view = scheme.view(node.rows, node.cols());
            let t = |len: usize, what: &str| gpu.tensor(len, &format!("{} {what}", node.name));
            layers.push(LayerState { name: node.name.clone(), view, z: t(view.len(), "Z")?, u: t(view.len(), "U")?, norms: t(view.groups(), "norms")? });
        }
        let groups = layers[0].view.groups();
        let sum = [gpu.tensor(groups, "summed norms")?, gpu.tensor(groups, "summed norms")?];
        groups_st.push(GroupState { keep: keep_count(groups, rate), keep_mask: gpu.tensor(groups, "keep")?, sum, layers });
    }
    let layers: Vec<&LayerState> = groups_st.iter().flat_map(|g| &g.layers).collect();
    let sums = gpu.tensor(2 * layers.len().max(1), "residual sums")?;
    let weight = |net: &Network, l: &LayerState| net.weight(&l.name).map(|p| (p.w.clone(), p.grad.clone()));

    // Z = Π(W), U = 0
    let mut init = Vec::new();
    for g in &groups_st {
        init.extend(g.projection(gpu, net, false)?);
    }
    gpu.run(&init)?;

    let mut log = AdmmLog::default();
    let mut rho = admm.rho0;
    for update in 0..admm.updates {
        let mut penalty = Vec::new();
        for l in &layers {
            let (w, g) = weight(net, l)?;
            penalty.push(kernels::admm_penalty(gpu, &w, &l.z, &l.u, &g, rho, &l.view)?);
        }
        net.set_penalty(penalty);
        let period = TrainConfig { epochs: admm.epochs_per_update, steps_per_epoch: admm.steps_per_epoch, seed: cfg.seed.wrapping_add(1 + update as u64), ..cfg.clone() };
        let logs = train::train(gpu, net, data, &period, progress, |_| Ok(()))?;

        // Z-update, dual update, residual sums
        let mut plan: Vec<Dispatch> = Vec::new();
        for g in &groups_st {
            plan.extend(g.projection(gpu, net, true)?);
        }
        for (i, l) in layers.iter().enumerate() {
            let (w, _) = weight(net, l)?;
            plan.push(kernels::sq_diff_sum(gpu, &w, &l.z, &sums, 2 * i, &l.view)?);
            let rescale = if admm.rescale_dual { 1.0 / admm.rho_growth } else { 1.0 };
            plan.push(kernels::dual_update(gpu, &w, &l.z, &l.u, rescale, &l.view)?);
        }
        gpu.run(&plan)?;
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
    let t = topology(&net.arch)?;
    let mut plan = Vec::new();
    let mut masks = Vec::new();
    // per group: its filter space and selection, and the buffers the plan reads
    let mut selections = Vec::new();
    let mut buffers = Vec::new();
    for (members, scheme, rate) in groups(&t, action)? {
        let views: Vec<GroupView> = members.iter().map(|&m| scheme.view(t.nodes[m].rows, t.nodes[m].cols())).collect();
        let weights: Vec<Tensor> = members.iter().map(|&m| net.weight(&t.nodes[m].name).map(|p| p.w.clone())).collect::<Result<_>>()?;
        let norms: Vec<Tensor> = views.iter().map(|v| gpu.tensor(v.groups(), "norms")).collect::<Result<_>>()?;
        let groups = views[0].groups();
        let sum = [gpu.tensor(groups, "summed norms")?, gpu.tensor(groups, "summed norms")?];
        let keep_mask = gpu.tensor(groups, "keep")?;
        let list: Vec<Member> = weights.iter().zip(&norms).zip(&views).map(|((w, n), v)| (w, None, n, v)).collect();
        select(gpu, &list, &sum, &keep_mask, keep_count(groups, rate), &mut plan)?;
        // the masks go straight into the network's mask buffer, each weight's own range
        for ((&m, w), view) in members.iter().zip(&weights).zip(&views) {
            let name = format!("{}.weight", t.nodes[m].name);
            let mask = net.param(&name)?.mask.clone();
            ensure!(mask.len == view.len(), "{name}: a mask of {} entries for a group view of {}", mask.len, view.len());
            plan.push(kernels::hard_prune(gpu, w, &keep_mask, &mask, view)?);
            masks.push(name);
        }
        selections.push(((scheme == Scheme::Filter).then(|| t.nodes[members[0]].output), keep_mask));
        buffers.extend(norms.into_iter().chain(sum));
    }
    gpu.run(&plan)?;
    net.mark_masked(gpu, &masks)?;
    // a removed filter takes its channel vectors (biases, batch-norm entries) in every producer
    for (space, keep_mask) in selections {
        let Some(s) = space else { continue };
        let keep: Vec<f32> = gpu.read(&keep_mask)?;
        for name in t.channel_vectors(s) {
            net.set_mask(gpu, &name, Some(&keep))?;
        }
    }
    Ok(())
}

/// The primal residual ‖W − Z‖ / ‖W‖ from the two sums `sq_diff_sum` writes (0 when W = 0).
pub fn primal_residual(sums: [f32; 2]) -> f32 {
    if sums[1] > 0.0 {
        (sums[0] as f64 / sums[1] as f64).sqrt() as f32
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn primal_residual_is_a_norm_ratio() {
        assert_eq!(super::primal_residual([1.0, 4.0]), 0.5);
        assert_eq!(super::primal_residual([0.0, 0.0]), 0.0);
    }
}
