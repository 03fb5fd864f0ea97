//! Appends nodes and initializers to an ONNX graph under unique names.

use crate::onnx::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};
use crate::onnx::tensor;

#[derive(Default)]
pub struct Builder {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    used: std::collections::HashSet<String>,
}

pub fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Ints as i32), ints: v.iter().map(|&x| x as i64).collect(), ..Default::default() }
}

pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Int as i32), i: Some(v), ..Default::default() }
}

pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Float as i32), f: Some(v), ..Default::default() }
}

impl Builder {
    /// `base`, or `base_2`, `base_3`… when taken; node and value names share this space.
    pub fn unique(&mut self, base: &str) -> String {
        let name = (1..).map(|i| if i == 1 { base.to_string() } else { format!("{base}_{i}") }).find(|n| !self.used.contains(n)).unwrap_or_default();
        self.used.insert(name.clone());
        name
    }

    /// Adds node `op` named after `base`; returns its (single) output value, named as the node.
    pub fn node(&mut self, op: &str, base: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let name = self.unique(base);
        self.nodes.push(NodeProto {
            name: Some(name.clone()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.clone()],
            attribute,
            ..Default::default()
        });
        name
    }

    pub fn f32(&mut self, base: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.unique(base);
        self.initializers.push(tensor::from_f32(&name, dims, data));
        name
    }

    pub fn i64(&mut self, base: &str, data: &[i64]) -> String {
        let name = self.unique(base);
        self.initializers.push(tensor::from_i64(&name, &[data.len()], data));
        name
    }

    /// Renames the value `from` (a node output) to `to`, for the graph's output name.
    pub fn rename_output(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for o in n.output.iter_mut().filter(|o| *o == from) {
                *o = to.to_string();
            }
        }
    }
}
