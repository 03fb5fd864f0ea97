//! `autocompress prune`: one given action applied to a trained model (ADMM, hard pruning, masked
//! retraining, purification, compaction), with its report.

use anyhow::{ensure, Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

use super::{load_model_and_data, open_gpu, snapshot, DataArgs};
use autocompress::io;
use autocompress::model::Network;
use autocompress::prune::action::Action;
use autocompress::prune::admm::{self, AdmmConfig};
use autocompress::prune::compact::compact;
use autocompress::prune::count::count;
use autocompress::prune::purify::{self, PurifyConfig};
use autocompress::report::{layer_table, Adapter, Report};
use autocompress::train::{self, TrainConfig};

#[derive(Args)]
pub struct PruneArgs {
    #[arg(long)]
    model_file: PathBuf,
    /// JSON: {"layers": [{"layer": "conv2", "scheme": "filter"|"column", "rate": 0.75}, …]}
    #[arg(long)]
    action: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 10)]
    admm_updates: usize,
    #[arg(long, default_value_t = 1)]
    admm_epochs_per_update: usize,
    #[arg(long, default_value_t = 1.5e-3)]
    rho0: f32,
    #[arg(long, default_value_t = 1.9)]
    rho_growth: f32,
    /// Keep the scaled dual U as is when ρ grows (default: rescale it by 1/rho-growth).
    #[arg(long)]
    no_dual_rescale: bool,
    /// Masked retraining epochs after hard pruning.
    #[arg(long, default_value_t = 3)]
    retrain_epochs: usize,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long, default_value_t = 0.9)]
    eta: f32,
    #[arg(long, default_value_t = 0.1)]
    sigma: f32,
    #[arg(long, default_value_t = 0.01)]
    sigma_min: f32,
    /// Largest validation-accuracy drop purification step 1 may cause, in points.
    #[arg(long, default_value_t = 0.05)]
    purify_tolerance: f64,
    #[arg(long)]
    no_purify: bool,
    #[arg(long, default_value_t = 0.5)]
    first_layer_max_rate: f32,
    /// Seed of the data split and order (default: the model's training seed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value = "runs/prune")]
    out: PathBuf,
}

pub fn run(a: PruneArgs, adapter: Option<&str>, progress: bool) -> Result<()> {
    let t0 = Instant::now();
    let action = Action::from_json_file(&a.action)?;
    let (arch, weights, data) = load_model_and_data(&a.model_file, &a.data, a.seed)?;
    action.validate(&arch, a.first_layer_max_rate).with_context(|| format!("action {}", a.action.display()))?;
    let mut cfg = TrainConfig::defaults_for(&arch.name);
    cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.warmup_epochs = 0.0;
    cfg.seed = a.seed.unwrap_or(1);
    cfg.validate()?;
    let admm_cfg = AdmmConfig {
        rho0: a.rho0,
        rho_growth: a.rho_growth,
        updates: a.admm_updates,
        epochs_per_update: a.admm_epochs_per_update,
        retrain_epochs: a.retrain_epochs,
        steps_per_epoch: None,
        rescale_dual: !a.no_dual_rescale,
    };
    ensure!(a.admm_epochs_per_update > 0, "--admm-epochs-per-update must be at least 1");
    ensure!(a.rho0.is_finite() && a.rho0 >= 0.0 && a.rho_growth.is_finite() && a.rho_growth >= 1.0, "--rho0 must be ≥ 0 and --rho-growth ≥ 1");
    let pcfg = PurifyConfig { eta: a.eta, sigma: a.sigma, sigma_min: a.sigma_min, tolerance: a.purify_tolerance, max_tries: 4 };

    let gpu = open_gpu(adapter, progress)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create run directory {}", a.out.display()))?;
    io::write_json(&a.out.join("config.json"), &serde_json::json!({ "command": "prune", "model_file": a.model_file, "action": action,
        "dataset": data.name, "admm": admm_cfg, "purify": if a.no_purify { None } else { Some(&pcfg) }, "train": cfg }))?;
    let mut net = Network::new(&gpu, &arch, &weights, cfg.batch_size, cfg.weight_decay)?;
    let (_, base_acc) = train::evaluate(&gpu, &net, &data.test)?;
    let baseline = snapshot(&arch, base_acc)?;
    if progress {
        eprintln!("baseline: test {:.2}%, {} params, {} FLOPs", 100.0 * base_acc, baseline.params, baseline.flops);
    }

    let admm_log = admm::prune(&gpu, &mut net, &data, &action, &admm_cfg, &cfg, progress)?;
    let pruned_w = net.weights(&gpu)?;
    let (_, pruned_acc) = train::evaluate(&gpu, &net, &data.test)?;
    let (parch, _, _) = compact(&arch, &pruned_w)?;
    let before_purify = snapshot(&parch, pruned_acc)?;
    let purify_log = if a.no_purify { None } else { Some(purify::purify(&gpu, &mut net, &data, &pcfg, progress)?) };
    let masked_w = net.weights(&gpu)?;
    let (carch, cw, _) = compact(&arch, &masked_w)?;

    // The compacted model must compute what the masked one does (SPEC.md §6).
    let cnet = Network::inference(&gpu, &carch, &cw, cfg.batch_size)?;
    let max_rel_diff = autocompress::compress::compare_outputs(&gpu, &net, &cnet, &data.test)?;
    let (_, final_acc) = train::evaluate(&gpu, &cnet, &data.test)?;
    let fin = snapshot(&carch, final_acc)?;
    let (pr, fr) = Report::reductions(&baseline, &fin);
    io::save_model(&a.out.join("model.safetensors"), &carch, &cw, &[("dataset", data.name.clone()), ("seed", cfg.seed.to_string())])?;
    io::write_json(&a.out.join("model.json"), &carch)?;
    let c = count(&carch)?;
    let report = serde_json::json!({
        "command": "prune", "model": arch.name, "dataset": data.name, "adapter": Adapter::of(&gpu), "seed": cfg.seed,
        "wall_seconds": t0.elapsed().as_secs_f64(), "baseline": baseline, "final": fin,
        "params_reduction": pr, "flops_reduction": fr, "action": action,
        "before_purification": before_purify, "admm": admm_log, "purification": purify_log,
        "compacted_vs_masked_max_rel_diff": max_rel_diff, "layers": c.layers,
    });
    io::write_json(&a.out.join("report.json"), &report)?;
    print!("{}", layer_table(&c));
    println!(
        "test accuracy {:.2}% → {:.2}% (before purification {:.2}%); params {} → {} ({:.1}×), FLOPs {} → {} ({:.1}×); compacted vs masked max rel diff {:.1e}; {:.0}s; run in {}",
        100.0 * base_acc, 100.0 * final_acc, 100.0 * pruned_acc, baseline.params, fin.params, pr, baseline.flops, fin.flops, fr,
        max_rel_diff, t0.elapsed().as_secs_f64(), a.out.display()
    );
    Ok(())
}
