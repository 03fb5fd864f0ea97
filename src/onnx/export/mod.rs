//! Our model → standard ONNX (opset 13, symbolic batch): the input normalisation as the first
//! nodes (Sub, Div) and in metadata_props, then one node group per layer. Filter-pruned layers
//! are simply smaller; column-pruned ones keep their FLOPs reduction (columns.rs) unless
//! `dense_columns` asks for dense weights with zeros.

mod builder;
mod columns;

use anyhow::{bail, Context, Result};
use prost::Message;
use std::path::Path;

use builder::{float, int, Builder};
use columns::{window, ColumnConv};
use crate::data::Norm;
use crate::model::graph::{Architecture, Layer, Shape};
use crate::model::weights::Weights;
use crate::onnx::proto::{self as pb, tensor_shape_proto::dimension::Value as Dim};

pub const OPSET: i64 = 13;
/// The graph's batch-norm ε (model/network.rs).
const BN_EPS: f32 = 1e-5;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Fold each batch norm into the convolution or linear layer right before it.
    pub fold_bn: bool,
    /// Column-pruned layers as dense weights with zeros instead of the gather graph.
    pub dense_columns: bool,
}

/// Writes the ONNX file (atomically).
pub fn write(path: &Path, arch: &Architecture, w: &Weights, norm: Option<&Norm>, opts: Options) -> Result<()> {
    let model = to_model(arch, w, norm, opts)?;
    crate::io::atomic_write(path, &model.encode_to_vec())
}

pub fn to_model(arch: &Architecture, w: &Weights, norm: Option<&Norm>, opts: Options) -> Result<pb::ModelProto> {
    w.check(arch).with_context(|| format!("cannot export {}: its tensors disagree with its layers", arch.name))?;
    let [c, h, wd] = arch.input;
    let mut b = Builder::default();
    let input = b.unique("input");
    let mut v = input.clone();
    let mut props = Vec::new();
    if let Some(n) = norm {
        let mean = b.f32("input_mean", &[1, c, 1, 1], &n.mean);
        let std = b.f32("input_std", &[1, c, 1, 1], &n.std);
        v = b.node("Sub", "normalise.sub", &[&v, &mean], vec![]);
        v = b.node("Div", "normalise.div", &[&v, &std], vec![]);
        props = n.meta().into_iter().map(|(k, v)| pb::StringStringEntryProto { key: Some(k.into()), value: Some(v) }).collect();
    }
    let (out, shape) = Exporter { b: &mut b, w, opts }.layers(&arch.layers, v, Shape::Chw(c, h, wd))?;
    if shape != Shape::Flat(arch.classes) || out == input {
        bail!("cannot export {}: it ends in {shape:?}, not {} class scores", arch.name, arch.classes);
    }
    b.rename_output(&out, "logits");
    let graph = pb::GraphProto {
        name: Some(arch.name.clone()),
        node: b.nodes,
        initializer: b.initializers,
        input: vec![value_info(&input, &[None, Some(c), Some(h), Some(wd)])],
        output: vec![value_info("logits", &[None, Some(arch.classes)])],
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: Some(7),
        opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("autocompress".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: props,
        ..Default::default()
    })
}

/// A float tensor's name and shape; `None` dims are the symbolic batch.
fn value_info(name: &str, dims: &[Option<usize>]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| pb::tensor_shape_proto::Dimension { value: Some(d.map_or(Dim::DimParam("batch".into()), |v| Dim::DimValue(v as i64))), ..Default::default() })
        .collect();
    let t = pb::type_proto::Tensor { elem_type: Some(pb::tensor_proto::DataType::Float as i32), shape: Some(pb::TensorShapeProto { dim }) };
    pb::ValueInfoProto { name: Some(name.into()), r#type: Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), ..Default::default() }), ..Default::default() }
}

struct Exporter<'a> {
    b: &'a mut Builder,
    w: &'a Weights,
    opts: Options,
}

impl Exporter<'_> {
    /// Emits `layers` reading value `v` of `shape`; returns the last value and its shape.
    fn layers(&mut self, layers: &[Layer], mut v: String, mut shape: Shape) -> Result<(String, Shape)> {
        let mut i = 0;
        while i < layers.len() {
            // a batch norm right after a conv or linear layer folds into it when asked
            let fold = match layers.get(i + 1) {
                Some(Layer::BatchNorm { name }) if self.opts.fold_bn && layers[i].param_name().is_some() => Some(name.as_str()),
                _ => None,
            };
            (v, shape) = self.layer(&layers[i], v, shape, fold)?;
            i += 1 + usize::from(fold.is_some());
        }
        Ok((v, shape))
    }

    fn layer(&mut self, layer: &Layer, v: String, shape: Shape, fold: Option<&str>) -> Result<(String, Shape)> {
        Ok(match (layer, shape) {
            (Layer::Conv2d { name, filters, kernel, stride, padding, columns }, Shape::Chw(c, h, w)) => {
                let (k, r, st, p) = (*filters, *kernel, *stride, *padding);
                let (weight, bias) = self.params(name, fold)?;
                let out = Shape::Chw(k, (h + 2 * p - r) / st + 1, (w + 2 * p - r) / st + 1);
                let y = match columns {
                    Some(cols) if !self.opts.dense_columns => {
                        let cc = ColumnConv { name, c, h, w, kernel: r, stride: st, padding: p, columns: cols };
                        let x = cc.gather(self.b, &v);
                        let wt = self.b.f32(&format!("{name}.weight"), &[k, cols.len(), 1, 1], &weight);
                        let bt = self.b.f32(&format!("{name}.bias"), &[k], &bias);
                        self.b.node("Conv", name, &[&x, &wt, &bt], window(1, 1, 0))
                    }
                    _ => {
                        let dense = scatter(&weight, k, c * r * r, columns.as_deref());
                        let wt = self.b.f32(&format!("{name}.weight"), &[k, c, r, r], &dense);
                        let bt = self.b.f32(&format!("{name}.bias"), &[k], &bias);
                        self.b.node("Conv", name, &[&v, &wt, &bt], window(r, st, p))
                    }
                };
                (y, out)
            }
            (Layer::Linear { name, units, columns }, Shape::Flat(n)) => {
                let (weight, bias) = self.params(name, fold)?;
                let (x, weight, inputs) = match columns {
                    Some(cols) if !self.opts.dense_columns => {
                        let idx: Vec<i64> = cols.iter().map(|&j| j as i64).collect();
                        let idx = self.b.i64(&format!("{name}.columns"), &idx);
                        (self.b.node("Gather", &format!("{name}.gather"), &[&v, &idx], vec![int("axis", 1)]), weight, cols.len())
                    }
                    _ => (v, scatter(&weight, *units, n, columns.as_deref()), n),
                };
                let wt = self.b.f32(&format!("{name}.weight"), &[*units, inputs], &weight);
                let bt = self.b.f32(&format!("{name}.bias"), &[*units], &bias);
                (self.b.node("Gemm", name, &[&x, &wt, &bt], vec![int("transB", 1)]), Shape::Flat(*units))
            }
            (Layer::Relu, s) => (self.b.node("Relu", "relu", &[&v], vec![]), s),
            (Layer::MaxPool { size, stride, padding }, Shape::Chw(c, h, w)) => {
                let (oh, ow) = ((h + 2 * padding - size) / stride + 1, (w + 2 * padding - size) / stride + 1);
                (self.b.node("MaxPool", "maxpool", &[&v], window(*size, *stride, *padding)), Shape::Chw(c, oh, ow))
            }
            (Layer::GlobalAvgPool, Shape::Chw(c, ..)) => {
                let y = self.b.node("GlobalAveragePool", "avgpool", &[&v], vec![]);
                (self.b.node("Flatten", "avgpool.flatten", &[&y], vec![int("axis", 1)]), Shape::Flat(c))
            }
            (Layer::Flatten, Shape::Chw(..)) => (self.b.node("Flatten", "flatten", &[&v], vec![int("axis", 1)]), Shape::Flat(shape.len())),
            (Layer::Flatten, Shape::Flat(_)) => (v, shape),
            (Layer::BatchNorm { name }, s) => {
                let t: Vec<String> = ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .map(|p| {
                        let t = self.w.get(&format!("{name}.{p}"))?;
                        Ok(self.b.f32(&t.name, &t.shape, &t.data))
                    })
                    .collect::<Result<_>>()?;
                (self.b.node("BatchNormalization", name, &[&v, &t[0], &t[1], &t[2], &t[3]], vec![float("epsilon", BN_EPS)]), s)
            }
            (Layer::Residual { body, shortcut }, s) => {
                let (y, ys) = self.layers(body, v.clone(), s)?;
                let (z, _) = self.layers(shortcut, v, s)?;
                (self.b.node("Add", "residual", &[&y, &z], vec![]), ys)
            }
            (l, s) => bail!("cannot export layer {} on a {s:?} input", crate::model::graph::kind(l)),
        })
    }

    /// A layer's weight rows and bias, with the batch norm `fold` folded in:
    /// W' = W·γ/√(var+ε), b' = (b − mean)·γ/√(var+ε) + β.
    fn params(&self, name: &str, fold: Option<&str>) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut weight = self.w.get(&format!("{name}.weight"))?.data.clone();
        let mut bias = self.w.get(&format!("{name}.bias"))?.data.clone();
        if let Some(bn) = fold {
            let get = |p: &str| self.w.get(&format!("{bn}.{p}")).map(|t| &t.data);
            let (g, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
            let row = weight.len() / bias.len();
            for (k, b) in bias.iter_mut().enumerate() {
                let scale = g[k] as f64 / (var[k] as f64 + BN_EPS as f64).sqrt();
                weight[k * row..(k + 1) * row].iter_mut().for_each(|x| *x = (*x as f64 * scale) as f32);
                *b = ((*b as f64 - mean[k] as f64) * scale + beta[k] as f64) as f32;
            }
        }
        Ok((weight, bias))
    }
}

/// Dense [rows, total] weights from kept columns (zeros elsewhere); dense weights as they are.
fn scatter(weight: &[f32], rows: usize, total: usize, columns: Option<&[u32]>) -> Vec<f32> {
    let Some(cols) = columns else { return weight.to_vec() };
    let mut dense = vec![0.0; rows * total];
    for k in 0..rows {
        for (q, &j) in cols.iter().enumerate() {
            dense[k * total + j as usize] = weight[k * cols.len() + q];
        }
    }
    dense
}
