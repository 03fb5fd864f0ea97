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

/// Writes report.json and report.md for the run's final model `arch`.
pub fn write(gpu: &Gpu, dir: &RunDir, cfg: &CompressConfig, state: &RunState, arch: &Architecture) -> Result<()> {
    let Some(base) = &state.baseline else { anyhow::bail!("no baseline in the run state") };
    let last = state.rounds.iter().rev().find(|r| r.accepted);
    let fin = last.map_or(base.point, |r| r.point);
    let snap = |p: &super::state::Point| Snapshot { test_accuracy: p.test_accuracy, params: p.params, flops: p.flops };
    let (b, f) = (snap(&base.point), snap(&fin));
    let params_reduction = b.params as f64 / f.params.max(1) as f64;
    let flops_reduction = b.flops as f64 / f.flops.max(1) as f64;
    let report = json!({
        "command": "compress", "model": cfg.model, "dataset": cfg.data.dataset, "adapter": Adapter::of(gpu), "seed": cfg.seed,
        "wall_seconds": state.wall_seconds, "baseline": b, "final": f,
        "baseline_val_accuracy": base.point.val_accuracy, "final_val_accuracy": fin.val_accuracy,
        "params_reduction": params_reduction, "flops_reduction": flops_reduction,
        "target": cfg.target.to_string(), "budget": cfg.budget, "target_met": state.stop_reason.as_deref().is_some_and(|s| s.starts_with("target")),
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
    s += "## Rounds\n\n| round | target | accepted | params × | FLOPs × | val | test | before purification (params) | fine-tuning epochs | candidates | seconds |\n|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in &state.rounds {
        s += &format!(
            "| {} | {:.2}× | {} | {:.1} | {:.1} | {:.2}% | {:.2}% | {} | {} | {} | {:.0} |\n",
            r.round,
            r.round_target,
            if r.accepted { "yes" } else { "no" },
            r.params_reduction,
            r.flops_reduction,
            100.0 * r.point.val_accuracy,
            100.0 * r.point.test_accuracy,
            r.before_purification.params,
            r.finetune.len(),
            r.candidates.len(),
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
