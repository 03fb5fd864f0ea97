//! A folder of images with one sub-folder per class: `DIR/train/<class>/*` and
//! `DIR/test/<class>/*`, or `DIR/<class>/*` with a held-out test part. Classes are the sorted
//! sub-folder names. Images are PNG, JPEG or BMP; every image must have the size of the first
//! one (no silent resizing), and all are grey if the first one is, else RGB.

use super::{missing_hint, Raw, RawData};
use anyhow::{bail, Context, Result};
use image::ImageReader;
use std::path::{Path, PathBuf};

pub(crate) fn load(dir: &Path) -> Result<RawData> {
    if !dir.is_dir() {
        bail!(
            "folder: data directory {} does not exist; {}",
            dir.display(),
            missing_hint("folder")
        );
    }
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    let mut reader = Reader { first: None };
    let (class_names, train, test) = match (train_dir.is_dir(), test_dir.is_dir()) {
        (true, true) => {
            let classes = class_dirs(&train_dir)?;
            let train = reader.read_classes(&train_dir, &classes)?;
            let test_classes = class_dirs(&test_dir)?;
            if let Some(extra) = test_classes.iter().find(|c| !classes.contains(c)) {
                bail!(
                    "{}: class folder `{extra}` has no counterpart in {} (classes there: {})",
                    test_dir.display(),
                    train_dir.display(),
                    classes.join(", ")
                );
            }
            // Labels are indices into the training classes.
            let test = reader.read_classes(&test_dir, &classes)?;
            (classes, train, Some(test))
        }
        (false, false) => {
            let classes = class_dirs(dir)?;
            let train = reader.read_classes(dir, &classes)?;
            (classes, train, None)
        }
        (has_train, _) => {
            let (found, missing) = if has_train {
                (&train_dir, &test_dir)
            } else {
                (&test_dir, &train_dir)
            };
            bail!(
                "folder: found {} but not {}; expected either both train/ and test/ (each with one \
                 sub-folder per class) or one sub-folder per class directly in {}",
                found.display(),
                missing.display(),
                dir.display()
            );
        }
    };
    let (width, height, grey) = match &reader.first {
        Some((_, w, h, grey)) => (*w as usize, *h as usize, *grey),
        None => bail!("folder: no images under {}", dir.display()),
    };
    if train.labels.len() < 2 && test.is_none() {
        bail!(
            "folder: {} holds {} image(s); at least 2 are needed to hold out a test part",
            dir.display(),
            train.labels.len()
        );
    }
    Ok(RawData {
        shape: [if grey { 1 } else { 3 }, height, width],
        scale: 1.0 / 255.0,
        class_names,
        train,
        test,
    })
}

/// Sorted names of the non-hidden sub-folders of `dir`.
fn class_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).map(String::from);
        match name {
            Some(name) if path.is_dir() && !name.starts_with('.') => names.push(name),
            _ => {}
        }
    }
    if names.is_empty() {
        bail!(
            "folder: {} has no class sub-folders; expected DIR/<class>/<image> or \
             DIR/train/<class>/<image> with DIR/test/<class>/<image>",
            dir.display()
        );
    }
    names.sort();
    Ok(names)
}

struct Reader {
    /// The first image read: path, width, height, grey. It fixes the size and colour of all.
    first: Option<(PathBuf, u32, u32, bool)>,
}

impl Reader {
    /// Reads `dir/<class>/*` for each class present in `dir`; label = index in `classes`.
    fn read_classes(&mut self, dir: &Path, classes: &[String]) -> Result<Raw> {
        let mut raw = Raw {
            pixels: Vec::new(),
            labels: Vec::new(),
        };
        for (label, class) in classes.iter().enumerate() {
            let class_dir = dir.join(class);
            if !class_dir.is_dir() {
                continue; // a test set may lack a class
            }
            let files = image_files(&class_dir)?;
            if files.is_empty() {
                bail!(
                    "folder: class folder {} holds no image files",
                    class_dir.display()
                );
            }
            for path in files {
                self.read_image(&path, &mut raw.pixels)?;
                raw.labels.push(label as u32);
            }
        }
        Ok(raw)
    }

    /// Decodes one image and appends its bytes in `[c][h][w]` order.
    fn read_image(&mut self, path: &Path, out: &mut Vec<u8>) -> Result<()> {
        let img = ImageReader::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?
            .with_guessed_format()
            .with_context(|| format!("cannot read {}", path.display()))?
            .decode()
            .with_context(|| {
                format!("{}: not a readable PNG, JPEG or BMP image", path.display())
            })?;
        let (w, h) = (img.width(), img.height());
        let (first, fw, fh, grey) = self
            .first
            .get_or_insert_with(|| (path.to_path_buf(), w, h, !img.color().has_color()));
        if (w, h) != (*fw, *fh) {
            bail!(
                "{}: image is {w}×{h} but the first image ({}) is {fw}×{fh}; all images of a \
                 folder data set must have the same size",
                path.display(),
                first.display()
            );
        }
        if *grey {
            out.extend_from_slice(img.to_luma8().as_raw());
        } else {
            // Interleaved RGB to one plane per channel.
            let rgb = img.to_rgb8();
            for c in 0..3 {
                out.extend(rgb.as_raw().iter().skip(c).step_by(3));
            }
        }
        Ok(())
    }
}

/// Sorted non-hidden regular files of `dir`.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
