//! Purification (SPEC.md §4): step 1 removes groups that survived ADMM but barely contribute
//! (thresholds on emptiness and norm, guarded by validation accuracy, backing off sigma); step 2
//! removes paths made useless by a neighbour's pruning, as a fixed point over the layer chain.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::compact::channel_alive;
use super::topology::{topology, Node, Topology};
use crate::data::Data;
use super::scheme::Scheme;
use crate::gpu::purify;
use crate::gpu::Gpu;
use crate::model::{Network, Weights};
use crate::train::evaluate;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PurifyConfig {
    pub eta: f32,
    pub sigma: f32,
    pub sigma_min: f32,
    /// Largest accepted validation-accuracy drop of step 1, in percentage points.
    pub tolerance: f64,
    pub max_tries: usize,
}

impl Default for PurifyConfig {
    fn default() -> Self {
        PurifyConfig { eta: 0.9, sigma: 0.1, sigma_min: 0.01, tolerance: 0.05, max_tries: 4 }
    }
}

/// What one step removed from one layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Removed {
    pub layer: String,
    pub filters: usize,
    pub columns: usize,
    /// Input channels none of whose columns remain.
    pub channels: usize,
    pub params: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PurifyLog {
    pub val_before: f64,
    pub step1_sigma: Option<f32>,
    pub step1: Vec<Removed>,
    pub step2: Vec<Removed>,
    pub val_after: f64,
}

/// A layer's GEMM view on the host: `w` is [rows][cols].
struct View<'a> {
    node: &'a Node,
    w: &'a [f32],
    b: &'a [f32],
}

impl View<'_> {
    fn row_removed(&self, r: usize) -> bool {
        let c = self.node.cols();
        self.b[r] == 0.0 && self.w[r * c..(r + 1) * c].iter().all(|&x| x == 0.0)
    }
    fn col_zero(&self, j: usize) -> bool {
        let c = self.node.cols();
        (0..self.node.rows).all(|r| self.w[r * c + j] == 0.0)
    }
}

/// Per-layer difference in removed rows, columns and zero parameters between two weight sets.
fn removed(nodes: &[Node], before: &Weights, after: &Weights) -> Result<Vec<Removed>> {
    let mut out = Vec::new();
    for n in nodes {
        let (wb, bb) = (&before.weight(&n.name)?.data, &before.bias(&n.name)?.data);
        let (wa, ba) = (&after.weight(&n.name)?.data, &after.bias(&n.name)?.data);
        let (vb, va) = (View { node: n, w: wb, b: bb }, View { node: n, w: wa, b: ba });
        let filters = (0..n.rows).filter(|&r| va.row_removed(r) && !vb.row_removed(r)).count();
        let columns = (0..n.cols()).filter(|&j| va.col_zero(j) && !vb.col_zero(j)).count();
        let channel_gone = |v: &View, ch: usize| (0..n.cols()).filter(|&j| n.dense_col(j) / n.per_channel == ch).all(|j| v.col_zero(j));
        let channels = (0..n.channels).filter(|&ch| channel_gone(&va, ch) && !channel_gone(&vb, ch)).count();
        let z = |w: &[f32], b: &[f32]| w.iter().chain(b).filter(|&&x| x == 0.0).count();
        let params = z(wa, ba) - z(wb, bb);
        if filters + columns + params > 0 {
            out.push(Removed { layer: n.name.clone(), filters, columns, channels, params });
        }
    }
    Ok(out)
}

/// Per-group (zero count, L2 norm) of every layer's rows and columns, computed on the GPU by
/// `group_stats` (shaders/purify.wgsl) from the network's current weights.
struct Stats {
    rows: Vec<f32>,
    cols: Vec<f32>,
}

fn group_stats(gpu: &Gpu, net: &Network, nodes: &[Node]) -> Result<Vec<Stats>> {
    let mut out = Vec::new();
    for n in nodes {
        let w = &net.weight(&n.name)?.w;
        let mut pair = Vec::new();
        for scheme in [Scheme::Filter, Scheme::Column] {
            let view = scheme.view(n.rows, n.cols());
            let t = gpu.tensor(2 * view.groups(), "group stats")?;
            gpu.run(&[purify::group_stats(gpu, w, &t, &view)?])?;
            pair.push(gpu.read::<f32>(&t)?);
        }
        let cols = pair.pop().unwrap_or_default();
        let rows = pair.pop().unwrap_or_default();
        out.push(Stats { rows, cols });
    }
    Ok(out)
}

/// Groups to remove: (emptiness ≥ eta and norm < sigma·mean) or norm < sigma_min·mean, where
/// mean is over the layer's non-zero groups. `stats` holds (zero count, norm) per group.
fn weak_groups(stats: &[f32], group_len: usize, cfg: &PurifyConfig, sigma: f32) -> Vec<usize> {
    let live: Vec<f32> = stats.chunks(2).map(|s| s[1]).filter(|&x| x > 0.0).collect();
    if live.is_empty() {
        return Vec::new();
    }
    let mean = live.iter().sum::<f32>() / live.len() as f32;
    stats
        .chunks(2)
        .enumerate()
        .filter(|(_, s)| {
            let (empty, norm) = (s[0] / group_len.max(1) as f32, s[1]);
            norm > 0.0 && ((empty >= cfg.eta && norm < sigma * mean) || norm < cfg.sigma_min * mean)
        })
        .map(|(g, _)| g)
        .collect()
}

/// Step 1 on host weights: zero the rows (with their biases and batch-norm entries) and columns
/// the thresholds remove. The classifier's rows are its classes and stay; so do the rows of a
/// coupled group, which one producer alone cannot remove.
fn threshold(t: &Topology, stats: &[Stats], w: &mut Weights, cfg: &PurifyConfig, sigma: f32) -> Result<()> {
    for (n, st) in t.nodes.iter().zip(stats) {
        let cols = n.cols();
        let out = &t.spaces[n.output];
        let rows = if out.fixed || out.producers.len() > 1 { Vec::new() } else { weak_groups(&st.rows, cols, cfg, sigma) };
        let columns = weak_groups(&st.cols, n.rows, cfg, sigma);
        let wm = &mut w.weight_mut(&n.name)?.data;
        for &r in &rows {
            wm[r * cols..(r + 1) * cols].fill(0.0);
        }
        for &j in &columns {
            for r in 0..n.rows {
                wm[r * cols + j] = 0.0;
            }
        }
        for &r in &rows {
            remove_channel(t, n.output, r, w)?;
        }
    }
    Ok(())
}

/// Step 2: a dead channel (see `channel_alive`) removes every consumer's columns of it; a
/// channel no consumer column reads removes every producer's filter of it (with biases and
/// batch-norm entries). Repeated until stable.
pub fn unused_paths(t: &Topology, w: &mut Weights) -> Result<()> {
    loop {
        let mut changed = false;
        for (s, space) in t.spaces.iter().enumerate() {
            if space.fixed {
                continue;
            }
            for c in 0..space.channels {
                let alive = channel_alive(t, s, c, w)?;
                let mut used = false;
                for &k in &space.consumers {
                    let n = &t.nodes[k];
                    let cols = n.cols();
                    let wt = &w.weight(&n.name)?.data;
                    used |= (0..cols).filter(|&j| n.channel_of(j) == c).any(|j| (0..n.rows).any(|r| wt[r * cols + j] != 0.0));
                }
                if !alive && used {
                    for &k in &space.consumers {
                        let n = &t.nodes[k];
                        let cols = n.cols();
                        let wt = &mut w.weight_mut(&n.name)?.data;
                        for j in (0..cols).filter(|&j| n.channel_of(j) == c) {
                            (0..n.rows).for_each(|r| wt[r * cols + j] = 0.0);
                        }
                    }
                    changed = true;
                } else if alive && !used {
                    remove_channel(t, s, c, w)?;
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// Zeroes channel `c` of space `s`: every producer's filter and its channel vectors.
fn remove_channel(t: &Topology, s: usize, c: usize, w: &mut Weights) -> Result<()> {
    for &p in &t.spaces[s].producers {
        let n = &t.nodes[p];
        let cols = n.cols();
        w.weight_mut(&n.name)?.data[c * cols..(c + 1) * cols].fill(0.0);
    }
    for name in t.channel_vectors(s) {
        w.get_mut(&name)?.data[c] = 0.0;
    }
    Ok(())
}

/// Masks that keep exactly the non-zero weights (and the biases of live filters) fixed at zero
/// in any later training.
pub fn apply_masks(gpu: &Gpu, net: &mut Network, w: &Weights) -> Result<()> {
    let t = topology(&net.arch)?;
    for n in &t.nodes {
        let wt = &w.weight(&n.name)?.data;
        let mask: Vec<f32> = wt.iter().map(|&x| (x != 0.0) as u8 as f32).collect();
        net.set_mask(gpu, &format!("{}.weight", n.name), Some(&mask))?;
    }
    // a filter's bias and batch-norm entries live as long as its channel
    for (s, space) in t.spaces.iter().enumerate() {
        let alive: Vec<f32> = (0..space.channels).map(|c| channel_alive(&t, s, c, w).map(|a| a as u8 as f32)).collect::<Result<_>>()?;
        for name in t.channel_vectors(s) {
            net.set_mask(gpu, &name, Some(&alive))?;
        }
    }
    Ok(())
}

/// Runs both steps on the network's weights and leaves the purified weights (and masks) in it.
pub fn purify(gpu: &Gpu, net: &mut Network, data: &Data, cfg: &PurifyConfig, progress: bool) -> Result<PurifyLog> {
    let t = topology(&net.arch)?;
    let ns = &t.nodes;
    let w0 = net.weights(gpu)?;
    let stats = group_stats(gpu, net, ns)?;
    let (_, val0) = evaluate(gpu, net, &data.val)?;
    let mut log = PurifyLog { val_before: val0, ..Default::default() };
    let mut current = w0.clone();
    let mut sigma = cfg.sigma;
    for _ in 0..cfg.max_tries.max(1) {
        let mut w1 = w0.clone();
        threshold(&t, &stats, &mut w1, cfg, sigma)?;
        net.set_weights(gpu, &w1)?;
        let (_, val1) = evaluate(gpu, net, &data.val)?;
        if 100.0 * (val0 - val1) <= cfg.tolerance {
            log.step1 = removed(ns, &w0, &w1)?;
            log.step1_sigma = Some(sigma);
            current = w1;
            break;
        }
        if progress {
            eprintln!("purification step 1 with sigma {sigma}: validation {:.2}% → {:.2}%, backing off", 100.0 * val0, 100.0 * val1);
        }
        sigma /= 2.0;
    }
    let before2 = current.clone();
    unused_paths(&t, &mut current)?;
    log.step2 = removed(ns, &before2, &current)?;
    net.set_weights(gpu, &current)?;
    apply_masks(gpu, net, &current)?;
    log.val_after = evaluate(gpu, net, &data.val)?.1;
    if progress {
        eprintln!(
            // weights of the masked model: step 2 mostly zeroes what compaction would drop anyway
            "purification: step 1 zeroed {} weights, step 2 {}; validation {:.2}% → {:.2}%",
            log.step1.iter().map(|r| r.params).sum::<usize>(),
            log.step2.iter().map(|r| r.params).sum::<usize>(),
            100.0 * val0,
            100.0 * log.val_after
        );
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_groups_follow_the_two_thresholds() {
        let cfg = PurifyConfig::default();
        // (zeros of 20, norm): strong, strong, mostly empty and weak, dense but negligible,
        // mostly empty but strong, already removed
        let stats = [0.0, 1.0, 0.0, 1.0, 19.0, 0.05, 0.0, 0.005, 19.0, 0.9, 20.0, 0.0];
        // mean over live groups = (1 + 1 + 0.05 + 0.005 + 0.9) / 5 = 0.591
        assert_eq!(weak_groups(&stats, 20, &cfg, 0.1), vec![2, 3]);
        // halving sigma keeps the weak-but-empty group once its norm is above sigma·mean
        assert_eq!(weak_groups(&stats, 20, &cfg, 0.05), vec![3]);
        assert!(weak_groups(&[20.0, 0.0], 20, &cfg, 0.1).is_empty(), "a layer with nothing live removes nothing");
    }
}
