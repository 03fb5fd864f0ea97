//! A few of ONNX's backend node tests, committed under tests/fixtures/onnx/node: those we import
//! must give ONNX's own expected output, and those we cannot represent must be refused with
//! the reason, never imported as something else. The run over every node test is
//! examples/onnx_conformance.rs.

mod common;
#[path = "conformance/harness.rs"]
mod harness;

use harness::Outcome;
use std::path::PathBuf;

fn node(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/node").join(name)
}

fn outcome(name: &str) -> Option<Outcome> {
    let gpu = common::gpu()?;
    Some(harness::run(gpu, &node(name)).unwrap_or_else(|e| panic!("{name}: {e:#}")))
}

#[test]
fn supported_node_tests_give_onnxs_outputs() {
    for name in [
        "test_basic_conv_with_padding",
        "test_conv_with_strides_padding",
        "test_batchnorm_example",
        "test_maxpool_2d_pads",
        "test_maxpool_2d_precomputed_same_upper",
        "test_flatten_axis1",
    ] {
        let ops = harness::ops(&node(name)).expect("model.onnx");
        assert!(ops.iter().all(|o| harness::SUPPORTED.contains(&o.as_str())), "{name}: ops {ops:?}");
        let Some(o) = outcome(name) else { return };
        let Outcome::Pass(diff) = o else { panic!("{name}: {o:?}") };
        eprintln!("{name}: max abs diff {diff:e}");
    }
}

#[test]
fn unrepresentable_node_tests_are_refused_with_the_reason() {
    for (name, why) in [
        ("test_conv_with_strides_and_asymmetric_padding", "asymmetric padding (pads [1, 0, 1, 0])"),
        ("test_maxpool_2d_ceil", "ceil_mode = 1"),
        ("test_batchnorm_epsilon", "epsilon 1e-2 is not supported"),
        ("test_gemm_default_vector_bias", "a float N×C×H×W input"),
    ] {
        let Some(o) = outcome(name) else { return };
        match o {
            Outcome::Refused(msg) => assert!(msg.contains(why), "{name}: refused, but for another reason: {msg}"),
            other => panic!("{name}: expected a refusal naming {why:?}, got {other:?}"),
        }
    }
}

/// The harness must be able to fail: the same convolution with its expected output perturbed
/// is reported wrong.
#[test]
fn a_perturbed_expected_output_is_reported_wrong() {
    let Some(gpu) = common::gpu() else { return };
    let dir = common::cli::scratch("conformance", "perturbed");
    let src = node("test_conv_with_strides_padding");
    std::fs::create_dir_all(dir.join("test_data_set_0")).expect("temp dir");
    std::fs::copy(src.join("model.onnx"), dir.join("model.onnx")).expect("copy");
    for f in ["input_0.pb", "input_1.pb"] {
        std::fs::copy(src.join("test_data_set_0").join(f), dir.join("test_data_set_0").join(f)).expect("copy");
    }
    use prost::Message;
    let bytes = std::fs::read(src.join("test_data_set_0/output_0.pb")).expect("output");
    let mut t = autocompress::onnx::proto::TensorProto::decode(bytes.as_slice()).expect("tensor");
    let mut v = autocompress::onnx::tensor::to_f32(&t, "output").expect("floats");
    v[3] += 1e-2 * (1.0 + v[3].abs());
    t = autocompress::onnx::tensor::from_f32(t.name(), &autocompress::onnx::tensor::dims(&t), &v);
    std::fs::write(dir.join("test_data_set_0/output_0.pb"), t.encode_to_vec()).expect("write");
    let o = harness::run(gpu, &dir).expect("harness");
    std::fs::remove_dir_all(&dir).ok();
    assert!(matches!(&o, Outcome::Wrong(why) if why.starts_with("output 3 ")), "{o:?}");
}
