//! `autocompress prune`: one given action applied to a trained model by the pipeline a compress
//! round runs (ADMM, hard pruning, masked retraining, purification, compaction), with its report.
//!
//! The ADMM and purification flags override `AdmmConfig::default()` and
//! `PurifyConfig::default()`; their help states those defaults, and tests/cli.rs checks that it
//! does so correctly.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

use super::{load_model_and_data, open_gpu, snapshot, DataArgs};
use autocompress::io;
use autocompress::model::Network;
use autocompress::prune::action::Action;
use autocompress::prune::admm::AdmmConfig;
use autocompress::prune::count::count;
use autocompress::prune::pipeline::{self, Pruned};
use autocompress::prune::purify::PurifyConfig;
use autocompress::report::{layer_table, Adapter, Report, Snapshot};
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
    /// [default: 10]
    #[arg(long)]
    admm_updates: Option<usize>,
    /// [default: 1]
    #[arg(long)]
    admm_epochs_per_update: Option<usize>,
    /// [default: 0.0015]
    #[arg(long)]
    rho0: Option<f32>,
    /// [default: 1.9]
    #[arg(long)]
    rho_growth: Option<f32>,
    /// Keep the scaled dual U as is when ρ grows (default: rescale it by 1/rho-growth).
    #[arg(long)]
    no_dual_rescale: bool,
    /// Masked retraining epochs after hard pruning [default: 3]
    #[arg(long)]
    retrain_epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    /// [default: 0.9]
    #[arg(long)]
    eta: Option<f32>,
    /// [default: 0.1]
    #[arg(long)]
    sigma: Option<f32>,
    /// [default: 0.01]
    #[arg(long)]
    sigma_min: Option<f32>,
    /// Largest validation-accuracy drop purification step 1 may cause, in points [default: 0.05]
    #[arg(long)]
    purify_tolerance: Option<f64>,
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

impl PruneArgs {
    /// The defaults with the flags given applied.
    fn admm(&self) -> AdmmConfig {
        let d = AdmmConfig::default();
        AdmmConfig {
            rho0: self.rho0.unwrap_or(d.rho0),
            rho_growth: self.rho_growth.unwrap_or(d.rho_growth),
            updates: self.admm_updates.unwrap_or(d.updates),
            epochs_per_update: self.admm_epochs_per_update.unwrap_or(d.epochs_per_update),
            retrain_epochs: self.retrain_epochs.unwrap_or(d.retrain_epochs),
            rescale_dual: d.rescale_dual && !self.no_dual_rescale,
            ..d
        }
    }

    fn purify(&self) -> PurifyConfig {
        let d = PurifyConfig::default();
        PurifyConfig {
            eta: self.eta.unwrap_or(d.eta),
            sigma: self.sigma.unwrap_or(d.sigma),
            sigma_min: self.sigma_min.unwrap_or(d.sigma_min),
            tolerance: self.purify_tolerance.unwrap_or(d.tolerance),
            ..d
        }
    }
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
    let admm_cfg = a.admm();
    admm_cfg.validate()?;
    let pcfg = (!a.no_purify).then(|| a.purify());

    let gpu = open_gpu(adapter, progress)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create run directory {}", a.out.display()))?;
    io::write_json(&a.out.join("config.json"), &serde_json::json!({ "command": "prune", "model_file": a.model_file, "action": action,
        "dataset": data.name, "admm": admm_cfg, "purify": pcfg, "train": cfg }))?;
    let net = Network::new(&gpu, &arch, &weights, cfg.batch_size, cfg.weight_decay)?;
    let (_, base_acc) = train::evaluate(&gpu, &net, &data.test)?;
    let baseline = snapshot(&arch, base_acc)?;
    if progress {
        eprintln!("baseline: test {:.2}%, {} params, {} FLOPs", 100.0 * base_acc, baseline.params, baseline.flops);
    }

    let Pruned { admm, before_purification, before_purification_size: size, purification, arch: carch, weights: cw, net: cnet, compacted_vs_masked } =
        pipeline::run(&gpu, net, &data, &action, &admm_cfg, &cfg, pcfg.as_ref(), progress)?;
    let pruned_acc = before_purification.test;
    let before_purify = Snapshot { test_accuracy: pruned_acc, params: size.params, flops: size.flops };
    let (_, final_acc) = train::evaluate(&gpu, &cnet, &data.test)?;
    let fin = snapshot(&carch, final_acc)?;
    let (pr, fr) = Report::reductions(&baseline, &fin);
    io::save_model(&a.out.join("model.safetensors"), &carch, &cw, &data.meta(cfg.seed))?;
    io::write_json(&a.out.join("model.json"), &carch)?;
    let c = count(&carch)?;
    let report = serde_json::json!({
        "command": "prune", "model": arch.name, "dataset": data.name, "adapter": Adapter::of(&gpu), "seed": cfg.seed,
        "wall_seconds": t0.elapsed().as_secs_f64(), "baseline": baseline, "final": fin,
        "params_reduction": pr, "flops_reduction": fr, "action": action,
        "before_purification": before_purify, "admm": admm, "purification": purification,
        "compacted_vs_masked_max_rel_diff": compacted_vs_masked, "layers": c.layers,
    });
    io::write_json(&a.out.join("report.json"), &report)?;
    print!("{}", layer_table(&c));
    println!(
        "test accuracy {:.2}% → {:.2}% (before purification {:.2}%); params {} → {} ({:.1}×), FLOPs {} → {} ({:.1}×); compacted vs masked max rel diff {:.1e}; {:.0}s; run in {}",
        100.0 * base_acc, 100.0 * final_acc, 100.0 * pruned_acc, baseline.params, fin.params, pr, baseline.flops, fin.flops, fr,
        compacted_vs_masked, t0.elapsed().as_secs_f64(), a.out.display()
    );
    Ok(())
}
