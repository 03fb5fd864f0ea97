//! `autocompress inspect`: a model file's per-layer table.

use anyhow::{Context, Result};
use std::path::Path;

use autocompress::{data, io};
use autocompress::prune::count::count;
use autocompress::report::layer_table;

pub fn run(file: &Path) -> Result<()> {
    let (arch, _, meta) = io::load_model(file)?;
    let c = count(&arch)?;
    println!("{} ({}), input {:?}, {} classes", file.display(), arch.name, arch.input, arch.classes);
    if let Some(d) = meta.get("dataset") {
        println!("trained on {d}");
    }
    if let Some(n) = data::Norm::from_meta(&meta, arch.input[0]).with_context(|| format!("model file {}", file.display()))? {
        println!("input normalisation: mean {:?}, std {:?}", n.mean, n.std);
    }
    print!("{}", layer_table(&c));
    Ok(())
}
