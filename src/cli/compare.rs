//! `autocompress compare`: one markdown table of finished compress runs (SPEC.md §7).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// A markdown table, one row per run directory, from each run's report.json.
pub fn run(runs: &[PathBuf]) -> Result<()> {
    if runs.is_empty() {
        bail!("compare needs at least one run directory");
    }
    println!("| run | target | search | schemes | purify | params × | FLOPs × | params × before purification | val (base → final) | test (base → final) | rounds | evaluations to best (per round) | result | minutes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for dir in runs {
        let path = dir.join("report.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a finished compress run?)", path.display(), dir.display()))?;
        let r: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        if r["command"] != "compress" {
            bail!("{} is the report of a '{}' run, not of compress", path.display(), r["command"].as_str().unwrap_or("?"));
        }
        let pct = |v: &serde_json::Value| format!("{:.2}", 100.0 * v.as_f64().unwrap_or(f64::NAN));
        let rounds = r["rounds"].as_array().cloned().unwrap_or_default();
        let last = rounds.iter().rev().find(|x| x["accepted"] == true);
        let before = last.map_or(f64::NAN, |x| r["baseline"]["params"].as_f64().unwrap_or(f64::NAN) / x["before_purification"]["params"].as_f64().unwrap_or(f64::NAN));
        // "3/16, 9/16": each round's evaluations to its best of its evaluations (newer reports)
        let evals: Vec<String> = rounds.iter().filter_map(|x| Some(format!("{}/{}", x["evaluations_to_best"].as_u64()?, x["evaluations"].as_u64()?))).collect();
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} → {} | {} → {} | {} | {} | {} | {:.1} |",
            dir.display(),
            r["target"].as_str().unwrap_or("?"),
            r["search"].as_str().unwrap_or("?"),
            r["schemes"].as_array().map_or("?".into(), |a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("+")),
            r["purify"],
            r["params_reduction"].as_f64().unwrap_or(f64::NAN),
            r["flops_reduction"].as_f64().unwrap_or(f64::NAN),
            before,
            pct(&r["baseline_val_accuracy"]),
            pct(&r["final_val_accuracy"]),
            pct(&r["baseline"]["test_accuracy"]),
            pct(&r["final"]["test_accuracy"]),
            rounds.len(),
            if evals.is_empty() { "–".to_string() } else { evals.join(", ") },
            if r["target_met"] == true { "target met".to_string() } else { "stopped short".to_string() },
            r["wall_seconds"].as_f64().unwrap_or(f64::NAN) / 60.0
        );
    }
    Ok(())
}
