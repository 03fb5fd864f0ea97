//! CIFAR-10 binary batches: 3,073-byte records (label byte, then 32×32 R, G and B planes).
//! Every `data_batch*.bin` under the directory (recursively) is training data and every
//! `test_batch*.bin` test data, in sorted path order so the result does not depend on the
//! file system. Another `.bin` file is an error rather than being silently left out or mixed in.

use super::{missing_hint, Raw, RawData};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

const IMAGE_LEN: usize = 3 * 32 * 32;
const RECORD: usize = 1 + IMAGE_LEN;
const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
// Guards against a symbolic-link loop.
const MAX_DEPTH: usize = 16;

pub(crate) fn load(dir: &Path) -> Result<RawData> {
    if !dir.is_dir() {
        bail!(
            "cifar-10: data directory {} does not exist; {}",
            dir.display(),
            missing_hint("cifar-10")
        );
    }
    let mut files = Vec::new();
    walk(dir, 0, &mut files)?;
    files.sort();

    let (mut train_files, mut test_files, mut meta) = (Vec::new(), Vec::new(), None);
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "batches.meta.txt" {
            meta.get_or_insert(path);
        } else if !name.ends_with(".bin") {
            // READMEs, tarballs, the python batches: not ours.
        } else if name.starts_with("data_batch") {
            train_files.push(path);
        } else if name.starts_with("test_batch") {
            test_files.push(path);
        } else {
            bail!(
                "cifar-10: unexpected file {}: a .bin file under the data directory must be named \
                 data_batch*.bin (training) or test_batch*.bin (test); rename or move it",
                path.display()
            );
        }
    }
    for (files, pattern) in [
        (&train_files, "data_batch*.bin"),
        (&test_files, "test_batch*.bin"),
    ] {
        if files.is_empty() {
            bail!(
                "cifar-10: no {pattern} file under {}; {}",
                dir.display(),
                missing_hint("cifar-10")
            );
        }
    }
    let class_names = match meta {
        Some(path) => read_meta(&path)?,
        None => CLASSES.iter().map(|s| s.to_string()).collect(),
    };
    Ok(RawData {
        shape: [3, 32, 32],
        scale: 1.0 / 255.0,
        class_names,
        train: read_batches(&train_files)?,
        test: Some(read_batches(&test_files)?),
    })
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_dir() {
            walk(&path, depth + 1, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn read_meta(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != CLASSES.len() {
        bail!(
            "{}: expected {} class names, one per line, found {}",
            path.display(),
            CLASSES.len(),
            names.len()
        );
    }
    Ok(names)
}

fn read_batches(files: &[PathBuf]) -> Result<Raw> {
    let mut raw = Raw {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for path in files {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            bail!(
                "{}: size {} bytes is not a positive multiple of the {RECORD}-byte CIFAR-10 record \
                 (label + 3×32×32 pixels); the file is truncated or not a CIFAR-10 binary batch",
                path.display(),
                bytes.len()
            );
        }
        raw.pixels.reserve(bytes.len() / RECORD * IMAGE_LEN);
        for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
            if record[0] > 9 {
                bail!(
                    "{}: record {i} has label {}, expected 0..=9",
                    path.display(),
                    record[0]
                );
            }
            raw.labels.push(record[0] as u32);
            raw.pixels.extend_from_slice(&record[1..]);
        }
    }
    Ok(raw)
}
