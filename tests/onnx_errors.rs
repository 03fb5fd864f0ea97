//! Every bad ONNX input of issue 14 gets a clear error naming the file and the node (or the
//! initializer), never a panic: each case is a valid export of a small model, broken one way.

mod common;

use autocompress::model::{zoo, Architecture, Layer};
use autocompress::onnx::export::{to_model, Options};
use autocompress::onnx::proto::{self as pb, tensor_shape_proto::dimension::Value as Dim, AttributeProto, ModelProto};
use common::cli::{bin, fails_with, scratch};
use common::models;
use prost::Message;

fn base() -> (Architecture, ModelProto) {
    let arch = zoo::build("digits-cnn", models::INPUT, 10).expect("zoo");
    let w = models::weights(&arch, 1);
    let m = to_model(&arch, &w, None, Options::default()).expect("export");
    (arch, m)
}

fn graph(m: &mut ModelProto) -> &mut pb::GraphProto {
    m.graph.as_mut().expect("graph")
}

fn node<'a>(m: &'a mut ModelProto, name: &str) -> &'a mut pb::NodeProto {
    graph(m).node.iter_mut().find(|n| n.name() == name).expect("node")
}

fn set_ints(n: &mut pb::NodeProto, name: &str, v: &[i64]) {
    n.attribute.retain(|a| a.name() != name);
    n.attribute.push(AttributeProto { name: Some(name.into()), ints: v.to_vec(), r#type: Some(7), ..Default::default() });
}

/// Writes `bytes` as `name` and checks that loading it fails naming the file and `needles`.
fn refused(name: &str, bytes: &[u8], needles: &[&str]) {
    let dir = scratch("onnx-errors", name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, bytes).expect("write");
    let err = match autocompress::io::load_model(&path) {
        Ok(_) => panic!("{name}: loaded without an error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&path.display().to_string()), "{name}: the error does not name the file: {err}");
    for n in needles {
        assert!(err.contains(n), "{name}: the error lacks '{n}': {err}");
    }
}

fn refused_model(name: &str, m: &ModelProto, needles: &[&str]) {
    refused(name, &m.encode_to_vec(), needles)
}

#[test]
fn truncated_and_non_onnx_files() {
    let (_, m) = base();
    let bytes = m.encode_to_vec();
    refused("truncated", &bytes[..bytes.len() / 2], &["truncated or not an ONNX file"]);
    refused("text", b"this is not a model at all", &["not an ONNX"]);
    refused("empty", b"", &["no graph"]);
}

#[test]
fn unsupported_op_names_the_node_and_op() {
    let (_, mut m) = base();
    node(&mut m, "relu").op_type = Some("Sigmoid".into());
    refused_model("sigmoid", &m, &["node 'relu' (Sigmoid)", "operator Sigmoid is not supported"]);
}

#[test]
fn grouped_dilated_and_asymmetric_convolutions() {
    let (_, mut m) = base();
    node(&mut m, "conv2").attribute.push(AttributeProto { name: Some("group".into()), i: Some(2), r#type: Some(2), ..Default::default() });
    refused_model("grouped", &m, &["node 'conv2' (Conv)", "grouped convolution (group 2)"]);
    let (_, mut m) = base();
    set_ints(node(&mut m, "conv1"), "dilations", &[2, 2]);
    refused_model("dilated", &m, &["node 'conv1' (Conv)", "dilated"]);
    let (_, mut m) = base();
    set_ints(node(&mut m, "conv2"), "pads", &[1, 1, 0, 0]);
    refused_model("asymmetric", &m, &["node 'conv2' (Conv)", "asymmetric padding (pads [1, 1, 0, 0])"]);
}

#[test]
fn missing_initializer_names_node_and_value() {
    let (_, mut m) = base();
    graph(&mut m).initializer.retain(|t| t.name() != "conv2.weight");
    refused_model("missing", &m, &["node 'conv2' (Conv)", "'conv2.weight'", "missing initializer"]);
}

#[test]
fn two_inputs_or_two_outputs() {
    let (_, mut m) = base();
    let extra = graph(&mut m).input[0].clone();
    graph(&mut m).input.push(pb::ValueInfoProto { name: Some("mask".into()), ..extra });
    refused_model("two-inputs", &m, &["2 inputs ('input', 'mask')", "exactly one input"]);
    let (_, mut m) = base();
    let out = graph(&mut m).output[0].clone();
    graph(&mut m).output.push(pb::ValueInfoProto { name: Some("features".into()), ..out });
    refused_model("two-outputs", &m, &["2 outputs ('logits', 'features')"]);
}

fn input_dims(m: &mut ModelProto) -> &mut Vec<pb::tensor_shape_proto::Dimension> {
    match graph(m).input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        Some(pb::type_proto::Value::TensorType(t)) => &mut t.shape.as_mut().expect("shape").dim,
        _ => panic!("tensor input"),
    }
}

#[test]
fn shapes_that_do_not_infer() {
    // a 2×2 input: the second 2×2 pool has a 1×1 map
    let (_, mut m) = base();
    for d in &mut input_dims(&mut m)[2..] {
        d.value = Some(Dim::DimValue(2));
    }
    refused_model("tiny-input", &m, &["node 'maxpool_2' (MaxPool)", "shape does not infer"]);
    let (_, mut m) = base();
    input_dims(&mut m)[3].value = Some(Dim::DimParam("width".into()));
    refused_model("symbolic-width", &m, &["input 'input'", "dimension 3 is not a fixed positive size"]);
    // conv2's weight expects 16 channels; give it 3-channel images' worth
    let (_, mut m) = base();
    input_dims(&mut m)[1].value = Some(Dim::DimValue(3));
    refused_model("channels", &m, &["node 'conv1' (Conv)", "shape does not infer", "expects 1 input channels, the input has 3"]);
}

#[test]
fn initializer_dims_that_disagree_with_the_data_or_the_file() {
    let (_, mut m) = base();
    let t = graph(&mut m).initializer.iter_mut().find(|t| t.name() == "conv1.weight").expect("init");
    t.dims = vec![16, 1, 3, 4];
    refused_model("dims", &m, &["node 'conv1' (Conv)", "'conv1.weight'", "declare 192 floats but the data holds 576 bytes"]);
    // 2^40 × 9 floats (36 TiB): refused before any allocation, or this test would abort
    let t = graph(&mut m).initializer.iter_mut().find(|t| t.name() == "conv1.weight").expect("init");
    t.dims = vec![1 << 40, 1, 3, 3];
    refused_model("huge", &m, &["'conv1.weight'", "declare 9895604649984 floats"]);
    t_overflow();
}

fn t_overflow() {
    let (_, mut m) = base();
    let t = graph(&mut m).initializer.iter_mut().find(|t| t.name() == "fc1.weight").expect("init");
    t.dims = vec![i64::MAX, 16];
    refused_model("overflow", &m, &["'fc1.weight'", "overflow"]);
}

#[test]
fn batch_norm_epsilon_and_old_opsets() {
    let arch = models::all().into_iter().find(|a| a.name == "mixed").expect("mixed model");
    let mut m = to_model(&arch, &models::weights(&arch, 2), None, Options::default()).expect("export");
    let bn = node(&mut m, "bn1");
    bn.attribute.retain(|a| a.name() != "epsilon");
    bn.attribute.push(AttributeProto { name: Some("epsilon".into()), f: Some(1e-3), r#type: Some(1), ..Default::default() });
    refused_model("epsilon", &m, &["node 'bn1' (BatchNormalization)", "epsilon 1e-3 is not supported"]);
    let (_, mut m) = base();
    m.opset_import[0].version = Some(10);
    refused_model("opset10", &m, &["opset 10 is older than 11"]);
}

#[test]
fn export_refuses_a_column_list_that_disagrees_with_the_tensors() {
    let arch = models::all().into_iter().find(|a| a.name == "column").expect("column model");
    let mut w = models::weights(&arch, 5);
    let t = w.get_mut("conv2.weight").expect("tensor");
    t.data.truncate(t.data.len() - 32);
    t.shape[1] -= 1;
    let err = format!("{:#}", to_model(&arch, &w, None, Options::default()).expect_err("refused"));
    assert!(err.contains("cannot export column") && err.contains("conv2.weight"), "{err}");
    let mut bad = arch.clone();
    if let Layer::Conv2d { columns: Some(c), .. } = &mut bad.layers[0] {
        c.push(9);
    }
    let err = format!("{:#}", to_model(&bad, &models::weights(&arch, 5), None, Options::default()).expect_err("refused"));
    assert!(err.contains("cannot export column") && err.contains("kept column 9 out of range"), "{err}");
}

#[test]
fn the_cli_refuses_a_bad_file_with_exit_code_1() {
    let dir = scratch("onnx-errors", "cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("bad.onnx");
    std::fs::write(&path, b"\x08\x07garbage").expect("write");
    fails_with(bin().args(["import"]).arg(&path).args(["--out"]).arg(dir.join("m.safetensors")), &[&path.display().to_string()]);
    fails_with(bin().args(["inspect"]).arg(&path), &[&path.display().to_string()]);
}
