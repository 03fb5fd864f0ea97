//! Test accuracy of an exported ONNX model run by tract-onnx, an independent runtime, on the
//! same test images `autocompress eval` uses (same data set and split seed). The exported graph
//! normalises its input itself, so it is fed pixels in 0..1.
//!
//!     cargo run --release --example onnx_accuracy -- model.onnx [DATASET] [DATA_DIR] [SEED]

use anyhow::{Context, Result};
use autocompress::data::{self, LoadOptions};
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).context("usage: onnx_accuracy model.onnx [DATASET] [DATA_DIR] [SEED]")?;
    let dataset = args.get(2).map_or("digits", String::as_str);
    let dir = args.get(3).filter(|d| !d.is_empty()).map(std::path::PathBuf::from);
    let seed = args.get(4).map_or(Ok(1), |s| s.parse()).context("SEED must be a number")?;
    let d = data::load(dataset, dir.as_deref(), &LoadOptions { seed, ..Default::default() })?;
    let [c, h, w] = d.shape;
    let batch = 256;
    let model = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact([batch, c, h, w]).into())?
        .into_optimized()?
        .into_runnable()?;
    let il = c * h * w;
    let (mut correct, n) = (0usize, d.test.len());
    for start in (0..n).step_by(batch) {
        let rows = batch.min(n - start);
        // back to pixels in 0..1; the padding rows of the last batch are ignored
        let mut px = vec![0.0f32; batch * il];
        for (i, x) in d.test.images[start * il..(start + rows) * il].iter().enumerate() {
            let ch = (i / (h * w)) % c;
            px[i] = x * d.std[ch] + d.mean[ch];
        }
        let out = model.run(tvec!(Tensor::from_shape(&[batch, c, h, w], &px)?.into()))?;
        let logits = out[0].to_plain_array_view::<f32>()?;
        for r in 0..rows {
            let row = logits.index_axis(tract_ndarray::Axis(0), r);
            let best = (0..row.len()).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            correct += usize::from(best as u32 == d.test.labels[start + r]);
        }
    }
    println!("{{\"model\": \"{path}\", \"dataset\": \"{dataset}\", \"test_images\": {n}, \"test_accuracy\": {}, \"runtime\": \"tract-onnx\"}}", correct as f64 / n as f64);
    Ok(())
}
