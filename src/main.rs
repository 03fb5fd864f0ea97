//! The autocompress command line (DESIGN.md, "The command-line contract"): parse, run the
//! command, print its error and exit with 1 on failure. Each command lives in `cli/`.

use clap::Parser;

mod cli;

use cli::{Cli, Cmd};

fn main() {
    end_quietly_when_stdout_closes();
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

/// A reader that stops early (`autocompress bench --json | head -1`) closes our stdout. Rust
/// ignores SIGPIPE, so the next `println!` panics with "failed printing to stdout: Broken pipe";
/// end quietly instead, with the status a shell reports for a process that SIGPIPE ended.
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map_or("", String::as_str);
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
