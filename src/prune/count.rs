//! Params and FLOPs exactly as SPEC.md §1 defines them: every weight and bias of conv/linear
//! layers (plus batch-norm affine parameters), and 2 × multiply-accumulates per image.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::model::graph::{Architecture, Layer, Shape};

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
    let shapes = arch.shapes()?;
    let mut prev = Shape::Chw(arch.input[0], arch.input[1], arch.input[2]);
    let mut layers = Vec::new();
    for (layer, &out) in arch.layers.iter().zip(&shapes) {
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
            _ => None,
        };
        layers.extend(entry);
        prev = out;
    }
    let params = layers.iter().map(|l| l.params).sum();
    let flops = layers.iter().map(|l| l.flops).sum();
    Ok(Count { layers, params, flops })
}
