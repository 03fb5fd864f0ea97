//! The autocompress command line (DESIGN.md, "The command-line contract").

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

use autocompress::compress::{self, DataConfig};
use autocompress::data;
use autocompress::gpu::Gpu;
use autocompress::model::{zoo, Architecture, Network, Weights};
use autocompress::prune::action::Action;
use autocompress::prune::admm::{self, AdmmConfig};
use autocompress::prune::compact::compact;
use autocompress::prune::count::count;
use autocompress::prune::purify::{self, PurifyConfig};
use autocompress::report::{layer_table, Adapter, Report, Snapshot};
use autocompress::train::{self, Distill, Schedule, TrainConfig, DEFAULT_DISTILL};
use autocompress::io;

mod cli_bench;
mod cli_compress;
mod cli_inspect;

#[derive(Parser)]
#[command(name = "autocompress", version, about = "Automatic structured pruning of CNNs with custom WGSL kernels")]
struct Cli {
    /// Use the adapter whose name contains this text (also AUTOCOMPRESS_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// No progress bars or per-epoch lines.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a dense model and save it with its report.
    Train(TrainArgs),
    /// Test accuracy of a saved model.
    Eval(EvalArgs),
    /// Convolution forward GFLOP/s per shape, and training images/s.
    Bench(cli_bench::BenchArgs),
    /// Per-layer table of a model file.
    Inspect { file: PathBuf },
    /// One markdown table comparing finished compress runs (the ablation table of SPEC.md §7).
    Compare { runs: Vec<PathBuf> },
    /// ADMM-prune a trained model with a given action, purify, compact (SPEC.md §3, §4, §6).
    Prune(PruneArgs),
    /// The whole AutoCompress pipeline: baseline, then rounds of search, ADMM, purification and
    /// compaction until the target is met (SPEC.md §2). With no options: digits-cnn on digits.
    Compress(cli_compress::CompressArgs),
}

#[derive(Args)]
struct PruneArgs {
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

#[derive(Args, Clone)]
struct DataArgs {
    /// digits, mnist, fashion-mnist, cifar-10 or folder.
    #[arg(long, default_value = "digits")]
    dataset: String,
    /// Data directory (default: $AUTOCOMPRESS_DATA/<dataset>, else datasets/<dataset>).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Fraction of the training files held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f32,
    /// Use only this many training images (fast experiments).
    #[arg(long)]
    limit_train: Option<usize>,
    /// Use only this many test images.
    #[arg(long)]
    limit_test: Option<usize>,
}

#[derive(Args)]
struct TrainArgs {
    /// A zoo model: digits-cnn, lenet5, vgg16, resnet18.
    #[arg(long, default_value = "digits-cnn")]
    model: String,
    /// Scales every hidden width of vgg16 and resnet18 (e.g. 0.25 for a CPU).
    #[arg(long, default_value_t = 1.0)]
    width_multiplier: f32,
    /// A model described in JSON (overrides --model).
    #[arg(long)]
    model_json: Option<PathBuf>,
    /// Continue training a saved model (dense or compacted); its zero weights stay zero.
    #[arg(long, conflicts_with = "model_json")]
    model_file: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// cosine (default), constant, step (×0.1 every 10 epochs) or step:EVERY:GAMMA.
    #[arg(long)]
    schedule: Option<String>,
    /// Linear warm-up epochs.
    #[arg(long)]
    warmup: Option<f32>,
    /// Random crops (4-pixel padding) and horizontal flips of training images (default on for cifar-10).
    #[arg(long)]
    augment: Option<bool>,
    /// A trained model (same inputs and classes) to distil from: its logits of the training
    /// images become soft targets.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Weight of the distillation term in the loss, in [0, 1] (default 0.5; needs --teacher).
    #[arg(long)]
    distill: Option<f32>,
    /// Softmax temperature of distillation (default 2; needs --teacher).
    #[arg(long)]
    distill_temperature: Option<f32>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run directory (model.safetensors, report.json, …).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model_file: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Seed of the data split (default: the one the model was trained with, so held-out splits
    /// such as digits' test set are the same images).
    #[arg(long)]
    seed: Option<u64>,
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let progress = !cli.quiet;
    match cli.cmd {
        Cmd::Train(a) => cmd_train(a, cli.adapter.as_deref(), progress),
        Cmd::Eval(a) => cmd_eval(a, cli.adapter.as_deref()),
        Cmd::Bench(a) => cli_bench::cmd_bench(a, || open_gpu(cli.adapter.as_deref(), false)),
        Cmd::Inspect { file } => cli_inspect::cmd_inspect(&file),
        Cmd::Compare { runs } => cli_compress::cmd_compare(&runs),
        Cmd::Prune(a) => cmd_prune(a, cli.adapter.as_deref(), progress),
        Cmd::Compress(a) => cli_compress::cmd_compress(a, || open_gpu(cli.adapter.as_deref(), progress), progress),
    }
}

fn open_gpu(adapter: Option<&str>, progress: bool) -> Result<Gpu> {
    let gpu = Gpu::new(adapter)?;
    if progress {
        eprintln!("adapter: {}", gpu.describe());
    }
    Ok(gpu)
}

fn load_data(a: &DataArgs, seed: u64) -> Result<data::Data> {
    let d = DataConfig { dataset: a.dataset.clone(), dir: a.data.clone(), val_fraction: a.val_fraction, limit_train: a.limit_train, limit_test: a.limit_test };
    compress::load_data(&d, seed)
}

/// `cosine`, `constant`, `step` (×0.1 every 10 epochs) or `step:EVERY:GAMMA`.
fn parse_schedule(s: &str) -> Result<Schedule> {
    Ok(match s {
        "cosine" => Schedule::Cosine,
        "constant" => Schedule::Constant,
        "step" => Schedule::Step { every: 10, gamma: 0.1 },
        _ if s.starts_with("step:") => {
            let bad = || anyhow::anyhow!("--schedule '{s}': write step:EVERY:GAMMA, e.g. step:30:0.1 (EVERY ≥ 1 epochs, 0 < GAMMA ≤ 1)");
            let (every, gamma) = s["step:".len()..].split_once(':').ok_or_else(bad)?;
            let (every, gamma): (usize, f32) = (every.parse().map_err(|_| bad())?, gamma.parse().map_err(|_| bad())?);
            if every == 0 || !(gamma > 0.0 && gamma <= 1.0) {
                return Err(bad());
            }
            Schedule::Step { every, gamma }
        }
        other => bail!("unknown --schedule '{other}': choose cosine, constant, step or step:EVERY:GAMMA"),
    })
}

fn snapshot(arch: &Architecture, test_accuracy: f64) -> Result<Snapshot> {
    let c = count(arch)?;
    Ok(Snapshot { test_accuracy, params: c.params, flops: c.flops })
}

fn cmd_train(a: TrainArgs, adapter: Option<&str>, progress: bool) -> Result<()> {
    let t0 = Instant::now();
    let model_name = a.model_json.as_ref().or(a.model_file.as_ref()).map_or(a.model.clone(), |p| p.display().to_string());
    // a model file or JSON names its model, whose defaults then apply
    let defaults_name = match (&a.model_json, &a.model_file) {
        (Some(p), _) => Architecture::from_json_file(p)?.name,
        (None, Some(p)) => io::load_model(p)?.0.name,
        (None, None) => a.model.clone(),
    };
    let mut cfg = TrainConfig::defaults_for(&defaults_name);
    cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
    cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.momentum = a.momentum.unwrap_or(cfg.momentum);
    cfg.weight_decay = a.weight_decay.unwrap_or(cfg.weight_decay);
    cfg.warmup_epochs = a.warmup.unwrap_or(cfg.warmup_epochs);
    cfg.augment = a.augment.unwrap_or(a.data.dataset == "cifar-10");
    if let Some(s) = &a.schedule {
        cfg.schedule = parse_schedule(s)?;
    }
    cfg.seed = a.seed;
    if a.teacher.is_none() && (a.distill.is_some() || a.distill_temperature.is_some()) {
        bail!("--distill and --distill-temperature need --teacher: the model whose logits are distilled");
    }
    if a.teacher.is_some() {
        cfg.distill = Some(Distill { alpha: a.distill.unwrap_or(DEFAULT_DISTILL.alpha), temperature: a.distill_temperature.unwrap_or(DEFAULT_DISTILL.temperature) });
    }
    cfg.validate()?;

    let mut data = load_data(&a.data, a.seed)?;
    let check = |arch: &Architecture, p: &Path| compress::check_fits(arch, &data, &p.display().to_string());
    let (arch, init) = match (&a.model_json, &a.model_file) {
        (Some(p), _) => {
            let arch = Architecture::from_json_file(p)?;
            check(&arch, p)?;
            (arch, None)
        }
        (None, Some(p)) => {
            let (arch, w, _) = io::load_model(p)?;
            check(&arch, p)?;
            (arch, Some(w))
        }
        (None, None) => (zoo::build_scaled(&a.model, a.width_multiplier, data.shape, data.classes)?, None),
    };
    let gpu = open_gpu(adapter, progress)?;
    if let Some(p) = &a.teacher {
        let (tarch, tw, _) = io::load_model(p)?;
        check(&tarch, p)?;
        data.train.teacher = autocompress::train::logits(&gpu, &Network::inference(&gpu, &tarch, &tw, cfg.batch_size)?, &data.train)?;
    }
    if progress {
        eprintln!(
            "training {} on {} ({} train / {} val / {} test images), {} epochs, batch {}, lr {}",
            arch.name,
            data.name,
            data.train.len(),
            data.val.len(),
            data.test.len(),
            cfg.epochs,
            cfg.batch_size,
            cfg.lr
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create run directory {}", a.out.display()))?;
    io::write_json(&a.out.join("config.json"), &serde_json::json!({ "command": "train", "model": model_name, "dataset": data.name, "train": cfg }))?;
    io::write_json(&a.out.join("model.json"), &arch)?;

    let mut net = Network::new(&gpu, &arch, init.as_ref().unwrap_or(&Weights::init(&arch, a.seed)?), cfg.batch_size, cfg.weight_decay)?;
    if let Some(w) = &init {
        // a pruned model keeps its structure: what is zero now stays zero
        autocompress::prune::purify::apply_masks(&gpu, &mut net, w)?;
    }
    let model_path = a.out.join("model.safetensors");
    // Each epoch's model replaces the last one atomically, so an interrupted or diverged run
    // leaves the last good model on disk.
    let logs = train::train(&gpu, &net, &data, &cfg, progress, |_| {
        let meta = [("dataset", data.name.clone()), ("seed", a.seed.to_string())];
        io::save_model(&model_path, &arch, &net.weights(&gpu)?, &meta)
    })?;
    let (_, test_acc) = train::evaluate(&gpu, &net, &data.test)?;
    let snap = snapshot(&arch, test_acc)?;
    let report = Report {
        command: "train".into(),
        model: model_name,
        dataset: data.name.clone(),
        adapter: Adapter::of(&gpu),
        seed: a.seed,
        wall_seconds: t0.elapsed().as_secs_f64(),
        baseline: snap,
        final_: snap,
        params_reduction: 1.0,
        flops_reduction: 1.0,
        val_accuracy: logs.last().map(|l| l.val_accuracy),
        epochs: logs,
    };
    io::write_json(&a.out.join("report.json"), &report)?;
    println!(
        "test accuracy {:.2}% ({} params, {} FLOPs) in {:.0}s; model and report in {}",
        100.0 * test_acc,
        snap.params,
        snap.flops,
        report.wall_seconds,
        a.out.display()
    );
    Ok(())
}

fn cmd_eval(a: EvalArgs, adapter: Option<&str>) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1, found 0");
    }
    let (arch, weights, data) = load_model_and_data(&a.model_file, &a.data, a.seed)?;
    let gpu = open_gpu(adapter, false)?;
    let net = Network::inference(&gpu, &arch, &weights, a.batch_size)?;
    let (loss, acc) = train::evaluate(&gpu, &net, &data.test)?;
    let c = count(&arch)?;
    println!(
        "{}",
        serde_json::json!({ "model_file": a.model_file, "dataset": data.name, "test_images": data.test.len(),
            "test_accuracy": acc, "test_loss": loss, "params": c.params, "flops": c.flops, "adapter": Adapter::of(&gpu) })
    );
    Ok(())
}

/// A saved model and its data set, split with the model's training seed unless told otherwise.
fn load_model_and_data(file: &Path, d: &DataArgs, seed: Option<u64>) -> Result<(Architecture, Weights, data::Data)> {
    let (arch, weights, meta) = io::load_model(file)?;
    let seed = seed.or_else(|| meta.get("seed").and_then(|s| s.parse().ok())).unwrap_or(1);
    let data = load_data(d, seed)?;
    compress::check_fits(&arch, &data, &file.display().to_string())?;
    Ok((arch, weights, data))
}

fn cmd_prune(a: PruneArgs, adapter: Option<&str>, progress: bool) -> Result<()> {
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
