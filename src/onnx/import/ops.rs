//! One ONNX node → at most one layer of our graph, with its weights. Anything the graph cannot
//! carry exactly is refused, naming the node, its op and the reason.

use anyhow::{bail, ensure, Result};

use super::graph::Node;
use super::walk::{Step, Walker};
use crate::model::graph::{channels, Layer, Shape};

fn image(n: &Node, shape: Shape) -> Result<(usize, usize, usize)> {
    match shape {
        Shape::Chw(c, h, w) => Ok((c, h, w)),
        Shape::Flat(f) => bail!("{}: needs an image input, found {f} features (the graph has no image after flattening or global pooling)", n.at()),
    }
}

fn flat(n: &Node, shape: Shape) -> Result<usize> {
    match shape {
        Shape::Flat(f) => Ok(f),
        Shape::Chw(c, h, w) => bail!("{}: needs a flat input, found a {c}×{h}×{w} map: flatten it first", n.at()),
    }
}

/// Symmetric 2-D window geometry (kernel, stride, padding) of a Conv or pool node.
pub fn window(n: &Node, kernel: usize, h: usize, w: usize) -> Result<(usize, usize)> {
    let strides = n.ints("strides").unwrap_or(&[1, 1]);
    ensure!(strides.len() == 2 && strides[0] == strides[1] && strides[0] > 0, "{}: strides {strides:?} differ per axis; one stride for both axes is supported", n.at());
    let stride = strides[0] as usize;
    if let Some(d) = n.ints("dilations") {
        ensure!(d.iter().all(|&x| x == 1), "{}: dilated windows (dilations {d:?}) are not supported", n.at());
    }
    let pads: Vec<i64> = match n.string("auto_pad", "NOTSET") {
        "NOTSET" => n.ints("pads").map_or(vec![0; 4], <[i64]>::to_vec),
        "VALID" => vec![0; 4],
        same @ ("SAME_UPPER" | "SAME_LOWER") => {
            // total padding so that the output is ceil(input / stride); split evenly or refused
            let total = |x: usize| ((x.div_ceil(stride) - 1) * stride + kernel).saturating_sub(x) as i64;
            let (th, tw) = (total(h), total(w));
            let (lo_h, lo_w) = if same == "SAME_UPPER" { (th / 2, tw / 2) } else { (th - th / 2, tw - tw / 2) };
            vec![lo_h, lo_w, th - lo_h, tw - lo_w]
        }
        other => bail!("{}: auto_pad '{other}' is not supported", n.at()),
    };
    ensure!(pads.len() == 4 && pads.iter().all(|&p| p == pads[0] && p >= 0), "{}: asymmetric padding (pads {pads:?}) is not supported: the graph pads every side equally", n.at());
    Ok((stride, pads[0] as usize))
}

fn out_size(n: &Node, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Result<(usize, usize)> {
    ensure!(h + 2 * pad >= k && w + 2 * pad >= k, "{}: shape does not infer: window {k} is larger than its padded {h}×{w} input", n.at());
    Ok(((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1))
}

pub fn conv(wk: &mut Walker, n: &Node, shape: Shape) -> Result<Step> {
    n.only_attrs(&["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"])?;
    let (c, h, w) = image(n, shape)?;
    let group = n.int("group", 1)?;
    ensure!(group == 1, "{}: grouped convolution (group {group}) is not supported; the graph's convolutions have group 1", n.at());
    let (dims, weight) = wk.ix.floats(n, 1, "weight")?;
    ensure!(dims.len() == 4, "{}: weight has dims {dims:?}, expected [K, C, R, S]", n.at());
    let (k, kc, r, s) = (dims[0], dims[1], dims[2], dims[3]);
    ensure!(kc == c, "{}: shape does not infer: the weight expects {kc} input channels, the input has {c}", n.at());
    ensure!(r == s && r > 0 && k > 0, "{}: kernel {r}×{s}: only square kernels are supported", n.at());
    if let Some(ks) = n.ints("kernel_shape") {
        ensure!(ks == [r as i64, s as i64], "{}: kernel_shape {ks:?} disagrees with the weight's {r}×{s}", n.at());
    }
    let (stride, padding) = window(n, r, h, w)?;
    let (oh, ow) = out_size(n, h, w, r, stride, padding)?;
    let bias = wk.bias(n, 2, k)?;
    let name = wk.name_for(n, 1, "conv");
    wk.push_param(&name, dims, weight, bias);
    Ok(Step::layer(Layer::Conv2d { name, filters: k, kernel: r, stride, padding, columns: None }, Shape::Chw(k, oh, ow), n.output()?))
}

/// Gemm (`transA` 0, `alpha` = `beta` = 1, either `transB`) as a linear layer.
pub fn gemm(wk: &mut Walker, n: &Node, shape: Shape, columns: Option<Vec<u32>>) -> Result<Step> {
    n.only_attrs(&["alpha", "beta", "transA", "transB"])?;
    let features = flat(n, shape)?;
    ensure!(n.float("alpha", 1.0)? == 1.0 && n.float("beta", 1.0)? == 1.0, "{}: alpha and beta other than 1 are not supported", n.at());
    ensure!(n.int("transA", 0)? == 0, "{}: transA = 1 is not supported", n.at());
    let (dims, b) = wk.ix.floats(n, 1, "weight")?;
    let (units, weight) = linear_weight(n, &dims, n.int("transB", 0)? == 1, b, features)?;
    let bias = wk.bias(n, 2, units)?;
    finish_linear(wk, n, units, weight, bias, columns, n.output()?.to_string())
}

/// MatMul by a constant [in, out] matrix, with the following Add of a constant as its bias.
pub fn matmul(wk: &mut Walker, n: &Node, shape: Shape, columns: Option<Vec<u32>>) -> Result<Step> {
    n.only_attrs(&[])?;
    let features = flat(n, shape)?;
    let (dims, b) = wk.ix.floats(n, 1, "weight")?;
    let (units, weight) = linear_weight(n, &dims, false, b, features)?;
    let mut out = n.output()?.to_string();
    let mut bias = vec![0.0; units];
    if let [k] = *wk.ix.consumers(&out) {
        let add = wk.ix.nodes[k];
        let other = (0..2).find(|&i| add.input(i).is_some_and(|v| wk.ix.is_const(v)));
        if let (Some(i), "Add") = (other, add.op()) {
            let (bdims, b) = wk.ix.floats(&add, i, "bias")?;
            ensure!(b.len() == units && bdims.iter().product::<usize>() == units, "{}: bias dims {bdims:?} do not match the {units} outputs of {}", add.at(), n.at());
            bias = b;
            out = add.output()?.to_string();
        }
    }
    finish_linear(wk, n, units, weight, bias, columns, out)
}

/// Our [units, in] weight from B: with `trans_b` B is already [units, in], else B is
/// [in, units] and is transposed.
fn linear_weight(n: &Node, dims: &[usize], trans_b: bool, b: Vec<f32>, features: usize) -> Result<(usize, Vec<f32>)> {
    ensure!(dims.len() == 2, "{}: weight has dims {dims:?}, expected a matrix", n.at());
    Ok(match trans_b {
        true => {
            ensure!(dims[1] == features, "{}: shape does not infer: the weight takes {} features, the input has {features}", n.at(), dims[1]);
            (dims[0], b)
        }
        false => {
            ensure!(dims[0] == features, "{}: shape does not infer: the weight takes {} features, the input has {features}", n.at(), dims[0]);
            let (fin, units) = (dims[0], dims[1]);
            (units, (0..units * fin).map(|i| b[(i % fin) * units + i / fin]).collect())
        }
    })
}

fn finish_linear(wk: &mut Walker, n: &Node, units: usize, weight: Vec<f32>, bias: Vec<f32>, columns: Option<Vec<u32>>, out: String) -> Result<Step> {
    ensure!(units > 0, "{}: has no outputs", n.at());
    let name = wk.name_for(n, 1, "fc");
    let inputs = weight.len() / units;
    wk.push_param(&name, vec![units, inputs], weight, bias);
    Ok(Step::layer(Layer::Linear { name, units, columns }, Shape::Flat(units), &out))
}

pub fn batch_norm(wk: &mut Walker, n: &Node, shape: Shape) -> Result<Step> {
    n.only_attrs(&["epsilon", "momentum", "training_mode", "spatial"])?;
    let eps = n.float("epsilon", 1e-5)?;
    // the graph's batch norm has ε fixed at 1e-5 (PyTorch's default)
    ensure!(((eps - 1e-5) / 1e-5).abs() < 1e-4, "{}: epsilon {eps:e} is not supported: the graph's batch norm uses 1e-5", n.at());
    ensure!(n.int("training_mode", 0)? == 0 && n.proto.output.iter().skip(1).all(|o| o.is_empty()), "{}: training-mode batch norm is not supported", n.at());
    let c = channels(shape);
    let mut parts = Vec::new();
    for (i, role) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")] {
        let (_, v) = wk.ix.floats(n, i, role)?;
        ensure!(v.len() == c, "{}: shape does not infer: {role} has {} values for {c} channels", n.at(), v.len());
        parts.push(v);
    }
    let name = wk.name_for(n, 1, "bn");
    let [g, b, m, v]: [Vec<f32>; 4] = parts.try_into().map_err(|_| anyhow::anyhow!("{}: missing parameters", n.at()))?;
    wk.push_bn(&name, g, b, m, v);
    Ok(Step::layer(Layer::BatchNorm { name }, shape, n.output()?))
}

pub fn max_pool(n: &Node, shape: Shape) -> Result<Step> {
    n.only_attrs(&["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"])?;
    ensure!(n.proto.output.iter().skip(1).all(|o| o.is_empty()), "{}: its Indices output is not supported", n.at());
    let (c, h, w) = image(n, shape)?;
    let ks = n.ints("kernel_shape").unwrap_or(&[]);
    ensure!(ks.len() == 2 && ks[0] == ks[1] && ks[0] > 0, "{}: kernel_shape {ks:?}: only square windows are supported", n.at());
    let size = ks[0] as usize;
    let (stride, padding) = window(n, size, h, w)?;
    ensure!(padding < size, "{}: padding {padding} is not smaller than the window {size}", n.at());
    let (oh, ow) = out_size(n, h, w, size, stride, padding)?;
    if n.int("ceil_mode", 0)? != 0 {
        let ceil = |x: usize| (x + 2 * padding - size).div_ceil(stride) + 1;
        ensure!((ceil(h), ceil(w)) == (oh, ow), "{}: ceil_mode = 1 gives a {}×{} output where floor mode gives {oh}×{ow}; only floor mode is supported", n.at(), ceil(h), ceil(w));
    }
    Ok(Step::layer(Layer::MaxPool { size, stride, padding }, Shape::Chw(c, oh, ow), n.output()?))
}

/// AveragePool over the whole map is global average pooling; any other window is refused.
pub fn avg_pool(n: &Node, shape: Shape) -> Result<Step> {
    let (c, h, w) = image(n, shape)?;
    if n.op() == "AveragePool" {
        n.only_attrs(&["auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"])?;
        let ks = n.ints("kernel_shape").unwrap_or(&[]);
        let pads = n.ints("pads").unwrap_or(&[]);
        ensure!(
            ks == [h as i64, w as i64] && pads.iter().all(|&p| p == 0) && matches!(n.string("auto_pad", "NOTSET"), "NOTSET" | "VALID"),
            "{}: average pooling with window {ks:?} and pads {pads:?} on a {h}×{w} map: only global average pooling (the window is the whole map, no padding) is supported",
            n.at()
        );
    } else {
        n.only_attrs(&[])?;
    }
    Ok(Step::layer(Layer::GlobalAvgPool, Shape::Flat(c), n.output()?))
}

/// Flatten (axis 1) and Reshape to [N, −1]: a flatten layer, or nothing on a flat input.
pub fn flatten(wk: &Walker, n: &Node, shape: Shape) -> Result<Step> {
    let len = shape.len() as i64;
    if n.op() == "Flatten" {
        n.only_attrs(&["axis"])?;
        let axis = n.int("axis", 1)?;
        let rank = if matches!(shape, Shape::Chw(..)) { 4 } else { 2 };
        ensure!(axis == 1 || axis == 1 - rank, "{}: flatten at axis {axis} is not supported; only axis 1 (keep the batch)", n.at());
    } else {
        n.only_attrs(&["allowzero"])?;
        let to = wk.ix.ints(n, 1, "shape")?;
        let batch_ok = |d: i64| d == 0 || d == -1 || Some(d) == wk.batch;
        let ok = to.len() == 2 && batch_ok(to[0]) && (to[1] == -1 || to[1] == len) && !(to[0] == -1 && to[1] == -1);
        ensure!(ok, "{}: reshape to {to:?} is not supported; only to [N, -1] (flattening each image)", n.at());
    }
    let out = n.output()?;
    Ok(match shape {
        Shape::Chw(..) => Step::layer(Layer::Flatten, Shape::Flat(shape.len()), out),
        Shape::Flat(_) => Step::skip(shape, out),
    })
}
