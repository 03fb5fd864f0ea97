//! `autocompress compress`: its flags, and the run it starts or resumes.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

use autocompress::compress::config::{parse_factor, parse_schemes};
use autocompress::compress::state::{Extension, RunDir};
use autocompress::compress::{self, CompressConfig, DataConfig};
use autocompress::gpu::Gpu;
use autocompress::train::{Distill, DEFAULT_DISTILL};
use autocompress::search::{Mode, Target};

#[derive(Args)]
pub struct CompressArgs {
    /// A zoo model: digits-cnn (default), lenet5, vgg16, resnet18.
    #[arg(long)]
    model: Option<String>,
    /// Scales every hidden width of vgg16 and resnet18 (e.g. 0.25 for a CPU).
    #[arg(long, default_value_t = 1.0)]
    width_multiplier: f32,
    /// A model described in JSON (see the README), trained from scratch.
    #[arg(long, conflicts_with = "model")]
    model_json: Option<PathBuf>,
    /// Start from this trained dense model instead of training one.
    #[arg(long)]
    model_file: Option<PathBuf>,
    /// digits (default for digits-cnn), mnist (default for lenet5), fashion-mnist, cifar-10, folder.
    #[arg(long)]
    dataset: Option<String>,
    /// Data directory (default: $AUTOCOMPRESS_DATA/<dataset>, else datasets/<dataset>).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Fraction of the training files held out for validation (default 0.1; 0.25 on digits).
    #[arg(long)]
    val_fraction: Option<f32>,
    #[arg(long)]
    limit_train: Option<usize>,
    #[arg(long)]
    limit_test: Option<usize>,
    /// params:Nx, flops:Nx, or both (params:100x,flops:20x: both must be met) (default
    /// params:10x; params:8x for digits-cnn).
    #[arg(long)]
    target: Option<String>,
    /// Largest validation-accuracy loss from the baseline, in percentage points (default 0.5;
    /// 1.0 for digits-cnn, vgg16 and resnet18).
    #[arg(long, allow_negative_numbers = true)]
    budget: Option<f64>,
    /// Each round aims at this many times the current reduction (default 2; 2.3 for vgg16 and
    /// resnet18).
    #[arg(long, allow_negative_numbers = true)]
    round_factor: Option<f64>,
    /// Finer late rounds: this round factor once the first target metric's reduction reaches
    /// --late-after (e.g. --late-round-factor 1.3 --late-after 30x).
    #[arg(long, allow_negative_numbers = true)]
    late_round_factor: Option<f64>,
    #[arg(long)]
    late_after: Option<String>,
    /// After a rejected round, go on from the last accepted model with this smaller round
    /// factor (every later round too); a round rejected at it ends the run. With --resume, a
    /// finer one lets a run that a rejected round ended go on.
    #[arg(long, allow_negative_numbers = true)]
    retry_round_factor: Option<f64>,
    /// Keep a round only if its validation drop, compared with the baseline image by image, is
    /// within the budget at this one-sided confidence (e.g. 0.9); never looser than the plain rule.
    #[arg(long, allow_negative_numbers = true)]
    budget_confidence: Option<f64>,
    /// At most this many rounds (default 12). With --resume, a new limit for the run, which may
    /// continue a run that stopped at its limit.
    #[arg(long)]
    max_rounds: Option<usize>,
    /// filter,column (default), filter or column.
    #[arg(long, default_value = "filter,column")]
    schemes: String,
    /// guided (default), unguided or uniform.
    #[arg(long, default_value = "guided")]
    search: String,
    #[arg(long)]
    no_purify: bool,
    #[arg(long, default_value_t = 0.5)]
    first_layer_max_rate: f32,
    /// Simulated annealing: initial temperature (accuracy points).
    #[arg(long)]
    t0: Option<f64>,
    #[arg(long)]
    cooling: Option<f64>,
    #[arg(long)]
    t_stop: Option<f64>,
    #[arg(long)]
    max_iterations: Option<usize>,
    #[arg(long)]
    perturbation: Option<f32>,
    #[arg(long)]
    p_flip: Option<f32>,
    /// Masked SGD steps of each quick evaluation.
    #[arg(long)]
    quick_steps: Option<usize>,
    /// Validation images of the quick evaluation's fixed subset.
    #[arg(long)]
    quick_val_images: Option<usize>,
    /// Dense baseline training epochs (ignored with --model-file).
    #[arg(long)]
    baseline_epochs: Option<usize>,
    #[arg(long)]
    admm_updates: Option<usize>,
    #[arg(long)]
    admm_epochs_per_update: Option<usize>,
    /// Cap on the steps of one ADMM period or retraining epoch.
    #[arg(long)]
    admm_steps: Option<usize>,
    #[arg(long)]
    retrain_epochs: Option<usize>,
    /// Full epochs fine-tuning each round's compacted model.
    #[arg(long)]
    finetune_epochs: Option<usize>,
    /// Extra one-epoch fine-tuning cycles while a round is below the budget.
    #[arg(long)]
    recovery_epochs: Option<usize>,
    /// Recovery cycles also run while a round is within this many points above the budget.
    #[arg(long, allow_negative_numbers = true)]
    recovery_margin: Option<f64>,
    /// Peak learning rate of each recovery cycle (default: --lr, the fine-tuning's).
    #[arg(long, allow_negative_numbers = true)]
    recovery_lr: Option<f32>,
    #[arg(long)]
    rho0: Option<f32>,
    /// ρ's factor per Z-update.
    #[arg(long)]
    rho_growth: Option<f32>,
    /// Learning rate of ADMM, retraining and quick evaluation.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Weight of distillation from the dense baseline in every pruning-phase loss, in [0, 1];
    /// 0 turns it off (default 0.5 for lenet5, else 0).
    #[arg(long)]
    distill: Option<f32>,
    /// Softmax temperature of distillation (default 2).
    #[arg(long)]
    distill_temperature: Option<f32>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seed of the train/validation split (default: --seed). Give the baseline's seed when runs
    /// of other seeds start from one --model-file, so its validation images stay held out.
    #[arg(long)]
    split_seed: Option<u64>,
    /// Continue the interrupted run in --out from the last stage it saved (a round saves three).
    #[arg(long)]
    resume: bool,
    /// Start over in an --out that already holds a run.
    #[arg(long)]
    force: bool,
    #[arg(long, default_value = "runs/compress")]
    out: PathBuf,
}

fn default_dataset(model: &str) -> &'static str {
    match model {
        "lenet5" => "mnist",
        "vgg16" | "resnet18" => "cifar-10",
        _ => "digits",
    }
}

fn config(a: &CompressArgs) -> Result<CompressConfig> {
    let model = match (&a.model, &a.model_json) {
        (Some(m), _) => m.clone(),
        (None, Some(p)) => autocompress::model::Architecture::from_json_file(p)?.name,
        // a baseline file names its model, whose defaults then apply
        (None, None) => match &a.model_file {
            Some(p) => autocompress::io::load_model(p)?.0.name,
            None => "digits-cnn".into(),
        },
    };
    let dataset = a.dataset.clone().unwrap_or_else(|| default_dataset(&model).into());
    let data = DataConfig {
        val_fraction: a.val_fraction.unwrap_or(if dataset == "digits" { 0.25 } else { 0.1 }),
        dataset,
        dir: a.data.clone(),
        limit_train: a.limit_train,
        limit_test: a.limit_test,
    };
    let mut c = CompressConfig::defaults_for(&model, data);
    c.model_json = a.model_json.clone();
    c.width_multiplier = a.width_multiplier;
    c.model_file = a.model_file.clone();
    c.seed = a.seed;
    c.split_seed = a.split_seed;
    if let Some(t) = &a.target {
        c.target = Target::parse(t)?;
    }
    c.budget = a.budget.unwrap_or(c.budget);
    c.round_factor = a.round_factor.unwrap_or(c.round_factor);
    c.max_rounds = a.max_rounds.unwrap_or(c.max_rounds);
    c.late_round_factor = a.late_round_factor;
    c.late_after = a.late_after.as_deref().map(|s| parse_factor(s, "--late-after")).transpose()?;
    c.retry_round_factor = a.retry_round_factor;
    c.budget_confidence = a.budget_confidence;
    c.schemes = parse_schemes(&a.schemes)?;
    c.search.mode = Mode::parse(&a.search)?;
    if a.no_purify {
        c.purify = None;
    }
    c.first_layer_max_rate = a.first_layer_max_rate;
    let s = &mut c.search;
    s.t0 = a.t0.unwrap_or(s.t0);
    s.cooling = a.cooling.unwrap_or(s.cooling);
    s.t_stop = a.t_stop.unwrap_or(s.t_stop);
    s.max_iterations = a.max_iterations.unwrap_or(s.max_iterations);
    s.perturbation = a.perturbation.unwrap_or(s.perturbation);
    s.p_flip = a.p_flip.unwrap_or(s.p_flip);
    s.quick_retrain_steps = a.quick_steps.unwrap_or(s.quick_retrain_steps);
    s.quick_val_images = a.quick_val_images.unwrap_or(s.quick_val_images);
    c.baseline.epochs = a.baseline_epochs.unwrap_or(c.baseline.epochs);
    c.admm.updates = a.admm_updates.unwrap_or(c.admm.updates);
    c.admm.epochs_per_update = a.admm_epochs_per_update.unwrap_or(c.admm.epochs_per_update);
    c.admm.steps_per_epoch = a.admm_steps.or(c.admm.steps_per_epoch);
    c.admm.retrain_epochs = a.retrain_epochs.unwrap_or(c.admm.retrain_epochs);
    c.finetune_epochs = a.finetune_epochs.unwrap_or(c.finetune_epochs);
    c.recovery_epochs = a.recovery_epochs.unwrap_or(c.recovery_epochs);
    c.recovery_margin = a.recovery_margin.unwrap_or(c.recovery_margin);
    c.recovery_lr = a.recovery_lr.or(c.recovery_lr);
    c.admm.rho0 = a.rho0.unwrap_or(c.admm.rho0);
    c.admm.rho_growth = a.rho_growth.unwrap_or(c.admm.rho_growth);
    c.prune_train.lr = a.lr.unwrap_or(c.prune_train.lr);
    // the model's default (off unless it distils), with either flag overriding its part
    let model_default = c.prune_train.distill;
    let d = Distill {
        alpha: a.distill.unwrap_or(model_default.map_or(0.0, |d| d.alpha)),
        temperature: a.distill_temperature.unwrap_or(model_default.unwrap_or(DEFAULT_DISTILL).temperature),
    };
    d.validate()?;
    if d.alpha == 0.0 && a.distill_temperature.is_some() {
        bail!("--distill-temperature needs distillation on: give --distill with a weight above 0");
    }
    c.prune_train.distill = (d.alpha > 0.0).then_some(d);
    if let Some(b) = a.batch_size {
        c.prune_train.batch_size = b;
        c.baseline.batch_size = b;
    }
    c.validate()?;
    Ok(c)
}

pub fn run(a: CompressArgs, gpu: impl FnOnce() -> Result<Gpu>, progress: bool) -> Result<()> {
    if a.resume && a.force {
        bail!("--resume and --force exclude each other: --resume continues the run in --out, --force starts it over");
    }
    // everything is checked before the run directory is touched
    let (dir, cfg, state, start) = if a.resume {
        let (dir, cfg, state) = RunDir::resume(&a.out, a.model.as_deref(), a.dataset.as_deref(), Extension { max_rounds: a.max_rounds, retry_round_factor: a.retry_round_factor })?;
        let start = compress::prepare(&cfg)?;
        (dir, cfg, state, start)
    } else {
        let cfg = config(&a)?;
        RunDir::check_free(&a.out, a.force)?;
        let start = compress::prepare(&cfg)?;
        let (dir, state) = RunDir::create(&a.out, &cfg, a.force)?;
        (dir, cfg, state, start)
    };
    let gpu = gpu()?;
    let state = compress::run(&gpu, &dir, &cfg, state, start, progress)?;
    let report = std::fs::read_to_string(dir.file("report.md")).unwrap_or_default();
    println!("{report}");
    println!("{}; {:.0}s; run in {}", state.stop_reason.unwrap_or_default(), state.wall_seconds, a.out.display());
    Ok(())
}
