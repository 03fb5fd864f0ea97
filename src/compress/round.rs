//! One round (SPEC.md §2 steps 1–4): search the action for the round target, ADMM-prune with it,
//! retrain with masks, purify, compact, measure.

use anyhow::Result;
use std::time::Instant;

use super::config::CompressConfig;
use super::partial::{Compacted, Partial, Searched};
use super::state::{Point, RoundRecord, RunDir};
use super::point;
use crate::data::Data;
use crate::gpu::Gpu;
use crate::model::{Architecture, Network, Weights};
use crate::prune::count::count;
use crate::prune::pipeline::{self, Pruned};
use crate::search::cost::slots;
use crate::search::quick::QuickEval;
use crate::search::{anneal, Candidate, Outcome, Target};
use crate::train::checkpoint::{self, Checkpoint};
use crate::train::{self, EpochLog, Schedule, TrainConfig};

/// Runs round `r` on the current model (`arch`, `w`), aiming at `round_target` (reductions from
/// the `dense` model, one per goal of the run's target); `floor` is the validation accuracy below
/// which fine-tuning adds recovery cycles. A round stopped midway continues from the last stage
/// it saved (`partial`). Returns the round's record (not yet accepted; its time includes
/// earlier processes') and the compacted model.
#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: &Gpu,
    dir: &RunDir,
    cfg: &CompressConfig,
    data: &Data,
    dense: &Architecture,
    arch: &Architecture,
    w: &Weights,
    r: usize,
    round_target: &Target,
    floor: f64,
    done: &[RoundRecord],
    progress: bool,
) -> Result<(RoundRecord, Architecture, Weights)> {
    let t0 = Instant::now();
    // every random choice of the round follows from (seed, round), so a resumed round repeats
    let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(r as u64);
    let partial = Partial::new(dir, r);
    let goals = round_target.goals().to_vec();
    // seconds the round took in earlier processes, up to the last stage it saved
    let mut earlier = 0.0;

    // steps 1–3: the search
    let outcome = match partial.searched(&goals)? {
        Some(s) => {
            if progress {
                eprintln!("round {r}: resuming after its search");
            }
            dir.write_search_csv(done, Some((r, &s.outcome.candidates)))?;
            earlier = s.seconds;
            s.outcome
        }
        None => {
            // anything saved was for other goals
            partial.clear()?;
            let outcome = search(gpu, dir, cfg, data, dense, arch, w, r, round_target, seed, done, progress)?;
            partial.save_searched(&Searched { goals: goals.clone(), outcome: outcome.clone(), seconds: t0.elapsed().as_secs_f64() })?;
            outcome
        }
    };
    if progress {
        let a: Vec<String> = outcome.best.layers.iter().map(|l| format!("{} {} {:.3}", l.layer, l.scheme.name(), l.rate)).collect();
        eprintln!("round {r}: best action {} (quick {:.2}%)", a.join(", "), 100.0 * outcome.best_quick_accuracy);
    }

    // step 4: ADMM, hard pruning, masked retraining, purification, compaction
    let train_cfg = TrainConfig { seed, ..cfg.prune_train.clone() };
    let (stage, carch, cw, cnet) = match partial.compacted(&goals)? {
        Some((c, carch, cw)) => {
            if progress {
                eprintln!("round {r}: resuming after ADMM and compaction");
            }
            // as pipeline::run builds it: the compacted weights, zero momentum
            let cnet = Network::new(gpu, &carch, &cw, train_cfg.batch_size, train_cfg.weight_decay)?;
            earlier = c.seconds;
            (c, carch, cw, cnet)
        }
        None => {
            if progress {
                eprintln!("round {r}: ADMM with that action");
            }
            // a fine-tuning checkpoint left here belongs to another compacted model
            partial.forget_finetune()?;
            let net = Network::new(gpu, arch, w, train_cfg.batch_size, train_cfg.weight_decay)?;
            let Pruned { admm, before_purification: acc, before_purification_size: size, purification, arch: carch, weights: cw, net: cnet, compacted_vs_masked } =
                pipeline::run(gpu, net, data, &outcome.best, &cfg.admm, &train_cfg, cfg.purify.as_ref(), progress)?;
            let before_purification = Point { val_accuracy: acc.val, test_accuracy: acc.test, params: size.params, flops: size.flops };
            let c = Compacted { goals: goals.clone(), admm, before_purification, purification, compacted_vs_masked, seconds: earlier + t0.elapsed().as_secs_f64() };
            partial.save_compacted(&c, &carch, &cw, &data.meta(cfg.seed))?;
            (c, carch, cw, cnet)
        }
    };
    // step 5: the compacted model's network is fine-tuned, then measured
    let (finetune, finetune_earlier) = finetune(gpu, cfg, data, &cnet, floor, seed, &partial, progress)?;
    earlier += finetune_earlier;
    let cw = if finetune.is_empty() { cw } else { cnet.weights(gpu)? };
    let p = point(gpu, &cnet, &carch, data)?;
    let c = count(&carch)?;
    let dense_count = count(dense)?;
    let rec = RoundRecord {
        round: r,
        round_target: round_target.primary().factor,
        round_goals: round_target.goals().to_vec(),
        round_factor: 0.0,
        evaluations: outcome.evaluations,
        evaluations_to_best: outcome.evaluations_to_best,
        action: outcome.best,
        best_quick_accuracy: outcome.best_quick_accuracy,
        candidates: outcome.candidates,
        admm: stage.admm,
        before_purification: stage.before_purification,
        purification: stage.purification,
        point: p,
        params_reduction: dense_count.params as f64 / p.params.max(1) as f64,
        flops_reduction: dense_count.flops as f64 / p.flops.max(1) as f64,
        layers: c.layers,
        compacted_vs_masked: stage.compacted_vs_masked,
        finetune,
        paired: None,
        accepted: false,
        checkpoint: None,
        wall_seconds: earlier + t0.elapsed().as_secs_f64(),
    };
    Ok((rec, carch, cw))
}

/// Steps 1–3: the annealing search for round `r`'s action, its candidates written to
/// search.csv as they come.
#[allow(clippy::too_many_arguments)]
fn search(
    gpu: &Gpu,
    dir: &RunDir,
    cfg: &CompressConfig,
    data: &Data,
    dense: &Architecture,
    arch: &Architecture,
    w: &Weights,
    r: usize,
    round_target: &Target,
    seed: u64,
    done: &[RoundRecord],
    progress: bool,
) -> Result<Outcome> {
    if progress {
        let goals: Vec<String> = round_target.goals().iter().map(|g| format!("{:.2}× {}", g.factor, g.metric.name())).collect();
        eprintln!("round {r}: target {} — searching ({:?})", goals.join(", "), cfg.search.mode);
    }
    let slots = slots(arch, dense, &cfg.schemes, cfg.first_layer_max_rate)?;
    let quick_cfg = TrainConfig { schedule: Schedule::Constant, ..cfg.prune_train.clone() };
    let mut quick = QuickEval::new(gpu, arch, w, data, &quick_cfg, cfg.search.quick_retrain_steps, cfg.search.quick_val_images, seed)?;
    let mut seen: Vec<Candidate> = Vec::new();
    anneal(&slots, &round_target.limits(&count(dense)?), &cfg.search, seed, &mut quick, |c| {
        seen.push(c.clone());
        if progress {
            eprintln!(
                "  [{:>2}] T {:.3}  quick {:.2}%  {}{}",
                c.iteration,
                c.temperature,
                100.0 * c.quick_accuracy,
                if c.accepted { "accepted" } else { "rejected" },
                if c.cached { " (cached)" } else { "" }
            );
        }
        dir.write_search_csv(done, Some((r, &seen)))
    })
}

/// Step 5 (ours): fine-tunes the compacted model `net` for `finetune_epochs` (one cosine cycle),
/// then, while its validation accuracy is below `floor`, for up to `recovery_epochs` more
/// one-epoch cycles. Kept columns are stored physically, so no mask is needed to keep the
/// structure. The cosine cycle checkpoints every epoch and continues from `partial`'s
/// checkpoint; recovery cycles (one epoch each, seeded) run again after a stop. Returns the
/// epochs run (none: `net` is unchanged) and the seconds earlier processes spent on them.
#[allow(clippy::too_many_arguments)]
fn finetune(gpu: &Gpu, cfg: &CompressConfig, data: &Data, net: &Network, floor: f64, seed: u64, partial: &Partial, progress: bool) -> Result<(Vec<EpochLog>, f64)> {
    let base = TrainConfig { seed, warmup_epochs: 0.0, schedule: Schedule::Cosine, steps_per_epoch: None, ..cfg.prune_train.clone() };
    let mut logs = Vec::new();
    let mut earlier = 0.0;
    if cfg.finetune_epochs > 0 {
        let cosine = TrainConfig { epochs: cfg.finetune_epochs, ..base.clone() };
        let path = partial.finetune_checkpoint();
        let done;
        (done, earlier) = Checkpoint::continue_into(&path, gpu, net, &cosine)?;
        if progress {
            let resuming = if done.is_empty() { String::new() } else { format!(", resuming after epoch {}", done.len()) };
            eprintln!("  fine-tuning the compacted model: {} epochs{resuming}", cfg.finetune_epochs);
        }
        logs = train::train_from(gpu, net, data, &cosine, done, progress, |logs| checkpoint::save(&path, gpu, net, &cosine, logs, &[]))?;
    }
    let mut val = match logs.last() {
        Some(l) => l.val_accuracy,
        None if cfg.recovery_epochs > 0 => train::evaluate(gpu, net, &data.val)?.1,
        None => return Ok((logs, earlier)),
    };
    for cycle in 0..cfg.recovery_epochs {
        if val + 1e-9 >= floor {
            break;
        }
        if progress {
            eprintln!("  validation {:.2}% is below the budget's {:.2}%: recovery cycle {}/{}", 100.0 * val, 100.0 * floor, cycle + 1, cfg.recovery_epochs);
        }
        // a fresh batch order per cycle
        let c = TrainConfig { epochs: 1, seed: seed.wrapping_add(1 + cycle as u64), lr: cfg.recovery_lr.unwrap_or(base.lr), ..base.clone() };
        let log = train::train(gpu, net, data, &c, progress, |_| Ok(()))?;
        val = log[0].val_accuracy;
        logs.extend(log);
    }
    Ok((logs, earlier))
}
