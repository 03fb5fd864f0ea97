//! `autocompress import` and `autocompress export`: ONNX in and out (src/onnx/).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

use autocompress::data::Norm;
use autocompress::{io, onnx};
use autocompress::prune::count::count;

#[derive(Args)]
pub struct ImportArgs {
    /// The ONNX model (opset 11 or newer).
    pub file: PathBuf,
    /// The model file to write (safetensors, as every command reads).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub norm: NormArgs,
}

/// The input normalisation a model expects, where the model file does not say.
#[derive(Args, Clone, Default)]
pub struct NormArgs {
    /// Per-channel mean of the input (pixels in 0..1), e.g. 0.485,0.456,0.406.
    #[arg(long, requires = "input_std")]
    pub input_mean: Option<String>,
    /// Per-channel standard deviation of the input, e.g. 0.229,0.224,0.225.
    #[arg(long, requires = "input_mean")]
    pub input_std: Option<String>,
}

impl NormArgs {
    pub fn parse(&self, channels: usize) -> Result<Option<Norm>> {
        match (&self.input_mean, &self.input_std) {
            (Some(m), Some(s)) => Ok(Some(Norm::parse(m, s, channels)?)),
            (None, None) => Ok(None),
            _ => bail!("--input-mean and --input-std go together"),
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// The model file (safetensors or ONNX).
    pub model: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Fold each batch norm into the convolution or linear layer before it.
    #[arg(long)]
    pub fold_bn: bool,
    /// Write column-pruned layers as dense weights with zeros (the file does not shrink)
    /// instead of the gather graph that keeps their FLOPs reduction.
    #[arg(long)]
    pub dense_columns: bool,
    #[command(flatten)]
    pub norm: NormArgs,
}

pub fn cmd_import(a: &ImportArgs) -> Result<()> {
    let m = onnx::import::read(&a.file)?;
    let c = m.arch.input[0];
    let norm = match a.norm.parse(c)? {
        Some(n) => Some(n),
        None => m.norm,
    };
    let mut meta: Vec<(String, String)> = m.meta.clone().into_iter().collect();
    meta.push(("imported_from".into(), a.file.display().to_string()));
    meta.extend(norm.iter().flat_map(Norm::meta).map(|(k, v)| (k.to_string(), v)));
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    io::save_model(&a.out, &m.arch, &m.weights, &meta)?;
    let n = count(&m.arch)?;
    println!(
        "imported {} ({} layers with parameters, input {:?}, {} classes): {} params, {} FLOPs → {}",
        a.file.display(),
        n.layers.len(),
        m.arch.input,
        m.arch.classes,
        n.params,
        n.flops,
        a.out.display()
    );
    match &norm {
        Some(n) => println!("input normalisation: mean {:?}, std {:?}", n.mean, n.std),
        None => println!("{} states no input normalisation: eval and compress will compute it from the data set's training images; give --input-mean and --input-std if the model expects other values", a.file.display()),
    }
    Ok(())
}

pub fn cmd_export(a: &ExportArgs) -> Result<()> {
    let (arch, w, meta) = io::load_model(&a.model)?;
    let c = arch.input[0];
    let norm = match a.norm.parse(c)? {
        Some(n) => Some(n),
        None => Norm::from_meta(&meta, c).with_context(|| format!("model file {}", a.model.display()))?,
    };
    let opts = onnx::export::Options { fold_bn: a.fold_bn, dense_columns: a.dense_columns };
    let model = onnx::export::to_model(&arch, &w, norm.as_ref(), opts)?;
    let bytes = prost::Message::encode_to_vec(&model);
    io::atomic_write(&a.out, &bytes)?;
    let n = count(&arch)?;
    println!(
        "exported {} → {}: {} bytes, {} params in the ONNX graph (the model counts {}), opset {}",
        a.model.display(),
        a.out.display(),
        bytes.len(),
        onnx::count::params(&model),
        n.params,
        onnx::export::OPSET
    );
    if norm.is_none() {
        println!("{} stores no input normalisation: the exported graph expects inputs already normalised", a.model.display());
    }
    Ok(())
}
