//! ONNX backend node tests (onnx/backend/test/data/node: model.onnx and test_data_set_0 with
//! input_k.pb and output_0.pb) run through our importer and forward pass. Shared by
//! tests/onnx_conformance.rs (a few cases committed under tests/fixtures/onnx/node) and
//! examples/onnx_conformance.rs (every case of Debian's libonnx-testdata for the ops we import).
//!
//! A node test feeds its weights as graph inputs, so every input after the first becomes an
//! initializer holding that input's test data (what an exported model would carry). Our models
//! end in a vector of class scores, so a Flatten is appended where the output has another rank:
//! it keeps the element order, and the comparison is over the same values.

use anyhow::{Context, Result};
use autocompress::data::Split;
use autocompress::gpu::Gpu;
use autocompress::model::Network;
use autocompress::onnx::proto::{type_proto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use autocompress::onnx::tensor;
use prost::Message;
use std::path::Path;

/// The ops the importer reads (README, "Compress your PyTorch model"); a node test is ours to
/// run when every node of its graph is one of these.
pub const SUPPORTED: &[&str] = &[
    "Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
    "BatchNormalization", "Identity", "Dropout",
];

/// ONNX's backend runner compares with rtol 1e-3, atol 1e-7; we ask ten times tighter in
/// relative terms.
const RTOL: f32 = 1e-4;
const ATOL: f32 = 1e-6;

#[derive(Debug)]
pub enum Outcome {
    /// Imported and our output matched, with the largest absolute difference.
    Pass(f32),
    /// The importer refused it; the reason is its error message.
    Refused(String),
    /// Imported, but the output differs: where and how.
    Wrong(String),
}

/// The op types of a node test's graph, or None when it is not a readable ONNX model.
pub fn ops(dir: &Path) -> Option<Vec<String>> {
    let m = ModelProto::decode(std::fs::read(dir.join("model.onnx")).ok()?.as_slice()).ok()?;
    Some(m.graph?.node.iter().map(|n| n.op_type().to_string()).collect())
}

fn read_tensor(path: &Path) -> Result<TensorProto> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    TensorProto::decode(bytes.as_slice()).with_context(|| format!("{} is not a TensorProto", path.display()))
}

fn rank(v: &ValueInfoProto) -> Option<usize> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(t.shape.as_ref()?.dim.len()),
        _ => None,
    }
}

/// Runs one node test directory. Errors are the harness's own (missing files); what the
/// importer or the forward pass says is the outcome.
pub fn run(gpu: &Gpu, dir: &Path) -> Result<Outcome> {
    let bytes = std::fs::read(dir.join("model.onnx")).with_context(|| format!("{}: no model.onnx", dir.display()))?;
    let mut model = ModelProto::decode(bytes.as_slice()).with_context(|| format!("{}: model.onnx", dir.display()))?;
    let data = dir.join("test_data_set_0");
    let g = model.graph.as_mut().context("model.onnx holds no graph")?;
    let x = read_tensor(&data.join("input_0.pb"))?;
    for (k, input) in g.input.iter().enumerate().skip(1) {
        let mut t = read_tensor(&data.join(format!("input_{k}.pb")))?;
        t.name = Some(input.name().to_string());
        g.initializer.push(t);
    }
    if g.output.len() == 1 && rank(&g.output[0]) != Some(2) {
        let flat = "conformance_flat".to_string();
        g.node.push(NodeProto { input: vec![g.output[0].name().to_string()], output: vec![flat.clone()], op_type: Some("Flatten".into()), ..Default::default() });
        g.output[0].name = Some(flat);
    }
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("node-test");
    let imported = match autocompress::onnx::import::from_bytes(&model.encode_to_vec(), name) {
        Ok(m) => m,
        Err(e) => return Ok(Outcome::Refused(format!("{e:#}"))),
    };
    let want = tensor::to_f32(&read_tensor(&data.join("output_0.pb"))?, "output_0")?;
    let images = tensor::to_f32(&x, "input_0")?;
    let n = tensor::dims(&x).first().copied().unwrap_or(1);
    let net = Network::inference(gpu, &imported.arch, &imported.weights, n)?;
    let got = autocompress::train::logits(gpu, &net, &Split { images, labels: vec![0; n], teacher: Vec::new() })?;
    if got.len() != want.len() {
        return Ok(Outcome::Wrong(format!("{} outputs where the test has {}", got.len(), want.len())));
    }
    let mut worst = 0.0f32;
    for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
        let d = (a - b).abs();
        if d.is_nan() || d > ATOL + RTOL * b.abs() {
            return Ok(Outcome::Wrong(format!("output {i} is {a}, expected {b}")));
        }
        worst = worst.max(d);
    }
    Ok(Outcome::Pass(worst))
}
