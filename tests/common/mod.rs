//! Shared test support: one GPU context per test binary, seeded random data, and the naive CPU
//! reference of every kernel.
#![allow(dead_code)]

pub mod adapters;
pub mod cli;
pub mod reference;

use autocompress::gpu::Gpu;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The test GPU. Under CI=true a missing adapter fails the test instead of skipping it.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::new(None) {
        Ok(g) => Some(g),
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
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
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
