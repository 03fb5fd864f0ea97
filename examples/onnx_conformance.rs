//! Conformance run over ONNX's backend node tests for the ops autocompress imports: every test
//! directory whose graph uses only those ops is imported and run (tests/conformance/harness.rs),
//! and a Markdown table says which pass, which are refused and why, and which give wrong values.
//! Debian's libonnx-testdata installs the tests:
//!
//!     cargo run --release --example onnx_conformance -- /usr/share/libonnx-testdata/data/node > conformance.md
//!
//! Exits non-zero if any test imports and then gives a wrong value: a refusal is a documented
//! limit, a wrong value is a bug.

#[path = "../tests/conformance/harness.rs"]
mod harness;

use anyhow::{bail, Context, Result};
use harness::Outcome;

fn main() -> Result<()> {
    let root = std::env::args().nth(1).context("usage: onnx_conformance NODE_TEST_DIR (e.g. /usr/share/libonnx-testdata/data/node)")?;
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .with_context(|| format!("cannot list {root}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    let gpu = autocompress::gpu::Gpu::new(None)?;
    let (mut pass, mut refused, mut wrong, mut other) = (0, 0, 0, 0);
    let mut rows = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
        let Some(ops) = harness::ops(dir) else { continue };
        if !ops.iter().all(|o| harness::SUPPORTED.contains(&o.as_str())) {
            other += 1;
            continue;
        }
        let (verdict, detail) = match harness::run(&gpu, dir).with_context(|| name.clone())? {
            Outcome::Pass(d) => {
                pass += 1;
                ("pass", format!("max abs diff {d:.1e}"))
            }
            Outcome::Refused(why) => {
                refused += 1;
                ("refused", why)
            }
            Outcome::Wrong(why) => {
                wrong += 1;
                ("WRONG", why)
            }
        };
        eprintln!("{name}: {verdict}");
        rows.push(format!("| {name} | {} | {verdict} | {} |", ops.join(", "), detail.replace('|', "\\|").replace('\n', " ")));
    }
    println!("# ONNX backend node tests, ops {}", harness::SUPPORTED.join(", "));
    println!();
    println!("From `{root}`: {} tests use only these ops ({other} others skipped). **{pass} pass, {refused} refused, {wrong} wrong.**", pass + refused + wrong);
    println!();
    println!("| test | ops | result | detail |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    if wrong > 0 {
        bail!("{wrong} tests imported and gave wrong values");
    }
    Ok(())
}
