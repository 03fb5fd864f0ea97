//! The model graph: a sequence of layers, as users write it in JSON, with shape inference.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

fn one() -> usize {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// `W[filters][C][kernel][kernel]`; `columns` lists the kept columns of the GEMM view
    /// (indices into C·R·S, sorted) when the layer is column-pruned (SPEC.md §6).
    Conv2d {
        name: String,
        filters: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        columns: Option<Vec<u32>>,
    },
    /// `W[units][C]`; `columns` as for Conv2d (indices into the input features).
    Linear {
        name: String,
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        columns: Option<Vec<u32>>,
    },
    Relu,
    MaxPool {
        size: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Flatten,
}

impl Layer {
    /// The name of a layer with weights.
    pub fn param_name(&self) -> Option<&str> {
        match self {
            Layer::Conv2d { name, .. } | Layer::Linear { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Activation shape of one image: channels × height × width, or a flat feature vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    Chw(usize, usize, usize),
    Flat(usize),
}

impl Shape {
    pub fn len(&self) -> usize {
        match *self {
            Shape::Chw(c, h, w) => c * h * w,
            Shape::Flat(n) => n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub name: String,
    /// [channels, height, width] of one input image.
    pub input: [usize; 3],
    pub classes: usize,
    pub layers: Vec<Layer>,
}

/// Shapes of a weighted layer's parameters, as the network stores them.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamShape {
    pub name: String,
    /// Weight shape: [K, C, R, S] dense conv, [K, kept] column-pruned conv, [K, C] linear.
    pub weight: Vec<usize>,
    pub bias: usize,
}

impl Architecture {
    pub fn from_json_file(path: &Path) -> Result<Architecture> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read model file {}", path.display()))?;
        let arch: Architecture =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid model description", path.display()))?;
        arch.shapes().with_context(|| format!("{}: inconsistent model", path.display()))?;
        Ok(arch)
    }

    /// Output shape of every layer for one image; errors name the layer and the mismatch.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        let [c, h, w] = self.input;
        ensure!(c > 0 && h > 0 && w > 0, "input shape {:?} has a zero dimension", self.input);
        ensure!(self.classes >= 2, "a classifier needs at least 2 classes, found {}", self.classes);
        let mut names = std::collections::HashSet::new();
        let mut cur = Shape::Chw(c, h, w);
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let at = || format!("layer {i} ({})", layer.param_name().unwrap_or(kind(layer)));
            if let Some(n) = layer.param_name() {
                ensure!(!n.is_empty() && names.insert(n.to_string()), "{}: layer name '{n}' is empty or repeated", at());
            }
            cur = match (layer, cur) {
                (Layer::Conv2d { filters, kernel, stride, padding, columns, .. }, Shape::Chw(c, h, w)) => {
                    ensure!(*filters > 0 && *kernel > 0 && *stride > 0, "{}: filters, kernel and stride must be positive", at());
                    ensure!(
                        h + 2 * padding >= *kernel && w + 2 * padding >= *kernel,
                        "{}: kernel {kernel} larger than its padded {h}×{w} input",
                        at()
                    );
                    check_columns(columns, c * kernel * kernel).with_context(at)?;
                    Shape::Chw(*filters, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1)
                }
                (Layer::Linear { units, columns, .. }, Shape::Flat(n)) => {
                    ensure!(*units > 0, "{}: units must be positive", at());
                    check_columns(columns, n).with_context(at)?;
                    Shape::Flat(*units)
                }
                (Layer::Linear { .. }, Shape::Chw(..)) => bail!("{}: a linear layer needs a flat input: add a flatten layer before it", at()),
                (Layer::Conv2d { .. }, Shape::Flat(_)) => bail!("{}: a conv2d layer needs an image input, found a flat vector", at()),
                (Layer::Relu, s) => s,
                (Layer::MaxPool { size, stride }, Shape::Chw(c, h, w)) => {
                    ensure!(*size > 0 && *stride > 0, "{}: pool size and stride must be positive", at());
                    ensure!(h >= *size && w >= *size, "{}: pool window {size} larger than its {h}×{w} input", at());
                    Shape::Chw(c, (h - size) / stride + 1, (w - size) / stride + 1)
                }
                (Layer::GlobalAvgPool, Shape::Chw(c, _, _)) => Shape::Flat(c),
                (Layer::Flatten, s) => Shape::Flat(s.len()),
                (l, Shape::Flat(_)) => bail!("{}: {} needs an image input, found a flat vector", at(), kind(l)),
            };
            out.push(cur);
        }
        ensure!(
            cur == Shape::Flat(self.classes),
            "the last layer must output {} class scores, found {:?}",
            self.classes,
            cur
        );
        Ok(out)
    }

    /// Parameter shapes of every weighted layer, in layer order.
    pub fn param_shapes(&self) -> Result<Vec<ParamShape>> {
        let shapes = self.shapes()?;
        let mut out = Vec::new();
        let mut prev = Shape::Chw(self.input[0], self.input[1], self.input[2]);
        for (layer, s) in self.layers.iter().zip(&shapes) {
            match layer {
                Layer::Conv2d { name, filters, kernel, columns, .. } => {
                    let Shape::Chw(c, ..) = prev else { unreachable!("checked by shapes()") };
                    let weight = match columns {
                        Some(cols) => vec![*filters, cols.len()],
                        None => vec![*filters, c, *kernel, *kernel],
                    };
                    out.push(ParamShape { name: name.clone(), weight, bias: *filters });
                }
                Layer::Linear { name, units, columns } => {
                    let inputs = columns.as_ref().map(|c| c.len()).unwrap_or(prev.len());
                    out.push(ParamShape { name: name.clone(), weight: vec![*units, inputs], bias: *units });
                }
                _ => {}
            }
            prev = *s;
        }
        Ok(out)
    }
}

fn check_columns(columns: &Option<Vec<u32>>, total: usize) -> Result<()> {
    if let Some(cols) = columns {
        ensure!(!cols.is_empty(), "kept-column list is empty");
        ensure!(cols.windows(2).all(|p| p[0] < p[1]), "kept-column list must be strictly increasing");
        let last = *cols.last().unwrap_or(&0) as usize;
        ensure!(last < total, "kept column {last} out of range: the layer has {total} columns");
    }
    Ok(())
}

pub fn kind(l: &Layer) -> &'static str {
    match l {
        Layer::Conv2d { .. } => "conv2d",
        Layer::Linear { .. } => "linear",
        Layer::Relu => "relu",
        Layer::MaxPool { .. } => "max_pool",
        Layer::GlobalAvgPool => "global_avg_pool",
        Layer::Flatten => "flatten",
    }
}
