//! Built-in architectures (SPEC.md §8).

use anyhow::{bail, Result};

use super::graph::{Architecture, Layer};

pub const MODELS: &[&str] = &["digits-cnn", "lenet5"];

fn conv(name: &str, filters: usize, kernel: usize, padding: usize) -> Layer {
    Layer::Conv2d { name: name.into(), filters, kernel, stride: 1, padding, columns: None }
}
fn linear(name: &str, units: usize) -> Layer {
    Layer::Linear { name: name.into(), units, columns: None }
}
fn pool2() -> Layer {
    Layer::MaxPool { size: 2, stride: 2 }
}

/// `input` and `classes` come from the data set, so a zoo model adapts to it where it can.
pub fn build(model: &str, input: [usize; 3], classes: usize) -> Result<Architecture> {
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
        other => bail!("unknown model '{other}': choose one of {} or give a JSON file with --model-json", MODELS.join(", ")),
    };
    let arch = Architecture { name: model.to_string(), input, classes, layers };
    arch.shapes()?;
    Ok(arch)
}
