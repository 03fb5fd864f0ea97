//! The run directory (DESIGN.md): config.json, state.json (what is complete), a checkpoint per
//! round, search.csv. Everything is written atomically, checkpoint before state, so a run killed
//! at any moment resumes from its last complete round, or from what
//! the unfinished round saved (partial.rs).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::config::CompressConfig;
use crate::io;
use crate::prune::action::Action;
use crate::prune::admm::AdmmLog;
use crate::prune::count::LayerCount;
use crate::prune::purify::PurifyLog;
use crate::search::target::Goal;
use crate::search::Candidate;
pub use super::decision::PairedDrop;
use crate::train::EpochLog;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    /// Ended: target met, budget exceeded or no further progress (see `stop_reason`).
    Finished,
}

/// A model's accuracies and size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub params: u64,
    pub flops: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BaselineRecord {
    pub point: Point,
    pub layers: Vec<LayerCount>,
    /// Empty when the baseline was loaded.
    pub epochs: Vec<EpochLog>,
    pub wall_seconds: f64,
    pub checkpoint: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: usize,
    /// This round's reduction target (dense ÷ pruned) on the run's primary (first) metric.
    pub round_target: f64,
    /// This round's target on every metric of the run's target (one or two goals).
    #[serde(default)]
    pub round_goals: Vec<Goal>,
    /// The round factor it was aimed with (0 in runs of earlier versions).
    #[serde(default)]
    pub round_factor: f64,
    /// The searched action, on this round's input model.
    pub action: Action,
    pub best_quick_accuracy: f64,
    pub candidates: Vec<Candidate>,
    /// Quick evaluations the search ran (cache hits not counted), and how many it took to first
    /// reach the action it returned.
    #[serde(default)]
    pub evaluations: usize,
    #[serde(default)]
    pub evaluations_to_best: usize,
    pub admm: AdmmLog,
    /// After ADMM and masked retraining, before purification (compacted counts).
    pub before_purification: Point,
    pub purification: Option<PurifyLog>,
    /// The compacted model after the round.
    pub point: Point,
    pub params_reduction: f64,
    pub flops_reduction: f64,
    pub layers: Vec<LayerCount>,
    /// Largest relative difference between the compacted and the masked model's logits.
    pub compacted_vs_masked: f64,
    /// Fine-tuning of the compacted model, recovery cycles included (`point` is after it).
    #[serde(default)]
    pub finetune: Vec<EpochLog>,
    /// The compacted model's validation drop from the baseline, image by image.
    #[serde(default)]
    pub paired: Option<PairedDrop>,
    pub accepted: bool,
    /// Present when the round was accepted.
    pub checkpoint: Option<String>,
    pub wall_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub baseline: Option<BaselineRecord>,
    pub rounds: Vec<RoundRecord>,
    pub stop_reason: Option<String>,
    /// Seconds spent in earlier processes of this run (resumed runs add up).
    pub wall_seconds: f64,
}

pub struct RunDir {
    pub path: PathBuf,
}

/// What `--resume` may change in a run: the settings that let a stopped run go on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extension {
    pub max_rounds: Option<usize>,
    pub retry_round_factor: Option<f64>,
}

/// What the stop reason of a run that reached its round limit says.
pub const MAX_ROUNDS_STOP: &str = "after the maximum of";

impl RunDir {
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reopens the unfinished run in `path`. `model` and `dataset`, when given, must be the run's.
    /// `more` may give the run a new round limit, under which a run that stopped at its old limit
    /// continues, and a finer retry factor, with which a run that a rejected round ended goes on
    /// from its last accepted model (the rejected rounds stay in its record).
    pub fn resume(path: &Path, model: Option<&str>, dataset: Option<&str>, more: Extension) -> Result<(RunDir, CompressConfig, RunState)> {
        let dir = RunDir { path: path.to_path_buf() };
        let (cfg_path, state_path) = (dir.file("config.json"), dir.file("state.json"));
        if !cfg_path.exists() || !state_path.exists() {
            bail!("--resume: {} is not a compress run directory (it has no config.json and state.json)", path.display());
        }
        let mut stored: CompressConfig = read_json(&cfg_path)?;
        for (what, given, theirs) in [("model", model, stored.model.as_str()), ("dataset", dataset, stored.data.dataset.as_str())] {
            if given.is_some_and(|g| g != theirs) {
                bail!("--resume: {} holds a run of {what} '{theirs}', not '{}'; use another --out", path.display(), given.unwrap_or_default());
            }
        }
        let mut state: RunState = read_json(&state_path)?;
        let finished = state.status == Status::Finished;
        let at_limit = finished && state.rounds.len() >= stored.max_rounds && state.stop_reason.as_deref().is_some_and(|r| r.contains(MAX_ROUNDS_STOP));
        // the factor of the round whose rejection ended the run (0: a run of a version that did
        // not record it, which any retry factor may continue)
        let rejected_at = state.rounds.last().filter(|r| finished && !at_limit && !r.accepted).map(|r| r.round_factor);
        if let Some(m) = more.max_rounds {
            if m == 0 {
                bail!("--max-rounds must be at least 1, found 0");
            }
            stored.max_rounds = m;
        }
        if let Some(f) = more.retry_round_factor {
            if !(f.is_finite() && f > 1.0) {
                bail!("--retry-round-factor must be above 1, found {f}");
            }
            if let Some(last) = rejected_at.filter(|&last| last > 0.0 && f >= last) {
                bail!("--retry-round-factor {f}: the round that ended the run in {} was rejected at round factor {last}; going on needs a finer one (below {last})", path.display());
            }
            stored.retry_round_factor = Some(f);
            stored.validate()?;
        }
        let room = state.rounds.len() < stored.max_rounds;
        let reopen = room && ((at_limit && more.max_rounds.is_some()) || (rejected_at.is_some() && more.retry_round_factor.is_some()));
        if reopen {
            state.status = Status::Running;
            state.stop_reason = None;
        }
        if state.status == Status::Finished {
            let hint = if at_limit {
                format!("; give a --max-rounds above {} to continue it, or use --force to start over", state.rounds.len())
            } else if let Some(last) = rejected_at {
                let limit = if room { String::new() } else { format!(" and a --max-rounds above {}", state.rounds.len()) };
                let below = if last > 0.0 { format!(" below {last}") } else { String::new() };
                format!("; give a --retry-round-factor{below}{limit} to go on in finer rounds, or use --force to start over")
            } else {
                "; use --force to start over".into()
            };
            bail!("{} holds a finished run ({}){hint}", path.display(), state.stop_reason.as_deref().unwrap_or("done"));
        }
        if more.max_rounds.is_some() || more.retry_round_factor.is_some() {
            io::write_json(&cfg_path, &stored)?;
            dir.save_state(&state)?;
        }
        Ok((dir, stored, state))
    }

    /// Refuses a `path` that holds a run, unless `force`.
    pub fn check_free(path: &Path, force: bool) -> Result<()> {
        let state_path = path.join("state.json");
        if state_path.exists() && !force {
            let state: RunState = read_json(&state_path)?;
            match state.status {
                Status::Finished => bail!("{} already holds a finished run; use --force to start over, or another --out", path.display()),
                Status::Running => bail!("{} holds an unfinished run; continue it with --resume, or start over with --force", path.display()),
            }
        }
        Ok(())
    }

    /// Starts a new run in `path`. A directory that holds a run is refused unless `force`, which
    /// removes that run's files (and nothing else).
    pub fn create(path: &Path, config: &CompressConfig, force: bool) -> Result<(RunDir, RunState)> {
        Self::check_free(path, force)?;
        let dir = RunDir { path: path.to_path_buf() };
        std::fs::create_dir_all(path).with_context(|| format!("cannot create run directory {}", path.display()))?;
        if force {
            for entry in std::fs::read_dir(path)? {
                let p = entry?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ours = ["config.json", "state.json", "search.csv", "report.json", "report.md", "model.safetensors", "model.json"].contains(&name)
                    || name.starts_with("round-")
                    || name.starts_with("baseline")
                    || name.ends_with(".png");
                if ours && p.is_file() {
                    std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
                }
            }
        }
        let state = RunState { status: Status::Running, baseline: None, rounds: Vec::new(), stop_reason: None, wall_seconds: 0.0 };
        io::write_json(&dir.file("config.json"), config)?;
        dir.save_state(&state)?;
        Ok((dir, state))
    }

    pub fn save_state(&self, state: &RunState) -> Result<()> {
        io::write_json(&self.file("state.json"), state)
    }

    /// search.csv: every candidate of the completed rounds, then `current`'s so far.
    pub fn write_search_csv(&self, rounds: &[RoundRecord], current: Option<(usize, &[Candidate])>) -> Result<()> {
        let mut s = String::from("round,iteration,temperature,action,params,flops,quick_accuracy,accepted,cached\n");
        let done = rounds.iter().map(|r| (r.round, r.candidates.as_slice()));
        for (round, cands) in done.chain(current) {
            for c in cands {
                let action: Vec<String> = c.action.layers.iter().map(|l| format!("{}:{}:{:.4}", l.layer, l.scheme.name(), l.rate)).collect();
                s += &format!(
                    "{round},{},{:.4},{},{:.0},{:.0},{:.4},{},{}\n",
                    c.iteration,
                    c.temperature,
                    action.join(" "),
                    c.params,
                    c.flops,
                    c.quick_accuracy,
                    c.accepted,
                    c.cached
                );
            }
        }
        io::atomic_write(&self.file("search.csv"), s.as_bytes())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is damaged or from another version: {}", path.display(), "cannot parse it"))
}
