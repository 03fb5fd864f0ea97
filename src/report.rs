//! report.json (the contract in DESIGN.md) and the per-layer table `inspect` prints.

use serde::{Deserialize, Serialize};

use crate::gpu::Gpu;
use crate::prune::count::Count;
use crate::train::EpochLog;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adapter {
    pub name: String,
    pub backend: String,
    pub device_type: String,
}

impl Adapter {
    pub fn of(gpu: &Gpu) -> Adapter {
        Adapter {
            name: gpu.info.name.clone(),
            backend: format!("{:?}", gpu.info.backend),
            device_type: format!("{:?}", gpu.info.device_type),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub test_accuracy: f64,
    pub params: u64,
    pub flops: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    pub model: String,
    pub dataset: String,
    pub adapter: Adapter,
    pub seed: u64,
    pub wall_seconds: f64,
    pub baseline: Snapshot,
    #[serde(rename = "final")]
    pub final_: Snapshot,
    pub params_reduction: f64,
    pub flops_reduction: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochLog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
}

impl Report {
    pub fn reductions(baseline: &Snapshot, fin: &Snapshot) -> (f64, f64) {
        (baseline.params as f64 / fin.params.max(1) as f64, baseline.flops as f64 / fin.flops.max(1) as f64)
    }
}

/// A per-layer table, as wide as its longest layer name: shape, kept rows/columns, params and
/// FLOPs.
pub fn layer_table(c: &Count) -> String {
    let nw = c.layers.iter().map(|l| l.name.chars().count()).max().unwrap_or(0).max(14);
    let row = |name: &str, kind: &str, input: &str, output: &str, rows: &str, cols: &str, params: &str, flops: &str| {
        format!("{name:<nw$} {kind:<10} {input:>16} {output:>16} {rows:>8} {cols:>15} {params:>10} {flops:>12}\n")
    };
    let mut s = row("layer", "type", "input", "output", "filters", "columns", "params", "FLOPs");
    for l in &c.layers {
        let cols = format!("{}/{}", l.columns, l.dense_columns);
        s += &row(&l.name, &l.kind, &shape(&l.input), &shape(&l.output), &l.rows.to_string(), &cols, &l.params.to_string(), &l.flops.to_string());
    }
    s += &row("total", "", "", "", "", "", &c.params.to_string(), &c.flops.to_string());
    s
}

fn shape(s: &crate::model::Shape) -> String {
    match s {
        crate::model::Shape::Chw(c, h, w) => format!("{c}×{h}×{w}"),
        crate::model::Shape::Flat(n) => format!("{n}"),
    }
}
