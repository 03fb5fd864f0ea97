//! Data sets: reading (IDX, CIFAR-10 binary, image folders, the embedded digits), the
//! train/validation/test split, per-channel normalisation and mini-batch ordering.
//!
//! Every reader returns raw bytes (`RawData`); this module does the rest the same way for all
//! data sets, so the split and the normalisation cannot drift between them. Randomness comes
//! from one seed through ChaCha8, with one stream per purpose (see `rng`).

pub mod augment;
pub mod batch;
mod cifar10;
mod digits;
mod folder;
mod idx;
pub mod norm;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

pub use batch::{batches, epoch_order, gather, gather_teacher};
pub use norm::Norm;

/// The data-set names `load` accepts.
pub const DATASETS: &[&str] = &["digits", "mnist", "fashion-mnist", "cifar-10", "folder"];

/// Fraction held out as test data where a data set has no test set of its own
/// (digits, and a folder without `train/` and `test/`).
pub const HOLDOUT_TEST_FRACTION: f32 = 0.2;

/// One part of a data set: images `[n][c][h][w]` row-major, already normalised, and labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// A teacher's logits `[n][classes]` for distillation; empty when there is no teacher.
    pub teacher: Vec<f32>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize, image_len: usize) -> &[f32] {
        &self.images[i * image_len..(i + 1) * image_len]
    }

    /// A new split holding the images `idx`, in that order.
    pub fn subset(&self, idx: &[usize], image_len: usize) -> Split {
        let mut out = Split {
            images: vec![0.0; idx.len() * image_len],
            labels: vec![0; idx.len()],
            teacher: Vec::new(),
        };
        gather(self, idx, image_len, &mut out.images, &mut out.labels);
        if !self.teacher.is_empty() {
            let classes = self.teacher.len() / self.len();
            out.teacher = vec![0.0; idx.len() * classes];
            gather_teacher(self, idx, classes, &mut out.teacher);
        }
        out
    }
}

/// A loaded data set, split and normalised.
#[derive(Clone, Debug)]
pub struct Data {
    /// "digits", "mnist", "fashion-mnist", "cifar-10" or "folder".
    pub name: String,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    pub classes: usize,
    pub class_names: Vec<String>,
    /// Per-channel mean and standard deviation of the training part (pixels scaled to 0..1),
    /// applied to every part: `x = (pixel - mean) / std`.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

impl Data {
    /// Values per image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The normalisation applied to every part.
    pub fn norm(&self) -> Norm {
        Norm { mean: self.mean.clone(), std: self.std.clone() }
    }

    /// Model-file metadata of a model trained or evaluated on this data: the data set, the seed
    /// of its split and the input normalisation (data::norm).
    pub fn meta(&self, seed: u64) -> Vec<(&'static str, String)> {
        let mut m = vec![("dataset", self.name.clone()), ("seed", seed.to_string())];
        m.extend(self.norm().meta());
        m
    }
}

/// How to split and trim a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Fraction of the training files held out for validation, in `[0, 1)`.
    pub val_fraction: f32,
    /// Seed of every random choice made here (split, hold-out, trimming).
    pub seed: u64,
    /// Keep only the first N training files after shuffling; the validation part is then taken
    /// from these N, so train + val = min(N, available).
    pub limit_train: Option<usize>,
    /// Keep only the first N test images after shuffling.
    pub limit_test: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            val_fraction: 0.1,
            seed: 0,
            limit_train: None,
            limit_test: None,
        }
    }
}

/// Images as read from disk: bytes in `[n][c][h][w]` order, before any split.
pub(crate) struct Raw {
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
}

/// What a reader returns.
pub(crate) struct RawData {
    pub shape: [usize; 3],
    /// Multiplies a byte to give a pixel in 0..1 (1/255, or 1/16 for digits).
    pub scale: f32,
    pub class_names: Vec<String>,
    pub train: Raw,
    /// `None`: no official test set; one is held out from `train`.
    pub test: Option<Raw>,
}

// Random streams, one per purpose, so that e.g. changing `limit_test` never changes the
// training split. Epoch `e` of `epoch_order` uses stream `STREAM_EPOCH + e`.
const STREAM_TRAIN_VAL: u64 = 1;
const STREAM_TEST: u64 = 2;
const STREAM_HOLDOUT: u64 = 3;
pub(crate) const STREAM_EPOCH: u64 = 1 << 32;

pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng(seed, stream));
    order
}

/// Where the files of `dataset` are: the explicit directory, else `$AUTOCOMPRESS_DATA/<dataset>`,
/// else `datasets/<dataset>`, else (Fashion-MNIST only) the Debian package's
/// `/usr/share/datasets/fashion-mnist`. Without an explicit directory the first candidate that
/// exists wins; if none exists the first candidate is returned, so the error names it.
pub fn resolve_dir(dataset: &str, explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    let mut candidates = Vec::new();
    if let Some(root) = std::env::var_os("AUTOCOMPRESS_DATA").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(root).join(dataset));
    }
    candidates.push(Path::new("datasets").join(dataset));
    if dataset == "fashion-mnist" {
        candidates.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    }
    candidates
        .iter()
        .find(|p| p.is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

/// The hint appended to "file not found" errors.
pub(crate) fn missing_hint(dataset: &str) -> String {
    let fetch = if matches!(dataset, "mnist" | "fashion-mnist" | "cifar-10") {
        format!("download it with `datasets/fetch.sh {dataset}`, or ")
    } else {
        String::new()
    };
    format!(
        "{fetch}point to the files with `--data DIR` or AUTOCOMPRESS_DATA=ROOT \
         (which holds {dataset}/); see datasets/README.md"
    )
}

/// Reads `dataset`, splits it into train/val/test and normalises it with the training part's
/// per-channel statistics.
/// `dir`: where the files are (ignored for digits); `None` resolves it with `resolve_dir`.
pub fn load(dataset: &str, dir: Option<&Path>, opts: &LoadOptions) -> Result<Data> {
    load_normalised(dataset, dir, opts, None)
}

/// As `load`, normalised with `norm` (the one a model file states) when given.
pub fn load_normalised(dataset: &str, dir: Option<&Path>, opts: &LoadOptions, norm: Option<&Norm>) -> Result<Data> {
    if !(opts.val_fraction.is_finite() && (0.0..1.0).contains(&opts.val_fraction)) {
        bail!(
            "validation fraction must be in [0, 1), found {}",
            opts.val_fraction
        );
    }
    let raw = match dataset {
        "digits" => digits::load(),
        "mnist" | "fashion-mnist" => idx::load(dataset, &resolve_dir(dataset, dir))?,
        "cifar-10" => cifar10::load(&resolve_dir(dataset, dir))?,
        "folder" => folder::load(&resolve_dir(dataset, dir))?,
        _ => bail!(
            "unknown dataset `{dataset}`: expected one of {}",
            DATASETS.join(", ")
        ),
    };
    if let Some(n) = norm {
        if n.mean.len() != raw.shape[0] {
            bail!("the model expects {}-channel input but {dataset} has {} channels", n.mean.len(), raw.shape[0]);
        }
    }
    split_and_normalise(dataset, raw, opts, norm)
}

fn split_and_normalise(name: &str, raw: RawData, opts: &LoadOptions, norm: Option<&Norm>) -> Result<Data> {
    let [c, h, w] = raw.shape;
    let image_len = c * h * w;
    let n = raw.train.labels.len();

    // Indices into raw.train (the train/val pool) and into the test source.
    let (mut pool, mut test_idx) = match &raw.test {
        Some(test) => (
            permutation(n, opts.seed, STREAM_TRAIN_VAL),
            permutation(test.labels.len(), opts.seed, STREAM_TEST),
        ),
        None => {
            let order = permutation(n, opts.seed, STREAM_HOLDOUT);
            // At least one test image whenever one can be spared.
            let n_test =
                ((n as f32 * HOLDOUT_TEST_FRACTION).round() as usize).max(usize::from(n >= 2));
            (order[n_test..].to_vec(), order[..n_test].to_vec())
        }
    };
    if let Some(limit) = opts.limit_train {
        pool.truncate(limit);
    }
    if let Some(limit) = opts.limit_test {
        test_idx.truncate(limit);
    }
    let n_val = ((pool.len() as f32 * opts.val_fraction).round() as usize).min(pool.len());
    let (val_idx, train_idx) = pool.split_at(n_val);
    if train_idx.is_empty() {
        bail!(
            "{name}: no training images left ({n} available, limit {:?}, validation fraction {})",
            opts.limit_train,
            opts.val_fraction
        );
    }

    let (mean, std) = match norm {
        Some(n) => (n.mean.clone(), n.std.clone()),
        None => channel_stats(&raw.train, train_idx, c, h * w, raw.scale),
    };
    // Byte -> normalised value, one table per channel: the conversion is then one lookup.
    let lut: Vec<[f32; 256]> = (0..c)
        .map(|ch| std::array::from_fn(|v| (v as f32 * raw.scale - mean[ch]) / std[ch]))
        .collect();
    let build = |src: &Raw, idx: &[usize]| -> Split {
        let mut images = Vec::with_capacity(idx.len() * image_len);
        for &i in idx {
            let img = &src.pixels[i * image_len..(i + 1) * image_len];
            for (ch, plane) in img.chunks_exact(h * w).enumerate() {
                images.extend(plane.iter().map(|&b| lut[ch][b as usize]));
            }
        }
        Split {
            images,
            labels: idx.iter().map(|&i| src.labels[i]).collect(),
            teacher: Vec::new(),
        }
    };
    let train = build(&raw.train, train_idx);
    let val = build(&raw.train, val_idx);
    let test = build(raw.test.as_ref().unwrap_or(&raw.train), &test_idx);

    Ok(Data {
        name: name.to_string(),
        shape: raw.shape,
        classes: raw.class_names.len(),
        class_names: raw.class_names,
        mean,
        std,
        train,
        val,
        test,
    })
}

/// Mean and standard deviation per channel over the images `idx`, from byte histograms
/// (exact, and fast on 60,000 images).
fn channel_stats(
    raw: &Raw,
    idx: &[usize],
    c: usize,
    plane: usize,
    scale: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut hist = vec![[0u64; 256]; c];
    for &i in idx {
        let img = &raw.pixels[i * c * plane..(i + 1) * c * plane];
        for (ch, px) in img.chunks_exact(plane).enumerate() {
            for &b in px {
                hist[ch][b as usize] += 1;
            }
        }
    }
    let mut means = Vec::with_capacity(c);
    let mut stds = Vec::with_capacity(c);
    for h in &hist {
        let count: u64 = h.iter().sum();
        let count = count.max(1) as f64;
        let value = |v: usize| v as f64 * scale as f64;
        let mean = h
            .iter()
            .enumerate()
            .map(|(v, &k)| value(v) * k as f64)
            .sum::<f64>()
            / count;
        let var = h
            .iter()
            .enumerate()
            .map(|(v, &k)| (value(v) - mean).powi(2) * k as f64)
            .sum::<f64>()
            / count;
        // A constant channel would divide by zero; leave it centred but unscaled.
        let std = if var.sqrt() < 1e-6 { 1.0 } else { var.sqrt() };
        means.push(mean as f32);
        stds.push(std as f32);
    }
    (means, stds)
}
