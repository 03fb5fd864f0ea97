//! `autocompress compare`: one markdown table of finished compress runs (SPEC.md §7), and with
//! `--peer` each accepted round held against a peer's curve (`--plot` draws both).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use autocompress::compress::peer::Peer;
use autocompress::compress::plots::{self, Curve};

/// A markdown table, one row per run directory, from each run's report.json; with `peer`, a
/// second table of every accepted round against the peer's curve; with `plot`, a PNG of the
/// runs' curves and the peer's.
pub fn run(runs: &[PathBuf], peer: Option<&Path>, plot: Option<&Path>) -> Result<()> {
    if runs.is_empty() {
        bail!("compare needs at least one run directory");
    }
    // read everything before printing anything: a bad file fails the command cleanly
    let reports: Vec<serde_json::Value> = runs.iter().map(|d| load(d)).collect::<Result<_>>()?;
    let peer = peer.map(Peer::load).transpose()?;
    table(runs, &reports);
    let curves: Vec<Curve> = runs.iter().zip(&reports).map(|(d, r)| curve(d, r)).collect();
    if let Some(p) = &peer {
        against_peer(&curves, p);
    }
    if let Some(path) = plot {
        plots::test_change_vs_params(path, &curves, peer.as_ref())?;
        println!("\nplot: {}", path.display());
    }
    Ok(())
}

fn load(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {} (is {} a finished compress run?)", path.display(), dir.display()))?;
    let r: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
    if r["command"] != "compress" {
        bail!("{} is the report of a '{}' run, not of compress", path.display(), r["command"].as_str().unwrap_or("?"));
    }
    Ok(r)
}

/// The run's baseline and accepted rounds as (params reduction, test change in points).
fn curve(dir: &Path, r: &serde_json::Value) -> Curve {
    let base = r["baseline"]["test_accuracy"].as_f64().unwrap_or(f64::NAN);
    let (mut points, mut rounds) = (vec![(1.0, 0.0)], vec![0]);
    for x in r["rounds"].as_array().into_iter().flatten().filter(|x| x["accepted"] == true) {
        let (red, acc, n) = (x["params_reduction"].as_f64(), x["test_accuracy"].as_f64(), x["round"].as_u64());
        if let (Some(red), Some(acc), Some(n)) = (red, acc, n) {
            points.push((red, 100.0 * (acc - base)));
            rounds.push(n);
        }
    }
    Curve { name: dir.display().to_string(), points, rounds }
}

/// Every accepted round's test change beside the peer's at the same params reduction.
fn against_peer(curves: &[Curve], peer: &Peer) {
    println!("\n| run | round | params × | test change | {} at that × | difference |", peer.name);
    println!("|---|---|---|---|---|---|");
    for c in curves {
        for (&(red, change), round) in c.points.iter().zip(&c.rounds).skip(1) {
            let (theirs, diff) = match peer.at(red) {
                Some(p) => (format!("{p:+.2}"), format!("{:+.2} ({})", change - p, if change >= p { "above" } else { "below" })),
                None => ("beyond its last point".into(), "–".into()),
            };
            println!("| {} | {round} | {red:.1} | {change:+.2} | {theirs} | {diff} |", c.name);
        }
    }
}

fn table(runs: &[PathBuf], reports: &[serde_json::Value]) {
    println!("| run | target | search | schemes | purify | params × | FLOPs × | params × before purification | val (base → final) | test (base → final) | rounds | evaluations to best (per round) | result | minutes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (dir, r) in runs.iter().zip(reports) {
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
}
