//! ONNX → our `Architecture` and `Weights`: decode, check the model's frame (opset, one input,
//! one output, a fixed C×H×W input), then walk the graph (walk.rs) converting node by node.

mod columns;
mod graph;
mod ops;
mod walk;

use anyhow::{bail, ensure, Context, Result};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;

use crate::data::Norm;
use crate::model::graph::{Architecture, Shape};
use crate::model::weights::Weights;
use crate::onnx::proto::{tensor_shape_proto::dimension::Value as Dim, type_proto, ModelProto, ValueInfoProto};

/// The oldest default-domain opset read.
pub const MIN_OPSET: i64 = 11;

/// An imported model: the graph, its weights, the normalisation it carries (if any), and
/// metadata for the model file.
pub struct Imported {
    pub arch: Architecture,
    pub weights: Weights,
    pub norm: Option<Norm>,
    pub meta: HashMap<String, String>,
}

/// Reads an ONNX file; every error names the file, and the node where there is one.
pub fn read(path: &Path) -> Result<Imported> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read model file {}", path.display()))?;
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("onnx-model").to_string();
    from_bytes(&bytes, &name).with_context(|| format!("ONNX model {}", path.display()))
}

pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Imported> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow::anyhow!("truncated or not an ONNX file ({e})"))?;
    let Some(g) = model.graph.as_ref().filter(|g| !g.node.is_empty()) else { bail!("not an ONNX model: it holds no graph") };
    let opset = model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).map(|o| o.version());
    match opset {
        Some(v) if v >= MIN_OPSET => {}
        Some(v) => bail!("opset {v} is older than {MIN_OPSET}: export again with opset_version ≥ {MIN_OPSET}"),
        None => bail!("no default-domain opset is declared"),
    }
    let ix = graph::Index::new(g)?;
    let initializers: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name()).collect();
    let inputs: Vec<&ValueInfoProto> = g.input.iter().filter(|i| !initializers.contains(i.name())).collect();
    let names = |v: &[&ValueInfoProto]| v.iter().map(|i| format!("'{}'", i.name())).collect::<Vec<_>>().join(", ");
    ensure!(inputs.len() == 1, "the graph has {} inputs ({}); a model with exactly one input is supported", inputs.len(), names(&inputs));
    let outputs: Vec<&ValueInfoProto> = g.output.iter().collect();
    ensure!(outputs.len() == 1, "the graph has {} outputs ({}); a model with exactly one output is supported", outputs.len(), names(&outputs));
    let (batch, [c, h, w]) = input_shape(inputs[0])?;

    let mut wk = walk::Walker::new(&ix, batch);
    let seq = wk.seq(inputs[0].name().to_string(), Shape::Chw(c, h, w), true)?;
    if let Some(j) = seq.join {
        bail!("{}: adds two computed values outside a residual block", ix.nodes[j].at());
    }
    let out = outputs[0].name();
    ensure!(ix.resolve(&seq.value) == ix.resolve(out), "the graph's output '{out}' is not reached from its input by the supported ops (the walk ended at '{}')", seq.value);
    let Shape::Flat(classes) = seq.shape else { bail!("the output '{out}' is a {:?} map, not a vector of class scores", seq.shape) };
    let arch = Architecture { name: name.to_string(), input: [c, h, w], classes, layers: seq.layers };
    arch.shapes().context("shape does not infer")?;
    let weights = Weights { tensors: wk.weights };
    weights.check(&arch)?;

    let props: HashMap<String, String> = model.metadata_props.iter().map(|p| (p.key().to_string(), p.value().to_string())).collect();
    let norm = match (wk.mean, wk.std) {
        (None, None) => Norm::from_meta(&props, c).context("metadata_props")?,
        (m, s) => Some(Norm::new(m.unwrap_or(vec![0.0; c]), s.unwrap_or(vec![1.0; c]), c)?),
    };
    let mut meta = HashMap::from([("source".to_string(), "onnx".to_string())]);
    if !model.producer_name().is_empty() {
        meta.insert("onnx_producer".into(), format!("{} {}", model.producer_name(), model.producer_version()));
    }
    Ok(Imported { arch, weights, norm, meta })
}

/// The batch size (when a number) and [C, H, W] of the graph input, which must be a float
/// N×C×H×W tensor with C, H and W fixed.
fn input_shape(input: &ValueInfoProto) -> Result<(Option<i64>, [usize; 3])> {
    let bad = |why: &str| anyhow::anyhow!("input '{}': {why}; a float N×C×H×W input with fixed C, H and W is supported (shape does not infer)", input.name());
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else { return Err(bad("not a tensor")) };
    ensure!(t.elem_type() == 1, bad(&format!("element type {} is not float", t.elem_type())));
    let dims: Vec<Option<i64>> = t.shape.as_ref().ok_or_else(|| bad("no shape"))?.dim.iter().map(|d| match d.value {
        Some(Dim::DimValue(v)) => Some(v),
        _ => None,
    }).collect();
    ensure!(dims.len() == 4, bad(&format!("{} dimensions", dims.len())));
    let fixed = |i: usize| dims[i].filter(|&v| v > 0 && v <= 1 << 20).map(|v| v as usize).ok_or_else(|| bad(&format!("dimension {i} is not a fixed positive size")));
    Ok((dims[0], [fixed(1)?, fixed(2)?, fixed(3)?]))
}
