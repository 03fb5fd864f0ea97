//! Batch norm and residual blocks in the model graph: JSON, shape errors, running statistics,
//! and evaluation on running statistics against a CPU reference.
mod common;

use autocompress::model::{Architecture, Hyper, Layer, Network, Weights};
use common::*;

#[test]
fn json_expresses_residual_blocks_and_checks_branch_shapes() {
    let good = r#"{"name": "r", "input": [2, 4, 4], "classes": 3, "layers": [
        {"type": "residual", "body": [{"type": "conv2d", "name": "a", "filters": 2, "kernel": 3, "padding": 1},
                                      {"type": "batch_norm", "name": "a_bn"}]},
        {"type": "residual", "body": [{"type": "conv2d", "name": "b", "filters": 5, "kernel": 3, "stride": 2, "padding": 1}],
                             "shortcut": [{"type": "conv2d", "name": "s", "filters": 5, "kernel": 1, "stride": 2}]},
        {"type": "global_avg_pool"}, {"type": "linear", "name": "fc", "units": 3}]}"#;
    let arch: Architecture = serde_json::from_str(good).unwrap();
    assert_eq!(
        arch.shapes().unwrap()[1],
        autocompress::model::Shape::Chw(5, 2, 2)
    );
    let names: Vec<String> = arch
        .param_shapes()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a", "a_bn", "b", "s", "fc"]);

    // the stride-2 body without its projection shortcut cannot be added to the block input
    let mut bad = arch.clone();
    let Layer::Residual { shortcut, .. } = &mut bad.layers[1] else {
        panic!()
    };
    shortcut.clear();
    let err = format!("{:#}", bad.shapes().unwrap_err());
    assert!(
        err.contains("layer 1")
            && err.contains("5×2×2")
            && err.contains("2×4×4")
            && err.contains("must agree"),
        "{err}"
    );

    let mut flat_inside = arch.clone();
    let Layer::Residual { body, .. } = &mut flat_inside.layers[0] else {
        panic!()
    };
    body.push(Layer::Flatten);
    let err = format!("{:#}", flat_inside.shapes().unwrap_err());
    assert!(
        err.contains("flatten cannot sit inside a residual block"),
        "{err}"
    );

    let mut repeated = arch;
    let Layer::Residual { shortcut, .. } = &mut repeated.layers[1] else {
        panic!()
    };
    shortcut[0] = conv("a", 5, 1, 2, 0);
    assert!(format!("{:#}", repeated.shapes().unwrap_err()).contains("'a' is empty or repeated"));
}

/// Training steps move the running statistics 10% toward the batch's (unbiased variance), and
/// evaluation normalises with them: both against a CPU reference.
#[test]
fn batch_norm_running_statistics_and_evaluation_mode() {
    let gpu = gpu_or_skip!();
    let (n, c, hw, classes) = (5, 3, 4, 2);
    let arch = Architecture {
        name: "bn".into(),
        input: [c, 2, 2],
        classes,
        layers: vec![
            Layer::BatchNorm { name: "bn".into() },
            Layer::Flatten,
            linear("fc", classes),
        ],
    };
    let mut w = Weights::init(&arch, 3).unwrap();
    w.get_mut("bn.weight").unwrap().data = vec![1.5, 0.5, -1.0];
    w.get_mut("bn.bias").unwrap().data = vec![0.1, -0.2, 0.3];
    let net = Network::new(gpu, &arch, &w, n, 0.0).unwrap();
    let x: Vec<f32> = rand_vec(n * c * hw, 11)
        .iter()
        .enumerate()
        .map(|(i, v)| v * 2.0 + (i / hw % c) as f32)
        .collect();
    let labels = vec![0u32, 1, 1, 0, 1];
    net.load_batch(gpu, &x, &labels).unwrap();
    // lr 0: the parameters stay, only the running statistics move
    net.train_step(gpu, Hyper::plain(0.0, 0.0), n, 0).unwrap();
    let after = net.weights(gpu).unwrap();
    let (mut want_mean, mut want_var) = (vec![0.0f32; c], vec![0.0f32; c]);
    for ch in 0..c {
        let v: Vec<f32> = (0..n)
            .flat_map(|i| x[(i * c + ch) * hw..(i * c + ch + 1) * hw].to_vec())
            .collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / (v.len() - 1) as f32;
        want_mean[ch] = 0.1 * mean;
        want_var[ch] = 0.9 + 0.1 * var;
    }
    assert_close(
        "running mean",
        &after.get("bn.running_mean").unwrap().data,
        &want_mean,
        1e-4,
    );
    assert_close(
        "running var",
        &after.get("bn.running_var").unwrap().data,
        &want_var,
        1e-4,
    );

    // evaluation: y = γ (x − running mean) / √(running var + ε) + β, then the linear layer
    net.eval_step(gpu, n).unwrap();
    let logits = net.logits(gpu).unwrap();
    let (gamma, beta) = (
        &w.get("bn.weight").unwrap().data,
        &w.get("bn.bias").unwrap().data,
    );
    let (fw, fb) = (
        &w.get("fc.weight").unwrap().data,
        &w.get("fc.bias").unwrap().data,
    );
    let mut want = Vec::new();
    for i in 0..n {
        let y: Vec<f32> = (0..c * hw)
            .map(|j| {
                let ch = j / hw;
                gamma[ch] * (x[i * c * hw + j] - want_mean[ch]) / (want_var[ch] + 1e-5).sqrt()
                    + beta[ch]
            })
            .collect();
        for k in 0..classes {
            want.push(fb[k] + (0..c * hw).map(|j| fw[k * c * hw + j] * y[j]).sum::<f32>());
        }
    }
    assert_close("evaluation logits", &logits[..n * classes], &want, 1e-4);

    // the running statistics survive a save through Weights
    let net2 = Network::new(gpu, &arch, &after, n, 0.0).unwrap();
    assert_eq!(net2.weights(gpu).unwrap(), after);
}

/// Recalibration replaces stale running statistics by the mean of the batches' statistics
/// (mean and unbiased variance per channel), against a CPU reference.
#[test]
fn batch_norm_recalibration_averages_batch_statistics() {
    let gpu = gpu_or_skip!();
    let (n, c, hw) = (6, 3, 4);
    let arch = Architecture { name: "bn".into(), input: [c, 2, 2], classes: 2, layers: vec![Layer::BatchNorm { name: "bn".into() }, Layer::Flatten, linear("fc", 2)] };
    let mut w = Weights::init(&arch, 3).unwrap();
    // stale statistics, as a pruned copy of a trained network has
    w.get_mut("bn.running_mean").unwrap().data = vec![7.0, -7.0, 3.0];
    w.get_mut("bn.running_var").unwrap().data = vec![50.0, 0.01, 9.0];
    let net = Network::new(gpu, &arch, &w, n, 0.0).unwrap();
    // three batches with channel means and spreads that differ per batch
    let batches: Vec<Vec<f32>> = (0..3)
        .map(|b| rand_vec(n * c * hw, 20 + b).iter().enumerate().map(|(i, v)| v * (1.0 + b as f32) + (i / hw % c) as f32 * (b as f32 - 1.0)).collect())
        .collect();
    net.recalibrate(gpu, 3, |net, i| net.load_batch(gpu, &batches[i], &vec![0u32; n])).unwrap();
    let (mut want_mean, mut want_var) = (vec![0.0f32; c], vec![0.0f32; c]);
    for x in &batches {
        for ch in 0..c {
            let v: Vec<f32> = (0..n).flat_map(|i| x[(i * c + ch) * hw..(i * c + ch + 1) * hw].to_vec()).collect();
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            want_mean[ch] += mean / 3.0;
            want_var[ch] += v.iter().map(|a| (a - mean) * (a - mean)).sum::<f32>() / (v.len() - 1) as f32 / 3.0;
        }
    }
    let after = net.weights(gpu).unwrap();
    assert_close("recalibrated mean", &after.get("bn.running_mean").unwrap().data, &want_mean, 1e-3);
    assert_close("recalibrated var", &after.get("bn.running_var").unwrap().data, &want_var, 1e-3);
    // the parameters did not move
    assert_eq!(after.get("fc.weight").unwrap(), w.get("fc.weight").unwrap());
}

/// The zoo's CIFAR networks against published parameter counts: kuangliu/pytorch-cifar's
/// ResNet18 has 11,173,962 (bias-free convolutions), ours adds one bias per conv filter (4,800);
/// its VGG16 has 14,728,266 (biased convolutions, a 512→10 classifier), ours adds the 512-wide
/// hidden layer with its batch norm (262,656 + 1,024).
#[test]
fn zoo_cifar_networks_have_the_published_sizes_and_coupled_stages() {
    use autocompress::model::zoo;
    use autocompress::prune::count::count;
    let r = zoo::build("resnet18", [3, 32, 32], 10).unwrap();
    assert_eq!(count(&r).unwrap().params, 11_173_962 + 4_800);
    let v = zoo::build("vgg16", [3, 32, 32], 10).unwrap();
    assert_eq!(count(&v).unwrap().params, 14_728_266 + 262_656 + 1_024);

    // each ResNet stage is one coupled group: the stem or first block's projection, and every
    // block's second convolution, sum into the same channels
    let t = autocompress::prune::topology::topology(&r).unwrap();
    let coupled: Vec<Vec<&str>> = t.spaces.iter().filter(|s| s.producers.len() > 1).map(|s| s.producers.iter().map(|&p| t.nodes[p].name.as_str()).collect()).collect();
    assert_eq!(
        coupled,
        [
            vec!["conv1", "layer1.0.conv2", "layer1.1.conv2"],
            vec!["layer2.0.conv2", "layer2.0.shortcut", "layer2.1.conv2"],
            vec!["layer3.0.conv2", "layer3.0.shortcut", "layer3.1.conv2"],
            vec!["layer4.0.conv2", "layer4.0.shortcut", "layer4.1.conv2"],
        ]
    );
    // a width multiplier scales every hidden width, never the classes
    let small = zoo::build_scaled("vgg16", 0.25, [3, 32, 32], 10).unwrap();
    assert_eq!(small.name, "vgg16-w0.25");
    let c = count(&small).unwrap();
    assert_eq!((c.layers[0].rows, c.layers.last().unwrap().rows), (16, 10));
}
