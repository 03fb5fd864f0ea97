//! A column-pruned convolution in standard ONNX ops that keeps its FLOPs reduction:
//! Pad → one Slice per kernel tap in use (each an OH×OW view of every channel at the stride)
//! → Concat → Gather of the kept (tap, channel) columns → 1×1 Conv over [K, kept].
//! The Slice ends are written as `tap + padded size − kernel + 1`, which gives exactly OH
//! rows at the stride and lets the importer read the kernel size back.

use super::builder::{int, ints, Builder};

pub struct ColumnConv<'a> {
    pub name: &'a str,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub columns: &'a [u32],
}

impl ColumnConv<'_> {
    /// Emits the nodes up to the Gather; returns the gathered value [N, kept, OH, OW].
    pub fn gather(&self, b: &mut Builder, x: &str) -> String {
        let (k, p, st) = (self.kernel, self.padding, self.stride);
        let (hp, wp) = (self.h + 2 * p, self.w + 2 * p);
        let pads = b.i64(&format!("{}.pads", self.name), &[0, 0, p as i64, p as i64, 0, 0, p as i64, p as i64]);
        // always a Pad, even of 0: the importer recognises the pattern by it
        let padded = b.node("Pad", &format!("{}.pad", self.name), &[x, &pads], vec![]);
        let tap = |j: u32| {
            let j = j as usize % (k * k);
            (j / k, j % k)
        };
        let mut taps: Vec<(usize, usize)> = self.columns.iter().map(|&j| tap(j)).collect();
        taps.sort();
        taps.dedup();
        let axes = b.i64(&format!("{}.axes", self.name), &[2, 3]);
        let steps = b.i64(&format!("{}.steps", self.name), &[st as i64, st as i64]);
        let mut slices = Vec::new();
        for (t, &(r, s)) in taps.iter().enumerate() {
            let starts = b.i64(&format!("{}.tap{t}.starts", self.name), &[r as i64, s as i64]);
            let ends = b.i64(&format!("{}.tap{t}.ends", self.name), &[(r + hp - k + 1) as i64, (s + wp - k + 1) as i64]);
            slices.push(b.node("Slice", &format!("{}.tap{t}", self.name), &[&padded, &starts, &ends, &axes, &steps], vec![]));
        }
        let refs: Vec<&str> = slices.iter().map(String::as_str).collect();
        let cat = b.node("Concat", &format!("{}.taps", self.name), &refs, vec![int("axis", 1)]);
        // column j = c·k·k + r·k + s sits at channel t(r, s)·C + c of the concatenation
        let idx: Vec<i64> = self
            .columns
            .iter()
            .map(|&j| {
                let t = taps.binary_search(&tap(j)).unwrap_or(0);
                (t * self.c + j as usize / (k * k)) as i64
            })
            .collect();
        let idx = b.i64(&format!("{}.columns", self.name), &idx);
        b.node("Gather", &format!("{}.gather", self.name), &[&cat, &idx], vec![int("axis", 1)])
    }
}

/// Attributes of a square convolution or pool window.
pub fn window(kernel: usize, stride: usize, pad: usize) -> Vec<crate::onnx::proto::AttributeProto> {
    vec![ints("kernel_shape", &[kernel, kernel]), ints("strides", &[stride, stride]), ints("pads", &[pad; 4])]
}
