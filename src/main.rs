//! The autocompress command line (DESIGN.md, "The command-line contract"): parse, run the
//! command, print its error and exit with 1 on failure. Each command lives in `cli/`.

use clap::Parser;

mod cli;

use cli::{Cli, Cmd};

fn main() {
    let Cli { adapter, quiet, cmd } = Cli::parse();
    let adapter = adapter.as_deref();
    let progress = !quiet;
    let result = match cmd {
        Cmd::Train(a) => cli::train::run(a, adapter, progress),
        Cmd::Eval(a) => cli::eval::run(a, adapter),
        Cmd::Bench(a) => cli::bench::run(a, || cli::open_gpu(adapter, false)),
        Cmd::Inspect { file } => cli::inspect::run(&file),
        Cmd::Compare { runs, peer, plot } => cli::compare::run(&runs, peer.as_deref(), plot.as_deref()),
        Cmd::Prune(a) => cli::prune::run(a, adapter, progress),
        Cmd::Compress(a) => cli::compress::run(a, || cli::open_gpu(adapter, progress), progress),
        Cmd::Import(a) => cli::interchange::cmd_import(&a),
        Cmd::Export(a) => cli::interchange::cmd_export(&a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
