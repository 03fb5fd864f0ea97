//! Host copies of a model's parameters: initialisation and lookup by name.

use anyhow::{anyhow, ensure, Result};
use rand::{Rng, SeedableRng};

use super::graph::Architecture;

/// `<layer>.weight`: the name of a layer's weight tensor in model files and on the GPU.
pub fn weight_name(layer: &str) -> String {
    format!("{layer}.weight")
}

/// `<layer>.bias`.
pub fn bias_name(layer: &str) -> String {
    format!("{layer}.bias")
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All parameters, named `<layer>.weight` and `<layer>.bias` (and a batch norm's
/// `<layer>.running_mean`, `<layer>.running_var`), in layer order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Weights {
    pub tensors: Vec<NamedTensor>,
}

impl Weights {
    /// LeCun-uniform weights (variance 1/fan-in, Caffe's "xavier"), zero biases, from `seed`.
    /// He's 2/fan-in blows up networks without a ReLU after every layer, such as LeNet-5.
    pub fn init(arch: &Architecture, seed: u64) -> Result<Weights> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = Vec::new();
        for p in arch.param_shapes()? {
            if p.batch_norm {
                // γ = 1, β = 0; running mean 0, variance 1
                for ((name, shape), v) in p.tensors().into_iter().zip([1.0, 0.0, 0.0, 1.0]) {
                    tensors.push(NamedTensor { name, data: vec![v; shape[0]], shape });
                }
                continue;
            }
            let n: usize = p.weight.iter().product();
            let fan_in = n / p.weight[0];
            let bound = (3.0 / fan_in as f32).sqrt();
            let data = (0..n).map(|_| rng.gen_range(-bound..bound)).collect();
            tensors.push(NamedTensor { name: weight_name(&p.name), shape: p.weight.clone(), data });
            tensors.push(NamedTensor { name: bias_name(&p.name), shape: vec![p.bias], data: vec![0.0; p.bias] });
        }
        Ok(Weights { tensors })
    }

    /// The weight tensor of the conv, linear or batch-norm layer `layer`.
    pub fn weight(&self, layer: &str) -> Result<&NamedTensor> {
        self.get(&weight_name(layer))
    }

    pub fn weight_mut(&mut self, layer: &str) -> Result<&mut NamedTensor> {
        self.get_mut(&weight_name(layer))
    }

    /// The bias tensor (β of a batch norm) of `layer`.
    pub fn bias(&self, layer: &str) -> Result<&NamedTensor> {
        self.get(&bias_name(layer))
    }

    pub fn get(&self, name: &str) -> Result<&NamedTensor> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| anyhow!("model has no tensor '{name}'"))
    }

    pub fn get_mut(&mut self, name: &str) -> Result<&mut NamedTensor> {
        self.tensors.iter_mut().find(|t| t.name == name).ok_or_else(|| anyhow!("model has no tensor '{name}'"))
    }

    /// Checks that every parameter the architecture needs is present with the right shape.
    pub fn check(&self, arch: &Architecture) -> Result<()> {
        for p in arch.param_shapes()? {
            for (name, shape) in p.tensors() {
                let t = self.get(&name)?;
                ensure!(t.shape == shape, "tensor {name} has shape {:?}, the architecture needs {shape:?}", t.shape);
            }
        }
        for t in &self.tensors {
            ensure!(t.data.len() == t.shape.iter().product::<usize>(), "tensor {} holds {} values for shape {:?}", t.name, t.data.len(), t.shape);
            ensure!(t.data.iter().all(|x| x.is_finite()), "tensor {} holds non-finite values", t.name);
        }
        Ok(())
    }
}
