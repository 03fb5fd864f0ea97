//! Joint targets (params and FLOPs at once) and the options for tight budgets, end to end on
//! the embedded digits: malformed input is refused before anything is written; a joint target
//! bounds every round and candidate on both metrics, and the report, the plots and `compare`
//! show both reductions.
mod common;

use std::path::{Path, PathBuf};

use common::cli::{bin, fails_with, scratch};

fn tmp(name: &str) -> PathBuf {
    scratch("targets", name)
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn malformed_targets_are_refused_before_writing() {
    let out = tmp("bad");
    let refused = |args: &[&str], needles: &[&str]| {
        fails_with(bin().arg("compress").args(args).arg("--out").arg(&out), needles);
    };
    refused(&["--target", "params:10x,params:5x"], &["params:10x,params:5x", "params is given twice"]);
    refused(&["--target", "params:4x,"], &["an empty part"]);
    refused(&["--target", "params:4x;flops:2x"], &["is not a reduction factor"]);
    refused(&["--target", "params:4x,flops:0.5x"], &["at least 1x", "0.5"]);
    refused(&["--target", "params:4x,latency:2x"], &["unknown metric 'latency'"]);
    refused(&["--target", "params:4x,flops:1000000x"], &["params:4x,flops:1000000x", "cannot be met", "cannot keep only", "flops", "--first-layer-max-rate"]);
    assert!(!out.exists(), "a refused run must not create its directory");
}

/// The round schedule of a small digits run.
fn small(out: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["compress", "--baseline-epochs", "4", "--max-iterations", "4", "--quick-steps", "10", "--quick-val-images", "200"]);
    c.args(["--admm-epochs-per-update", "1", "--force", "--out"]);
    c.arg(out);
    c
}

#[test]
fn a_joint_target_is_met_on_both_metrics_and_reported() {
    if common::gpu().is_none() {
        return; // no adapter outside CI (under CI, gpu() fails the test)
    }
    let out = tmp("joint");
    // a wide budget: this checks the bounds, not accuracy
    let run = small(&out)
        .args(["--admm-updates", "2", "--retrain-epochs", "2", "--target", "params:3x,flops:1.6x", "--budget", "5"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r = report(&out);
    assert_eq!(r["target"], "params:3x,flops:1.6x");
    assert_eq!(r["target_met"], true, "{}", r["stop_reason"]);
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for (t, metric, factor) in [(&targets[0], "params", 3.0), (&targets[1], "flops", 1.6)] {
        assert_eq!((t["metric"].as_str().unwrap(), t["factor"].as_f64().unwrap(), t["met"].as_bool().unwrap()), (metric, factor, true));
        assert!(t["reduction"].as_f64().unwrap() >= factor * (1.0 - 1e-9));
    }
    assert!(r["params_reduction"].as_f64().unwrap() >= 3.0 - 1e-9 && r["flops_reduction"].as_f64().unwrap() >= 1.6 - 1e-9, "{r}");
    let stop = r["stop_reason"].as_str().unwrap();
    assert!(stop.contains("× params") && stop.contains("× FLOPs"), "both reductions in words: {stop}");

    // every round aims at both metrics, each goal stepping from where the last round left it
    let dense = (r["baseline"]["params"].as_f64().unwrap(), r["baseline"]["flops"].as_f64().unwrap());
    let (mut prev_p, mut prev_f) = (1.0, 1.0);
    let rounds = r["rounds"].as_array().unwrap();
    for (i, round) in rounds.iter().enumerate() {
        let goals = round["round_goals"].as_array().unwrap();
        let factor = round["round_factor"].as_f64().unwrap();
        assert_eq!(factor, 2.0);
        let gp = goals[0]["factor"].as_f64().unwrap();
        let gf = goals[1]["factor"].as_f64().unwrap();
        assert_eq!((goals[0]["metric"].as_str(), goals[1]["metric"].as_str()), (Some("params"), Some("flops")));
        assert!((gp - f64::min(3.0, prev_p * factor)).abs() < 1e-9 && (gf - f64::min(1.6, prev_f * factor)).abs() < 1e-9, "round {}: {goals:?}", i + 1);
        assert_eq!(round["round_target"].as_f64().unwrap(), gp);
        let (e, eb) = (round["evaluations"].as_u64().unwrap(), round["evaluations_to_best"].as_u64().unwrap());
        assert!(eb >= 1 && eb <= e && e <= round["candidates"].as_u64().unwrap(), "round {}: {eb} of {e}", i + 1);
        if round["accepted"] == true {
            (prev_p, prev_f) = (round["params_reduction"].as_f64().unwrap(), round["flops_reduction"].as_f64().unwrap());
        }
        // within the round, every candidate keeps at most each limit (search.csv: params, flops)
        let csv = std::fs::read_to_string(out.join("search.csv")).unwrap();
        for line in csv.lines().skip(1).filter(|l| l.starts_with(&format!("{},", i + 1))) {
            let f: Vec<&str> = line.split(',').collect();
            let (cp, cf): (f64, f64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
            assert!(cp <= dense.0 / gp + 0.5 && cf <= dense.1 / gf + 0.5, "round {} candidate {line}", i + 1);
        }
    }
    assert!(rounds.len() >= 2, "{r}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("× params, ") && md.contains("× FLOPs |") && md.contains("evaluations to best"), "{md}");
    for png in ["accuracy_vs_reduction.png", "accuracy_vs_flops_reduction.png"] {
        assert!(std::fs::metadata(out.join(png)).unwrap().len() > 1000, "{png}");
    }

    // compare shows the target and both reductions
    let cmp = bin().arg("compare").arg(&out).output().unwrap();
    let table = String::from_utf8_lossy(&cmp.stdout);
    assert!(cmp.status.success() && table.contains("| params:3x,flops:1.6x |") && table.contains("FLOPs ×") && table.contains("evaluations to best"), "{table}");
    let _ = std::fs::remove_dir_all(&out);
}
