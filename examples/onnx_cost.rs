//! FLOPs of an ONNX model counted by tract-onnx, an independent runtime, from the graph itself:
//! the multiply-adds tract's own cost model gives each node (Conv, Gemm, MatMul), ×2 to match
//! the FLOPs autocompress reports. A column-pruned layer exported as Pad/Slice/Concat/Gather and
//! a 1×1 Conv is counted as tract will run it, so this shows whether the export kept the
//! reduction.
//!
//!     cargo run --release --example onnx_cost -- model.onnx

use anyhow::{Context, Result};
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let path = std::env::args().nth(1).context("usage: onnx_cost model.onnx")?;
    let model = tract_onnx::onnx().model_for_path(&path)?;
    // one image of the size the graph declares (its batch dimension is symbolic)
    let [c, h, w] = autocompress::io::load_model(std::path::Path::new(&path))?.0.input;
    let shape = [1, c, h, w];
    let typed = model.with_input_fact(0, f32::fact(shape).into())?.into_typed()?;
    let mut fma = 0i64;
    let mut per_op: std::collections::BTreeMap<String, i64> = Default::default();
    for node in typed.nodes() {
        let inputs = typed.node_input_facts(node.id)?;
        for (cost, n) in node.op.cost(&inputs)? {
            if let tract_onnx::tract_core::ops::Cost::FMA(_) = cost {
                let n = n.to_i64()?;
                fma += n;
                *per_op.entry(node.op.name().to_string()).or_default() += n;
            }
        }
    }
    // autocompress counts the multiply-adds of convolutions and linear layers (SPEC.md §1); tract
    // also gives an element-wise op or two (the normalisation) a few
    let layers: i64 = per_op.iter().filter(|(op, _)| ["Conv", "EinSum", "MatMul", "Gemm"].iter().any(|k| op.starts_with(k))).map(|(_, n)| n).sum();
    let bytes = std::fs::metadata(&path)?.len();
    println!(
        "{{\"model\": \"{path}\", \"bytes\": {bytes}, \"input\": {shape:?}, \"flops\": {}, \"flops_all_ops\": {}, \"fma_by_op\": {per_op:?}, \"counted_by\": \"tract-onnx\"}}",
        2 * layers,
        2 * fma
    );
    Ok(())
}
