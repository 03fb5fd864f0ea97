//! A round's progress before its record exists. A resnet18 round on a two-core CPU takes one to
//! two hours, longer than a stop may allow, so a round saves what it has at three points: after
//! the search (the action), after ADMM and compaction (the compacted model), and after every
//! fine-tuning epoch (a training checkpoint). A resumed run goes on from the last of them and
//! ends where the uninterrupted run would have: every later random choice of the round follows
//! from (seed, round) alone. The files go once the round is recorded in state.json.

use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::PathBuf;

use super::state::{Point, RunDir};
use crate::io;
use crate::model::{Architecture, Weights};
use crate::prune::admm::AdmmLog;
use crate::prune::purify::PurifyLog;
use crate::search::target::Goal;
use crate::search::Outcome;

/// The search's result (`round-R-search.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Searched {
    /// The round's goals: a partial round continues only under the same ones.
    pub goals: Vec<Goal>,
    pub outcome: Outcome,
    /// Seconds the round had taken when this was written.
    pub seconds: f64,
}

/// ADMM, hard pruning, masked retraining, purification and compaction done
/// (`round-R-pruned.json`, and the compacted model in `round-R-pruned.safetensors`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Compacted {
    pub goals: Vec<Goal>,
    pub admm: AdmmLog,
    pub before_purification: Point,
    pub purification: Option<PurifyLog>,
    pub compacted_vs_masked: f64,
    pub seconds: f64,
}

/// The partial files of round `r` in `dir`.
pub struct Partial<'a> {
    dir: &'a RunDir,
    r: usize,
}

impl<'a> Partial<'a> {
    pub fn new(dir: &'a RunDir, r: usize) -> Partial<'a> {
        Partial { dir, r }
    }

    fn file(&self, stage: &str, ext: &str) -> PathBuf {
        self.dir.file(&format!("round-{}-{stage}.{ext}", self.r))
    }

    /// The fine-tuning checkpoint of the compacted model.
    pub fn finetune_checkpoint(&self) -> PathBuf {
        self.file("finetune", "safetensors")
    }

    pub fn save_searched(&self, s: &Searched) -> Result<()> {
        io::write_json(&self.file("search", "json"), s)
    }

    /// The saved search of this round, if it was aimed at `goals` (another target, e.g. after
    /// `--resume --retry-round-factor`, starts the round over).
    pub fn searched(&self, goals: &[Goal]) -> Result<Option<Searched>> {
        Ok(read::<Searched>(&self.file("search", "json"))?.filter(|s| s.goals == goals))
    }

    /// Writes the model first and the record second, so a record always has its model.
    pub fn save_compacted(&self, c: &Compacted, arch: &Architecture, w: &Weights, meta: &[(&str, String)]) -> Result<()> {
        io::save_model(&self.file("pruned", "safetensors"), arch, w, meta)?;
        io::write_json(&self.file("pruned", "json"), c)
    }

    pub fn compacted(&self, goals: &[Goal]) -> Result<Option<(Compacted, Architecture, Weights)>> {
        let Some(c) = read::<Compacted>(&self.file("pruned", "json"))?.filter(|c| c.goals == goals) else {
            return Ok(None);
        };
        let (arch, w, _) = io::load_model(&self.file("pruned", "safetensors"))?;
        Ok(Some((c, arch, w)))
    }

    pub fn forget_finetune(&self) -> Result<()> {
        remove(&self.finetune_checkpoint())
    }

    /// Removes every partial file of the round (the ones that exist).
    pub fn clear(&self) -> Result<()> {
        for f in [self.file("search", "json"), self.file("pruned", "json"), self.file("pruned", "safetensors")] {
            remove(&f)?;
        }
        self.forget_finetune()
    }
}

fn remove(path: &std::path::Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn read<T: DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = serde_json::from_str(&text).with_context(|| format!("{} is damaged or from another version: remove it to run the round from its start", path.display()))?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prune::action::Action;
    use crate::search::Metric;

    fn run_dir(name: &str) -> RunDir {
        let path = std::env::temp_dir().join(format!("autocompress-partial-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        RunDir { path }
    }

    fn goals(factor: f64) -> Vec<Goal> {
        vec![Goal { metric: Metric::Params, factor }]
    }

    #[test]
    fn a_saved_search_is_used_only_for_the_same_goals() {
        let dir = run_dir("goals");
        let p = Partial::new(&dir, 2);
        assert!(p.searched(&goals(2.0)).unwrap().is_none(), "nothing saved yet");
        let outcome = Outcome { best: Action { layers: vec![] }, best_quick_accuracy: 0.5, candidates: vec![], evaluations: 3, evaluations_to_best: 2 };
        p.save_searched(&Searched { goals: goals(2.0), outcome, seconds: 7.0 }).unwrap();
        assert!(dir.file("round-2-search.json").exists());
        let s = p.searched(&goals(2.0)).unwrap().expect("the saved search");
        assert_eq!((s.outcome.evaluations, s.outcome.evaluations_to_best, s.seconds), (3, 2, 7.0));
        assert!(p.searched(&goals(1.5)).unwrap().is_none(), "a search for other goals must not be used");
        p.clear().unwrap();
        assert!(!dir.file("round-2-search.json").exists());
        std::fs::remove_dir_all(&dir.path).unwrap();
    }

    #[test]
    fn a_damaged_partial_file_is_named_with_what_to_do() {
        let dir = run_dir("damaged");
        let p = Partial::new(&dir, 1);
        std::fs::write(dir.file("round-1-search.json"), "{\"goals\": [").unwrap();
        std::fs::write(dir.file("round-1-pruned.json"), "not json").unwrap();
        for (file, err) in [("round-1-search.json", p.searched(&goals(2.0)).err()), ("round-1-pruned.json", p.compacted(&goals(2.0)).err())] {
            let msg = format!("{:#}", err.unwrap_or_else(|| panic!("{file}: a damaged file was accepted")));
            assert!(msg.contains(file) && msg.contains("damaged") && msg.contains("remove it"), "{file}: {msg}");
        }
        std::fs::remove_dir_all(&dir.path).unwrap();
    }
}
