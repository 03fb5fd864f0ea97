//! `autocompress inspect`: the per-layer table of a model file.

use anyhow::Result;
use std::path::Path;

use autocompress::io;
use autocompress::prune::count::count;
use autocompress::report::layer_table;

pub fn cmd_inspect(file: &Path) -> Result<()> {
    let (arch, _, meta) = io::load_model(file)?;
    let c = count(&arch)?;
    println!("{} ({}), input {:?}, {} classes", file.display(), arch.name, arch.input, arch.classes);
    if let Some(d) = meta.get("dataset") {
        println!("trained on {d}");
    }
    print!("{}", layer_table(&c));
    Ok(())
}
