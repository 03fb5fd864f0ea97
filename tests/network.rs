//! Whole-network checks: finite-difference gradients of the full backward pass.
mod common;

use autocompress::model::{Architecture, Layer, Network, Weights};
use common::*;

fn loss(net: &Network, g: &autocompress::gpu::Gpu, valid: usize) -> f64 {
    net.reset_metrics(g);
    net.eval_step(g, valid);
    net.read_metrics(g).unwrap().loss_sum / valid as f64
}

/// Central differences on sampled entries of every parameter tensor against the GPU backward.
/// `budget` limits im2col buffers (elements) so convolutions also run in chunks of images.
fn gradient_check(arch: Architecture, batch: usize, valid: usize, budget: usize) {
    let Some(g) = gpu() else { return };
    let w0 = Weights::init(&arch, 7).unwrap();
    let net = Network::with_column_budget(g, &arch, &w0, batch, 0.0, budget).unwrap();
    let il: usize = arch.input.iter().product();
    let images = rand_vec(valid * il, 3);
    let labels: Vec<u32> = (0..valid as u32).map(|i| (i * 7 + 1) % arch.classes as u32).collect();
    net.load_batch(g, &images, &labels).unwrap();
    net.gradient_step(g, valid);
    let grads = net.gradients(g).unwrap();
    let eps = 1e-3f32;
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for t in &w0.tensors {
        let n = t.data.len();
        let picks: Vec<usize> = (0..n.min(12)).map(|i| (i * 7919 + 13) % n).collect();
        for &i in &picks {
            let mut w = w0.clone();
            w.get_mut(&t.name).unwrap().data[i] += eps;
            net.set_weights(g, &w).unwrap();
            let up = loss(&net, g, valid);
            w.get_mut(&t.name).unwrap().data[i] -= 2.0 * eps;
            net.set_weights(g, &w).unwrap();
            let down = loss(&net, g, valid);
            let numeric = (up - down) / (2.0 * eps as f64);
            let analytic = grads.get(&t.name).unwrap().data[i] as f64;
            let err = (numeric - analytic).abs() / (numeric.abs().max(analytic.abs()) + 1e-2);
            worst = worst.max(err);
            if err >= 5e-2 {
                failures.push(format!("{}[{i}]: numeric {numeric:.6} vs analytic {analytic:.6} (rel err {err:.3})", t.name));
            }
        }
    }
    assert!(failures.is_empty(), "gradient mismatches:\n{}", failures.join("\n"));
    eprintln!("gradient check: worst relative error {worst:.2e}");
}

#[test]
fn gradient_check_conv_pool_linear_network() {
    let arch = Architecture {
        name: "tiny".into(),
        input: [2, 7, 7],
        classes: 3,
        layers: vec![
            conv("conv1", 3, 3, 1, 1),
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2 },
            conv("conv2", 5, 3, 2, 1),
            Layer::Flatten,
            linear("fc1", 6),
            Layer::Relu,
            linear("fc2", 3),
        ],
    };
    gradient_check(arch.clone(), 5, 5, 1 << 24);
    // 2 images per chunk: the chunked path that gathers columns again for the weight gradient
    gradient_check(arch, 5, 5, 2 * 20 * 52);
}

#[test]
fn gradient_check_with_partial_batch_avgpool_and_strided_pool() {
    let arch = Architecture {
        name: "tiny2".into(),
        input: [1, 9, 9],
        classes: 4,
        layers: vec![
            conv("conv1", 4, 5, 1, 2),
            Layer::MaxPool { size: 3, stride: 2 },
            conv("conv2", 3, 1, 1, 0),
            Layer::Relu,
            Layer::GlobalAvgPool,
            linear("fc", 4),
        ],
    };
    // batch 6 with only 4 valid rows: padding rows must not leak into loss or gradients
    gradient_check(arch, 6, 4, 1 << 24);
}

/// Same seed, same adapter: bit-identical weights after training (no atomics, seeded order).
#[test]
fn training_is_deterministic_for_a_seed() {
    use autocompress::data::{self, LoadOptions};
    use autocompress::model::zoo;
    use autocompress::train::{train, Schedule, TrainConfig};
    let Some(g) = gpu() else { return };
    let opts = LoadOptions { limit_train: Some(256), limit_test: Some(64), ..LoadOptions::default() };
    let data = data::load("digits", None, &opts).unwrap();
    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    let cfg = TrainConfig { epochs: 2, batch_size: 16, lr: 0.05, momentum: 0.9, weight_decay: 5e-4, schedule: Schedule::Cosine, warmup_epochs: 0.0, seed: 5, steps_per_epoch: None, augment: false };
    let run = || {
        let net = Network::new(g, &arch, &Weights::init(&arch, cfg.seed).unwrap(), cfg.batch_size, cfg.weight_decay).unwrap();
        let logs = train(g, &net, &data, &cfg, false, |_| Ok(())).unwrap();
        (net.weights(g).unwrap(), logs.last().unwrap().train_loss)
    };
    let (a, la) = run();
    let (b, lb) = run();
    assert_eq!(la, lb, "training loss differs between identical runs");
    assert!(a == b, "weights differ between identical runs");
    assert!(la < 2.3, "training did not reduce the loss: {la}");
}
