//! `autocompress eval`: a saved model's test accuracy, loss and size, as one JSON line.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

use super::{load_model_and_data, open_gpu, DataArgs};
use autocompress::model::Network;
use autocompress::prune::count::count;
use autocompress::report::Adapter;
use autocompress::train;

#[derive(Args)]
pub struct EvalArgs {
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

pub fn run(a: EvalArgs, adapter: Option<&str>) -> Result<()> {
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
