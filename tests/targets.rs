//! Joint targets (params and FLOPs at once) and the options for tight budgets, end to end on
//! the embedded digits: malformed input is refused before anything is written; a joint target
//! bounds every round and candidate on both metrics, and the report, the plots and `compare`
//! show both reductions; a rejected round is followed by finer rounds when asked.
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
fn malformed_targets_and_options_are_refused_before_writing() {
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
    refused(&["--late-round-factor", "1.3"], &["--late-round-factor and --late-after go together"]);
    refused(&["--late-after", "30x"], &["--late-round-factor and --late-after go together"]);
    refused(&["--late-round-factor", "1", "--late-after", "30x"], &["--late-round-factor must be above 1"]);
    refused(&["--late-round-factor", "1.3", "--late-after", "thirty"], &["--late-after 'thirty'", "reduction factor"]);
    refused(&["--retry-round-factor", "2"], &["--retry-round-factor", "below --round-factor (2)"]);
    refused(&["--retry-round-factor", "0.9"], &["--retry-round-factor", "above 1"]);
    refused(&["--budget-confidence", "0.3"], &["--budget-confidence", "[0.5, 1)"]);
    refused(&["--budget-confidence", "95"], &["--budget-confidence", "95"]);
    refused(&["--recovery-margin", "0.1"], &["--recovery-margin needs recovery cycles", "--recovery-epochs"]);
    refused(&["--recovery-margin", "-0.1", "--recovery-epochs", "1"], &["--recovery-margin", "-0.1"]);
    refused(&["--recovery-lr", "0.002"], &["--recovery-lr needs recovery cycles", "--recovery-epochs"]);
    refused(&["--recovery-lr", "0", "--recovery-epochs", "1"], &["--recovery-lr must be a positive learning rate", "0"]);
    refused(&["--recovery-lr", "NaN", "--recovery-epochs", "1"], &["--recovery-lr must be a positive learning rate", "NaN"]);
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
    // late rounds at 1.5 from 2x params on; a wide budget, with the paired test on top
    let run = small(&out)
        .args(["--admm-updates", "2", "--retrain-epochs", "2", "--target", "params:3x,flops:1.6x", "--budget", "5", "--late-round-factor", "1.5", "--late-after", "2x", "--budget-confidence", "0.6"])
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

    // every round aims at both metrics, each goal stepping from where the last round left it:
    // the one with more to go by the round factor, the other so that both arrive together
    let dense = (r["baseline"]["params"].as_f64().unwrap(), r["baseline"]["flops"].as_f64().unwrap());
    let (mut prev_p, mut prev_f): (f64, f64) = (1.0, 1.0);
    let rounds = r["rounds"].as_array().unwrap();
    for (i, round) in rounds.iter().enumerate() {
        let goals = round["round_goals"].as_array().unwrap();
        let factor = round["round_factor"].as_f64().unwrap();
        assert_eq!(factor, if prev_p >= 2.0 { 1.5 } else { 2.0 }, "round {}: finer once past 2x params", i + 1);
        let gp = goals[0]["factor"].as_f64().unwrap();
        let gf = goals[1]["factor"].as_f64().unwrap();
        assert_eq!((goals[0]["metric"].as_str(), goals[1]["metric"].as_str()), (Some("params"), Some("flops")));
        let (rem_p, rem_f): (f64, f64) = (3.0 / prev_p, 1.6 / prev_f);
        let most = f64::max(1.0, rem_p.max(rem_f));
        let step = |rem: f64| if rem >= most { factor } else if rem <= 1.0 { 1.0 } else { rem.powf(factor.ln() / most.ln()).min(factor) };
        assert!((gp - f64::min(3.0, prev_p * step(rem_p))).abs() < 1e-9 && (gf - f64::min(1.6, prev_f * step(rem_f))).abs() < 1e-9, "round {}: {goals:?}", i + 1);
        assert_eq!(round["round_target"].as_f64().unwrap(), gp);
        let (e, eb) = (round["evaluations"].as_u64().unwrap(), round["evaluations_to_best"].as_u64().unwrap());
        assert!(eb >= 1 && eb <= e && e <= round["candidates"].as_u64().unwrap(), "round {}: {eb} of {e}", i + 1);
        // the paired drop is the validation accuracy's drop, and met the confidence rule
        let p = &round["paired_val_drop"];
        let drop = p["drop"].as_f64().unwrap();
        let val_drop = 100.0 * (r["baseline_val_accuracy"].as_f64().unwrap() - round["val_accuracy"].as_f64().unwrap());
        assert!((drop - val_drop).abs() < 1e-6, "round {}: paired {drop} vs {val_drop}", i + 1);
        assert_eq!(drop, 100.0 * (p["lost"].as_f64().unwrap() - p["gained"].as_f64().unwrap()) / p["images"].as_f64().unwrap());
        if round["accepted"] == true {
            assert!(drop + 0.2533471 * p["standard_error"].as_f64().unwrap() <= 5.0 + 1e-7, "round {} kept at 60% confidence", i + 1);
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

#[test]
fn a_rejected_round_is_followed_by_a_finer_one() {
    if common::gpu().is_none() {
        return;
    }
    let out = tmp("retry");
    // round 1 jumps to 20x with next to no retraining, far past a half-point budget: rejected;
    // round 2 goes on from the baseline at 1.3x. A recovery margin of 100 points puts every
    // round "near the budget", so each gets its one recovery epoch.
    let run = small(&out)
        .args(["--target", "params:20x", "--round-factor", "20", "--retry-round-factor", "1.3", "--admm-updates", "1", "--retrain-epochs", "0", "--budget", "0.5", "--max-rounds", "2"])
        .args(["--recovery-epochs", "1", "--recovery-margin", "100"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r = report(&out);
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{}", r["stop_reason"]);
    assert_eq!((rounds[0]["accepted"].as_bool(), rounds[0]["round_factor"].as_f64(), rounds[0]["round_target"].as_f64()), (Some(false), Some(20.0), Some(20.0)));
    assert_eq!((rounds[1]["round_factor"].as_f64(), rounds[1]["round_target"].as_f64()), (Some(1.3), Some(1.3)), "round 2 starts again from the baseline");
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
    for round in state["rounds"].as_array().unwrap() {
        assert_eq!(round["finetune"].as_array().unwrap().len(), 1, "round {}: one recovery epoch", round["round"]);
    }
    let stop = r["stop_reason"].as_str().unwrap();
    if rounds[1]["accepted"] == true {
        assert!(stop.contains("after the maximum of 2 rounds"), "{stop}");
    } else {
        assert!(stop.contains("round 2 rejected") && stop.contains("kept round 0's model"), "{stop}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `--recovery-lr` sets the recovery cycles' learning rate: at 1e-9 a cycle leaves the model's
/// validation accuracy where fine-tuning left it, at the fine-tuning's rate it moves it.
#[test]
fn recovery_cycles_train_at_the_recovery_learning_rate() {
    if common::gpu().is_none() {
        return;
    }
    // a recovery margin of 100 points runs the one recovery cycle in every round
    let epochs = |name: &str, extra: &[&str]| -> Vec<(f64, f64)> {
        let out = tmp(name);
        let run = small(&out)
            .args(["--target", "params:4x", "--finetune-epochs", "1", "--recovery-epochs", "1", "--recovery-margin", "100", "--max-rounds", "2"])
            .args(extra)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("state.json")).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        let val = |e: &serde_json::Value| e["val_accuracy"].as_f64().unwrap();
        state["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let f = r["finetune"].as_array().unwrap();
                assert_eq!(f.len(), 2, "round {}: one fine-tuning epoch and one recovery cycle", r["round"]);
                (val(&f[0]), val(&f[1]))
            })
            .collect()
    };
    let still = epochs("recovery-lr-tiny", &["--recovery-lr", "1e-9"]);
    assert!(still.iter().all(|(ft, rec)| ft == rec), "a cycle at lr 1e-9 moved validation accuracy: {still:?}");
    let moved = epochs("recovery-lr-default", &[]);
    assert!(moved.iter().any(|(ft, rec)| ft != rec), "a cycle at the fine-tuning's lr left every round as it was: {moved:?}");
}

/// A run that a rejected round ended goes on, under `--resume --retry-round-factor F`, from its
/// last accepted model in rounds of F; the rejected round stays in its record.
#[test]
fn a_run_ended_by_a_rejection_resumes_with_a_finer_retry_factor() {
    if common::gpu().is_none() {
        return;
    }
    let out = tmp("resume-retry");
    // round 1 jumps to 20x with next to no retraining: rejected, and with no retry factor the
    // run ends there
    let run = small(&out).args(["--target", "params:20x", "--round-factor", "20", "--admm-updates", "1", "--retrain-epochs", "0", "--budget", "0.5", "--max-rounds", "2"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stop = report(&out)["stop_reason"].as_str().unwrap().to_string();
    assert!(stop.contains("round 1 rejected"), "{stop}");
    let resume = |extra: &[&str]| {
        let mut c = bin();
        c.args(["compress", "--resume", "--quiet"]).args(extra).arg("--out").arg(&out);
        c
    };
    fails_with(&mut resume(&[]), &["finished run", "--retry-round-factor below 20"]);
    fails_with(&mut resume(&["--retry-round-factor", "20"]), &["rejected at round factor 20", "below 20"]);
    fails_with(&mut resume(&["--retry-round-factor", "1"]), &["--retry-round-factor", "above 1"]);
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"retry_round_factor\": null"), "a refused resume left the run's config as it was: {config}");
    let run = resume(&["--retry-round-factor", "1.3"]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r = report(&out);
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{}", r["stop_reason"]);
    assert_eq!((rounds[0]["accepted"].as_bool(), rounds[0]["round_factor"].as_f64()), (Some(false), Some(20.0)), "the rejected round stays in the record");
    assert_eq!((rounds[1]["round_factor"].as_f64(), rounds[1]["round_target"].as_f64()), (Some(1.3), Some(1.3)), "round 2 goes on from the baseline at 1.3x");
    let _ = std::fs::remove_dir_all(&out);
}

/// The paired decision's per-image correctness counts what `evaluate` counts, image by image,
/// over partial batches too.
#[test]
fn per_image_correctness_agrees_with_evaluate() {
    use autocompress::data::{self, LoadOptions};
    use autocompress::model::{zoo, Network, Weights};
    use autocompress::train::{correctness, evaluate, train, Schedule, TrainConfig};
    let Some(g) = common::gpu() else { return };
    let opts = LoadOptions { limit_train: Some(300), limit_test: Some(77), ..LoadOptions::default() };
    let data = data::load("digits", None, &opts).unwrap();
    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    // batch 32 leaves a partial last batch of the 77 test images
    let cfg = TrainConfig { epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9, weight_decay: 0.0, schedule: Schedule::Cosine, warmup_epochs: 0.0, seed: 2, steps_per_epoch: None, augment: false, distill: None };
    let net = Network::new(g, &arch, &Weights::init(&arch, 1).unwrap(), cfg.batch_size, 0.0).unwrap();
    train(g, &net, &data, &cfg, false, |_| Ok(())).unwrap();
    let right = correctness(g, &net, &data.test).unwrap();
    assert_eq!(right.len(), 77);
    let (_, acc) = evaluate(g, &net, &data.test).unwrap();
    assert_eq!(right.iter().filter(|&&r| r).count() as f64 / 77.0, acc);
    assert!(acc > 0.15 && acc < 1.0, "one epoch should land between chance and perfect to make this test mean something: {acc}");
}

/// `--split-seed` keeps a baseline's validation images held out in runs of other seeds.
#[test]
fn the_split_seed_fixes_the_validation_images_whatever_the_run_seed() {
    use autocompress::compress::{prepare, CompressConfig, DataConfig};
    let cfg = |seed: u64, split_seed: Option<u64>| {
        let mut c = CompressConfig::defaults_for("digits-cnn", DataConfig { dataset: "digits".into(), dir: None, val_fraction: 0.25, limit_train: None, limit_test: None });
        c.seed = seed;
        c.split_seed = split_seed;
        c
    };
    let val = |c: CompressConfig| prepare(&c).unwrap().data.val.images;
    let one = val(cfg(1, None));
    assert_eq!(val(cfg(2, Some(1))), one);
    assert_ne!(val(cfg(2, None)), one, "another seed draws another split");
}
