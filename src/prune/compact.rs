//! Compaction (SPEC.md §6): rewrite a pruned model (dense tensors with zeroed groups) as a
//! physically smaller one. A channel of a space (see `topology`) goes when every producer's
//! filter for it is zero (weights and bias) and every batch norm on it has γ = β = 0: then the
//! masked model feeds exactly zero forward. It leaves every producer together with its bias and
//! batch-norm entries, and every consumer loses the matching input columns. Zero columns inside
//! kept channels become the layer's sorted kept-column list, which the convolution kernel
//! reduces over.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

use super::topology::{topology, Topology};
use crate::model::graph::{Architecture, Layer};
use crate::model::weights::{NamedTensor, Weights};

/// What compaction kept of one weighted layer, in the input model's indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    pub rows: Vec<usize>,
    /// Stored columns kept (indices into the input model's stored view).
    pub cols: Vec<usize>,
}

/// Whether channel `c` of space `s` still carries anything forward: a fixed space, a non-zero
/// filter row, or a non-zero entry of its channel vectors (`Topology::channel_vectors`).
pub fn channel_alive(t: &Topology, s: usize, c: usize, w: &Weights) -> Result<bool> {
    if t.spaces[s].fixed {
        return Ok(true);
    }
    for &p in &t.spaces[s].producers {
        let n = &t.nodes[p];
        let cols = n.cols();
        if w.weight(&n.name)?.data[c * cols..(c + 1) * cols].iter().any(|&x| x != 0.0) {
            return Ok(true);
        }
    }
    for name in t.channel_vectors(s) {
        if w.get(&name)?.data[c] != 0.0 {
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn compact(arch: &Architecture, w: &Weights) -> Result<(Architecture, Weights, Vec<Kept>)> {
    w.check(arch)?;
    let t = topology(arch)?;
    let mut kept_channels = Vec::new();
    for (s, space) in t.spaces.iter().enumerate() {
        let kept: Vec<usize> = (0..space.channels).map(|c| channel_alive(&t, s, c, w).map(|a| a.then_some(c))).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
        if kept.is_empty() {
            let names: Vec<&str> = space.producers.iter().map(|&p| t.nodes[p].name.as_str()).collect();
            bail!("layer '{}' lost every filter: the model would output constants", names.join("', '"));
        }
        kept_channels.push(kept);
    }

    let mut out_arch = arch.clone();
    let mut tensors: HashMap<String, NamedTensor> = HashMap::new();
    let mut kept_all = Vec::new();
    for n in &t.nodes {
        let wt = &w.weight(&n.name)?.data;
        let bias = &w.bias(&n.name)?.data;
        let cols = n.cols();
        let rows = &kept_channels[n.output];
        // new position of each kept input channel
        let mut channel_pos = vec![None; n.channels];
        for (k, &c) in kept_channels[n.input].iter().enumerate() {
            channel_pos[c] = Some(k);
        }
        let mut keep_cols = Vec::new();
        let mut new_dense = Vec::new();
        for j in 0..cols {
            let d = n.dense_col(j);
            let Some(cpos) = channel_pos[d / n.per_channel] else { continue };
            if rows.iter().any(|&r| wt[r * cols + j] != 0.0) {
                keep_cols.push(j);
                new_dense.push((cpos * n.per_channel + d % n.per_channel) as u32);
            }
        }
        if keep_cols.is_empty() {
            bail!("layer '{}' lost every column: its output would not depend on its input", n.name);
        }
        let dense_all = new_dense.len() == kept_channels[n.input].len() * n.per_channel;
        let data: Vec<f32> = rows.iter().flat_map(|&r| keep_cols.iter().map(move |&j| wt[r * cols + j])).collect();
        let new_bias: Vec<f32> = rows.iter().map(|&r| bias[r]).collect();
        let (k, kc) = (rows.len(), keep_cols.len());
        let columns = if dense_all { None } else { Some(new_dense) };
        let shape = match layer_mut(&mut out_arch.layers, &n.name).context("a topology node without its layer")? {
            Layer::Conv2d { filters, kernel, columns: c, .. } => {
                *filters = k;
                *c = columns.clone();
                if columns.is_none() { vec![k, kept_channels[n.input].len(), *kernel, *kernel] } else { vec![k, kc] }
            }
            Layer::Linear { units, columns: c, .. } => {
                *units = k;
                *c = columns.clone();
                vec![k, kc]
            }
            _ => unreachable!("topology nodes are weighted layers"),
        };
        for t in [NamedTensor { name: format!("{}.weight", n.name), shape, data }, NamedTensor { name: format!("{}.bias", n.name), shape: vec![k], data: new_bias }] {
            tensors.insert(t.name.clone(), t);
        }
        kept_all.push(Kept { rows: rows.clone(), cols: keep_cols });
    }
    // batch norms keep their space's channels
    for (space, kept) in t.spaces.iter().zip(&kept_channels) {
        for norm in &space.norms {
            for part in ["weight", "bias", "running_mean", "running_var"] {
                let name = format!("{norm}.{part}");
                let v = &w.get(&name)?.data;
                tensors.insert(name.clone(), NamedTensor { name, shape: vec![kept.len()], data: kept.iter().map(|&c| v[c]).collect() });
            }
        }
    }
    // in the order the architecture lists them
    let mut out_w = Weights::default();
    for p in out_arch.param_shapes()? {
        for (name, _) in p.tensors() {
            out_w.tensors.push(tensors.remove(&name).with_context(|| format!("compaction lost tensor {name}"))?);
        }
    }
    out_w.check(&out_arch)?;
    Ok((out_arch, out_w, kept_all))
}

/// The leaf layer called `name`, inside residual blocks too.
pub fn layer_mut<'a>(layers: &'a mut [Layer], name: &str) -> Option<&'a mut Layer> {
    for l in layers {
        match l {
            Layer::Residual { body, shortcut } => {
                if let Some(found) = layer_mut(body, name).or_else(|| layer_mut(shortcut, name)) {
                    return Some(found);
                }
            }
            _ if l.name() == Some(name) => return Some(l),
            _ => {}
        }
    }
    None
}
