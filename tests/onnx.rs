//! ONNX round trips on small compacted models (tests/common/models.rs) and the embedded digits:
//! export → import gives the same graph and bit-identical weights; tract-onnx, an independent
//! runtime, runs every exported file (default, --fold-bn, --dense-columns) with our logits and
//! argmax; the file holds exactly the compacted model's parameters and, with the default export,
//! its convolutions' FLOPs.

mod common;

use autocompress::data::{self, Data, Norm};
use autocompress::model::{Architecture, Network};
use autocompress::onnx::export::{to_model, Options};
use autocompress::onnx::{count, import};
use autocompress::prune::count::count as our_count;
use common::models;
use prost::Message;
use tract_onnx::prelude::*;



fn digits() -> Data {
    let opts = data::LoadOptions::default();
    data::load("digits", None, &opts).expect("embedded digits")
}

fn norm(d: &Data) -> Norm {
    Norm::new(d.mean.clone(), d.std.clone(), 1).expect("digits normalisation")
}

fn export(arch: &Architecture, w: &autocompress::model::Weights, norm: &Norm, opts: Options) -> Vec<u8> {
    to_model(arch, w, Some(norm), opts).expect("export").encode_to_vec()
}

/// tract's logits `[n][classes]` for the raw pixels (0..1) of `images`, normalised inputs given.
fn tract_logits(bytes: &[u8], d: &Data, images: &[f32]) -> Vec<f32> {
    let [c, h, w] = d.shape;
    let n = images.len() / (c * h * w);
    let raw: Vec<f32> = images.iter().enumerate().map(|(i, x)| x * d.std[(i / (h * w)) % c] + d.mean[(i / (h * w)) % c]).collect();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact([n, c, h, w]).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract loads the exported model");
    let input = Tensor::from_shape(&[n, c, h, w], &raw).expect("input tensor");
    let out = model.run(tvec!(input.into())).expect("tract runs it");
    out[0].to_plain_array_view::<f32>().expect("f32 logits").iter().copied().collect()
}

fn argmax(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks(classes).map(|r| (0..classes).fold(0, |b, i| if r[i] > r[b] { i } else { b })).collect()
}

#[test]
fn export_then_import_gives_the_same_graph_and_bit_identical_weights() {
    let d = digits();
    for (i, arch) in models::all().iter().enumerate() {
        let w = models::weights(arch, 10 + i as u64);
        let bytes = export(arch, &w, &norm(&d), Options::default());
        let m = import::from_bytes(&bytes, &arch.name).unwrap_or_else(|e| panic!("{}: {e:#}", arch.name));
        assert_eq!(m.arch, *arch, "{}: the imported graph differs", arch.name);
        for t in &w.tensors {
            let got = m.weights.get(&t.name).unwrap_or_else(|e| panic!("{}: {e}", arch.name));
            assert_eq!(got.shape, t.shape, "{}: {}", arch.name, t.name);
            let same = got.data.iter().zip(&t.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{}: {} is not bit-identical after the round trip", arch.name, t.name);
        }
        assert_eq!(m.weights.tensors.len(), w.tensors.len(), "{}: tensor count", arch.name);
        assert_eq!(m.norm, Some(norm(&d)), "{}: the normalisation did not travel", arch.name);
    }
}

#[test]
fn tract_runs_every_export_with_our_logits_and_argmax() {
    let Some(gpu) = common::gpu() else { return };
    let d = digits();
    let classes = d.classes;
    for (i, arch) in models::all().iter().enumerate() {
        let w = models::weights(arch, 20 + i as u64);
        let net = Network::inference(gpu, arch, &w, 64).expect("network");
        let ours = autocompress::train::logits(gpu, &net, &d.test).expect("our logits");
        for (what, opts) in [
            ("default", Options::default()),
            ("--fold-bn", Options { fold_bn: true, ..Default::default() }),
            ("--dense-columns", Options { dense_columns: true, ..Default::default() }),
        ] {
            let theirs = tract_logits(&export(arch, &w, &norm(&d), opts), &d, &d.test.images);
            let rel = common::max_rel_err(&theirs, &ours);
            eprintln!("{} {what}: {} images, logits max rel diff {rel:.2e}", arch.name, d.test.len());
            assert!(rel <= 1e-4, "{} {what}: tract's logits differ from ours by {rel:e} relative", arch.name);
            assert_eq!(argmax(&theirs, classes), argmax(&ours, classes), "{} {what}: argmax differs", arch.name);
        }
    }
}

#[test]
fn exported_file_holds_exactly_the_compacted_params() {
    let d = digits();
    for arch in models::all() {
        let w = models::weights(&arch, 3);
        let c = our_count(&arch).expect("count");
        let model = to_model(&arch, &w, Some(&norm(&d)), Options::default()).expect("export");
        assert_eq!(count::params(&model), c.params, "{}: params in the ONNX graph", arch.name);
        // dense columns put the zeros back: the file then holds the dense layers' params
        let dense = to_model(&arch, &w, Some(&norm(&d)), Options { dense_columns: true, ..Default::default() }).expect("export");
        let pruned_away: u64 = c.layers.iter().map(|l| (l.rows * (l.dense_columns - l.columns)) as u64).sum();
        assert_eq!(count::params(&dense), c.params + pruned_away, "{}: params with --dense-columns", arch.name);
    }
}

/// 2 × multiply-accumulates of every Conv node, from tract's shapes of the exported graph.
fn onnx_conv_flops(bytes: &[u8], d: &Data) -> u64 {
    let [c, h, w] = d.shape;
    let typed = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.with_input_fact(0, f32::fact([1, c, h, w]).into()))
        .and_then(|m| m.into_typed())
        .expect("tract types the model");
    let mut flops = 0;
    for node in typed.nodes() {
        if node.op.name() != "Conv" {
            continue;
        }
        let out: usize = node.outputs[0].fact.shape.as_concrete().expect("concrete output").iter().product();
        let weight = typed.outlet_fact(node.inputs[1]).expect("weight fact");
        let kernel = weight.konst.as_ref().expect("constant weight");
        let per_filter = kernel.len() / kernel.shape()[0];
        flops += 2 * (out * per_filter) as u64;
    }
    flops
}

#[test]
fn default_export_keeps_the_convolutions_flops_reduction() {
    let d = digits();
    for arch in models::all() {
        let w = models::weights(&arch, 4);
        let ours: u64 = our_count(&arch).expect("count").layers.iter().filter(|l| l.kind == "conv2d").map(|l| l.flops).sum();
        let got = onnx_conv_flops(&export(&arch, &w, &norm(&d), Options::default()), &d);
        assert_eq!(got, ours, "{}: conv FLOPs counted from the ONNX graph", arch.name);
    }
}

/// The binary's JSON line of `eval`.
fn eval_json(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("eval prints JSON")
}

#[test]
fn cli_export_import_and_eval_of_an_onnx_file() {
    use common::cli::{bin, scratch};
    if common::gpu().is_none() {
        return;
    }
    let d = digits();
    let arch = models::all().into_iter().find(|a| a.name == "mixed").expect("mixed");
    let dir = scratch("onnx", "cli");
    let model = dir.join("mixed.safetensors");
    autocompress::io::save_model(&model, &arch, &models::weights(&arch, 7), &d.meta(1)).expect("save");
    let onnx = dir.join("mixed.onnx");
    let out = bin().arg("export").arg(&model).arg("--out").arg(&onnx).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let params = our_count(&arch).expect("count").params;
    assert!(out.status.success() && text.contains(&format!("{params} params in the ONNX graph (the model counts {params})")), "{text}");
    let back = dir.join("back.safetensors");
    assert!(bin().arg("import").arg(&onnx).arg("--out").arg(&back).output().expect("runs").status.success());
    let (arch2, _, meta) = autocompress::io::load_model(&back).expect("imported model file");
    assert_eq!(arch2.layers, arch.layers);
    assert_eq!(Norm::from_meta(&meta, 1).expect("norm"), Some(d.norm()), "the normalisation travels through export and import");
    let eval = |f: &std::path::Path| eval_json(bin().args(["eval", "--dataset", "digits", "--model-file"]).arg(f).output().expect("runs"));
    let (a, b) = (eval(&model), eval(&onnx));
    assert_eq!(a["test_accuracy"], b["test_accuracy"], "eval of the .onnx file and of the model file");
    assert_eq!(a["params"], b["params"]);
    // an ONNX file without normalisation: eval computes it from the data and says so
    let bare = dir.join("bare.onnx");
    std::fs::write(&bare, to_model(&arch, &models::weights(&arch, 7), None, Options::default()).expect("export").encode_to_vec()).expect("write");
    let out = bin().args(["eval", "--dataset", "digits", "--model-file"]).arg(&bare).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("bare.onnx states no input normalisation: using the mean"), "{err}");
}
