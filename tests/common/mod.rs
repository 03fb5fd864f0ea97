//! Shared test support: one GPU context per test binary, seeded random data, tensors that show
//! an unwritten element, tolerant comparisons, and the naive CPU reference of every kernel.
#![allow(dead_code)]

pub mod adapters;
pub mod cli;
pub mod models;
pub mod reference;

use autocompress::data::{Data, LoadOptions};
use autocompress::gpu::tune::{Mode, Tuning};
use autocompress::gpu::{Gpu, Tensor};
use autocompress::model::{Architecture, Network, Weights};
use autocompress::prune::compact::compact;
use autocompress::prune::purify::unused_paths;
use autocompress::prune::topology::topology;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The test GPU. Under CI=true a missing adapter fails the test instead of skipping it.
/// Tests run the kernels selection chooses, not what a user's tuning cache on this machine holds
/// (tests/tune.rs tunes into caches of its own).
pub fn untuned(gpu: Gpu) -> Gpu {
    *gpu.tuning.lock().expect("tuning table") = Tuning::open(None, &gpu.adapter, Mode::Off);
    gpu
}

pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(None).map(untuned) {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            if std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false) {
                panic!("CI is set and no GPU adapter was found: {e}");
            }
            eprintln!("skipping GPU test: {e}");
            None
        }
    })
    .as_ref()
}

/// `let gpu = gpu_or_skip!();` at the top of a GPU test: the test GPU, or an early return (the
/// test is skipped) where there is no adapter. Under CI=true `gpu()` panics instead, so the test
/// fails. Tests that run the binary, which opens its own adapter, write `gpu_or_skip!();`.
#[allow(unused_macros)]
macro_rules! gpu_or_skip {
    () => {
        match $crate::common::gpu() {
            Some(gpu) => gpu,
            None => return,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use gpu_or_skip;

/// A tensor of `len` NaNs: an output buffer in which an element a kernel forgets to write fails
/// the comparison that follows.
pub fn nan_tensor(gpu: &Gpu, len: usize, label: &str) -> Tensor {
    gpu.upload(&vec![f32::NAN; len], label).unwrap()
}

/// The whole of an f32 tensor, read back to the host.
pub fn read(gpu: &Gpu, t: &Tensor) -> Vec<f32> {
    gpu.read(t).unwrap()
}

/// The logits of `n` images from an evaluation step of `net` (the labels, all 0, do not matter).
pub fn eval_logits(gpu: &Gpu, net: &Network, images: &[f32], n: usize) -> Vec<f32> {
    net.load_batch(gpu, images, &vec![0u32; n]).unwrap();
    net.eval_step(gpu, n).unwrap();
    net.logits(gpu).unwrap()
}

/// Purification's unused-path removal on the masked weights `w`, and compaction after it, keep
/// the masked model's logits `want` (max_rel_err ≤ 1e-4); `logits` runs a model on the test's
/// images. Returns the purified, compacted architecture.
#[track_caller]
pub fn assert_purification_keeps_outputs(what: &str, arch: &Architecture, w: &Weights, want: &[f32], logits: impl Fn(&Architecture, &Weights) -> Vec<f32>) -> Architecture {
    let mut p = w.clone();
    unused_paths(&topology(arch).unwrap(), &mut p).unwrap();
    let e2 = max_rel_err(&logits(arch, &p), want);
    assert!(e2 <= 1e-4, "{what}: unused-path removal changed outputs by {e2}");
    let (parch, pw, _) = compact(arch, &p).unwrap();
    let e3 = max_rel_err(&logits(&parch, &pw), want);
    assert!(e3 <= 1e-4, "{what}: purified compaction differs by {e3}");
    parch
}

/// The embedded digits data set, limited to its first `train` training and `test` test images.
pub fn digits(train: usize, test: usize) -> Data {
    let opts = LoadOptions { limit_train: Some(train), limit_test: Some(test), ..LoadOptions::default() };
    autocompress::data::load("digits", None, &opts).unwrap()
}

/// A dense conv2d layer for hand-written test models.
pub fn conv(name: &str, filters: usize, kernel: usize, stride: usize, padding: usize) -> autocompress::model::Layer {
    autocompress::model::Layer::Conv2d { name: name.into(), filters, kernel, stride, padding, columns: None }
}

/// A dense linear layer for hand-written test models.
pub fn linear(name: &str, units: usize) -> autocompress::model::Layer {
    autocompress::model::Layer::Linear { name: name.into(), units, columns: None }
}

pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-1.0f32..1.0)).collect()
}

/// max |a-b| / max(1, max|b|): a relative error that is stable for values near zero.
pub fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return f32::INFINITY;
    }
    let scale = b.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Fails unless every element is finite and max|got − want| ≤ tol · max(max|want|, 1e-30);
/// the message names the worst element. `tol = 0` asks for bit-for-bit equality (up to ±0).
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length {} but expected {}", got.len(), want.len());
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        panic!("{what}: element {i} is {} (expected {}): not written, or overflowed", got[i], want[i]);
    }
    let scale = want.iter().fold(1e-30f32, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0.0f32, 0);
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        let d = (x - y).abs();
        if d > worst {
            worst = d;
            at = i;
        }
    }
    assert!(
        worst <= tol * scale,
        "{what}: element {at} is {} but expected {} (|diff| {worst:e}, {:e} relative to max |want| {scale:e}, tolerance {tol:e})",
        got[at],
        want[at],
        worst / scale
    );
}
