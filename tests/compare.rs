//! `compare` against a peer's curve: every accepted round beside the peer's test change at the
//! same params reduction, a PNG of both, and a malformed curve refused before any output.
mod common;

use common::cli::{bin, fails_with, scratch};

const PEER: &str = "# a made-up peer\nparams_reduction,test_change\n2,-1.0\n8,-5.0\n";

/// A finished run's report.json with rounds at 2× (test +0.5) and 4× (−2.0) accepted, one at
/// 16× rejected between them.
fn fake_run(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let round = |n: u32, red: f64, test: f64, accepted: bool| {
        serde_json::json!({ "round": n, "params_reduction": red, "test_accuracy": test, "accepted": accepted,
                            "evaluations": 8, "evaluations_to_best": 3 })
    };
    let r = serde_json::json!({
        "command": "compress", "target": "params:10x", "search": "guided", "schemes": ["filter", "column"], "purify": true,
        "params_reduction": 4.0, "flops_reduction": 3.0, "baseline_val_accuracy": 0.8, "final_val_accuracy": 0.79,
        "baseline": { "test_accuracy": 0.75 }, "final": { "test_accuracy": 0.73 }, "target_met": false, "wall_seconds": 60.0,
        "rounds": [round(1, 2.0, 0.755, true), round(2, 16.0, 0.6, false), round(3, 4.0, 0.73, true)],
    });
    std::fs::write(dir.join("report.json"), serde_json::to_string(&r).unwrap()).unwrap();
}

#[test]
fn rounds_are_held_against_the_peer_curve() {
    let dir = scratch("compare", "peer");
    let run = dir.join("run");
    fake_run(&run);
    let peer = dir.join("peer.csv");
    std::fs::write(&peer, PEER).unwrap();
    let png = dir.join("curve.png");
    let out = bin().arg("compare").arg(&run).arg("--peer").arg(&peer).arg("--plot").arg(&png).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // 2x: +0.50 against the peer's −1.00; 4x lies halfway between 2x and 8x in log space: −3.00
    assert!(text.contains("| 1 | 2.0 | +0.50 | -1.00 | +1.50 (above) |"), "{text}");
    assert!(text.contains("| 3 | 4.0 | -2.00 | -3.00 | +1.00 (above) |"), "{text}");
    assert!(!text.contains("| 2 | 16.0"), "a rejected round is not on the curve: {text}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} bytes", bytes.len());

    // a malformed curve is refused with its line, and nothing is printed
    std::fs::write(&peer, "params_reduction,test_change\n2,-1\n1.5,-2\n").unwrap();
    fails_with(bin().arg("compare").arg(&run).arg("--peer").arg(&peer), &["peer.csv", "line 3", "does not increase"]);
    let out = bin().arg("compare").arg(&run).arg("--peer").arg(&peer).output().unwrap();
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}
