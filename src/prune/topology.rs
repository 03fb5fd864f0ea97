//! Which weighted layer feeds which (SPEC.md §4 step 2): producer filter j is consumer input
//! channel j, which owns `per_channel` consecutive columns of the consumer's dense GEMM view
//! (R·S for a convolution, H·W for a linear layer after a flatten, 1 after a linear layer).

use anyhow::{bail, Result};

use crate::model::graph::{Architecture, Layer, Shape};

/// A weighted layer as the pruning code sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Index in `arch.layers`.
    pub index: usize,
    pub name: String,
    /// Rows of the GEMM view (filters or units).
    pub rows: usize,
    /// Columns of the dense GEMM view (C·R·S, or input features).
    pub dense_cols: usize,
    /// Kept columns (indices into the dense view), when the layer is column-compacted.
    pub columns: Option<Vec<u32>>,
    /// Input channels and the dense columns each owns.
    pub channels: usize,
    pub per_channel: usize,
}

impl Node {
    /// Columns of the stored GEMM view.
    pub fn cols(&self) -> usize {
        self.columns.as_ref().map_or(self.dense_cols, |c| c.len())
    }
    /// The dense column that stored column `j` stands for.
    pub fn dense_col(&self, j: usize) -> usize {
        self.columns.as_ref().map_or(j, |c| c[j] as usize)
    }
}

/// The chain of weighted layers of a sequential model, in order. Consecutive nodes are
/// producer and consumer.
pub fn nodes(arch: &Architecture) -> Result<Vec<Node>> {
    let shapes = arch.shapes()?;
    let mut prev = Shape::Chw(arch.input[0], arch.input[1], arch.input[2]);
    // spatial size carried by each channel since the last weighted layer (flatten keeps it)
    let mut per_channel_flat = 1;
    let mut out = Vec::new();
    for (i, (layer, s)) in arch.layers.iter().zip(&shapes).enumerate() {
        match (layer, prev) {
            (Layer::Conv2d { name, filters, kernel, columns, .. }, Shape::Chw(c, ..)) => out.push(Node {
                index: i,
                name: name.clone(),
                rows: *filters,
                dense_cols: c * kernel * kernel,
                columns: columns.clone(),
                channels: c,
                per_channel: kernel * kernel,
            }),
            (Layer::Linear { name, units, columns }, Shape::Flat(n)) => {
                let channels = n / per_channel_flat;
                out.push(Node {
                    index: i,
                    name: name.clone(),
                    rows: *units,
                    dense_cols: n,
                    columns: columns.clone(),
                    channels,
                    per_channel: per_channel_flat,
                });
            }
            (Layer::Flatten, Shape::Chw(_, h, w)) => per_channel_flat = h * w,
            (Layer::Conv2d { .. } | Layer::Linear { .. }, _) => bail!("layer {i} has an input it cannot take"),
            // their channels must follow (batch norm) or couple (residual sums) the filters of
            // other layers, which this chain model does not express
            (Layer::BatchNorm { .. } | Layer::Residual { .. }, _) => bail!(
                "{}: structured pruning of models with batch_norm or residual layers is not implemented yet (layer {i} is {})",
                arch.name,
                crate::model::graph::kind(layer)
            ),
            _ => {}
        }
        if matches!(layer, Layer::Conv2d { .. } | Layer::Linear { .. } | Layer::GlobalAvgPool) {
            per_channel_flat = 1;
        }
        prev = *s;
    }
    Ok(out)
}
