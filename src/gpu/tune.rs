//! The autotuner of the implicit-GEMM convolution forward, the kernel every inference, training
//! forward and `bench` row runs. Selection (`strategy`) decides by design; the tuner measures:
//! for one shape it times a bounded list of candidates (selection's choice first, then register
//! and workgroup-memory tiles within the adapter's limits), keeps only those whose output
//! matches a CPU reference, and remembers the fastest.
//!
//! Winners live in a JSON cache (`cache_path`), keyed by adapter, driver, a hash of the shaders'
//! source and a shape bucket (exact filter count, K and pixel columns rounded up to a power of
//! two), so a driver update or a changed shader retunes. `bench --tune` fills it; every later run
//! on the same adapter uses it; `AUTOCOMPRESS_TUNE=first-use` tunes a shape when first met, and
//! `AUTOCOMPRESS_TUNE=off` ignores the cache. A cache that is corrupt, of another format
//! version, or that names a kernel beyond this adapter's limits is ignored with a warning.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::context::Gpu;
use super::conv::{self, ConvGeom};
use super::gemm::Tile;
use super::strategy::{select_conv, AdapterDesc, Matmul, SharedTile, SHARED_TILES};
use super::timing::Timer;

/// Bumped whenever the cache's layout or the meaning of its keys changes.
pub const CACHE_VERSION: u32 = 1;

/// At most this many candidates are timed per shape.
pub const MAX_CANDIDATES: usize = 8;

/// Timed repetitions per candidate (the median counts).
const REPS: usize = 5;

/// What a tuned shape keeps: the winner, its time and that of selection's choice, and how many
/// candidates were timed and how many failed the reference check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kernel: Matmul,
    pub ms: f64,
    pub selected: Matmul,
    pub selected_ms: f64,
    pub candidates: usize,
    pub rejected: usize,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

/// When tuning happens (`AUTOCOMPRESS_TUNE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Use the cache's winners, tune only when asked (`bench --tune`). The default.
    Cached,
    /// Also tune every shape met for the first time.
    FirstUse,
    /// Neither read nor write the cache: selection alone decides (`bench --tune` still tunes,
    /// for this run only).
    Off,
}

impl Mode {
    pub fn from_env() -> Result<Mode> {
        match std::env::var("AUTOCOMPRESS_TUNE").as_deref() {
            Err(_) | Ok("") | Ok("cached") => Ok(Mode::Cached),
            Ok("first-use") | Ok("1") => Ok(Mode::FirstUse),
            Ok("off") | Ok("0") => Ok(Mode::Off),
            Ok(v) => bail!("AUTOCOMPRESS_TUNE={v}: expected 'cached' (default), 'first-use' or 'off'"),
        }
    }
}

/// The tuning table of one `Gpu`: this adapter's entries of the cache file.
pub struct Tuning {
    pub mode: Mode,
    pub path: Option<PathBuf>,
    prefix: String,
    entries: BTreeMap<String, Entry>,
}

/// `AUTOCOMPRESS_TUNE_CACHE`, else the user's cache directory: `$XDG_CACHE_HOME` or
/// `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows.
pub fn cache_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AUTOCOMPRESS_TUNE_CACHE") {
        return Some(PathBuf::from(p));
    }
    let base = if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA").map(PathBuf::from)
    } else if cfg!(target_os = "macos") {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Library/Caches"))
    } else {
        std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
    }?;
    Some(base.join("autocompress").join("tune.json"))
}

/// FNV-1a: a hash that stays the same across Rust versions, unlike std's.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in parts.iter().flat_map(|p| p.bytes().chain([0xff])) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The key's adapter part: name, driver, and the hash of the sources the candidates compile.
fn prefix(a: &AdapterDesc) -> String {
    let hash = fnv1a(&[include_str!("../../shaders/conv_gemm.wgsl"), include_str!("../../shaders/tiled.wgsl"), env!("CARGO_PKG_VERSION")]);
    format!("{} | {} | {hash:016x}", a.name, a.driver)
}

/// The shape bucket of a convolution forward of `m` filters over `n` pixel columns and `kp`
/// packed kept columns.
pub fn bucket(m: usize, n: usize, kp: usize) -> String {
    format!("conv m{m} n≤{} k≤{}", n.next_power_of_two(), kp.next_power_of_two())
}

/// Whether `k` can run on adapter `a` as a convolution kernel.
fn runs_on(a: &AdapterDesc, k: &Matmul) -> bool {
    a.check(k.workgroup(), k.bytes(true)).is_ok()
}

impl Tuning {
    /// The cache's entries for adapter `a` in `mode`. Never fails: what cannot be read is
    /// reported on stderr and ignored, so a bad cache costs speed, not a run.
    pub fn load(a: &AdapterDesc, mode: Mode) -> Tuning {
        Tuning::open(if mode == Mode::Off { None } else { cache_path() }, a, mode)
    }

    /// As `load`, with the cache file given (`None`: none read or written).
    pub fn open(path: Option<PathBuf>, a: &AdapterDesc, mode: Mode) -> Tuning {
        let mut t = Tuning { mode, path, prefix: prefix(a), entries: BTreeMap::new() };
        let Some(path) = t.path.clone() else { return t };
        let file = match read_file(&path) {
            Ok(Some(f)) => f,
            Ok(None) => return t,
            Err(e) => {
                eprintln!("warning: ignoring the tuning cache: {e:#}");
                return t;
            }
        };
        for (key, e) in file.entries {
            let Some(shape) = key.strip_prefix(&t.prefix).and_then(|k| k.strip_prefix(" | ")) else { continue };
            if runs_on(a, &e.kernel) {
                t.entries.insert(shape.to_string(), e);
            } else {
                eprintln!("warning: ignoring tuning cache entry '{key}' of {}: {:?} exceeds this adapter's limits", path.display(), e.kernel);
            }
        }
        t
    }

    pub fn get(&self, bucket: &str) -> Option<&Entry> {
        self.entries.get(bucket)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a winner and writes the cache file (atomically; other adapters' entries kept).
    pub fn insert(&mut self, bucket: String, e: Entry) -> Result<()> {
        self.entries.insert(bucket, e);
        let Some(path) = self.path.clone() else { return Ok(()) };
        // another version's or a corrupt file is replaced, as it is ignored when read
        let mut file = read_file(&path).ok().flatten().unwrap_or(CacheFile { version: CACHE_VERSION, entries: BTreeMap::new() });
        for (b, e) in &self.entries {
            file.entries.insert(format!("{} | {b}", self.prefix), e.clone());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create the tuning cache directory {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&file)?).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
    }
}

/// The cache file, `None` if there is none; an error for a corrupt one or another version's.
fn read_file(path: &Path) -> Result<Option<CacheFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let version = v.get("version").and_then(|v| v.as_u64());
    if version != Some(CACHE_VERSION as u64) {
        bail!("{} was written by another version of autocompress (format {version:?}, this one reads {CACHE_VERSION})", path.display());
    }
    let file: CacheFile = serde_json::from_value(v).with_context(|| format!("{} is corrupt", path.display()))?;
    Ok(Some(file))
}

/// The candidates for an m × n convolution forward over `kp` packed columns on adapter `a`:
/// selection's choice first, then today's register tile for the shape and its neighbours, a
/// 64-thread register tile, and the workgroup-memory tiles (K steps of 16 and 32), all within
/// the adapter's limits, at most `MAX_CANDIDATES`.
pub fn candidates(a: &AdapterDesc, m: usize, n: usize, kp: usize) -> Vec<Matmul> {
    let reg = Tile::for_conv(m, n);
    let mut list = vec![select_conv(a, m, n, kp).kernel, Matmul::Register(reg)];
    for t in [Tile { tn4: 4, ..reg }, Tile { tm: 8, ..reg }, Tile { tm: 4, tn4: 1, wx: 16, wy: 4 }] {
        list.push(Matmul::Register(t));
    }
    for s in SHARED_TILES {
        list.push(Matmul::Workgroup(s));
        list.push(Matmul::Workgroup(SharedTile { bk: 32, ..s }));
    }
    let mut out: Vec<Matmul> = Vec::new();
    for k in list {
        if runs_on(a, &k) && !out.contains(&k) && out.len() < MAX_CANDIDATES {
            out.push(k);
        }
    }
    out
}

/// Deterministic inputs in [-1, 1) (xorshift32 from `seed`).
pub fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Output of image `img` on the CPU in f64, and per output the sum of its terms' magnitudes
/// (the scale of its rounding error).
fn reference(g: &ConvGeom, kept: &[u32], x: &[f32], w: &[f32], bias: &[f32], img: usize) -> (Vec<f64>, Vec<f64>) {
    let (kcp, ohw, ow) = (kept.len().next_multiple_of(4), g.ohw(), g.ow());
    let (mut y, mut scale) = (vec![0.0; g.k * ohw], vec![0.0; g.k * ohw]);
    for k in 0..g.k {
        for p in 0..ohw {
            let (oy, ox) = (p / ow, p % ow);
            let (mut s, mut a) = (bias[k] as f64, bias[k].abs() as f64);
            for (j, &col) in kept.iter().enumerate() {
                let col = col as usize;
                let (c, rr, ss) = (col / (g.r * g.s), (col / g.s) % g.r, col % g.s);
                let (iy, ix) = ((oy * g.stride + rr) as isize - g.pad as isize, (ox * g.stride + ss) as isize - g.pad as isize);
                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                    continue;
                }
                let v = x[((img * g.c + c) * g.h + iy as usize) * g.w + ix as usize] as f64 * w[k * kcp + j] as f64;
                s += v;
                a += v.abs();
            }
            y[k * ohw + p] = s;
            scale[k * ohw + p] = a;
        }
    }
    (y, scale)
}

/// Whether a kernel's output matches the reference: every value within 1e-5 of the sum of its
/// terms' magnitudes (fp32 accumulation in any order stays far inside that), NaN never.
pub fn matches(got: &[f32], want: &[f64], scale: &[f64]) -> bool {
    got.len() == want.len() && got.iter().zip(want).zip(scale).all(|((&a, &b), &s)| ((a as f64) - b).abs() <= 1e-5 * s + 1e-6)
}

/// Times every candidate on geometry `g` (one launch over its `g.n` images) keeping columns
/// `kept`, checks each against the CPU reference on its first and last image, and returns the
/// fastest that matched. Fails only if none matched.
pub fn tune_conv(gpu: &Gpu, g: &ConvGeom, kept: &[u32]) -> Result<Entry> {
    let (kc, kcp, n) = (kept.len(), kept.len().next_multiple_of(4), g.n * g.ohwp());
    let x = pseudo_random(g.n * g.c * g.h * g.w, 0x2545_f491);
    let mut w = pseudo_random(g.k * kcp, 0x9e37_79b9);
    for (i, v) in w.iter_mut().enumerate() {
        if i % kcp >= kc {
            *v = 0.0; // packed rows are zero past the kept columns
        }
    }
    let bias = pseudo_random(g.k, 0x85eb_ca6b);
    let tx = gpu.upload(&x, "tune x")?;
    let tw = gpu.upload(&w, "tune w")?;
    let tb = gpu.upload(&bias, "tune bias")?;
    let tt = gpu.upload(&conv::column_table(g, kept)?, "tune table")?;
    let ty = gpu.tensor(g.n * g.k * g.ohw(), "tune y")?;
    let images = if g.n > 1 { vec![0, g.n - 1] } else { vec![0] };
    let refs: Vec<_> = images.iter().map(|&i| reference(g, kept, &x, &w, &bias, i)).collect();
    let list = candidates(&gpu.adapter, g.k, n, kcp);
    let (mut best, mut selected_ms, mut rejected) = (None::<(Matmul, f64)>, f64::NAN, 0);
    for (i, &k) in list.iter().enumerate() {
        gpu.write(&ty, &vec![f32::NAN; ty.len]);
        let d = conv::conv_gemm_with(gpu, k, g, kc, 0, g.n, &tw, &tx, &tt, &tb, &ty)?;
        let (ms, _) = gpu.time_plan(std::slice::from_ref(&d), REPS, Timer::Gpu)?;
        let per = g.k * g.ohw();
        let ok = images.iter().zip(&refs).all(|(&img, (want, scale))| gpu.read_range::<f32>(&ty, img * per, per).is_ok_and(|got| matches(&got, want, scale)));
        if i == 0 {
            selected_ms = ms;
        }
        if !ok {
            rejected += 1;
            eprintln!("tuning {}: {} gave wrong output; not used", bucket(g.k, n, kcp), k.name());
            continue;
        }
        if best.is_none_or(|(_, b)| ms < b) {
            best = Some((k, ms));
        }
    }
    let Some((kernel, ms)) = best else { bail!("tuning {}: no candidate matched the CPU reference", bucket(g.k, n, kcp)) };
    Ok(Entry { kernel, ms, selected: list[0], selected_ms, candidates: list.len(), rejected })
}

impl Gpu {
    /// The convolution-forward kernel for an m × n output over `kp` packed columns: the
    /// environment's override, else the tuning cache's winner for the shape's bucket (tuning it
    /// now under `AUTOCOMPRESS_TUNE=first-use`), else selection's choice. `g` and `kc` describe
    /// the shape for a first-use tuning run.
    pub fn conv_kernel(&self, g: &ConvGeom, kc: usize, chunk: usize) -> Result<Matmul> {
        let (m, n, kp) = (g.k, chunk * g.ohwp(), kc.next_multiple_of(4));
        let selected = self.strategy.conv(m, n, kp).kernel;
        if self.strategy.tile.is_some() {
            return Ok(selected);
        }
        let key = bucket(m, n, kp);
        let mode = {
            let t = self.tuning.lock().expect("tuning table");
            if let Some(e) = t.get(&key) {
                return Ok(e.kernel);
            }
            t.mode
        };
        if mode != Mode::FirstUse {
            return Ok(selected);
        }
        let entry = self.tune_shape(&ConvGeom { n: chunk, ..*g }, &(0..kc as u32).collect::<Vec<_>>())?;
        Ok(entry.kernel)
    }

    /// Tunes one shape and records the winner in the table and the cache file.
    pub fn tune_shape(&self, g: &ConvGeom, kept: &[u32]) -> Result<Entry> {
        let e = tune_conv(self, g, kept)?;
        let key = bucket(g.k, g.n * g.ohwp(), kept.len().next_multiple_of(4));
        self.tuning.lock().expect("tuning table").insert(key, e.clone())?;
        Ok(e)
    }
}
