//! Params and FLOPs exactly as SPEC.md §1 defines them: every weight and bias of conv/linear
//! layers (plus batch-norm affine parameters), and 2 × multiply-accumulates per image.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::model::graph::{channels, Architecture, Layer, Shape};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCount {
    pub name: String,
    pub kind: String,
    pub input: Shape,
    pub output: Shape,
    /// Rows (filters / units) of the GEMM view.
    pub rows: usize,
    /// Kept columns of the GEMM view, and how many a dense layer of this input would have.
    pub columns: usize,
    pub dense_columns: usize,
    pub params: u64,
    pub flops: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub layers: Vec<LayerCount>,
    pub params: u64,
    pub flops: u64,
}

pub fn count(arch: &Architecture) -> Result<Count> {
    let mut layers = Vec::new();
    for leaf in arch.leaves()? {
        let (layer, prev, out) = (leaf.layer, leaf.input, leaf.output);
        let entry = match (layer, prev, out) {
            (Layer::Conv2d { name, filters, kernel, columns, .. }, Shape::Chw(c, ..), Shape::Chw(_, oh, ow)) => {
                let dense = c * kernel * kernel;
                let kept = columns.as_ref().map_or(dense, |v| v.len());
                let macs = (filters * kept * oh * ow) as u64;
                Some(LayerCount {
                    name: name.clone(),
                    kind: "conv2d".into(),
                    input: prev,
                    output: out,
                    rows: *filters,
                    columns: kept,
                    dense_columns: dense,
                    params: (filters * kept + filters) as u64,
                    flops: 2 * macs,
                })
            }
            (Layer::Linear { name, units, columns }, Shape::Flat(n), _) => {
                let kept = columns.as_ref().map_or(n, |v| v.len());
                Some(LayerCount {
                    name: name.clone(),
                    kind: "linear".into(),
                    input: prev,
                    output: out,
                    rows: *units,
                    columns: kept,
                    dense_columns: n,
                    params: (units * kept + units) as u64,
                    flops: 2 * (units * kept) as u64,
                })
            }
            // γ and β count as params; the affine map is not a multiply-accumulate of SPEC.md §1
            (Layer::BatchNorm { name }, _, _) => {
                let c = channels(out);
                Some(LayerCount { name: name.clone(), kind: "batch_norm".into(), input: prev, output: out, rows: c, columns: 1, dense_columns: 1, params: 2 * c as u64, flops: 0 })
            }
            _ => None,
        };
        layers.extend(entry);
    }
    let params = layers.iter().map(|l| l.params).sum();
    let flops = layers.iter().map(|l| l.flops).sum();
    Ok(Count { layers, params, flops })
}
