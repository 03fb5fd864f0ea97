//! MNIST and Fashion-MNIST in IDX format, plain or gzipped (recognised by the gzip magic bytes,
//! not the file name). IDX: big-endian u32 magic (0x0803 images, 0x0801 labels), u32 dimensions,
//! then unsigned bytes.

use super::{missing_hint, Raw, RawData};
use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

const IMAGE_MAGIC: u32 = 0x0000_0803;
const LABEL_MAGIC: u32 = 0x0000_0801;
const SIDE: usize = 28;

const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

pub(crate) fn load(dataset: &str, dir: &Path) -> Result<RawData> {
    if !dir.is_dir() {
        bail!(
            "{dataset}: data directory {} does not exist; {}",
            dir.display(),
            missing_hint(dataset)
        );
    }
    let train = read_pair(dataset, dir, "train")?;
    let test = read_pair(dataset, dir, "t10k")?;
    let class_names = if dataset == "fashion-mnist" {
        FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..10).map(|d| d.to_string()).collect()
    };
    Ok(RawData {
        shape: [1, SIDE, SIDE],
        scale: 1.0 / 255.0,
        class_names,
        train,
        test: Some(test),
    })
}

/// Reads `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` and checks they agree.
fn read_pair(dataset: &str, dir: &Path, prefix: &str) -> Result<Raw> {
    let images_path = find(dataset, dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dataset, dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (count, rows, cols, pixels) = parse_images(&images_path, &read_maybe_gz(&images_path)?)?;
    if (rows, cols) != (SIDE, SIDE) {
        bail!(
            "{}: expected {SIDE}×{SIDE} images for {dataset}, found {rows}×{cols}",
            images_path.display()
        );
    }
    let labels = parse_labels(&labels_path, &read_maybe_gz(&labels_path)?)?;
    if labels.len() != count {
        bail!(
            "{} holds {count} images but {} holds {} labels; the counts must agree",
            images_path.display(),
            labels_path.display(),
            labels.len()
        );
    }
    Ok(Raw { pixels, labels })
}

/// `dir/name`, else `dir/name.gz`.
fn find(dataset: &str, dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if plain.is_file() {
        Ok(plain)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        bail!(
            "{dataset}: missing file {} (or {}.gz); {}",
            plain.display(),
            name,
            missing_hint(dataset)
        )
    }
}

/// The file's bytes, decompressed if they start with the gzip magic 1f 8b.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut out)
        .with_context(|| format!("{}: corrupt or truncated gzip data", path.display()))?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks magic and header length; returns the dimensions.
fn header(path: &Path, b: &[u8], magic: u32, what: &str) -> Result<Vec<usize>> {
    let dims = (magic & 0xff) as usize;
    let header_len = 4 + 4 * dims;
    if b.len() < 4 {
        bail!(
            "{}: too short for an IDX {what} file ({} bytes)",
            path.display(),
            b.len()
        );
    }
    let found = be_u32(b, 0);
    if found != magic {
        bail!(
            "{}: not an IDX {what} file: expected magic number {magic:#010x}, found {found:#010x}",
            path.display()
        );
    }
    if b.len() < header_len {
        bail!(
            "{}: truncated IDX header: expected {header_len} bytes, found {}",
            path.display(),
            b.len()
        );
    }
    Ok((0..dims).map(|d| be_u32(b, 4 + 4 * d) as usize).collect())
}

/// Checks that exactly `expected` data bytes follow the header.
fn body<'a>(
    path: &Path,
    b: &'a [u8],
    header_len: usize,
    expected: Option<usize>,
    what: &str,
) -> Result<&'a [u8]> {
    let found = b.len() - header_len;
    match expected {
        Some(e) if e == found => Ok(&b[header_len..]),
        Some(e) if found < e => {
            bail!(
                "{}: truncated: the header promises {e} bytes of {what}, found {found}",
                path.display()
            )
        }
        Some(e) => bail!(
            "{}: {} unexpected bytes after the {e} bytes of {what} the header promises",
            path.display(),
            found - e
        ),
        None => bail!("{}: the header's dimensions overflow", path.display()),
    }
}

/// Returns (count, rows, cols, pixels).
fn parse_images(path: &Path, b: &[u8]) -> Result<(usize, usize, usize, Vec<u8>)> {
    let d = header(path, b, IMAGE_MAGIC, "image")?;
    let (count, rows, cols) = (d[0], d[1], d[2]);
    let expected = count.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    let pixels = body(path, b, 16, expected, "pixels")?;
    Ok((count, rows, cols, pixels.to_vec()))
}

fn parse_labels(path: &Path, b: &[u8]) -> Result<Vec<u32>> {
    let count = header(path, b, LABEL_MAGIC, "label")?[0];
    let labels = body(path, b, 8, Some(count), "labels")?;
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        bail!(
            "{}: label {i} is {}, expected 0..=9",
            path.display(),
            labels[i]
        );
    }
    Ok(labels.iter().map(|&l| l as u32).collect())
}
