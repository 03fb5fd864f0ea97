//! Actions: one (scheme, rate) per prunable layer (SPEC.md §1), as JSON files and validated
//! against a model.

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

use super::scheme::Scheme;
use crate::model::graph::Architecture;
use crate::prune::topology::topology;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerAction {
    pub layer: String,
    pub scheme: Scheme,
    pub rate: f32,
}

/// `{ "layers": [ { "layer": "conv2", "scheme": "filter", "rate": 0.75 }, … ] }`; a layer not
/// listed is not pruned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub layers: Vec<LayerAction>,
}

impl Action {
    pub fn from_json_file(path: &Path) -> Result<Action> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read action file {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a valid action (expected {{\"layers\": [{{\"layer\", \"scheme\", \"rate\"}}]}})", path.display()))
    }

    /// Checks the action against `arch`: known weighted layers, each once, rates in [0, 1), no
    /// filter pruning of the classifier (its rows are the classes), the first layer's rate at
    /// most `first_layer_max_rate`, and no coupled group pruned two ways (a filter entry on one
    /// producer of a residual sum prunes them all).
    pub fn validate(&self, arch: &Architecture, first_layer_max_rate: f32) -> Result<()> {
        let t = topology(arch)?;
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        for a in &self.layers {
            let Some(pos) = names.iter().position(|n| *n == a.layer) else {
                bail!("action names layer '{}', which model '{}' does not have (its layers: {})", a.layer, arch.name, names.join(", "));
            };
            ensure!(seen.insert(a.layer.as_str()), "action lists layer '{}' twice", a.layer);
            ensure!(a.rate.is_finite() && (0.0..1.0).contains(&a.rate), "layer '{}': rate {} is outside [0, 1)", a.layer, a.rate);
            if t.spaces[t.nodes[pos].output].fixed && a.scheme == Scheme::Filter {
                bail!("layer '{}' is the classifier: its rows are the classes, so it can only be column-pruned", a.layer);
            }
            if pos == 0 && a.rate > first_layer_max_rate {
                bail!("layer '{}' is the first layer: its rate {} exceeds the cap {first_layer_max_rate}", a.layer, a.rate);
            }
        }
        crate::prune::admm::groups(&t, self)?;
        Ok(())
    }

    pub fn get(&self, layer: &str) -> Option<&LayerAction> {
        self.layers.iter().find(|a| a.layer == layer)
    }
}
