//! Whole-network checks: finite-difference gradients of the full backward pass.
mod common;

use autocompress::model::{Architecture, Layer, Network, Weights};
use common::*;

/// The loss as the backward pass sees it (batch norm on batch statistics).
fn loss(net: &Network, gpu: &autocompress::gpu::Gpu, valid: usize) -> f64 {
    net.reset_metrics(gpu);
    net.train_loss_step(gpu, valid).unwrap();
    net.read_metrics(gpu).unwrap().loss_sum / valid as f64
}

/// Central differences on sampled entries of every parameter tensor against the GPU backward.
/// `budget` limits im2col buffers (elements) so convolutions also run in chunks of images.
fn gradient_check(arch: Architecture, batch: usize, valid: usize, budget: usize) {
    let gpu = gpu_or_skip!();
    gradient_check_on(gpu, arch, batch, valid, budget)
}

fn gradient_check_on(gpu: &autocompress::gpu::Gpu, arch: Architecture, batch: usize, valid: usize, budget: usize) {
    let w0 = Weights::init(&arch, 7).unwrap();
    let net = Network::with_column_budget(gpu, &arch, &w0, batch, 0.0, budget).unwrap();
    let il: usize = arch.input.iter().product();
    let images = rand_vec(valid * il, 3);
    let labels: Vec<u32> = (0..valid as u32).map(|i| (i * 7 + 1) % arch.classes as u32).collect();
    net.load_batch(gpu, &images, &labels).unwrap();
    net.gradient_step(gpu, valid).unwrap();
    let grads = net.gradients(gpu).unwrap();
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    // running statistics are not trained, so they have no gradient
    for t in w0.tensors.iter().filter(|t| !t.name.contains(".running_")) {
        let n = t.data.len();
        let picks: Vec<usize> = (0..n.min(12)).map(|i| (i * 7919 + 13) % n).collect();
        for &i in &picks {
            let analytic = grads.get(&t.name).unwrap().data[i] as f64;
            let numeric = |eps: f32| {
                let mut w = w0.clone();
                w.get_mut(&t.name).unwrap().data[i] += eps;
                net.set_weights(gpu, &w).unwrap();
                let up = loss(&net, gpu, valid);
                w.get_mut(&t.name).unwrap().data[i] -= 2.0 * eps;
                net.set_weights(gpu, &w).unwrap();
                let down = loss(&net, gpu, valid);
                (up - down) / (2.0 * eps as f64)
            };
            let rel = |num: f64| (num - analytic).abs() / (num.abs().max(analytic.abs()) + 1e-2);
            let mut num = numeric(1e-3);
            // a step can carry a ReLU input across its kink (likely after a batch norm, whose
            // outputs crowd around 0); a smaller step then agrees, a wrong gradient never does
            if rel(num) >= 5e-2 {
                num = numeric(2.5e-4);
            }
            let err = rel(num);
            worst = worst.max(err);
            if err >= 5e-2 {
                failures.push(format!("{}[{i}]: numeric {num:.6} vs analytic {analytic:.6} (rel err {err:.3})", t.name));
            }
        }
    }
    assert!(failures.is_empty(), "gradient mismatches:\n{}", failures.join("\n"));
    eprintln!("gradient check: worst relative error {worst:.2e}");
}

/// conv → ReLU → max pool → strided conv → flatten → two linear layers; `fc1` keeps the input
/// columns given (all where `None`).
fn conv_pool_linear(name: &str, fc1_columns: Option<Vec<u32>>) -> Architecture {
    Architecture {
        name: name.into(),
        input: [2, 7, 7],
        classes: 3,
        layers: vec![
            conv("conv1", 3, 3, 1, 1),
            Layer::Relu,
            Layer::MaxPool { size: 2, stride: 2, padding: 0 },
            conv("conv2", 5, 3, 2, 1),
            Layer::Flatten,
            Layer::Linear { name: "fc1".into(), units: 6, columns: fc1_columns },
            Layer::Relu,
            linear("fc2", 3),
        ],
    }
}

/// Fails unless every kernel named (`family:entry`) is among those the network dispatches.
fn assert_runs(g: &autocompress::gpu::Gpu, arch: &Architecture, batch: usize, kernels: &[&str]) {
    let net = Network::new(g, arch, &Weights::init(arch, 1).unwrap(), batch, 0.0).unwrap();
    let names: Vec<String> = net.passes().iter().flat_map(|(_, p)| p.iter().map(|d| d.kernel.name.clone())).collect();
    for k in kernels {
        assert!(names.iter().any(|n| n.starts_with(k)), "no {k} among {names:?}");
    }
}

#[test]
fn gradient_check_conv_pool_linear_network() {
    let arch = conv_pool_linear("tiny", None);
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
            Layer::MaxPool { size: 3, stride: 2, padding: 0 },
            conv("conv2", 3, 1, 1, 0),
            Layer::Relu,
            Layer::GlobalAvgPool,
            linear("fc", 4),
        ],
    };
    // batch 6 with only 4 valid rows: padding rows must not leak into loss or gradients
    gradient_check(arch, 6, 4, 1 << 24);
}

fn bn(name: &str) -> Layer {
    Layer::BatchNorm { name: name.into() }
}

/// A tiny ResNet: batch norm everywhere, an identity block and a strided block with a 1×1
/// projection shortcut, a residual block first in the model, and a batch norm on flat features.
#[test]
fn gradient_check_tiny_resnet() {
    gradient_check(tiny_resnet(true), 6, 6, 1 << 24);
}

/// The same without ReLUs: smooth, so no step crosses a kink.
#[test]
fn gradient_check_tiny_resnet_smooth() {
    gradient_check(tiny_resnet(false), 6, 6, 1 << 24);
}

fn tiny_resnet(relu: bool) -> Architecture {
    let act = |v: Vec<Layer>| v.into_iter().filter(|l| relu || *l != Layer::Relu).collect::<Vec<_>>();
    let block = |p: &str, c: usize, stride: usize| Layer::Residual {
        body: act(vec![conv(&format!("{p}a"), c, 3, stride, 1), bn(&format!("{p}a_bn")), Layer::Relu, conv(&format!("{p}b"), c, 3, 1, 1), bn(&format!("{p}b_bn"))]),
        shortcut: if stride == 1 { vec![] } else { vec![conv(&format!("{p}s"), c, 1, stride, 0), bn(&format!("{p}s_bn"))] },
    };
    let layers = vec![
        block("b0", 3, 1),
        conv("stem", 4, 3, 1, 1),
        bn("stem_bn"),
        Layer::Relu,
        block("b1", 4, 1),
        Layer::Relu,
        block("b2", 6, 2),
        Layer::Relu,
        Layer::GlobalAvgPool,
        linear("fc1", 5),
        bn("fc1_bn"),
        Layer::Relu,
        linear("fc2", 4),
    ];
    Architecture { name: "tiny-resnet".into(), input: [3, 6, 6], classes: 4, layers: act(layers) }
}

/// This adapter with kernels selected as on an invented discrete GPU: the workgroup-memory
/// GEMM and convolutions, 64-thread weight- and data-gradient tiles, split-K to fill the device.
fn as_discrete_gpu() -> Option<&'static autocompress::gpu::Gpu> {
    static GPU: std::sync::OnceLock<Option<autocompress::gpu::Gpu>> = std::sync::OnceLock::new();
    gpu()?;
    GPU.get_or_init(|| autocompress::gpu::Gpu::new(None).ok().map(|g| g.retarget(adapters::discrete_nvidia()))).as_ref()
}

/// The finite-difference checks with the GPU variants forced on, including a column-pruned
/// convolution and a column-pruned linear layer.
#[test]
fn gradient_check_with_gpu_kernels() {
    let Some(g) = as_discrete_gpu() else { return };
    let mut tiny = tiny_resnet(false);
    tiny.name = "tiny-resnet-pruned".into();
    tiny.layers.insert(1, Layer::Conv2d { name: "pruned".into(), filters: 5, kernel: 3, stride: 1, padding: 1, columns: Some((0..27).filter(|j| j % 3 != 1).collect()) });
    gradient_check_on(g, tiny, 6, 6, 1 << 24);
    let arch = conv_pool_linear("tiny-pruned-linear", Some(vec![0, 2, 3, 5, 7, 11, 12, 19]));
    // the forced variants are what the network runs
    assert_runs(g, &arch, 5, &["tiled:conv_tiled", "tiled:gemm_tiled", "dgrad_pixels:conv_dgrad_pixels"]);
    gradient_check_on(g, arch.clone(), 5, 5, 1 << 24);
    gradient_check_on(g, arch, 5, 5, 2 * 20 * 52);
}

/// Batch norm on planes large enough that a GPU splits each channel's reductions over several
/// workgroups (4 images × 24×24: two slices of 1,152 values), through the finite-difference
/// check; its lane sums use subgroup operations where this device has them (lavapipe on
/// Vulkan), the tree otherwise (GL).
#[test]
fn gradient_check_with_split_batch_norm_reductions() {
    let Some(g) = as_discrete_gpu() else { return };
    let arch = Architecture {
        name: "split-bn".into(),
        input: [3, 24, 24],
        classes: 3,
        layers: vec![conv("conv", 4, 3, 1, 1), bn("bn"), Layer::Relu, Layer::GlobalAvgPool, linear("fc", 3)],
    };
    let family = if g.adapter.subgroups { "batchnorm-subgroups" } else { "batchnorm" };
    assert_runs(g, &arch, 4, &[&format!("{family}:bn_stats_partial"), &format!("{family}:bn_reduce_partial")]);
    gradient_check_on(g, arch, 4, 4, 1 << 24);
}

/// Same seed, same adapter: bit-identical weights after training (no atomics, seeded order).
#[test]
fn training_is_deterministic_for_a_seed() {
    use autocompress::model::zoo;
    use autocompress::train::{train, Schedule, TrainConfig};
    let gpu = gpu_or_skip!();
    let data = digits(256, 64);
    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    let cfg = TrainConfig { epochs: 2, batch_size: 16, lr: 0.05, momentum: 0.9, weight_decay: 5e-4, schedule: Schedule::Cosine, warmup_epochs: 0.0, seed: 5, steps_per_epoch: None, augment: false, distill: None };
    let run = || {
        let net = Network::new(gpu, &arch, &Weights::init(&arch, cfg.seed).unwrap(), cfg.batch_size, cfg.weight_decay).unwrap();
        let logs = train(gpu, &net, &data, &cfg, false, |_| Ok(())).unwrap();
        (net.weights(gpu).unwrap(), logs.last().unwrap().train_loss)
    };
    let (a, la) = run();
    let (b, lb) = run();
    assert_eq!(la, lb, "training loss differs between identical runs");
    assert!(a == b, "weights differ between identical runs");
    assert!(la < 2.3, "training did not reduce the loss: {la}");
}
