//! Compaction (SPEC.md §6): rewrite a pruned model (dense tensors with zeroed groups) as a
//! physically smaller one. Removed filters leave their layer together with their bias; the
//! consumer loses the matching input channels; zero columns inside kept channels become the
//! layer's sorted kept-column list, which the convolution kernel reduces over.

use anyhow::{bail, Result};

use super::topology::nodes;
use crate::model::graph::{Architecture, Layer};
use crate::model::weights::{NamedTensor, Weights};

/// What compaction kept of one weighted layer, in the input model's indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept {
    pub rows: Vec<usize>,
    /// Stored columns kept (indices into the input model's stored view).
    pub cols: Vec<usize>,
}

pub fn compact(arch: &Architecture, w: &Weights) -> Result<(Architecture, Weights, Vec<Kept>)> {
    w.check(arch)?;
    let nodes = nodes(arch)?;
    let mut out_arch = arch.clone();
    let mut out_w = Weights::default();
    let mut kept_all = Vec::new();
    let mut prev_rows: Option<Vec<usize>> = None;
    for (i, node) in nodes.iter().enumerate() {
        let wt = &w.get(&format!("{}.weight", node.name))?.data;
        let bias = &w.get(&format!("{}.bias", node.name))?.data;
        let cols = node.cols();
        let last = i + 1 == nodes.len();
        let rows: Vec<usize> = (0..node.rows)
            .filter(|&r| last || bias[r] != 0.0 || wt[r * cols..(r + 1) * cols].iter().any(|&x| x != 0.0))
            .collect();
        if rows.is_empty() {
            bail!("layer '{}' lost every filter: the model would output constants", node.name);
        }
        // channel c of this layer is kept iff its producer kept filter c (all for the first layer)
        let channel_pos: Vec<Option<usize>> = match &prev_rows {
            None => (0..node.channels).map(Some).collect(),
            Some(pr) => {
                let mut pos = vec![None; node.channels];
                for (k, &c) in pr.iter().enumerate() {
                    pos[c] = Some(k);
                }
                pos
            }
        };
        let kept_channels = channel_pos.iter().filter(|p| p.is_some()).count();
        let mut keep_cols = Vec::new();
        let mut new_dense = Vec::new();
        for j in 0..cols {
            let d = node.dense_col(j);
            let Some(cpos) = channel_pos[d / node.per_channel] else { continue };
            if rows.iter().any(|&r| wt[r * cols + j] != 0.0) {
                keep_cols.push(j);
                new_dense.push((cpos * node.per_channel + d % node.per_channel) as u32);
            }
        }
        if keep_cols.is_empty() {
            bail!("layer '{}' lost every column: its output would not depend on its input", node.name);
        }
        let dense_all = new_dense.len() == kept_channels * node.per_channel;
        let data: Vec<f32> = rows.iter().flat_map(|&r| keep_cols.iter().map(move |&j| wt[r * cols + j])).collect();
        let new_bias: Vec<f32> = rows.iter().map(|&r| bias[r]).collect();
        let (k, kc) = (rows.len(), keep_cols.len());
        let columns = if dense_all { None } else { Some(new_dense) };
        let shape = match &mut out_arch.layers[node.index] {
            Layer::Conv2d { filters, kernel, columns: c, .. } => {
                *filters = k;
                *c = columns.clone();
                if columns.is_none() { vec![k, kept_channels, *kernel, *kernel] } else { vec![k, kc] }
            }
            Layer::Linear { units, columns: c, .. } => {
                *units = k;
                *c = columns.clone();
                vec![k, kc]
            }
            _ => unreachable!("topology nodes are weighted layers"),
        };
        out_w.tensors.push(NamedTensor { name: format!("{}.weight", node.name), shape, data });
        out_w.tensors.push(NamedTensor { name: format!("{}.bias", node.name), shape: vec![k], data: new_bias });
        kept_all.push(Kept { rows: rows.clone(), cols: keep_cols });
        prev_rows = Some(rows);
    }
    out_w.check(&out_arch)?;
    Ok((out_arch, out_w, kept_all))
}

