//! Models exported by PyTorch's own exporter (tests/fixtures/onnx, made by
//! scripts/torch-fixtures.py with torch 1.13): a LeNet (opset 11, Dropout skipped) and a small
//! ResNet of torchvision's BasicBlocks (opset 17: 7×7 stride-2 stem, padded max pool, batch
//! norms folded into the convolutions by torch.onnx, identity and projection shortcuts,
//! global average pooling). Imported, our forward pass must give PyTorch's logits.

mod common;

use autocompress::data::Split;
use autocompress::model::Network;

fn check(name: &str, layers: &[&str]) {
    check_in(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx"), name, Some(layers));
}

fn check_in(dir: &std::path::Path, name: &str, layers: Option<&[&str]>) {
    let Some(gpu) = common::gpu() else { return };
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("fixture");
    let f: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    let floats = |k: &str| -> Vec<f32> { f[k].as_array().expect("list").iter().map(|v| v.as_f64().expect("number") as f32).collect() };
    let (input, want) = (floats("input"), floats("logits"));
    let n = f["input_shape"][0].as_u64().expect("batch") as usize;

    let (arch, w, _) = autocompress::io::load_model(&dir.join(format!("{name}.onnx"))).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let names: Vec<String> = arch.param_shapes().expect("shapes").into_iter().filter(|p| !p.batch_norm).map(|p| p.name).collect();
    if let Some(layers) = layers {
        assert_eq!(names, layers, "{name}: layer names follow PyTorch's module paths");
    }
    let net = Network::inference(gpu, &arch, &w, n).expect("network");
    let split = Split { images: input, labels: vec![0; n], teacher: Vec::new() };
    let got = autocompress::train::logits(gpu, &net, &split).expect("logits");
    let rel = common::max_rel_err(&got, &want);
    eprintln!("{name}: {n} images, logits max rel diff to PyTorch {rel:.2e}");
    assert!(rel <= 1e-4, "{name}: our logits differ from PyTorch's by {rel:e} relative");
    let argmax = |v: &[f32]| v.chunks(arch.classes).map(|r| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b })).collect::<Vec<_>>();
    assert_eq!(argmax(&got), argmax(&want), "{name}: argmax");
}

#[test]
fn pytorch_lenet_imports_with_pytorchs_logits() {
    check("lenet", &["conv1", "conv2", "fc1", "fc2", "fc3"]);
}

#[test]
fn pytorch_resnet_of_basic_blocks_imports_with_pytorchs_logits() {
    let convs = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0"];
    let mut layers: Vec<&str> = convs.to_vec();
    layers.extend(["layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0", "layer4.0.conv1", "layer4.0.conv2", "layer4.0.downsample.0", "fc"]);
    check("resnet-tiny", &layers);
}

/// torchvision's full resnet18 (num_classes=10, CIFAR-sized input): 45 MB, so not committed.
#[test]
#[ignore = "needs scripts/torch-fixtures.py --resnet18 DIR/resnet18.onnx, then AUTOCOMPRESS_RESNET18_DIR=DIR"]
fn pytorch_resnet18_imports_with_pytorchs_logits() {
    let dir = std::env::var("AUTOCOMPRESS_RESNET18_DIR").expect("AUTOCOMPRESS_RESNET18_DIR names the directory of resnet18.onnx and resnet18.json");
    check_in(std::path::Path::new(&dir), "resnet18", None);
}
