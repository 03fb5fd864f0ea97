//! Follows the ONNX graph from its input, node by node, into our sequence of layers. A value
//! read by two nodes opens a residual block; the block closes at the Add where both branches
//! meet (DESIGN.md: the graph is a sequence with residual groups).

use anyhow::{bail, ensure, Result};
use std::collections::HashSet;

use super::graph::{Index, Node};
use super::{columns, ops};
use crate::model::graph::{Layer, Shape};
use crate::model::weights::NamedTensor;

/// What converting one node gives: at most one layer, the new shape and the value it ends at.
pub struct Step {
    pub layer: Option<Layer>,
    pub shape: Shape,
    pub out: String,
}

impl Step {
    pub fn layer(layer: Layer, shape: Shape, out: &str) -> Step {
        Step { layer: Some(layer), shape, out: out.to_string() }
    }
    pub fn skip(shape: Shape, out: &str) -> Step {
        Step { layer: None, shape, out: out.to_string() }
    }
}

/// A converted run of layers, and the Add it stopped at when it reached a residual join.
pub struct Seq {
    pub layers: Vec<Layer>,
    pub value: String,
    pub shape: Shape,
    pub join: Option<usize>,
}

pub struct Walker<'a> {
    pub ix: &'a Index<'a>,
    /// The batch size the input declares, when it is a number (for Reshape's [N, -1]).
    pub batch: Option<i64>,
    pub weights: Vec<NamedTensor>,
    /// Sub and Div by constants right after the input: the normalisation the model expects.
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    names: HashSet<String>,
}

impl<'a> Walker<'a> {
    pub fn new(ix: &'a Index<'a>, batch: Option<i64>) -> Walker<'a> {
        Walker { ix, batch, weights: Vec::new(), mean: None, std: None, names: HashSet::new() }
    }

    /// Converts from value `v` until the graph ends or a residual join is reached.
    pub fn seq(&mut self, mut v: String, mut shape: Shape, top: bool) -> Result<Seq> {
        let mut layers = Vec::new();
        loop {
            let cons = self.ix.consumers(&v).to_vec();
            match cons.as_slice() {
                [] => return Ok(Seq { layers, value: v, shape, join: None }),
                [k] if self.is_join(*k) => return Ok(Seq { layers, value: v, shape, join: Some(*k) }),
                [k] => {
                    let at_input = top && layers.is_empty();
                    let s = self.step(*k, shape, at_input)?;
                    layers.extend(s.layer);
                    (v, shape) = (s.out, s.shape);
                }
                [a, b] => {
                    let (layer, out, s) = self.fork(&v, shape, *a, *b)?;
                    layers.push(layer);
                    (v, shape) = (out, s);
                }
                many => {
                    let names: Vec<String> = many.iter().map(|&k| self.ix.nodes[k].at()).collect();
                    bail!("value '{v}' is read by {} nodes ({}); only residual blocks (two readers) are supported", many.len(), names.join(", "))
                }
            }
        }
    }

    /// An Add of two computed values: where residual branches meet.
    fn is_join(&self, k: usize) -> bool {
        let n = &self.ix.nodes[k];
        n.op() == "Add" && (0..2).all(|i| n.input(i).is_some_and(|v| !self.ix.is_const(v)))
    }

    /// The residual block opened by value `v` read by nodes `a` and `b`.
    fn fork(&mut self, v: &str, shape: Shape, a: usize, b: usize) -> Result<(Layer, String, Shape)> {
        let mut branches = Vec::new();
        for k in [a, b] {
            let seq = if self.is_join(k) {
                Seq { layers: Vec::new(), value: v.to_string(), shape, join: Some(k) }
            } else {
                let s = self.step(k, shape, false)?;
                let mut rest = self.seq(s.out, s.shape, false)?;
                rest.layers.splice(0..0, s.layer);
                rest
            };
            branches.push(seq);
        }
        let (x, y) = (&branches[0], &branches[1]);
        let (Some(j), true) = (x.join, x.join == y.join) else {
            bail!("value '{v}' is read by {} and {}, which do not meet again in one Add: only residual blocks x + f(x) are supported", self.ix.nodes[a].at(), self.ix.nodes[b].at());
        };
        let add = self.ix.nodes[j];
        add.only_attrs(&[])?;
        let ins: Vec<&str> = (0..2).filter_map(|i| add.input(i)).map(|i| self.ix.resolve(i)).collect();
        let mut ends = [x.value.as_str(), y.value.as_str()];
        ends.sort();
        let mut got = ins.clone();
        got.sort();
        ensure!(got == ends, "{}: adds {ins:?}, not the two branches from value '{v}'", add.at());
        ensure!(x.shape == y.shape, "{}: shape does not infer: the branches give {:?} and {:?}", add.at(), x.shape, y.shape);
        ensure!(!(x.layers.is_empty() && y.layers.is_empty()), "{}: adds a value to itself", add.at());
        // the branch with more layers is the body; an empty one is the identity shortcut
        let [x, y]: [Seq; 2] = branches.try_into().map_err(|_| anyhow::anyhow!("two branches"))?;
        let (body, shortcut) = if y.layers.len() > x.layers.len() { (y, x) } else { (x, y) };
        Ok((Layer::Residual { body: body.layers, shortcut: shortcut.layers }, add.output()?.to_string(), body.shape))
    }

    /// Converts node `k` (reading the current value of `shape`), with the nodes it owns.
    fn step(&mut self, k: usize, shape: Shape, at_input: bool) -> Result<Step> {
        let n = self.ix.nodes[k];
        match n.op() {
            "Conv" => ops::conv(self, &n, shape),
            "Gemm" => ops::gemm(self, &n, shape, None),
            "MatMul" => ops::matmul(self, &n, shape, None),
            "Relu" => {
                n.only_attrs(&[])?;
                Ok(Step::layer(Layer::Relu, shape, n.output()?))
            }
            "MaxPool" => ops::max_pool(&n, shape),
            "AveragePool" | "GlobalAveragePool" => ops::avg_pool(&n, shape),
            "Flatten" | "Reshape" => ops::flatten(self, &n, shape),
            "BatchNormalization" => ops::batch_norm(self, &n, shape),
            "Pad" => columns::conv(self, &n, shape),
            "Gather" => columns::linear(self, &n, shape),
            "Sub" | "Div" if at_input => columns::normalisation(self, &n, shape),
            "Add" => bail!("{}: an Add of a constant is supported only as the bias of a MatMul", n.at()),
            op => bail!("{}: operator {op} is not supported (supported: Conv, Gemm, MatMul+Add, Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, BatchNormalization, Add as a residual join, Identity, Dropout)", n.at()),
        }
    }

    /// A layer name: the weight's name without `.weight` (PyTorch's module path), else the
    /// node's name, else `kind` and a number; never one already taken.
    pub fn name_for(&mut self, n: &Node, weight_input: usize, kind: &str) -> String {
        let from_weight = self.ix.const_name(n, weight_input).and_then(|w| w.strip_suffix(".weight")).filter(|w| !w.contains("::")).map(str::to_string);
        let from_node = Some(scope_name(n.proto.name(), n.op())).filter(|s| !s.is_empty());
        for c in [from_weight, from_node].into_iter().flatten() {
            if self.names.insert(c.clone()) {
                return c;
            }
        }
        (1..).map(|i| format!("{kind}{i}")).find(|c| self.names.insert(c.clone())).unwrap_or_default()
    }

    /// The bias at input `i` of `n`, or zeros when it has none (exact: our layers add a bias).
    pub fn bias(&self, n: &Node, i: usize, units: usize) -> Result<Vec<f32>> {
        if n.input(i).is_none() {
            return Ok(vec![0.0; units]);
        }
        let (dims, b) = self.ix.floats(n, i, "bias")?;
        ensure!(b.len() == units, "{}: bias dims {dims:?} do not match its {units} outputs", n.at());
        Ok(b)
    }

    pub fn push_param(&mut self, name: &str, shape: Vec<usize>, weight: Vec<f32>, bias: Vec<f32>) {
        let units = bias.len();
        self.weights.push(NamedTensor { name: format!("{name}.weight"), shape, data: weight });
        self.weights.push(NamedTensor { name: format!("{name}.bias"), shape: vec![units], data: bias });
    }

    pub fn push_bn(&mut self, name: &str, gamma: Vec<f32>, beta: Vec<f32>, mean: Vec<f32>, var: Vec<f32>) {
        for (part, data) in [("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)] {
            self.weights.push(NamedTensor { name: format!("{name}.{part}"), shape: vec![data.len()], data });
        }
    }
}

/// A module path from a node name: torch.onnx writes scopes such as
/// `/layer2/layer2.0/downsample/downsample.0/Conv`, each segment relative to the one before,
/// which reads back as PyTorch's own `layer2.0.downsample.0`. Other names are kept as they are.
fn scope_name(node: &str, op: &str) -> String {
    if !node.contains('/') {
        return node.to_string();
    }
    let mut segs: Vec<&str> = node.split('/').filter(|s| !s.is_empty()).collect();
    if segs.last().is_some_and(|s| s.starts_with(op)) {
        segs.pop();
    }
    let mut parts: Vec<&str> = Vec::new();
    for s in segs {
        match parts.last_mut() {
            Some(last) if s.strip_prefix(*last).is_some_and(|rest| rest.starts_with('.')) => *last = s,
            _ => parts.push(s),
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    #[test]
    fn torch_scopes_read_back_as_module_paths() {
        assert_eq!(super::scope_name("/layer2/layer2.0/downsample/downsample.0/Conv", "Conv"), "layer2.0.downsample.0");
        assert_eq!(super::scope_name("/conv1/Conv", "Conv"), "conv1");
        assert_eq!(super::scope_name("/fc/Gemm", "Gemm"), "fc");
        assert_eq!(super::scope_name("Conv_0", "Conv"), "Conv_0");
    }
}
