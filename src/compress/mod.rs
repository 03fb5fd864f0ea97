//! The AutoCompress pipeline (SPEC.md §2): baseline, then rounds of search → ADMM → purification
//! → compaction, each checkpointed, until the target is met or the accuracy budget is exceeded.

pub mod config;
pub mod decision;
pub mod partial;
pub mod peer;
pub mod plots;
pub mod round;
pub mod state;
pub mod summary;

use anyhow::{Context, Result};
use std::time::Instant;

pub use config::{CompressConfig, DataConfig};
use state::{BaselineRecord, Point, RunDir, RunState, Status};

use crate::data::{self, Data, LoadOptions};
use crate::gpu::Gpu;
use crate::io;
use crate::model::{zoo, Architecture, Network, Weights};
use crate::prune::count::count;
use crate::search::target::{meets, Goal, Target};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::{self, TrainConfig};

pub fn load_data(d: &DataConfig, seed: u64) -> Result<Data> {
    load_data_normalised(d, seed, None)
}

/// As `load_data`, normalised as a model file states (`norm`), or else from the training
/// images, saying so when the model (`from`, an imported one) states none.
pub fn load_data_for(d: &DataConfig, seed: u64, meta: &std::collections::HashMap<String, String>, channels: usize, from: &std::path::Path) -> Result<Data> {
    let norm = data::Norm::from_meta(meta, channels).with_context(|| format!("model file {}", from.display()))?;
    let data = load_data_normalised(d, seed, norm.as_ref())?;
    if norm.is_none() && meta.get("source").is_some_and(|s| s == "onnx") {
        eprintln!(
            "{} states no input normalisation: using the mean {:?} and std {:?} of {}'s training images (import it with --input-mean and --input-std to fix them)",
            from.display(), data.mean, data.std, data.name
        );
    }
    Ok(data)
}

fn load_data_normalised(d: &DataConfig, seed: u64, norm: Option<&data::Norm>) -> Result<Data> {
    if !(0.0..1.0).contains(&d.val_fraction) {
        anyhow::bail!("--val-fraction must be in [0, 1), found {}", d.val_fraction);
    }
    let dir = data::resolve_dir(&d.dataset, d.dir.as_deref());
    let opts = LoadOptions { val_fraction: d.val_fraction, seed, limit_train: d.limit_train, limit_test: d.limit_test };
    data::load_normalised(&d.dataset, Some(&dir), &opts, norm)
}

/// Validation and test accuracy with the model's size.
pub fn point(gpu: &Gpu, net: &Network, arch: &Architecture, data: &Data) -> Result<Point> {
    let c = count(arch)?;
    Ok(Point { val_accuracy: train::evaluate(gpu, net, &data.val)?.1, test_accuracy: train::evaluate(gpu, net, &data.test)?.1, params: c.params, flops: c.flops })
}

/// What a run starts from, checked before anything is written: the data, the dense
/// architecture, and the trained weights when `--model-file` gave them.
pub struct Start {
    pub data: Data,
    pub arch: Architecture,
    pub weights: Option<Weights>,
}

/// Loads the data and the model and refuses a target no action could meet.
pub fn prepare(cfg: &CompressConfig) -> Result<Start> {
    // a model file states the normalisation its inputs need
    let model = cfg.model_file.as_ref().map(|p| io::load_model(p).map(|m| (p, m))).transpose()?;
    let split_seed = cfg.split_seed.unwrap_or(cfg.seed);
    let data = match &model {
        Some((p, (arch, _, meta))) => load_data_for(&cfg.data, split_seed, meta, arch.input[0], p)?,
        None => load_data(&cfg.data, split_seed)?,
    };
    if data.val.is_empty() {
        anyhow::bail!("compress needs a validation part for its decisions: --val-fraction must be above 0");
    }
    let (arch, weights) = match model {
        Some((p, (arch, w, _))) => {
            check_fits(&arch, &data, &p.display().to_string())?;
            (arch, Some(w))
        }
        None => match &cfg.model_json {
            Some(p) => {
                let arch = Architecture::from_json_file(p)?;
                check_fits(&arch, &data, &p.display().to_string())?;
                (arch, None)
            }
            None => (zoo::build_scaled(&cfg.model, cfg.width_multiplier, data.shape, data.classes)?, None),
        },
    };
    let slots = crate::search::cost::slots(&arch, &arch, &cfg.schemes, cfg.first_layer_max_rate)?;
    let start = vec![(cfg.schemes[0], 0.5); slots.len()];
    crate::search::cost::rescale(&slots, &start, &cfg.target.limits(&count(&arch)?))
        .with_context(|| format!("target {} cannot be met by any action on {} (--first-layer-max-rate {} bounds the first layer)", cfg.target, arch.name, cfg.first_layer_max_rate))?;
    Ok(Start { data, arch, weights })
}

/// Runs (or continues) the run in `dir` to its end and returns the final state.
pub fn run(gpu: &Gpu, dir: &RunDir, cfg: &CompressConfig, mut state: RunState, start: Start, progress: bool) -> Result<RunState> {
    let t0 = Instant::now();
    let mut wall0 = state.wall_seconds;
    let mut data = start.data;
    let baseline = match &state.baseline {
        Some(b) => b.clone(),
        None => {
            let b = make_baseline(gpu, dir, cfg, &data, start.arch, start.weights, progress)?;
            state.baseline = Some(b.clone());
            // a resumed baseline's epochs of earlier processes count too
            wall0 += (b.wall_seconds - t0.elapsed().as_secs_f64()).max(0.0);
            state.wall_seconds = wall0 + t0.elapsed().as_secs_f64();
            dir.save_state(&state)?;
            let partial = dir.file(BASELINE_CHECKPOINT);
            if partial.exists() {
                std::fs::remove_file(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
            }
            b
        }
    };
    let (dense_arch, dense_w, _) = io::load_model(&dir.file(&baseline.checkpoint))?;
    if cfg.prune_train.distill.is_some() {
        // the dense baseline teaches every later model; recomputed on resume (deterministic)
        if progress {
            eprintln!("computing the baseline's logits of the {} training images (distillation)", data.train.len());
        }
        let teacher = Network::inference(gpu, &dense_arch, &dense_w, cfg.prune_train.batch_size)?;
        data.train.teacher = train::logits(gpu, &teacher, &data.train)?;
    }
    let dense_count = count(&dense_arch)?;
    // the paired budget decision compares every round with the baseline image by image
    let baseline_correct = {
        let net = Network::inference(gpu, &dense_arch, &dense_w, cfg.prune_train.batch_size)?;
        train::correctness(gpu, &net, &data.val)?
    };
    let last = state.rounds.iter().rev().find_map(|r| r.checkpoint.clone()).unwrap_or(baseline.checkpoint.clone());
    let (mut arch, mut weights, _) = io::load_model(&dir.file(&last)).with_context(|| format!("resuming from checkpoint {last}"))?;
    if progress {
        eprintln!(
            "baseline: validation {:.2}%, test {:.2}%, {} params, {} FLOPs; target {}, budget {} points{}",
            100.0 * baseline.point.val_accuracy,
            100.0 * baseline.point.test_accuracy,
            baseline.point.params,
            baseline.point.flops,
            cfg.target,
            cfg.budget,
            if state.rounds.is_empty() { String::new() } else { format!("; resuming after round {}", state.rounds.len()) }
        );
    }

    let stop_reason = loop {
        let reductions = cfg.target.reductions(&dense_count, &count(&arch)?);
        let reached = cfg.target.describe(&reductions, 1);
        if cfg.target.met_by(&reductions) {
            break format!("target {} met: {} after {} rounds", cfg.target, reached, state.rounds.len());
        }
        if state.rounds.len() >= cfg.max_rounds {
            break format!("stopped short of {}: {} {} {} rounds", cfg.target, reached, state::MAX_ROUNDS_STOP, cfg.max_rounds);
        }
        let r = state.rounds.len() + 1;
        let factor = round_factor(cfg, &state.rounds, reductions[0]);
        let round_target = Target::new(round_goals(&cfg.target, &reductions, factor))?;
        let floor = baseline.point.val_accuracy - cfg.budget / 100.0;
        // recovery fine-tuning runs below `floor`, or within the margin above it
        let recovery_floor = floor + cfg.recovery_margin / 100.0;
        if r > 1 {
            // a stop between recording round r - 1 and removing its partial files leaves them
            partial::Partial::new(dir, r - 1).clear()?;
        }
        let t_round = Instant::now();
        let (mut rec, carch, cw) = round::run(gpu, dir, cfg, &data, &dense_arch, &arch, &weights, r, &round_target, recovery_floor, &state.rounds, progress)?;
        rec.round_factor = factor;
        // the round's time in earlier processes counts too
        wall0 += (rec.wall_seconds - t_round.elapsed().as_secs_f64()).max(0.0);
        let paired = {
            let net = Network::inference(gpu, &carch, &cw, cfg.prune_train.batch_size)?;
            decision::PairedDrop::of(&baseline_correct, &train::correctness(gpu, &net, &data.val)?)?
        };
        rec.paired = Some(paired);
        let below = rec.point.val_accuracy + 1e-9 < floor;
        let unsure = cfg.budget_confidence.is_some_and(|c| !paired.within(cfg.budget, Some(c)));
        let verdict = if below || unsure {
            let why = if below {
                format!(
                    "validation accuracy {:.2}% is below the baseline's {:.2}% minus the {}-point budget",
                    100.0 * rec.point.val_accuracy,
                    100.0 * baseline.point.val_accuracy,
                    cfg.budget
                )
            } else {
                format!(
                    "its validation drop of {:.2} points (paired: {} images lost, {} gained) is not within the {}-point budget at {}% confidence (upper bound {:.2})",
                    paired.drop,
                    paired.lost,
                    paired.gained,
                    cfg.budget,
                    100.0 * cfg.budget_confidence.unwrap_or(0.0),
                    paired.upper(cfg.budget_confidence.unwrap_or(0.5))
                )
            };
            // the model kept: the last accepted round's (0: the baseline)
            let kept = state.rounds.iter().rev().find(|x| x.accepted).map_or(0, |x| x.round);
            match cfg.retry_round_factor.filter(|&f| f < factor) {
                // go on from the last accepted model with finer rounds (state saved below)
                Some(f) => {
                    if progress {
                        eprintln!("round {r} rejected: {why}; going on from round {kept}'s model with round factor {f}");
                    }
                    None
                }
                None => Some(format!("round {r} rejected: {why}; kept round {kept}'s model ({reached}, short of {})", cfg.target)),
            }
        } else {
            let name = format!("round-{r}.safetensors");
            io::save_model(&dir.file(&name), &carch, &cw, &data.meta(cfg.seed))?;
            rec.accepted = true;
            rec.checkpoint = Some(name);
            let gained = cfg.target.reductions(&dense_count, &count(&carch)?);
            arch = carch;
            weights = cw;
            stalled(&cfg.target, &reductions, &gained).then(|| {
                format!("stopped short of {}: round {r} gained almost nothing ({} → {})", cfg.target, cfg.target.describe(&reductions, 2), cfg.target.describe(&gained, 2))
            })
        };
        if progress {
            eprintln!(
                "round {r}: {} — {:.1}× params, {:.1}× FLOPs, validation {:.2}%, test {:.2}% ({:.0}s)",
                if rec.accepted { "accepted" } else { "rejected" },
                rec.params_reduction,
                rec.flops_reduction,
                100.0 * rec.point.val_accuracy,
                100.0 * rec.point.test_accuracy,
                rec.wall_seconds
            );
        }
        state.rounds.push(rec);
        state.wall_seconds = wall0 + t0.elapsed().as_secs_f64();
        if let Some(v) = verdict {
            break v;
        }
        dir.save_state(&state)?;
    };

    // final files first, then the state that says the run is finished
    state.stop_reason = Some(stop_reason);
    state.wall_seconds = wall0 + t0.elapsed().as_secs_f64();
    io::save_model(&dir.file("model.safetensors"), &arch, &weights, &data.meta(cfg.seed))?;
    io::write_json(&dir.file("model.json"), &arch)?;
    dir.write_search_csv(&state.rounds, None)?;
    summary::write(gpu, dir, cfg, &state, &arch)?;
    plots::write_all(dir, &state)?;
    state.status = Status::Finished;
    dir.save_state(&state)?;
    partial::Partial::new(dir, state.rounds.len()).clear()?;
    Ok(state)
}

/// Trains the dense model (unless its weights are given) and checkpoints it as
/// baseline.safetensors. The training checkpoints every epoch, so `--resume` continues an
/// interrupted baseline from its last complete epoch.
fn make_baseline(gpu: &Gpu, dir: &RunDir, cfg: &CompressConfig, data: &Data, arch: Architecture, weights: Option<Weights>, progress: bool) -> Result<BaselineRecord> {
    let t0 = Instant::now();
    let mut earlier = 0.0;
    let (weights, epochs) = match weights {
        Some(w) => (w, Vec::new()),
        None => {
            let train_cfg = TrainConfig { seed: cfg.seed, ..cfg.baseline.clone() };
            let net = Network::new(gpu, &arch, &Weights::init(&arch, cfg.seed)?, train_cfg.batch_size, train_cfg.weight_decay)?;
            let path = dir.file(BASELINE_CHECKPOINT);
            let done;
            (done, earlier) = Checkpoint::continue_into(&path, gpu, &net, &train_cfg)?;
            if progress {
                eprintln!("training the dense baseline: {} epochs{}", train_cfg.epochs, if done.is_empty() { String::new() } else { format!(", resuming after epoch {}", done.len()) });
            }
            let meta = data.meta(cfg.seed);
            let logs = train::train_from(gpu, &net, data, &train_cfg, done, progress, |logs| checkpoint::save(&path, gpu, &net, &train_cfg, logs, &meta))?;
            (net.weights(gpu)?, logs)
        }
    };
    let net = Network::inference(gpu, &arch, &weights, cfg.baseline.batch_size)?;
    let p = point(gpu, &net, &arch, data)?;
    let checkpoint = "baseline.safetensors".to_string();
    io::save_model(&dir.file(&checkpoint), &arch, &weights, &data.meta(cfg.seed))?;
    Ok(BaselineRecord { point: p, layers: count(&arch)?.layers, epochs, wall_seconds: earlier + t0.elapsed().as_secs_f64(), checkpoint })
}

/// The dense baseline's training checkpoint, removed once baseline.safetensors is recorded.
const BASELINE_CHECKPOINT: &str = "baseline-training.safetensors";

pub fn check_fits(arch: &Architecture, data: &Data, what: &str) -> Result<()> {
    if arch.input != data.shape || arch.classes != data.classes {
        anyhow::bail!("{what} takes {:?} inputs and {} classes, data set {} has {:?} and {}", arch.input, arch.classes, data.name, data.shape, data.classes);
    }
    Ok(())
}

/// An accepted round that took the reductions from `before` to `after` gained under 1% on
/// every goal it has not met and left the target unmet: another round would do the same, so the
/// run stops. A last small step that reaches the target is no stall.
fn stalled(target: &Target, before: &[f64], after: &[f64]) -> bool {
    let unmet = target.goals().iter().zip(before.iter().zip(after)).filter(|(g, (_, &a))| !meets(a, g.factor));
    !target.met_by(after) && unmet.into_iter().all(|(_, (&b, &a))| a < b * 1.01)
}

/// Each goal's target for the next round, from the current `reductions`. The goal with the
/// most left to go steps by `factor`; every other unmet goal by the step that brings it to its
/// target in as many rounds (remaining^(ln factor ÷ ln most remaining)), so the goals arrive
/// together instead of the nearer one being forced there first; each is capped at its target,
/// and a met goal stays a bound. One goal: `min(target, reduction × factor)`.
fn round_goals(target: &Target, reductions: &[f64], factor: f64) -> Vec<Goal> {
    let remaining: Vec<f64> = target.goals().iter().zip(reductions).map(|(g, &r)| g.factor / r).collect();
    let most = remaining.iter().copied().fold(1.0, f64::max);
    target
        .goals()
        .iter()
        .zip(reductions)
        .zip(&remaining)
        .map(|((g, &red), &rem)| {
            let step = if rem >= most { factor } else if rem <= 1.0 { 1.0 } else { rem.powf(factor.ln() / most.ln()).min(factor) };
            Goal { metric: g.metric, factor: g.factor.min(red * step) }
        })
        .collect()
}

/// The round factor of the next round: `retry_round_factor` once a round has been rejected,
/// else `late_round_factor` once the primary reduction has reached `late_after`, else
/// `round_factor`.
fn round_factor(cfg: &CompressConfig, done: &[state::RoundRecord], primary_reduction: f64) -> f64 {
    if let Some(f) = cfg.retry_round_factor.filter(|_| done.iter().any(|r| !r.accepted)) {
        return f;
    }
    match (cfg.late_round_factor, cfg.late_after) {
        (Some(f), Some(after)) if meets(primary_reduction, after) => f,
        _ => cfg.round_factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::Metric;

    #[test]
    fn a_small_last_step_onto_the_target_is_no_stall() {
        // resnet18 at width 0.25: 9.92x -> 10.0009x against a 10x target
        let t = Target::single(Metric::Params, 10.0);
        assert!(!stalled(&t, &[9.92], &[10.0009]));
        assert!(stalled(&t, &[9.92], &[9.95]));
        assert!(!stalled(&t, &[5.0], &[9.0]));
    }

    #[test]
    fn joint_goals_step_so_they_arrive_together() {
        let one = Target::single(Metric::Params, 60.0);
        assert_eq!(round_goals(&one, &[43.9], 2.0), vec![Goal { metric: Metric::Params, factor: 60.0 }]);
        assert_eq!(round_goals(&one, &[7.3], 2.0)[0].factor, 7.3 * 2.0);
        let t = Target::parse("params:8x,flops:3x").unwrap();
        // params has ln 8 to go, FLOPs ln 3: FLOPs steps by 3^(ln 2.72 / ln 8), params by 2.72
        let g = round_goals(&t, &[1.0, 1.0], 2.72);
        assert_eq!(g[0].factor, 2.72);
        assert!((g[1].factor - 3f64.powf(2.72f64.ln() / 8f64.ln())).abs() < 1e-12 && g[1].factor < 1.7, "{g:?}");
        // both arrive in the same number of rounds: after two such steps each has the same
        // fraction of its log-distance left
        let g2 = round_goals(&t, &[g[0].factor, g[1].factor], 2.72);
        let left = |i: usize, f: f64| (t.goals()[i].factor / f).ln() / t.goals()[i].factor.ln();
        assert!((left(0, g2[0].factor) - left(1, g2[1].factor)).abs() < 1e-9, "{g2:?}");
        // the last step reaches both; a met goal stays where it is
        assert_eq!(round_goals(&t, &[6.0, 2.5], 2.0), vec![Goal { metric: Metric::Params, factor: 8.0 }, Goal { metric: Metric::Flops, factor: 3.0 }]);
        let g = round_goals(&t, &[4.0, 3.5], 2.0);
        assert_eq!((g[0].factor, g[1].factor), (8.0, 3.0));
        // FLOPs further behind: FLOPs takes the full step
        let g = round_goals(&t, &[6.0, 1.2], 1.3);
        assert_eq!(g[1].factor, 1.2 * 1.3);
        assert!(g[0].factor > 6.0 && g[0].factor < 6.0 * 1.3);
    }

    #[test]
    fn with_two_goals_only_the_unmet_ones_must_move() {
        let t = Target::parse("params:100x,flops:20x").unwrap();
        // params met and still growing, FLOPs stuck: a stall
        assert!(stalled(&t, &[110.0, 12.0], &[130.0, 12.05]));
        // FLOPs moving: no stall
        assert!(!stalled(&t, &[110.0, 12.0], &[110.0, 13.0]));
        // both stuck, neither met: a stall; both met: done, no stall
        assert!(stalled(&t, &[50.0, 10.0], &[50.2, 10.05]));
        assert!(!stalled(&t, &[99.9, 19.9], &[100.0, 20.0]));
    }

    #[test]
    fn the_round_factor_is_finer_late_and_after_a_rejection() {
        let mut cfg = CompressConfig::defaults_for("digits-cnn", DataConfig { dataset: "digits".into(), dir: None, val_fraction: 0.25, limit_train: None, limit_test: None });
        assert_eq!(round_factor(&cfg, &[], 50.0), 2.0, "the defaults are unchanged");
        cfg.late_round_factor = Some(1.3);
        cfg.late_after = Some(30.0);
        assert_eq!(round_factor(&cfg, &[], 29.9), 2.0);
        assert_eq!(round_factor(&cfg, &[], 30.0), 1.3);
        cfg.retry_round_factor = Some(1.5);
        assert_eq!(round_factor(&cfg, &[], 10.0), 2.0);
        let rejected: state::RoundRecord = serde_json::from_value(serde_json::json!({
            "round": 1, "round_target": 2.0, "action": {"layers": []}, "best_quick_accuracy": 0.9, "candidates": [],
            "admm": {"updates": [], "retrain": []}, "before_purification": {"val_accuracy": 0.9, "test_accuracy": 0.9, "params": 1, "flops": 1},
            "purification": null, "point": {"val_accuracy": 0.9, "test_accuracy": 0.9, "params": 1, "flops": 1},
            "params_reduction": 1.0, "flops_reduction": 1.0, "layers": [], "compacted_vs_masked": 0.0, "accepted": false, "checkpoint": null, "wall_seconds": 1.0
        }))
        .unwrap();
        assert_eq!(round_factor(&cfg, std::slice::from_ref(&rejected), 10.0), 1.5, "a rejection makes every later round finer");
        assert_eq!(round_factor(&cfg, &[rejected], 40.0), 1.5);
    }
}
