//! The node patterns `autocompress export` writes for what plain ONNX ops cannot say directly:
//! a column-pruned convolution (Pad → one Slice per kernel tap → Concat → Gather of the kept
//! columns → 1×1 Conv), a column-pruned linear layer (Gather → Gemm), and the input
//! normalisation (Sub, Div by constants right after the input).

use anyhow::{bail, ensure, Result};

use super::graph::Node;
use super::ops;
use super::walk::{Step, Walker};
use crate::model::graph::{Layer, Shape};

/// The single node reading `v`, which must be a `op` node; `what` explains the pattern.
fn only_reader<'a>(wk: &Walker<'a>, v: &str, op: &str, after: &Node) -> Result<Node<'a>> {
    match *wk.ix.consumers(v) {
        [k] if wk.ix.nodes[k].op() == op => Ok(wk.ix.nodes[k]),
        _ => bail!("{}: expected to be followed by exactly one {op} node, as in a column-pruned layer written by `autocompress export`", after.at()),
    }
}

/// Pad → Slice × taps → Concat → Gather → 1×1 Conv, read back as one column-pruned conv.
pub fn conv(wk: &mut Walker, pad: &Node, shape: Shape) -> Result<Step> {
    let pattern = "Pad is supported only inside a column-pruned convolution (Pad → Slice per kernel tap → Concat → Gather → 1×1 Conv)";
    pad.only_attrs(&["mode"])?;
    let Shape::Chw(c, h, w) = shape else { bail!("{}: needs an image input", pad.at()) };
    ensure!(pad.string("mode", "constant") == "constant" && pad.input(3).is_none(), "{}: {pattern}", pad.at());
    let pads = wk.ix.ints(pad, 1, "pads")?;
    let p = pads.get(2).copied().unwrap_or(-1);
    ensure!(pads.len() == 8 && p >= 0 && pads == [0, 0, p, p, 0, 0, p, p], "{}: pads {pads:?}: {pattern}", pad.at());
    if pad.input(2).is_some() {
        let (_, v) = wk.ix.floats(pad, 2, "constant_value")?;
        ensure!(v.iter().all(|&x| x == 0.0), "{}: padding with {v:?}: {pattern}", pad.at());
    }
    let (p, padded) = (p as usize, pad.output()?.to_string());
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let slices: Vec<Node> = wk.ix.consumers(&padded).iter().map(|&k| wk.ix.nodes[k]).collect();
    ensure!(!slices.is_empty() && slices.iter().all(|s| s.op() == "Slice"), "{}: {pattern}", pad.at());
    // each Slice takes one kernel tap (r, s) of every channel at the conv's stride
    let (mut kernel, mut stride, mut taps) = (None, None, Vec::new());
    for s in &slices {
        let [starts, ends, axes, steps] = [1, 2, 3, 4].map(|i| wk.ix.ints(s, i, "slice bound"));
        let (starts, ends, axes, steps) = (starts?, ends?, axes?, steps?);
        ensure!(axes == [2, 3] && steps.len() == 2 && steps[0] == steps[1] && steps[0] > 0 && starts.len() == 2 && ends.len() == 2, "{}: {pattern}", s.at());
        // ends = tap + padded size − kernel + 1 (export writes them so), which gives the kernel
        let k = [starts[0] + hp as i64 + 1 - ends[0], starts[1] + wp as i64 + 1 - ends[1]];
        ensure!(k[0] == k[1] && k[0] > 0 && starts.iter().all(|&t| t >= 0 && t < k[0]), "{}: slice {starts:?}..{ends:?} is not one kernel tap", s.at());
        ensure!(kernel.get_or_insert(k[0]) == &k[0] && stride.get_or_insert(steps[0]) == &steps[0], "{}: its slices disagree on the kernel or stride", pad.at());
        taps.push((s.output()?.to_string(), starts[0] as usize, starts[1] as usize));
    }
    let (k, stride) = (kernel.unwrap_or(1) as usize, stride.unwrap_or(1) as usize);
    ensure!(hp >= k && wp >= k, "{}: shape does not infer: kernel {k} on a padded {hp}×{wp} map", pad.at());
    let concat = only_reader(wk, &taps[0].0, "Concat", &slices[0])?;
    concat.only_attrs(&["axis"])?;
    ensure!(concat.int("axis", 0)? == 1 && concat.proto.input.len() == taps.len(), "{}: {pattern}", concat.at());
    // concat order defines which tap each block of C channels holds
    let mut order = Vec::new();
    for i in 0..taps.len() {
        let name = concat.input(i).map(|v| wk.ix.resolve(v)).unwrap_or("");
        let t = taps.iter().find(|t| t.0 == name).ok_or_else(|| anyhow::anyhow!("{}: {pattern}", concat.at()))?;
        order.push((t.1, t.2));
    }
    let gather = only_reader(wk, concat.output()?, "Gather", &concat)?;
    gather.only_attrs(&["axis"])?;
    ensure!(gather.int("axis", 0)? == 1, "{}: {pattern}", gather.at());
    let idx = wk.ix.ints(&gather, 1, "indices")?;
    let one = only_reader(wk, gather.output()?, "Conv", &gather)?;
    let mut cols = Vec::with_capacity(idx.len());
    for &g in &idx {
        ensure!(g >= 0 && (g as usize) < order.len() * c, "{}: index {g} is outside the {} gathered channels", gather.at(), order.len() * c);
        let (r, s) = order[g as usize / c];
        cols.push(((g as usize % c) * k * k + r * k + s) as u32);
    }
    let step = ops::conv(wk, &one, Shape::Chw(idx.len(), (hp - k) / stride + 1, (wp - k) / stride + 1))?;
    let Some(Layer::Conv2d { name, filters, kernel: 1, stride: 1, padding: 0, .. }) = step.layer else { bail!("{}: {pattern}", one.at()) };
    let columns = sort_columns(wk, &name, cols, &gather)?;
    Ok(Step::layer(Layer::Conv2d { name, filters, kernel: k, stride, padding: p, columns: Some(columns) }, step.shape, &step.out))
}

/// Gather of kept input features → Gemm or MatMul: one column-pruned linear layer.
pub fn linear(wk: &mut Walker, gather: &Node, shape: Shape) -> Result<Step> {
    gather.only_attrs(&["axis"])?;
    let Shape::Flat(features) = shape else { bail!("{}: Gather is supported only before a linear layer, on flat features", gather.at()) };
    ensure!(matches!(gather.int("axis", 0)?, 1 | -1), "{}: Gather is supported only along the features (axis 1)", gather.at());
    let idx = wk.ix.ints(gather, 1, "indices")?;
    ensure!(idx.iter().all(|&g| g >= 0 && (g as usize) < features), "{}: indices outside the {features} input features", gather.at());
    let out = gather.output()?;
    let fc = match *wk.ix.consumers(out) {
        [k] if matches!(wk.ix.nodes[k].op(), "Gemm" | "MatMul") => wk.ix.nodes[k],
        _ => bail!("{}: Gather is supported only right before a Gemm or MatMul (a column-pruned linear layer)", gather.at()),
    };
    let cols: Vec<u32> = idx.iter().map(|&g| g as u32).collect();
    let kept = Shape::Flat(cols.len());
    let step = if fc.op() == "Gemm" { ops::gemm(wk, &fc, kept, Some(cols.clone()))? } else { ops::matmul(wk, &fc, kept, Some(cols.clone()))? };
    let Some(Layer::Linear { name, units, .. }) = step.layer else { bail!("{}: expected a linear layer", fc.at()) };
    let columns = sort_columns(wk, &name, cols, gather)?;
    Ok(Step::layer(Layer::Linear { name, units, columns: Some(columns) }, step.shape, &step.out))
}

/// Sorts kept columns (the graph stores them increasing) and moves the weight's columns along.
fn sort_columns(wk: &mut Walker, layer: &str, cols: Vec<u32>, at: &Node) -> Result<Vec<u32>> {
    let mut perm: Vec<usize> = (0..cols.len()).collect();
    perm.sort_by_key(|&i| cols[i]);
    let sorted: Vec<u32> = perm.iter().map(|&i| cols[i]).collect();
    ensure!(sorted.windows(2).all(|p| p[0] < p[1]), "{}: a column is gathered twice", at.at());
    let wname = format!("{layer}.weight");
    if let Some(t) = wk.weights.iter_mut().find(|t| t.name == wname) {
        let kept = cols.len();
        let rows = t.data.len() / kept.max(1);
        t.data = (0..rows * kept).map(|i| t.data[(i / kept) * kept + perm[i % kept]]).collect();
        t.shape = vec![rows, kept];
    }
    Ok(sorted)
}

/// Sub(x, mean) and Div(x, std) by per-channel constants right after the input.
pub fn normalisation(wk: &mut Walker, n: &Node, shape: Shape) -> Result<Step> {
    n.only_attrs(&[])?;
    let c = crate::model::graph::channels(shape);
    let (dims, v) = wk.ix.floats(n, 1, "normalisation constant")?;
    ensure!(!wk.ix.is_const(n.input(0).unwrap_or("")) && (v.len() == c || v.len() == 1), "{}: {} by {dims:?}: only per-channel normalisation of the input is supported", n.at(), n.op());
    let v = if v.len() == 1 { vec![v[0]; c] } else { v };
    match n.op() {
        "Sub" if wk.mean.is_none() && wk.std.is_none() => wk.mean = Some(v),
        "Div" if wk.std.is_none() => wk.std = Some(v),
        op => bail!("{}: {op} is supported only as the input normalisation (x − mean) / std", n.at()),
    }
    Ok(Step::skip(shape, n.output()?))
}
