//! Built-in architectures (SPEC.md §8).

use anyhow::{bail, Result};

use super::graph::{Architecture, Layer};

pub const MODELS: &[&str] = &["digits-cnn", "lenet5", "vgg16", "resnet18"];

fn conv(name: &str, filters: usize, kernel: usize, padding: usize) -> Layer {
    Layer::Conv2d { name: name.into(), filters, kernel, stride: 1, padding, columns: None }
}
fn linear(name: &str, units: usize) -> Layer {
    Layer::Linear { name: name.into(), units, columns: None }
}
fn pool2() -> Layer {
    Layer::MaxPool { size: 2, stride: 2, padding: 0 }
}

fn bn(name: &str) -> Layer {
    Layer::BatchNorm { name: name.into() }
}

/// `input` and `classes` come from the data set, so a zoo model adapts to it where it can.
pub fn build(model: &str, input: [usize; 3], classes: usize) -> Result<Architecture> {
    build_scaled(model, 1.0, input, classes)
}

/// As `build`, with every hidden width of the CIFAR models scaled by `width` (at least one
/// channel), so that scaled copies can train on a CPU.
pub fn build_scaled(model: &str, width: f32, input: [usize; 3], classes: usize) -> Result<Architecture> {
    if !(width.is_finite() && width > 0.0 && width <= 4.0) {
        bail!("--width-multiplier must be in (0, 4], found {width}");
    }
    if width != 1.0 && !matches!(model, "vgg16" | "resnet18") {
        bail!("--width-multiplier applies to vgg16 and resnet18, not to {model}");
    }
    let wide = |c: usize| ((c as f32 * width).round() as usize).max(1);
    let layers = match model {
        // A small CNN for the 8×8 digits: 16-32 filters, then a 64-unit hidden layer.
        "digits-cnn" => vec![
            conv("conv1", 16, 3, 1),
            Layer::Relu,
            pool2(),
            conv("conv2", 32, 3, 1),
            Layer::Relu,
            pool2(),
            Layer::Flatten,
            linear("fc1", 64),
            Layer::Relu,
            linear("fc2", classes),
        ],
        // The Caffe LeNet-5 of the ADMM pruning literature (no ReLU after the convolutions).
        "lenet5" => vec![
            conv("conv1", 20, 5, 0),
            pool2(),
            conv("conv2", 50, 5, 0),
            pool2(),
            Layer::Flatten,
            linear("fc1", 500),
            Layer::Relu,
            linear("fc2", classes),
        ],
        "vgg16" => vgg16(wide, classes),
        "resnet18" => resnet18(wide, classes),
        other => bail!("unknown model '{other}': choose one of {} or give a JSON file with --model-json", MODELS.join(", ")),
    };
    let name = if width == 1.0 { model.to_string() } else { format!("{model}-w{width}") };
    let arch = Architecture { name, input, classes, layers };
    arch.shapes()?;
    Ok(arch)
}

/// VGG-16 in its CIFAR-10 form: thirteen 3×3 convolutions, each followed by batch norm and ReLU,
/// five 2×2 max-pools, then a 512-wide hidden layer (with batch norm) and the classifier.
fn vgg16(wide: impl Fn(usize) -> usize, classes: usize) -> Vec<Layer> {
    const CFG: [usize; 18] = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
    let mut layers = Vec::new();
    let mut i = 0;
    for c in CFG {
        if c == 0 {
            layers.push(pool2());
            continue;
        }
        i += 1;
        layers.extend([conv(&format!("conv{i}"), wide(c), 3, 1), bn(&format!("bn{i}")), Layer::Relu]);
    }
    layers.extend([Layer::Flatten, linear("fc1", wide(512)), bn("bn_fc1"), Layer::Relu, linear("fc2", classes)]);
    layers
}

/// ResNet-18 in its CIFAR-10 form: a 3×3 stem, four stages of two BasicBlocks (64, 128, 256,
/// 512 channels; the first block of stages 2–4 halves the map), a 1×1 projection shortcut with
/// batch norm wherever the shape changes, global average pooling and the classifier.
fn resnet18(wide: impl Fn(usize) -> usize, classes: usize) -> Vec<Layer> {
    let mut layers = vec![conv("conv1", wide(64), 3, 1), bn("bn1"), Layer::Relu];
    let mut cin = wide(64);
    for (s, c) in [64, 128, 256, 512].into_iter().enumerate() {
        for b in 0..2 {
            let (c, stride, p) = (wide(c), if s > 0 && b == 0 { 2 } else { 1 }, format!("layer{}.{b}", s + 1));
            let body = vec![
                Layer::Conv2d { name: format!("{p}.conv1"), filters: c, kernel: 3, stride, padding: 1, columns: None },
                bn(&format!("{p}.bn1")),
                Layer::Relu,
                conv(&format!("{p}.conv2"), c, 3, 1),
                bn(&format!("{p}.bn2")),
            ];
            let shortcut = if stride != 1 || cin != c {
                vec![Layer::Conv2d { name: format!("{p}.shortcut"), filters: c, kernel: 1, stride, padding: 0, columns: None }, bn(&format!("{p}.shortcut_bn"))]
            } else {
                vec![]
            };
            layers.extend([Layer::Residual { body, shortcut }, Layer::Relu]);
            cin = c;
        }
    }
    layers.extend([Layer::GlobalAvgPool, linear("fc", classes)]);
    layers
}
