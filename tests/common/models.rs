//! Small compacted models on the 8×8 digits for the ONNX tests: dense, filter-pruned (smaller
//! layers), column-pruned, mixed (with a batch norm on flat features) and residual (batch
//! norms, padded max pool, identity and projection shortcuts), with random weights, biases and
//! batch-norm statistics so that nothing is trivially zero or one.

use autocompress::model::{zoo, Architecture, Layer, Weights};
use rand::{Rng, SeedableRng};

use super::{conv, linear};

pub const INPUT: [usize; 3] = [1, 8, 8];

/// Every `step`-th column from `offset` of `total`.
fn every(total: usize, step: usize, offset: usize) -> Option<Vec<u32>> {
    Some((offset..total).step_by(step).map(|j| j as u32).collect())
}

fn cconv(name: &str, filters: usize, kernel: usize, stride: usize, padding: usize, columns: Option<Vec<u32>>) -> Layer {
    Layer::Conv2d { name: name.into(), filters, kernel, stride, padding, columns }
}

fn clinear(name: &str, units: usize, columns: Option<Vec<u32>>) -> Layer {
    Layer::Linear { name: name.into(), units, columns }
}

fn bn(name: &str) -> Layer {
    Layer::BatchNorm { name: name.into() }
}

fn pool() -> Layer {
    Layer::MaxPool { size: 2, stride: 2, padding: 0 }
}

fn arch(name: &str, layers: Vec<Layer>) -> Architecture {
    let a = Architecture { name: name.into(), input: INPUT, classes: 10, layers };
    a.shapes().expect("test model is consistent");
    a
}

/// The test models by name.
pub fn all() -> Vec<Architecture> {
    let dense = zoo::build("digits-cnn", INPUT, 10).expect("zoo model");
    let filter = arch("filter", vec![conv("conv1", 11, 3, 1, 1), Layer::Relu, pool(), conv("conv2", 19, 3, 1, 1), Layer::Relu, pool(), Layer::Flatten, linear("fc1", 37), Layer::Relu, linear("fc2", 10)]);
    let column = arch(
        "column",
        vec![
            cconv("conv1", 16, 3, 1, 1, Some(vec![0, 2, 4, 5, 8])),
            Layer::Relu,
            pool(),
            cconv("conv2", 32, 3, 1, 1, every(16 * 9, 3, 1)),
            Layer::Relu,
            pool(),
            Layer::Flatten,
            clinear("fc1", 64, every(128, 2, 0)),
            Layer::Relu,
            clinear("fc2", 10, every(64, 3, 2)),
        ],
    );
    let mixed = arch(
        "mixed",
        vec![
            cconv("conv1", 12, 3, 1, 1, Some(vec![1, 3, 4, 6, 7])),
            bn("bn1"),
            Layer::Relu,
            pool(),
            cconv("conv2", 20, 3, 2, 1, every(12 * 9, 4, 3)),
            Layer::Relu,
            Layer::Flatten,
            linear("fc1", 24),
            bn("bn_fc1"),
            Layer::Relu,
            clinear("fc2", 10, every(24, 2, 1)),
        ],
    );
    let residual = arch(
        "residual",
        vec![
            conv("conv1", 8, 3, 1, 1),
            bn("bn1"),
            Layer::Relu,
            Layer::MaxPool { size: 3, stride: 2, padding: 1 },
            Layer::Residual { body: vec![conv("layer1.0.conv1", 8, 3, 1, 1), bn("layer1.0.bn1"), Layer::Relu, cconv("layer1.0.conv2", 8, 3, 1, 1, every(72, 2, 1)), bn("layer1.0.bn2")], shortcut: vec![] },
            Layer::Relu,
            Layer::Residual {
                body: vec![conv("layer2.0.conv1", 12, 3, 2, 1), bn("layer2.0.bn1"), Layer::Relu, conv("layer2.0.conv2", 12, 3, 1, 1), bn("layer2.0.bn2")],
                shortcut: vec![cconv("layer2.0.downsample.0", 12, 1, 2, 0, Some(vec![0, 2, 3, 5, 7])), bn("layer2.0.downsample.1")],
            },
            Layer::Relu,
            Layer::GlobalAvgPool,
            clinear("fc", 10, every(12, 2, 0)),
        ],
    );
    vec![dense, filter, column, mixed, residual]
}

/// Random weights and biases, and batch norms with γ, β, running mean and variance away from
/// their initial 1, 0, 0, 1.
pub fn weights(arch: &Architecture, seed: u64) -> Weights {
    let mut w = Weights::init(arch, seed).expect("weights");
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    for t in &mut w.tensors {
        let range = match t.name.rsplit('.').next() {
            Some("bias") => -0.3..0.3,
            Some("running_mean") => -0.5..0.5,
            Some("running_var") => 0.5..2.0,
            Some("weight") if t.shape.len() == 1 => 0.5..1.5,
            _ => continue,
        };
        t.data.iter_mut().for_each(|x| *x = r.gen_range(range.clone()));
    }
    w
}
