//! Pruning end to end on small generated models: compaction keeps the masked model's outputs
//! (SPEC.md §6), purification's unused-path fixed point, and action validation.
mod common;

use autocompress::gpu::Gpu;
use autocompress::model::{Architecture, Layer, Network, Weights};
use autocompress::prune::action::{Action, LayerAction};
use autocompress::prune::Scheme;
use autocompress::prune::compact::compact;
use autocompress::prune::purify::unused_paths;
use autocompress::prune::topology::topology;
use common::*;

fn arch() -> Architecture {
    Architecture {
        name: "small".into(),
        input: [3, 9, 9],
        classes: 5,
        layers: vec![
            conv("conv1", 7, 3, 1, 1),
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2, padding: 0 },
            conv("conv2", 6, 3, 1, 1),
            Layer::Relu,
            Layer::Flatten,
            linear("fc1", 9),
            Layer::Relu,
            linear("fc2", 5),
        ],
    }
}

/// Zeroes filter rows (with their biases) and columns of the named layer's GEMM view.
fn prune(w: &mut Weights, layer: &str, cols: usize, rows: &[usize], columns: &[usize]) {
    let wt = &mut w.get_mut(&format!("{layer}.weight")).unwrap().data;
    let n_rows = wt.len() / cols;
    for &r in rows {
        wt[r * cols..(r + 1) * cols].fill(0.0);
    }
    for &j in columns {
        for r in 0..n_rows {
            wt[r * cols + j] = 0.0;
        }
    }
    let b = &mut w.get_mut(&format!("{layer}.bias")).unwrap().data;
    for &r in rows {
        b[r] = 0.0;
    }
}

fn logits(gpu: &Gpu, arch: &Architecture, w: &Weights, images: &[f32], n: usize) -> Vec<f32> {
    // the inference network runs every conv as an implicit GEMM, the training one via im2col
    let net = if arch.name.ends_with("inference") { Network::inference(gpu, arch, w, n) } else { Network::new(gpu, arch, w, n, 0.0) }.unwrap();
    eval_logits(gpu, &net, images, n)
}

/// Masked model vs its compaction, for filter-only, column-only and mixed pruning.
#[test]
fn compacted_model_computes_what_the_masked_model_does() {
    let gpu = gpu_or_skip!();
    let a = arch();
    let mut base = Weights::init(&a, 3).unwrap();
    for t in &mut base.tensors {
        if t.name.ends_with(".bias") {
            t.data.iter_mut().enumerate().for_each(|(i, x)| *x = 0.05 * (i as f32 % 3.0 - 1.0));
        }
    }
    let n = 6;
    let images = rand_vec(n * 3 * 81, 11);
    type Case = Vec<(&'static str, usize, Vec<usize>, Vec<usize>)>;
    let cases: Vec<(&str, Case)> = vec![
        ("filter", vec![("conv1", 27, vec![0, 3], vec![]), ("conv2", 63, vec![1, 2, 5], vec![]), ("fc1", 96, vec![4], vec![])]),
        ("column", vec![("conv1", 27, vec![], vec![0, 5, 26]), ("conv2", 63, vec![], (0..63).step_by(4).collect()), ("fc2", 9, vec![], vec![2, 3])]),
        (
            "mixed",
            vec![
                ("conv1", 27, vec![6], vec![1, 2]),
                ("conv2", 63, vec![], (0..9).chain(20..25).collect()),
                ("fc1", 96, vec![0, 8], (16..32).collect()),
                ("fc2", 9, vec![], vec![1]),
            ],
        ),
    ];
    for (label, case) in cases {
        let mut w = base.clone();
        for (layer, cols, rows, columns) in &case {
            prune(&mut w, layer, *cols, rows, columns);
        }
        let (carch, cw, _) = compact(&a, &w).unwrap();
        let c = autocompress::prune::count::count(&carch).unwrap();
        let d = autocompress::prune::count::count(&a).unwrap();
        assert!(c.params < d.params && c.flops < d.flops, "{label}: compaction did not shrink the model");
        let want = logits(gpu, &a, &w, &images, n);
        let got = logits(gpu, &carch, &cw, &images, n);
        let e = max_rel_err(&got, &want);
        assert!(e <= 1e-4, "{label}: compacted vs masked max rel diff {e}");
        let inf = Architecture { name: "compacted-inference".into(), ..carch.clone() };
        let e_inf = max_rel_err(&logits(gpu, &inf, &cw, &images, n), &want);
        assert!(e_inf <= 1e-4, "{label}: compacted (implicit GEMM) vs masked max rel diff {e_inf}");
        // purification step 2 on top must keep outputs too (it only removes dead paths)
        assert_purification_keeps_outputs(label, &a, &w, &want, |arch, w| logits(gpu, arch, w, &images, n));
    }
}

#[test]
fn unused_paths_reach_a_fixed_point_across_flatten() {
    let a = arch();
    let mut w = Weights::init(&a, 4).unwrap();
    // conv2 filter 2 removed ⇒ fc1 loses the 16 columns (4×4 map) of channel 2
    prune(&mut w, "conv2", 63, &[2], &[]);
    // fc1 never reads channel 4 of conv2 ⇒ conv2 filter 4 goes too
    prune(&mut w, "fc1", 96, &[], &(64..80).collect::<Vec<_>>());
    // conv2 ignores conv1's channel 1 ⇒ conv1 filter 1 goes
    prune(&mut w, "conv2", 63, &[], &(9..18).collect::<Vec<_>>());
    unused_paths(&topology(&a).unwrap(), &mut w).unwrap();
    let fc1 = &w.get("fc1.weight").unwrap().data;
    for r in 0..9 {
        assert!((32..48).all(|j| fc1[r * 96 + j] == 0.0), "fc1 still reads removed channel 2");
    }
    let conv2 = &w.get("conv2.weight").unwrap().data;
    assert!(conv2[4 * 63..5 * 63].iter().all(|&x| x == 0.0) && w.get("conv2.bias").unwrap().data[4] == 0.0, "conv2 filter 4 survived");
    let conv1 = &w.get("conv1.weight").unwrap().data;
    assert!(conv1[27..54].iter().all(|&x| x == 0.0), "conv1 filter 1 survived");
    let (carch, _, kept) = compact(&a, &w).unwrap();
    assert_eq!(kept[0].rows.len(), 6);
    assert_eq!(kept[1].rows, vec![0, 1, 3, 5]);
    match &carch.layers[6] {
        Layer::Linear { columns, .. } => assert!(columns.is_none(), "fc1 should be dense over 4 channels × 9"),
        l => panic!("unexpected layer {l:?}"),
    }
}

#[test]
fn bad_actions_are_refused() {
    let a = arch();
    let act = |layer: &str, scheme, rate| Action { layers: vec![LayerAction { layer: layer.into(), scheme, rate }] };
    let err = |x: Action| format!("{:#}", x.validate(&a, 0.5).unwrap_err());
    assert!(err(act("conv9", Scheme::Filter, 0.5)).contains("conv9"));
    assert!(err(act("conv2", Scheme::Filter, 1.0)).contains("outside [0, 1)"));
    assert!(err(act("conv2", Scheme::Column, -0.1)).contains("outside [0, 1)"));
    assert!(err(act("conv2", Scheme::Column, f32::NAN)).contains("outside [0, 1)"));
    assert!(err(act("fc2", Scheme::Filter, 0.5)).contains("classifier"));
    assert!(err(act("conv1", Scheme::Column, 0.7)).contains("first layer"));
    let twice = Action { layers: vec![act("conv2", Scheme::Filter, 0.5).layers[0].clone(), act("conv2", Scheme::Column, 0.5).layers[0].clone()] };
    assert!(err(twice).contains("twice"));
    assert!(act("fc2", Scheme::Column, 0.5).validate(&a, 0.5).is_ok());
}

/// A model file whose kept-column list disagrees with its weight tensor is refused on load.
#[test]
fn model_file_with_inconsistent_columns_is_refused() {
    let mut a = arch();
    if let Layer::Conv2d { columns, .. } = &mut a.layers[3] {
        *columns = Some(vec![0, 2, 4, 8]);
    }
    let mut w = Weights::init(&a, 1).unwrap();
    // the weight tensor claims 5 kept columns where the architecture lists 4
    let t = w.get_mut("conv2.weight").unwrap();
    t.shape = vec![6, 5];
    t.data = vec![0.1; 30];
    let mut meta = std::collections::HashMap::new();
    meta.insert("architecture".to_string(), serde_json::to_string(&a).unwrap());
    let views: Vec<(String, safetensors::tensor::TensorView)> = w
        .tensors
        .iter()
        .map(|t| (t.name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data)).unwrap()))
        .collect();
    let path = std::env::temp_dir().join(format!("autocompress-bad-columns-{}.safetensors", std::process::id()));
    std::fs::write(&path, safetensors::serialize(views, &Some(meta)).unwrap()).unwrap();
    let err = format!("{:#}", autocompress::io::load_model(&path).unwrap_err());
    let _ = std::fs::remove_file(&path);
    assert!(err.contains("conv2.weight") && err.contains("[6, 5]") && err.contains("[6, 4]"), "{err}");
}
