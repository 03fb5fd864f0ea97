//! The commands and what they share: the global flags, the data flags, the adapter, and a saved
//! model with its data set. One file per command.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

use autocompress::compress::{check_fits, DataConfig};
use autocompress::data::Data;
use autocompress::gpu::Gpu;
use autocompress::io;
use autocompress::model::{Architecture, Weights};
use autocompress::prune::count::count;
use autocompress::report::Snapshot;

pub mod bench;
pub mod compare;
pub mod compress;
pub mod eval;
pub mod inspect;
pub mod interchange;
pub mod prune;
pub mod train;

#[derive(Parser)]
#[command(name = "autocompress", version, about = "Automatic structured pruning of CNNs with custom WGSL kernels")]
pub struct Cli {
    /// Use the adapter whose name contains this text (also AUTOCOMPRESS_ADAPTER).
    #[arg(long, global = true)]
    pub adapter: Option<String>,
    /// No progress bars or per-epoch lines.
    #[arg(long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

// Parsed once per process, so the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Cmd {
    /// Train a dense model and save it with its report.
    Train(train::TrainArgs),
    /// Test accuracy of a saved model.
    Eval(eval::EvalArgs),
    /// Convolution forward GFLOP/s per shape, and training images/s.
    Bench(bench::BenchArgs),
    /// Per-layer table of a model file.
    Inspect { file: PathBuf },
    /// One markdown table comparing finished compress runs (the ablation table of SPEC.md §7).
    Compare {
        runs: Vec<PathBuf>,
        /// A peer's accuracy-versus-params curve (CSV: params_reduction,test_change) to hold
        /// every accepted round against
        #[arg(long)]
        peer: Option<PathBuf>,
        /// Draw the runs' test change against params reduction (and the peer's) into this PNG
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// ADMM-prune a trained model with a given action, purify, compact (SPEC.md §3, §4, §6).
    Prune(prune::PruneArgs),
    /// The whole AutoCompress pipeline: baseline, then rounds of search, ADMM, purification and
    /// compaction until the target is met (SPEC.md §2). With no options: digits-cnn on digits.
    Compress(compress::CompressArgs),
    /// Convert an ONNX model into a model file once (.onnx is also read wherever a model file is).
    Import(interchange::ImportArgs),
    /// Write a model (compacted or not) as standard ONNX that onnxruntime and tract run.
    Export(interchange::ExportArgs),
}

/// The data flags of `train`, `eval` and `prune` (`compress` has its own defaults).
#[derive(Args, Clone)]
pub struct DataArgs {
    /// digits, mnist, fashion-mnist, cifar-10 or folder.
    #[arg(long, default_value = "digits")]
    pub dataset: String,
    /// Data directory (default: $AUTOCOMPRESS_DATA/<dataset>, else datasets/<dataset>).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Fraction of the training files held out for validation.
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f32,
    /// Use only this many training images (fast experiments).
    #[arg(long)]
    pub limit_train: Option<usize>,
    /// Use only this many test images.
    #[arg(long)]
    pub limit_test: Option<usize>,
}

/// The adapter `--adapter` names (else the best one), announced unless quiet.
pub fn open_gpu(adapter: Option<&str>, progress: bool) -> Result<Gpu> {
    let gpu = Gpu::new(adapter)?;
    if progress {
        eprintln!("adapter: {}", gpu.describe());
    }
    Ok(gpu)
}

pub fn data_config(a: &DataArgs) -> DataConfig {
    DataConfig { dataset: a.dataset.clone(), dir: a.data.clone(), val_fraction: a.val_fraction, limit_train: a.limit_train, limit_test: a.limit_test }
}

pub fn load_data(a: &DataArgs, seed: u64) -> Result<Data> {
    autocompress::compress::load_data(&data_config(a), seed)
}

/// A saved model and its data set, split with the model's training seed unless told otherwise.
pub fn load_model_and_data(file: &Path, d: &DataArgs, seed: Option<u64>) -> Result<(Architecture, Weights, Data)> {
    let (arch, weights, meta) = io::load_model(file)?;
    let seed = seed.or_else(|| meta.get("seed").and_then(|s| s.parse().ok())).unwrap_or(1);
    // the input normalisation the model file states, else the data set's (said on stderr)
    let data = autocompress::compress::load_data_for(&data_config(d), seed, &meta, arch.input[0], file)?;
    check_fits(&arch, &data, &file.display().to_string())?;
    Ok((arch, weights, data))
}

/// A model's test accuracy with its size.
pub fn snapshot(arch: &Architecture, test_accuracy: f64) -> Result<Snapshot> {
    let c = count(arch)?;
    Ok(Snapshot { test_accuracy, params: c.params, flops: c.flops })
}
