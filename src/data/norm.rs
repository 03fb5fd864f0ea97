//! The input normalisation a model expects, `x = (pixel − mean) / std` per channel with pixels
//! in 0..1, carried in the model file's metadata so that evaluation and export use the values
//! the model was trained with.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Metadata keys of a model file (safetensors metadata, ONNX metadata_props).
pub const MEAN_KEY: &str = "input_mean";
pub const STD_KEY: &str = "input_std";

impl Norm {
    /// Checks one finite mean and one positive std per channel; a single value stands for all.
    pub fn new(mean: Vec<f32>, std: Vec<f32>, channels: usize) -> Result<Norm> {
        let widen = |v: Vec<f32>| if v.len() == 1 { vec![v[0]; channels] } else { v };
        let (mean, std) = (widen(mean), widen(std));
        ensure!(mean.len() == channels && std.len() == channels, "input normalisation has {} means and {} stds for {channels} channels", mean.len(), std.len());
        ensure!(mean.iter().all(|m| m.is_finite()), "input mean {mean:?} is not finite");
        ensure!(std.iter().all(|s| s.is_finite() && *s > 0.0), "input std {std:?} must be positive");
        Ok(Norm { mean, std })
    }

    /// Parses comma-separated lists such as `0.485,0.456,0.406`.
    pub fn parse(mean: &str, std: &str, channels: usize) -> Result<Norm> {
        let list = |s: &str, what: &str| -> Result<Vec<f32>> {
            s.split(',').map(|x| x.trim().parse::<f32>().with_context(|| format!("{what} '{s}': write numbers separated by commas"))).collect()
        };
        Norm::new(list(mean, "--input-mean")?, list(std, "--input-std")?, channels)
    }

    /// The stored normalisation, if the metadata has one; `None` when absent.
    pub fn from_meta(meta: &HashMap<String, String>, channels: usize) -> Result<Option<Norm>> {
        let (Some(m), Some(s)) = (meta.get(MEAN_KEY), meta.get(STD_KEY)) else { return Ok(None) };
        let parse = |v: &str, k: &str| serde_json::from_str::<Vec<f32>>(v).with_context(|| format!("metadata '{k}' = '{v}' is not a list of numbers"));
        Ok(Some(Norm::new(parse(m, MEAN_KEY)?, parse(s, STD_KEY)?, channels)?))
    }

    /// The two metadata entries that `from_meta` reads back.
    pub fn meta(&self) -> Vec<(&'static str, String)> {
        let json = |v: &[f32]| serde_json::to_string(v).unwrap_or_default();
        vec![(MEAN_KEY, json(&self.mean)), (STD_KEY, json(&self.std))]
    }
}
