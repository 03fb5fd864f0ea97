//! `autocompress train`: a dense model (a zoo model, a JSON model, or a saved model trained
//! further) and its report.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{load_data, open_gpu, snapshot, DataArgs};
use autocompress::compress;
use autocompress::io;
use autocompress::model::{zoo, Architecture, Network, Weights};
use autocompress::report::{Adapter, Report};
use autocompress::train::checkpoint::{self, Checkpoint};
use autocompress::train::{self, Distill, Schedule, TrainConfig, DEFAULT_DISTILL};

#[derive(Args)]
pub struct TrainArgs {
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
    /// Continue the interrupted run in --out from its last complete epoch (same arguments).
    #[arg(long)]
    resume: bool,
    /// Start over although --out holds an interrupted run.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
}

/// Written after every epoch and removed when the run ends: its presence marks an unfinished run.
const CHECKPOINT: &str = "checkpoint.safetensors";

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

pub fn run(a: TrainArgs, adapter: Option<&str>, progress: bool) -> Result<()> {
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

    // a model file that continues training keeps the normalisation it states
    let mut data = match &a.model_file {
        Some(p) => {
            let (arch, _, meta) = io::load_model(p)?;
            autocompress::compress::load_data_for(&super::data_config(&a.data), a.seed, &meta, arch.input[0], p)?
        }
        None => load_data(&a.data, a.seed)?,
    };
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
    let checkpoint_path = a.out.join(CHECKPOINT);
    let resume = match (a.resume, checkpoint_path.exists()) {
        (true, true) => {
            let c = Checkpoint::load(&checkpoint_path)?;
            c.check_matches(&arch, &cfg)?;
            Some(c)
        }
        (true, false) => bail!("--resume: {} holds no interrupted training run (no {CHECKPOINT}: it finished or never started)", a.out.display()),
        (false, true) if !a.force => {
            let done = Checkpoint::load(&checkpoint_path).map(|c| c.logs.len().to_string()).unwrap_or_else(|_| "some".into());
            bail!("{} holds an interrupted training run ({done} epochs done); continue it with --resume, or start over with --force", a.out.display())
        }
        (false, _) => None,
    };
    let gpu = open_gpu(adapter, progress)?;
    if let Some(p) = &a.teacher {
        let (tarch, tw, _) = io::load_model(p)?;
        check(&tarch, p)?;
        data.train.teacher = autocompress::train::logits(&gpu, &Network::inference(&gpu, &tarch, &tw, cfg.batch_size)?, &data.train)?;
    }
    if let (true, Some(c)) = (progress, &resume) {
        eprintln!("resuming after epoch {} of {}", c.logs.len(), cfg.epochs);
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
    let (done, earlier) = match &resume {
        Some(c) => {
            c.restore(&gpu, &net)?;
            (c.logs.clone(), c.seconds())
        }
        None => (Vec::new(), 0.0),
    };
    let model_path = a.out.join("model.safetensors");
    // Each epoch's model and checkpoint replace the last ones atomically, so an interrupted or
    // diverged run leaves the last good model on disk and continues with --resume.
    let meta = data.meta(a.seed);
    let logs = train::train_from(&gpu, &net, &data, &cfg, done, progress, |logs| {
        io::save_model(&model_path, &arch, &net.weights(&gpu)?, &meta)?;
        checkpoint::save(&checkpoint_path, &gpu, &net, &cfg, logs, &meta)
    })?;
    std::fs::remove_file(&checkpoint_path).with_context(|| format!("cannot remove {}", checkpoint_path.display()))?;
    let (_, test_acc) = train::evaluate(&gpu, &net, &data.test)?;
    let snap = snapshot(&arch, test_acc)?;
    let report = Report {
        command: "train".into(),
        model: model_name,
        dataset: data.name.clone(),
        adapter: Adapter::of(&gpu),
        seed: a.seed,
        wall_seconds: earlier + t0.elapsed().as_secs_f64(),
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
