//! A training run's checkpoint: the model, its SGD momentum, the training configuration and the
//! logs of the epochs done, in one safetensors file replaced atomically after every epoch. A run
//! stopped at any moment continues from its last complete epoch (`train_from`) and ends where
//! the uninterrupted run would have.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

use super::{EpochLog, TrainConfig};
use crate::gpu::Gpu;
use crate::io;
use crate::model::{Architecture, Network, Weights};

const CONFIG_KEY: &str = "train_config";
const EPOCHS_KEY: &str = "train_epochs";

/// Writes `net`'s weights and momentum after the epochs `logs` describes.
pub fn save(path: &Path, gpu: &Gpu, net: &Network, cfg: &TrainConfig, logs: &[EpochLog], extra: &[(&str, String)]) -> Result<()> {
    let mut meta = extra.to_vec();
    meta.push((CONFIG_KEY, serde_json::to_string(cfg)?));
    meta.push((EPOCHS_KEY, serde_json::to_string(logs)?));
    io::save_model_with(path, &net.arch, &net.weights(gpu)?, &net.velocities(gpu)?, &meta)
}

pub struct Checkpoint {
    path: PathBuf,
    pub arch: Architecture,
    pub weights: Weights,
    pub config: TrainConfig,
    /// The epochs done, in order.
    pub logs: Vec<EpochLog>,
}

impl Checkpoint {
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let (arch, weights, meta) = io::load_model(path)?;
        let get = |key: &str| {
            let text = meta.get(key).ok_or_else(|| anyhow!("{}: no '{key}' metadata, so it is a model file, not a training checkpoint", path.display()))?;
            serde_json::from_str::<serde_json::Value>(text).with_context(|| format!("{}: invalid '{key}' metadata", path.display()))
        };
        let config = serde_json::from_value(get(CONFIG_KEY)?).with_context(|| format!("{}: invalid '{CONFIG_KEY}' metadata", path.display()))?;
        let logs = serde_json::from_value(get(EPOCHS_KEY)?).with_context(|| format!("{}: invalid '{EPOCHS_KEY}' metadata", path.display()))?;
        Ok(Checkpoint { path: path.to_path_buf(), arch, weights, config, logs })
    }

    /// Refuses to continue under another architecture or training configuration: the schedule,
    /// the batches and the augmentation of the remaining epochs depend on every field.
    pub fn check_matches(&self, arch: &Architecture, cfg: &TrainConfig) -> Result<()> {
        if &self.arch != arch {
            bail!("{} holds a checkpoint of another model ({}, not {}): continue it with the arguments it was started with", self.path.display(), self.arch.name, arch.name);
        }
        // through text, so that f32 fields print as written (0.05, not 0.05000000074505806)
        let json = |c: &TrainConfig| -> Result<serde_json::Value> { Ok(serde_json::from_str(&serde_json::to_string(c)?)?) };
        let (theirs, ours) = (json(&self.config)?, json(cfg)?);
        let differ: Vec<String> = theirs
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| ours.get(k.as_str()) != Some(v))
            .map(|(k, v)| format!("{k} {v} (now {})", ours.get(k.as_str()).unwrap_or(&serde_json::Value::Null)))
            .collect();
        if !differ.is_empty() {
            bail!("{} was trained with other settings: {}; continue it with the arguments it was started with", self.path.display(), differ.join(", "));
        }
        Ok(())
    }

    /// Loads the weights, running statistics and momentum into `net`.
    pub fn restore(&self, gpu: &Gpu, net: &Network) -> Result<()> {
        net.set_weights(gpu, &self.weights)?;
        net.set_velocities(gpu, &io::load_tensors(&self.path, &net.velocity_names())?)
    }

    /// The run's own checkpoint at `path`, if there is one: checked against `net`'s architecture
    /// and `cfg`, and loaded into `net`. Returns the epochs done and the seconds they took (in
    /// earlier processes); none without a checkpoint.
    pub fn continue_into(path: &Path, gpu: &Gpu, net: &Network, cfg: &TrainConfig) -> Result<(Vec<EpochLog>, f64)> {
        if !path.exists() {
            return Ok((Vec::new(), 0.0));
        }
        let c = Checkpoint::load(path)?;
        c.check_matches(&net.arch, cfg)?;
        c.restore(gpu, net)?;
        let seconds = c.seconds();
        Ok((c.logs, seconds))
    }

    /// Seconds the epochs done took (in earlier processes).
    pub fn seconds(&self) -> f64 {
        self.logs.iter().map(|l| l.seconds).sum()
    }
}
