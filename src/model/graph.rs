//! The model graph: a sequence of layers (residual blocks nest two branches), as users write it
//! in JSON, with shape inference.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

fn one() -> usize {
    1
}

/// Unpadded pools serialise as before padding existed.
fn is_zero(x: &usize) -> bool {
    *x == 0
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
    /// Max pooling, floor mode; `padding` pixels on every side never win (they are -∞).
    MaxPool {
        size: usize,
        stride: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        padding: usize,
    },
    GlobalAvgPool,
    Flatten,
    /// Per-channel batch normalisation with affine γ (`weight`) and β (`bias`) and running
    /// statistics (`running_mean`, `running_var`), over C×H×W maps or flat features.
    BatchNorm {
        name: String,
    },
    /// `body(x) + shortcut(x)`; an empty shortcut is the identity. Both branches must produce
    /// the same shape.
    Residual {
        body: Vec<Layer>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shortcut: Vec<Layer>,
    },
}

impl Layer {
    /// The name of a prunable layer (conv2d or linear).
    pub fn param_name(&self) -> Option<&str> {
        match self {
            Layer::Conv2d { name, .. } | Layer::Linear { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The name of any layer with parameters (batch norm included).
    pub fn name(&self) -> Option<&str> {
        match self {
            Layer::BatchNorm { name } => Some(name),
            l => l.param_name(),
        }
    }
}

/// A layer without nested layers, with its input and output shapes, in forward order: a
/// residual block contributes its body, then its shortcut.
#[derive(Clone, Debug)]
pub struct Leaf<'a> {
    pub layer: &'a Layer,
    pub input: Shape,
    pub output: Shape,
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
    /// A batch-norm layer also stores its running mean and variance.
    pub batch_norm: bool,
}

impl ParamShape {
    /// Every tensor the layer stores, by name, with its shape.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut t = vec![(format!("{}.weight", self.name), self.weight.clone()), (format!("{}.bias", self.name), vec![self.bias])];
        if self.batch_norm {
            t.push((format!("{}.running_mean", self.name), vec![self.bias]));
            t.push((format!("{}.running_var", self.name), vec![self.bias]));
        }
        t
    }
}

impl Architecture {
    pub fn from_json_file(path: &Path) -> Result<Architecture> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read model file {}", path.display()))?;
        let arch: Architecture =
            serde_json::from_str(&text).with_context(|| format!("{}: not a valid model description", path.display()))?;
        arch.shapes().with_context(|| format!("{}: inconsistent model", path.display()))?;
        Ok(arch)
    }

    /// Output shape of every top-level layer for one image; errors name the layer and the
    /// mismatch.
    pub fn shapes(&self) -> Result<Vec<Shape>> {
        let [c, h, w] = self.input;
        ensure!(c > 0 && h > 0 && w > 0, "input shape {:?} has a zero dimension", self.input);
        ensure!(self.classes >= 2, "a classifier needs at least 2 classes, found {}", self.classes);
        let mut names = std::collections::HashSet::new();
        let out = infer(&self.layers, Shape::Chw(c, h, w), &mut names, "")?;
        let last = out.last().copied().unwrap_or(Shape::Chw(c, h, w));
        ensure!(last == Shape::Flat(self.classes), "the last layer must output {} class scores, found {:?}", self.classes, last);
        Ok(out)
    }

    /// Every leaf layer in forward order (see `Leaf`).
    pub fn leaves(&self) -> Result<Vec<Leaf<'_>>> {
        let shapes = self.shapes()?;
        let mut out = Vec::new();
        walk(&self.layers, &shapes, Shape::Chw(self.input[0], self.input[1], self.input[2]), &mut out)?;
        Ok(out)
    }

    /// Parameter shapes of every layer with parameters, in forward order.
    pub fn param_shapes(&self) -> Result<Vec<ParamShape>> {
        let mut out = Vec::new();
        for leaf in self.leaves()? {
            match (leaf.layer, leaf.input) {
                (Layer::Conv2d { name, filters, kernel, columns, .. }, Shape::Chw(c, ..)) => {
                    let weight = match columns {
                        Some(cols) => vec![*filters, cols.len()],
                        None => vec![*filters, c, *kernel, *kernel],
                    };
                    out.push(ParamShape { name: name.clone(), weight, bias: *filters, batch_norm: false });
                }
                (Layer::Linear { name, units, columns }, inp) => {
                    let inputs = columns.as_ref().map(|c| c.len()).unwrap_or(inp.len());
                    out.push(ParamShape { name: name.clone(), weight: vec![*units, inputs], bias: *units, batch_norm: false });
                }
                (Layer::BatchNorm { name }, inp) => {
                    let c = channels(inp);
                    out.push(ParamShape { name: name.clone(), weight: vec![c], bias: c, batch_norm: true });
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Channels of an activation: C of a map, the features of a flat vector.
pub fn channels(s: Shape) -> usize {
    match s {
        Shape::Chw(c, _, _) => c,
        Shape::Flat(n) => n,
    }
}

/// Output shapes of a branch of layers (a residual block's body or shortcut) from `input`.
pub fn branch_shapes(layers: &[Layer], input: Shape) -> Result<Vec<Shape>> {
    infer(layers, input, &mut std::collections::HashSet::new(), "residual block: ")
}

/// Output shapes of `layers` from `input`, checking every layer; `at` locates nested blocks.
fn infer(layers: &[Layer], input: Shape, names: &mut std::collections::HashSet<String>, at: &str) -> Result<Vec<Shape>> {
    let nested = !at.is_empty();
    let mut cur = input;
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let at = || format!("{at}layer {i} ({})", layer.name().unwrap_or(kind(layer)));
        if let Some(n) = layer.name() {
            ensure!(!n.is_empty() && names.insert(n.to_string()), "{}: layer name '{n}' is empty or repeated", at());
        }
        cur = match (layer, cur) {
            (Layer::Conv2d { filters, kernel, stride, padding, columns, .. }, Shape::Chw(c, h, w)) => {
                ensure!(*filters > 0 && *kernel > 0 && *stride > 0, "{}: filters, kernel and stride must be positive", at());
                ensure!(h + 2 * padding >= *kernel && w + 2 * padding >= *kernel, "{}: kernel {kernel} larger than its padded {h}×{w} input", at());
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
            (Layer::Relu | Layer::BatchNorm { .. }, s) => s,
            (Layer::MaxPool { size, stride, padding }, Shape::Chw(c, h, w)) => {
                ensure!(*size > 0 && *stride > 0, "{}: pool size and stride must be positive", at());
                // a window must hold at least one real pixel
                ensure!(padding < size, "{}: pool padding {padding} must be smaller than the window {size}", at());
                ensure!(h + 2 * padding >= *size && w + 2 * padding >= *size, "{}: pool window {size} larger than its padded {h}×{w} input", at());
                Shape::Chw(c, (h + 2 * padding - size) / stride + 1, (w + 2 * padding - size) / stride + 1)
            }
            (Layer::GlobalAvgPool, Shape::Chw(c, _, _)) => Shape::Flat(c),
            (Layer::Flatten, s) => {
                ensure!(!nested, "{}: flatten cannot sit inside a residual block", at());
                Shape::Flat(s.len())
            }
            (Layer::Residual { body, shortcut }, s) => {
                ensure!(!body.is_empty(), "{}: a residual block needs a non-empty body", at());
                let inner = format!("{}: ", at());
                let b = *infer(body, s, names, &format!("{inner}body "))?.last().expect("non-empty");
                let sc = infer(shortcut, s, names, &format!("{inner}shortcut "))?.last().copied().unwrap_or(s);
                ensure!(b == sc, "{}: the body outputs {} but the shortcut {}: branch shapes must agree", at(), show(b), show(sc));
                b
            }
            (l, Shape::Flat(_)) => bail!("{}: {} needs an image input, found a flat vector", at(), kind(l)),
        };
        out.push(cur);
    }
    Ok(out)
}

fn show(s: Shape) -> String {
    match s {
        Shape::Chw(c, h, w) => format!("{c}×{h}×{w}"),
        Shape::Flat(n) => format!("{n} features"),
    }
}

fn walk<'a>(layers: &'a [Layer], shapes: &[Shape], input: Shape, out: &mut Vec<Leaf<'a>>) -> Result<()> {
    let mut prev = input;
    for (layer, &s) in layers.iter().zip(shapes) {
        match layer {
            Layer::Residual { body, shortcut } => {
                walk(body, &branch_shapes(body, prev)?, prev, out)?;
                walk(shortcut, &branch_shapes(shortcut, prev)?, prev, out)?;
            }
            _ => out.push(Leaf { layer, input: prev, output: s }),
        }
        prev = s;
    }
    Ok(())
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
        Layer::BatchNorm { .. } => "batch_norm",
        Layer::Residual { .. } => "residual",
    }
}
