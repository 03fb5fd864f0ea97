//! report.json (the contract in DESIGN.md) and report.md (the same, for people).

use anyhow::Result;
use serde_json::json;

use super::config::CompressConfig;
use super::state::{RoundRecord, RunDir, RunState};
use crate::gpu::Gpu;
use crate::io;
use crate::model::Architecture;
use crate::prune::count::count;
use crate::report::{layer_table, Adapter, Snapshot};
use crate::search::target::{meets, Metric};

/// Writes report.json and report.md for the run's final model `arch`.
pub fn write(gpu: &Gpu, dir: &RunDir, cfg: &CompressConfig, state: &RunState, arch: &Architecture) -> Result<()> {
    let Some(base) = &state.baseline else { anyhow::bail!("no baseline in the run state") };
    let last = state.rounds.iter().rev().find(|r| r.accepted);
    let fin = last.map_or(base.point, |r| r.point);
    let snap = |p: &super::state::Point| Snapshot { test_accuracy: p.test_accuracy, params: p.params, flops: p.flops };
    let (b, f) = (snap(&base.point), snap(&fin));
    let params_reduction = b.params as f64 / f.params.max(1) as f64;
    let flops_reduction = b.flops as f64 / f.flops.max(1) as f64;
    // every goal of the target with what the final model reached on it
    let targets: Vec<serde_json::Value> = cfg
        .target
        .goals()
        .iter()
        .map(|g| {
            let reached = if g.metric == Metric::Params { params_reduction } else { flops_reduction };
            json!({"metric": g.metric, "factor": g.factor, "reduction": reached, "met": meets(reached, g.factor)})
        })
        .collect();
    let report = json!({
        "command": "compress", "model": cfg.model, "dataset": cfg.data.dataset, "adapter": Adapter::of(gpu), "seed": cfg.seed,
        "wall_seconds": state.wall_seconds, "baseline": b, "final": f,
        "baseline_val_accuracy": base.point.val_accuracy, "final_val_accuracy": fin.val_accuracy,
        "params_reduction": params_reduction, "flops_reduction": flops_reduction,
        "target": cfg.target.to_string(), "targets": targets, "budget": cfg.budget,
        "budget_confidence": cfg.budget_confidence, "round_factor": cfg.round_factor,
        "late_round_factor": cfg.late_round_factor, "late_after": cfg.late_after,
        "retry_round_factor": cfg.retry_round_factor, "recovery_margin": cfg.recovery_margin, "recovery_lr": cfg.recovery_lr,
        "evaluations": state.rounds.iter().map(|r| r.evaluations).sum::<usize>(), "target_met": state.stop_reason.as_deref().is_some_and(|s| s.starts_with("target")),
        "stop_reason": state.stop_reason, "search": cfg.search.mode, "schemes": cfg.schemes, "purify": cfg.purify.is_some(),
        "baseline_seconds": base.wall_seconds,
        "rounds": state.rounds.iter().map(round_json).collect::<Vec<_>>(),
        "layers": count(arch)?.layers,
    });
    io::write_json(&dir.file("report.json"), &report)?;
    io::atomic_write(&dir.file("report.md"), markdown(cfg, state, arch, params_reduction, flops_reduction)?.as_bytes())
}

fn round_json(r: &RoundRecord) -> serde_json::Value {
    json!({
        "round": r.round, "round_target": r.round_target, "accepted": r.accepted, "action": r.action,
        "best_quick_accuracy": r.best_quick_accuracy, "candidates": r.candidates.len(),
        "round_goals": r.round_goals, "round_factor": r.round_factor,
        "evaluations": r.evaluations, "evaluations_to_best": r.evaluations_to_best, "paired_val_drop": r.paired,
        "val_accuracy": r.point.val_accuracy, "test_accuracy": r.point.test_accuracy,
        "params": r.point.params, "flops": r.point.flops,
        "params_reduction": r.params_reduction, "flops_reduction": r.flops_reduction,
        "before_purification": r.before_purification, "purification": r.purification,
        "admm_residuals": r.admm.updates.iter().map(|u| json!({"update": u.update, "rho": u.rho, "residual": u.residual})).collect::<Vec<_>>(),
        "compacted_vs_masked_max_rel_diff": r.compacted_vs_masked, "wall_seconds": r.wall_seconds,
    })
}

fn markdown(cfg: &CompressConfig, state: &RunState, arch: &Architecture, pr: f64, fr: f64) -> Result<String> {
    let base = state.baseline.as_ref().map(|b| b.point).unwrap_or(super::state::Point { val_accuracy: 0.0, test_accuracy: 0.0, params: 0, flops: 0 });
    let fin = state.rounds.iter().rev().find(|r| r.accepted).map_or(base, |r| r.point);
    let mut s = format!("# autocompress: {} on {}\n\n", cfg.model, cfg.data.dataset);
    s += &format!(
        "Target {}, accuracy budget {} points, search {:?}, schemes {}, purification {}, distillation {}, seed {}.\n\n",
        cfg.target,
        cfg.budget,
        cfg.search.mode,
        cfg.schemes.iter().map(|s| s.name()).collect::<Vec<_>>().join("+"),
        if cfg.purify.is_some() { "on" } else { "off" },
        cfg.prune_train.distill.map_or("off".to_string(), |d| format!("α {} at T {}", d.alpha, d.temperature)),
        cfg.seed
    );
    let mut options = Vec::new();
    if let (Some(f), Some(after)) = (cfg.late_round_factor, cfg.late_after) {
        options.push(format!("round factor {f} from {after}× {} on", cfg.target.primary().metric.label()));
    }
    if let Some(f) = cfg.retry_round_factor {
        options.push(format!("round factor {f} after a rejected round"));
    }
    if cfg.recovery_margin > 0.0 {
        options.push(format!("recovery fine-tuning also within {} points above the budget", cfg.recovery_margin));
    }
    if let Some(lr) = cfg.recovery_lr {
        options.push(format!("recovery cycles at learning rate {lr}"));
    }
    if let Some(c) = cfg.budget_confidence {
        options.push(format!("a round is kept only if its paired validation drop is within the budget at {}% confidence", 100.0 * c));
    }
    if !options.is_empty() {
        s += &format!("Round factor {}; {}.\n\n", cfg.round_factor, options.join("; "));
    }
    s += &format!("**Result:** {}.\n\n", state.stop_reason.as_deref().unwrap_or("running"));
    s += "| | test accuracy | validation accuracy | params | FLOPs |\n|---|---|---|---|---|\n";
    s += &format!("| baseline | {:.2}% | {:.2}% | {} | {} |\n", 100.0 * base.test_accuracy, 100.0 * base.val_accuracy, base.params, base.flops);
    s += &format!(
        "| final | {:.2}% | {:.2}% | {} ({:.1}×) | {} ({:.1}×) |\n\n",
        100.0 * fin.test_accuracy,
        100.0 * fin.val_accuracy,
        fin.params,
        pr,
        fin.flops,
        fr
    );
    s += "## Rounds\n\n| round | target | accepted | params × | FLOPs × | val | test | paired val drop (± s.e.) | before purification (params) | fine-tuning epochs | candidates | evaluations to best | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in &state.rounds {
        let target = match r.round_goals.as_slice() {
            goals if goals.len() > 1 => goals.iter().map(|g| format!("{:.2}× {}", g.factor, g.metric.label())).collect::<Vec<_>>().join(", "),
            _ => format!("{:.2}×", r.round_target),
        };
        let paired = r.paired.map_or("–".to_string(), |p| format!("{:.2} ± {:.2} (−{} +{})", p.drop, p.standard_error, p.lost, p.gained));
        s += &format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2}% | {:.2}% | {} | {} | {} | {} | {} of {} | {:.0} |\n",
            r.round,
            target,
            if r.accepted { "yes" } else { "no" },
            r.params_reduction,
            r.flops_reduction,
            100.0 * r.point.val_accuracy,
            100.0 * r.point.test_accuracy,
            paired,
            r.before_purification.params,
            r.finetune.len(),
            r.candidates.len(),
            r.evaluations_to_best,
            r.evaluations,
            r.wall_seconds
        );
    }
    s += "\nActions (rates apply to each round's input model):\n\n";
    for r in &state.rounds {
        let a: Vec<String> = r.action.layers.iter().filter(|l| l.rate > 0.0).map(|l| format!("{} {} {:.3}", l.layer, l.scheme.name(), l.rate)).collect();
        s += &format!("- round {}: {}\n", r.round, a.join(", "));
    }
    s += &format!("\n## Final model, per layer\n\n```\n{}```\n", layer_table(&count(arch)?));
    s += "\nPlots: `accuracy_vs_reduction.png`, `kept_per_layer.png`, `search.png`. Every candidate is in `search.csv`.\n";
    Ok(s)
}
