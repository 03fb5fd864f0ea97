//! `compress` end to end on the embedded digits: bad input is refused before anything is
//! written, a finished run is protected, and a run killed with SIGKILL and resumed ends with
//! the same model and report as an uninterrupted one.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{bin, fails_with, scratch};

fn tmp(name: &str) -> PathBuf {
    scratch("compress", name)
}

/// A compress run small enough for a test: 2 rounds to 4× on digits, short schedules, 2 epochs
/// of fine-tuning per round, with distillation from the baseline (whose logits a resumed run
/// computes again).
fn small(out: &Path) -> Command {
    let mut c = bin();
    c.args([
        "compress", "--target", "params:4x", "--baseline-epochs", "4", "--max-iterations", "4", "--quick-steps", "10", "--quick-val-images", "200",
        "--admm-updates", "2", "--admm-epochs-per-update", "1", "--retrain-epochs", "2", "--finetune-epochs", "2", "--budget", "5", "--distill", "0.5", "--out",
    ]);
    c.arg(out);
    c
}

#[test]
fn bad_targets_schemes_and_searches_are_refused_before_writing() {
    let out = tmp("bad");
    fails_with(bin().args(["compress", "--target", "params:1000000x", "--out"]).arg(&out), &["params:1000000x", "cannot be met", "cannot keep only"]);
    fails_with(bin().args(["compress", "--target", "params:0.5x", "--out"]).arg(&out), &["at least 1x", "0.5"]);
    fails_with(bin().args(["compress", "--target", "weights:4x", "--out"]).arg(&out), &["unknown metric", "weights"]);
    fails_with(bin().args(["compress", "--schemes", "filter,kernel", "--out"]).arg(&out), &["unknown scheme", "kernel"]);
    fails_with(bin().args(["compress", "--search", "genetic", "--out"]).arg(&out), &["unknown --search", "genetic"]);
    fails_with(bin().args(["compress", "--round-factor", "1", "--out"]).arg(&out), &["--round-factor"]);
    fails_with(bin().args(["compress", "--distill", "1.5", "--out"]).arg(&out), &["--distill", "1.5"]);
    fails_with(bin().args(["compress", "--distill-temperature", "3", "--out"]).arg(&out), &["--distill-temperature", "--distill"]);
    fails_with(bin().args(["compress", "--model", "lenet5", "--distill", "0.5", "--distill-temperature", "0", "--out"]).arg(&out), &["--distill-temperature", "positive"]);
    assert!(!out.exists(), "a refused run must not create its directory");
    fails_with(bin().args(["compress", "--resume", "--out"]).arg(&out), &["--resume", "not a compress run directory"]);
    fails_with(bin().args(["compress", "--resume", "--force", "--out"]).arg(&out), &["exclude each other"]);
}

fn report_without_times(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    strip_times(&mut v);
    v
}

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.contains("seconds"));
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// A kill-and-resume at two moments (mid baseline, mid round 2), and a run continued past its
/// round limit.
#[test]
fn killed_and_resumed_run_ends_like_an_uninterrupted_one() {
    common::gpu_or_skip!(); // the binary opens its own adapter: skip (fail under CI) where none is
    let whole = tmp("whole");
    let out = small(&whole).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = report_without_times(&whole);
    assert!(report["rounds"].as_array().unwrap().len() >= 2, "the small run should take two rounds: {report}");
    for f in ["config.json", "state.json", "search.csv", "report.md", "model.safetensors", "round-1.safetensors", "accuracy_vs_reduction.png", "kept_per_layer.png", "search.png"] {
        assert!(whole.join(f).is_file(), "{f} missing from the run directory");
    }
    let csv = std::fs::read_to_string(whole.join("search.csv")).unwrap();
    assert!(csv.lines().count() > 2 && csv.starts_with("round,iteration,temperature,action"), "{csv}");

    // a finished run is refused without --force, and cannot be resumed
    fails_with(&mut small(&whole), &["already holds a finished run", "--force"]);
    fails_with(bin().args(["compress", "--resume", "--out"]).arg(&whole), &["finished run"]);
    fails_with(bin().args(["compress", "--resume", "--model", "lenet5", "--out"]).arg(&whole), &["model 'digits-cnn'", "not 'lenet5'"]);

    // SIGKILL mid baseline (once its first epoch is checkpointed), then at each point where
    // round 1 saves its progress (after the search, after ADMM and compaction, after a
    // fine-tuning epoch), then once round 1 is recorded (mid round 2); each time resume
    let killed = tmp("killed");
    let partial = killed.join("baseline-training.safetensors");
    kill_once_written(small(&killed), &partial, 300);
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(killed.join("state.json")).unwrap()).unwrap();
    assert!(state["baseline"].is_null(), "killed after the baseline, not during it");
    // not --quiet: what it says shows where it went on from
    let resume = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_autocompress"));
        c.env("AUTOCOMPRESS_TUNE", "off").args(["compress", "--resume", "--out"]).arg(&killed);
        c
    };
    // each resumed process must go on from what the killed one saved, not start the round over
    let stages = [
        ("round-1-search.json", "training the dense baseline: 4 epochs, resuming after epoch"),
        ("round-1-pruned.json", "round 1: resuming after its search"),
        ("round-1-finetune.safetensors", "round 1: resuming after ADMM and compaction"),
        ("round-1.safetensors", "fine-tuning the compacted model: 2 epochs, resuming after epoch"),
    ];
    for (stage, went_on) in stages {
        let printed = kill_once_written(resume(), &killed.join(stage), 600);
        assert!(printed.contains(went_on), "killed at {stage}: the resumed run did not say '{went_on}':\n{printed}");
    }
    fails_with(&mut small(&killed), &["unfinished run", "--resume"]);
    let out = resume().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!partial.exists(), "the baseline's training checkpoint outlived the baseline");
    for f in std::fs::read_dir(&killed).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        assert!(!["-search.", "-pruned.", "-finetune."].iter().any(|p| name.contains(p)), "{name}: a round's partial file outlived the run");
    }
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(killed.join("state.json")).unwrap()).unwrap();
    let epochs: Vec<u64> = state["baseline"]["epochs"].as_array().unwrap().iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3, 4], "the resumed baseline's epochs");

    assert_same_model(&whole, &killed);
    assert_eq!(report_without_times(&killed), report, "the resumed run's report differs");
    assert_eq!(std::fs::read_to_string(killed.join("search.csv")).unwrap(), csv);

    // a run that stopped at its round limit continues under a higher one, to the same model
    // (the whole run took more than one round)
    assert!(report["rounds"].as_array().unwrap().len() > 1);
    let limited = tmp("limited");
    let out = small(&limited).args(["--max-rounds", "1"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("after the maximum of 1 rounds"), "{}", String::from_utf8_lossy(&out.stdout));
    fails_with(bin().args(["compress", "--resume", "--out"]).arg(&limited), &["finished run", "--max-rounds above 1"]);
    fails_with(bin().args(["compress", "--resume", "--max-rounds", "1", "--out"]).arg(&limited), &["--max-rounds above 1"]);
    fails_with(bin().args(["compress", "--resume", "--max-rounds", "5", "--out"]).arg(&whole), &["finished run", "target params:4x met"]);
    let out = bin().args(["compress", "--resume", "--max-rounds", "12", "--out"]).arg(&limited).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_model(&whole, &limited);
    for d in [whole, killed, limited] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Starts `cmd`, kills it with SIGKILL once `file` exists (waiting at most `secs`), and returns
/// what it printed to stderr.
fn kill_once_written(mut cmd: Command, file: &Path, secs: u64) -> String {
    let log = file.with_extension("stderr");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mut child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let t0 = Instant::now();
    while !file.exists() {
        assert!(t0.elapsed() < Duration::from_secs(secs), "{} was never written", file.display());
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {} was written", file.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let printed = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    printed
}

/// The same architecture and bit-identical tensors (the file's metadata order may differ).
fn assert_same_model(a: &Path, b: &Path) {
    let (arch_a, wa, _) = autocompress::io::load_model(&a.join("model.safetensors")).unwrap();
    let (arch_b, wb, _) = autocompress::io::load_model(&b.join("model.safetensors")).unwrap();
    assert_eq!(serde_json::to_string(&arch_a).unwrap(), serde_json::to_string(&arch_b).unwrap());
    assert_eq!(wa.tensors.len(), wb.tensors.len());
    for (x, y) in wa.tensors.iter().zip(&wb.tensors) {
        let bits = |t: &autocompress::model::NamedTensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(x.name == y.name && x.shape == y.shape && bits(x) == bits(y), "tensor {} differs in {}", x.name, b.display());
    }
}

/// A residual network with batch norms through the whole pipeline: coupled groups are pruned
/// together (every producer of a residual sum keeps the same filters), batch norms follow, and
/// the compacted model computes what the masked one did.
#[test]
fn compress_prunes_a_residual_network_in_coupled_groups() {
    common::gpu_or_skip!();
    let out = tmp("resnet");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/models/digits-resnet.json");
    let run = bin()
        .args(["compress", "--model-json", model, "--target", "params:2x", "--baseline-epochs", "3", "--max-iterations", "4", "--quick-steps", "10"])
        .args(["--quick-val-images", "200", "--admm-updates", "2", "--retrain-epochs", "1", "--budget", "100", "--schemes", "filter", "--force", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report = report_without_times(&out);
    assert_eq!(report["target_met"], true, "{report}");
    let rounds = report["rounds"].as_array().unwrap();
    for r in rounds {
        let d = r["compacted_vs_masked_max_rel_diff"].as_f64().unwrap();
        assert!(d <= 1e-4, "round {}: compacted vs masked {d}", r["round"]);
    }
    // (the budget is wide: this checks structure, not accuracy)
    // the final model: the stem and block 1's last conv feed one sum, so they keep equal filter
    // counts, as do block 2's conv2 and shortcut; each batch norm matches its space
    let arch: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    let filters = |name: &str| find(&arch["layers"], name).unwrap()["filters"].as_u64().unwrap();
    assert_eq!(filters("stem"), filters("block1.conv2"));
    assert_eq!(filters("block2.conv2"), filters("block2.shortcut"));
    assert!(filters("stem") < 12 || filters("block2.conv2") < 24 || filters("block1.conv1") < 12 || filters("block2.conv1") < 24, "nothing was pruned: {arch}");
}

/// The layer called `name` in a JSON layer list, inside residual blocks too.
fn find<'a>(layers: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    layers.as_array()?.iter().find_map(|l| {
        if l["name"] == name {
            return Some(l);
        }
        find(&l["body"], name).or_else(|| find(&l["shortcut"], name))
    })
}
