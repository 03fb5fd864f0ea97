//! An index over an ONNX graph: constants (initializers and Constant nodes), who produces and
//! who consumes each value, with Identity and Dropout looked through, and typed attribute access
//! whose errors name the node.

use anyhow::{bail, ensure, Result};
use std::borrow::Cow;
use std::collections::HashMap;

use crate::onnx::proto::{attribute_proto::AttributeType, GraphProto, NodeProto, TensorProto};
use crate::onnx::tensor;

/// One node with its position, for messages and attributes.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    pub index: usize,
    pub proto: &'a NodeProto,
}

impl<'a> Node<'a> {
    pub fn op(&self) -> &'a str {
        self.proto.op_type()
    }

    /// `node 'name' (Op)`, or `node #i (Op)` when it has no name.
    pub fn at(&self) -> String {
        match self.proto.name() {
            "" => format!("node #{} ({})", self.index, self.op()),
            n => format!("node '{n}' ({})", self.op()),
        }
    }

    pub fn input(&self, i: usize) -> Option<&'a str> {
        self.proto.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    pub fn output(&self) -> Result<&'a str> {
        match self.proto.output.first() {
            Some(o) if !o.is_empty() => Ok(o),
            _ => bail!("{}: has no output", self.at()),
        }
    }

    fn attr(&self, name: &str) -> Option<&'a crate::onnx::proto::AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name() == name)
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.i.is_some() || a.r#type() == AttributeType::Int => Ok(a.i()),
            Some(_) => bail!("{}: attribute '{name}' is not an integer", self.at()),
        }
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) if a.f.is_some() || a.r#type() == AttributeType::Float => Ok(a.f()),
            Some(_) => bail!("{}: attribute '{name}' is not a float", self.at()),
        }
    }

    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }

    pub fn string(&self, name: &str, default: &'a str) -> &'a str {
        self.attr(name).and_then(|a| a.s.as_deref()).and_then(|s| std::str::from_utf8(s).ok()).unwrap_or(default)
    }

    /// Refuses any attribute not in `known`: an attribute we do not understand could change
    /// the result, and nothing is approximated silently.
    pub fn only_attrs(&self, known: &[&str]) -> Result<()> {
        for a in &self.proto.attribute {
            ensure!(known.contains(&a.name()), "{}: attribute '{}' is not supported", self.at(), a.name());
        }
        Ok(())
    }
}

pub struct Index<'a> {
    pub nodes: Vec<Node<'a>>,
    consts: HashMap<&'a str, Cow<'a, TensorProto>>,
    /// Outputs of skipped nodes (Identity, Dropout) → the value they pass on.
    alias: HashMap<&'a str, &'a str>,
    consumers: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Index<'a> {
    pub fn new(g: &'a GraphProto) -> Result<Index<'a>> {
        let mut ix = Index { nodes: Vec::new(), consts: HashMap::new(), alias: HashMap::new(), consumers: HashMap::new() };
        for t in &g.initializer {
            ix.consts.insert(t.name(), Cow::Borrowed(t));
        }
        for (index, proto) in g.node.iter().enumerate() {
            let node = Node { index, proto };
            ensure!(matches!(proto.domain(), "" | "ai.onnx"), "{}: operator domain '{}' is not supported (standard ONNX ops only)", node.at(), proto.domain());
            match node.op() {
                "Constant" => {
                    ix.consts.insert(node.output()?, Cow::Owned(constant_value(&node)?));
                }
                "Identity" | "Dropout" => {
                    ensure!(proto.output.iter().skip(1).all(|o| o.is_empty()), "{}: its mask output is used; only the data output can be skipped", node.at());
                    let from = node.input(0).ok_or_else(|| anyhow::anyhow!("{}: has no input", node.at()))?;
                    ix.alias.insert(node.output()?, from);
                }
                _ => ix.nodes.push(node),
            }
        }
        for (k, node) in ix.nodes.iter().enumerate() {
            for input in node.proto.input.iter().filter(|i| !i.is_empty()) {
                let v = ix.resolve(input);
                if !ix.consts.contains_key(v) {
                    ix.consumers.entry(v).or_default().push(k);
                }
            }
        }
        Ok(ix)
    }

    /// The value a name stands for once Identity and Dropout are looked through.
    pub fn resolve<'b>(&self, mut v: &'b str) -> &'b str
    where
        'a: 'b,
    {
        for _ in 0..=self.alias.len() {
            match self.alias.get(v) {
                Some(next) => v = next,
                None => break,
            }
        }
        v
    }

    pub fn is_const(&self, v: &str) -> bool {
        self.consts.contains_key(self.resolve(v))
    }

    /// Positions in `nodes` of the nodes reading value `v` (constant inputs excluded).
    pub fn consumers(&self, v: &str) -> &[usize] {
        self.consumers.get(self.resolve(v)).map_or(&[], Vec::as_slice)
    }

    /// The constant behind input `i` of `node`; `role` says what it is for in errors.
    pub fn constant(&self, node: &Node, i: usize, role: &str) -> Result<&TensorProto> {
        let Some(name) = node.input(i) else { bail!("{}: missing input {i} ({role})", node.at()) };
        match self.consts.get(self.resolve(name)) {
            Some(t) => Ok(t),
            None => bail!("{}: {role} '{name}' is not an initializer or constant (a missing initializer, or a value computed at run time)", node.at()),
        }
    }

    pub fn floats(&self, node: &Node, i: usize, role: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.constant(node, i, role)?;
        let what = format!("{}: {role} '{}'", node.at(), node.input(i).unwrap_or(""));
        Ok((tensor::dims(t), tensor::to_f32(t, &what)?))
    }

    pub fn ints(&self, node: &Node, i: usize, role: &str) -> Result<Vec<i64>> {
        let t = self.constant(node, i, role)?;
        tensor::to_i64(t, &format!("{}: {role} '{}'", node.at(), node.input(i).unwrap_or("")))
    }

    /// The name of the constant behind input `i`, for naming layers.
    pub fn const_name(&self, node: &Node<'a>, i: usize) -> Option<&'a str> {
        node.input(i).map(|n| self.resolve(n))
    }
}

/// A Constant node's tensor, from whichever value attribute it carries.
fn constant_value(node: &Node) -> Result<TensorProto> {
    let a = node.proto.attribute.first().ok_or_else(|| anyhow::anyhow!("{}: has no value", node.at()))?;
    let t = match a.name() {
        "value" => a.t.clone().ok_or_else(|| anyhow::anyhow!("{}: 'value' holds no tensor", node.at()))?,
        "value_float" => tensor::from_f32("", &[], &[a.f()]),
        "value_floats" => tensor::from_f32("", &[a.floats.len()], &a.floats),
        "value_int" => tensor::from_i64("", &[], &[a.i()]),
        "value_ints" => tensor::from_i64("", &[a.ints.len()], &a.ints),
        other => bail!("{}: constant attribute '{other}' is not supported", node.at()),
    };
    Ok(t)
}
