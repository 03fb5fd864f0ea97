//! Training checkpoints: a run interrupted after any epoch and continued from its checkpoint
//! ends bit for bit where the uninterrupted run ends, in the library and through `train
//! --resume`; a checkpoint is never continued under other settings.
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use autocompress::model::{zoo, Network, Weights};
use autocompress::train::checkpoint::{self, Checkpoint};
use autocompress::train::{self, TrainConfig};
use common::cli::{bin, fails_with, scratch};

fn bits(w: &Weights) -> Vec<(String, Vec<u32>)> {
    w.tensors.iter().map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect())).collect()
}

/// Three epochs in one go, against one epoch, a checkpoint, a fresh network (other initial
/// weights, zero momentum) restored from it, and two more epochs: same weights, same momentum,
/// same logs. Momentum matters: restoring weights alone would not give the same result, and
/// the test checks that too.
#[test]
fn resumed_training_repeats_the_uninterrupted_run() {
    let gpu = common::gpu_or_skip!();
    let data = common::digits(640, 64);
    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    let cfg = TrainConfig { epochs: 3, batch_size: 32, warmup_epochs: 0.5, ..TrainConfig::defaults_for("digits-cnn") };
    let init = Weights::init(&arch, 7).unwrap();

    let whole = Network::new(gpu, &arch, &init, cfg.batch_size, cfg.weight_decay).unwrap();
    let logs = train::train(gpu, &whole, &data, &cfg, false, |_| Ok(())).unwrap();

    let dir = scratch("resume", "lib");
    let path = dir.join("checkpoint.safetensors");
    let first = Network::new(gpu, &arch, &init, cfg.batch_size, cfg.weight_decay).unwrap();
    // the "kill": an error after the first epoch's checkpoint
    let err = train::train(gpu, &first, &data, &cfg, false, |logs| {
        checkpoint::save(&path, gpu, &first, &cfg, logs, &[])?;
        anyhow::bail!("stopped after epoch {}", logs.len())
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "stopped after epoch 1");

    let c = Checkpoint::load(&path).unwrap();
    assert_eq!(c.logs.len(), 1);
    c.check_matches(&arch, &cfg).unwrap();
    let resumed = Network::new(gpu, &arch, &Weights::init(&arch, 99).unwrap(), cfg.batch_size, cfg.weight_decay).unwrap();
    c.restore(gpu, &resumed).unwrap();
    let rest = train::train_from(gpu, &resumed, &data, &cfg, c.logs.clone(), false, |_| Ok(())).unwrap();

    assert_eq!(rest.iter().map(|l| l.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    for (a, b) in logs.iter().zip(&rest) {
        // the checkpoint's logs went through JSON (serde_json's float_roundtrip keeps every bit)
        assert_eq!((a.train_loss, a.val_accuracy, a.lr), (b.train_loss, b.val_accuracy, b.lr), "epoch {} differs", a.epoch);
    }
    assert_eq!(bits(&whole.weights(gpu).unwrap()), bits(&resumed.weights(gpu).unwrap()), "resumed weights differ");
    let v = |n: &Network| n.velocities(gpu).unwrap().into_iter().map(|t| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect::<Vec<_>>();
    assert_eq!(v(&whole), v(&resumed), "resumed momentum differs");

    // without the momentum the continuation is another run
    let no_momentum = Network::new(gpu, &arch, &c.weights, cfg.batch_size, cfg.weight_decay).unwrap();
    train::train_from(gpu, &no_momentum, &data, &cfg, c.logs.clone(), false, |_| Ok(())).unwrap();
    assert_ne!(bits(&whole.weights(gpu).unwrap()), bits(&no_momentum.weights(gpu).unwrap()));

    // other settings, another model, or more epochs done than the run has are refused
    let err = c.check_matches(&arch, &TrainConfig { lr: 0.01, ..cfg.clone() }).unwrap_err().to_string();
    assert!(err.contains("lr 0.05") && err.contains("now 0.01"), "{err}");
    let other = zoo::build("lenet5", [1, 28, 28], 10).unwrap();
    assert!(c.check_matches(&other, &cfg).unwrap_err().to_string().contains("another model"));
    let short = TrainConfig { epochs: 1, ..cfg.clone() };
    let err = train::train_from(gpu, &resumed, &data, &short, rest, false, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("3 epochs done") && err.contains("the 1"), "{err}");
    // a plain model file is no checkpoint
    let model = dir.join("model.safetensors");
    autocompress::io::save_model(&model, &arch, &init, &[]).unwrap();
    assert!(Checkpoint::load(&model).err().unwrap().to_string().contains("not a training checkpoint"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn train_args(out: &Path) -> Vec<String> {
    ["train", "--epochs", "5", "--seed", "4", "--limit-train", "900", "--out"].iter().map(|s| s.to_string()).chain([out.display().to_string()]).collect()
}

/// `train` killed after its first checkpoint refuses to start over silently, refuses other
/// settings on --resume, and with --resume ends with the uninterrupted run's model; the
/// checkpoint is gone once the run has finished.
#[test]
fn train_resume_from_the_command_line() {
    common::gpu_or_skip!(); // the binary opens its own adapter: skip (fail under CI) where none is
    let d = scratch("resume", "cli");
    let (whole, killed) = (d.join("whole"), d.join("killed"));
    let out = bin().args(train_args(&whole)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!whole.join("checkpoint.safetensors").exists(), "a finished run keeps its checkpoint");
    fails_with(bin().args(train_args(&whole)).arg("--resume"), &["--resume", "no interrupted training run"]);

    let mut child = bin().args(train_args(&killed)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while !killed.join("checkpoint.safetensors").exists() {
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint was written");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = Checkpoint::load(&killed.join("checkpoint.safetensors")).unwrap().logs.len();
    assert!(done < 5, "the run was killed after it finished ({done} epochs)");

    fails_with(bin().args(train_args(&killed)), &["interrupted training run", "--resume", "--force"]);
    // a copy of the interrupted run, started over with --force
    let forced = d.join("forced");
    std::fs::create_dir_all(&forced).unwrap();
    std::fs::copy(killed.join("checkpoint.safetensors"), forced.join("checkpoint.safetensors")).unwrap();
    let out = bin().args(train_args(&forced)).arg("--force").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    fails_with(bin().args(train_args(&killed)).args(["--resume", "--lr", "0.01"]), &["other settings", "lr"]);
    let out = bin().args(train_args(&killed)).arg("--resume").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!killed.join("checkpoint.safetensors").exists());

    let model = |dir: &Path| autocompress::io::load_model(&dir.join("model.safetensors")).unwrap().1;
    assert_eq!(bits(&model(&whole)), bits(&model(&killed)), "the resumed run's model differs");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(killed.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["epochs"].as_array().unwrap().len(), 5);
    assert_eq!(bits(&model(&whole)), bits(&model(&forced)), "--force did not start over");
    let _ = std::fs::remove_dir_all(&d);
}
