//! Data-set layer: readers on small generated files, the split, normalisation, batching, and
//! one error test per kind of bad input. No test here reads shared data (the last one, ignored,
//! reads real MNIST from $AUTOCOMPRESS_DATA).

use autocompress::data::{
    self, batches, epoch_order, gather, load, resolve_dir, Data, LoadOptions, Split,
};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

/// A fresh, empty directory for one test, removed when dropped.
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(name: &str) -> TmpDir {
    let dir = std::env::temp_dir().join(format!("autocompress-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TmpDir(dir)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn idx_images(
    count: usize,
    rows: usize,
    cols: usize,
    pixel: impl Fn(usize, usize) -> u8,
) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x803, count, rows, cols] {
        b.extend_from_slice(&(v as u32).to_be_bytes());
    }
    for i in 0..count {
        b.extend((0..rows * cols).map(|j| pixel(i, j)));
    }
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x801, labels.len()] {
        b.extend_from_slice(&(v as u32).to_be_bytes());
    }
    b.extend_from_slice(labels);
    b
}

/// Image `i` has pixel j = (i + j) % 256 and label i % 10, so both can be recovered.
fn id_pixel(i: usize, j: usize) -> u8 {
    ((i + j) % 256) as u8
}

/// Writes the four MNIST files for `n_train` / `n_test` images, gzipped or not.
fn write_mnist(dir: &Path, n_train: usize, n_test: usize, gzip: bool) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        for (name, bytes) in [
            (
                format!("{prefix}-images-idx3-ubyte"),
                idx_images(n, 28, 28, id_pixel),
            ),
            (format!("{prefix}-labels-idx1-ubyte"), idx_labels(&labels)),
        ] {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

/// Undoes the normalisation of value `k` of image `i`, back to a byte.
fn byte_at(data: &Data, split: &Split, i: usize, k: usize) -> u8 {
    let plane = data.shape[1] * data.shape[2];
    let c = k / plane;
    let x = split.image(i, data.image_len())[k];
    ((x * data.std[c] + data.mean[c]) * 255.0).round() as u8
}

/// The embedded digits data set, loaded with `opts`.
fn digits(opts: LoadOptions) -> anyhow::Result<Data> {
    load("digits", None, &opts)
}

fn load_err(dataset: &str, dir: &Path) -> String {
    match load(dataset, Some(dir), &LoadOptions::default()) {
        Ok(_) => panic!("loading {dataset} from {} should fail", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message lacks {p:?}: {msg}");
    }
}

fn cifar_record(label: u8, r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut rec = vec![label];
    for v in [r, g, b] {
        rec.extend(std::iter::repeat_n(v, 1024));
    }
    rec
}

// ---------------------------------------------------------------- IDX happy paths

fn check_mnist_round_trip(dataset: &str, gzip: bool) {
    let dir = tmpdir(&format!("{dataset}-rt-{gzip}"));
    write_mnist(&dir, 20, 5, gzip);
    let d = load(
        dataset,
        Some(dir.as_path()),
        &LoadOptions {
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.name, dataset);
    assert_eq!(d.shape, [1, 28, 28]);
    assert_eq!((d.classes, d.class_names.len()), (10, 10));
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (18, 2, 5));
    assert_eq!(d.train.images.len(), 18 * 784);

    // Every image comes back intact, with its label, and train + val = the training files.
    let mut seen = Vec::new();
    for split in [&d.train, &d.val] {
        for i in 0..split.len() {
            let id = byte_at(&d, split, i, 0) as usize;
            assert_eq!(split.labels[i] as usize, id % 10);
            assert_eq!(byte_at(&d, split, i, 100), id_pixel(id, 100));
            seen.push(id);
        }
    }
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    let mut test_ids: Vec<usize> = (0..5)
        .map(|i| byte_at(&d, &d.test, i, 0) as usize)
        .collect();
    test_ids.sort();
    assert_eq!(test_ids, (0..5).collect::<Vec<_>>());
}

#[test]
fn mnist_plain_round_trip() {
    check_mnist_round_trip("mnist", false);
}

#[test]
fn mnist_gzip_round_trip() {
    check_mnist_round_trip("mnist", true);
}

#[test]
fn fashion_mnist_gzip_round_trip_and_class_names() {
    check_mnist_round_trip("fashion-mnist", true);
    let dir = tmpdir("fashion-names");
    write_mnist(&dir, 10, 2, true);
    let d = load(
        "fashion-mnist",
        Some(dir.as_path()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(d.class_names[0], "T-shirt/top");
    assert_eq!(d.class_names[9], "Ankle boot");
}

#[test]
fn gzip_is_detected_by_magic_bytes_not_name() {
    // Plain bytes under a .gz name, and gzip bytes under a plain name.
    let dir = tmpdir("gz-magic");
    write_mnist(&dir, 10, 3, false);
    for name in ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::rename(dir.join(name), dir.join(format!("{name}.gz"))).unwrap();
    }
    let labels = std::fs::read(dir.join("train-labels-idx1-ubyte")).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), gz(&labels)).unwrap();
    let d = load("mnist", Some(dir.as_path()), &LoadOptions::default()).unwrap();
    assert_eq!((d.train.len() + d.val.len(), d.test.len()), (10, 3));
}

// ---------------------------------------------------------------- IDX bad input

#[test]
fn mnist_missing_file_names_it_and_says_how_to_get_it() {
    let dir = tmpdir("missing");
    write_mnist(&dir, 10, 3, true);
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let msg = load_err("mnist", &dir);
    assert_mentions(
        &msg,
        &[
            "t10k-images-idx3-ubyte",
            "datasets/fetch.sh mnist",
            "--data",
            "AUTOCOMPRESS_DATA",
        ],
    );
}

#[test]
fn missing_data_directory() {
    let dir = tmpdir("no-dir").join("nothing-here");
    for ds in ["mnist", "cifar-10", "folder"] {
        assert_mentions(
            &load_err(ds, &dir),
            &["nothing-here", "does not exist", "--data"],
        );
    }
}

#[test]
fn idx_truncated_file() {
    let dir = tmpdir("truncated");
    write_mnist(&dir, 10, 3, false);
    let path = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &["train-images-idx3-ubyte", "truncated", "7840", "7740"],
    );
    // A header cut short.
    std::fs::write(&path, &bytes[..10]).unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &["train-images-idx3-ubyte", "truncated IDX header"],
    );
}

#[test]
fn idx_truncated_gzip() {
    let dir = tmpdir("truncated-gz");
    write_mnist(&dir, 10, 3, true);
    let path = dir.join("t10k-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &["t10k-images-idx3-ubyte.gz", "gzip"],
    );
}

#[test]
fn idx_wrong_magic() {
    let dir = tmpdir("magic");
    write_mnist(&dir, 10, 3, false);
    // An image file where the label file belongs.
    std::fs::copy(
        dir.join("train-images-idx3-ubyte"),
        dir.join("train-labels-idx1-ubyte"),
    )
    .unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &[
            "train-labels-idx1-ubyte",
            "magic",
            "0x00000801",
            "0x00000803",
        ],
    );
}

#[test]
fn idx_image_and_label_counts_disagree() {
    let dir = tmpdir("counts");
    write_mnist(&dir, 10, 3, false);
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(&[1; 9])).unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &[
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "10",
            "9",
        ],
    );
}

#[test]
fn idx_wrong_image_dims() {
    let dir = tmpdir("dims");
    write_mnist(&dir, 10, 3, false);
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_images(3, 32, 32, id_pixel),
    )
    .unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &["t10k-images-idx3-ubyte", "28×28", "32×32"],
    );
}

#[test]
fn idx_label_out_of_range() {
    let dir = tmpdir("idx-label");
    write_mnist(&dir, 10, 3, false);
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(&[0, 12, 3])).unwrap();
    assert_mentions(
        &load_err("mnist", &dir),
        &["t10k-labels-idx1-ubyte", "label 1 is 12", "0..=9"],
    );
}

// ---------------------------------------------------------------- CIFAR-10

fn write_cifar(dir: &Path) {
    // Two training files in a nested folder (sorted order: data_batch_1, then data_batch_2).
    let sub = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    let b1: Vec<u8> = (0..6)
        .flat_map(|i| cifar_record(i % 10, 10 * i, 100, 200))
        .collect();
    let b2: Vec<u8> = (6..10)
        .flat_map(|i| cifar_record(i % 10, 10 * i, 100, 200))
        .collect();
    let t: Vec<u8> = (0..4)
        .flat_map(|i| cifar_record(9 - i, 250, 5, 7))
        .collect();
    std::fs::write(sub.join("data_batch_1.bin"), b1).unwrap();
    std::fs::write(sub.join("data_batch_2.bin"), b2).unwrap();
    std::fs::write(dir.join("test_batch.bin"), t).unwrap();
    std::fs::write(sub.join("readme.html"), "ignored").unwrap();
}

#[test]
fn cifar_round_trip() {
    let dir = tmpdir("cifar");
    write_cifar(&dir);
    let opts = LoadOptions {
        val_fraction: 0.2,
        ..Default::default()
    };
    let d = load("cifar-10", Some(dir.as_path()), &opts).unwrap();
    assert_eq!(d.shape, [3, 32, 32]);
    assert_eq!(d.class_names[0], "airplane");
    assert_eq!(d.class_names[9], "truck");
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (8, 2, 4));
    // Planes are R, G, B in that order; record i has R = 10 i and label i.
    for split in [&d.train, &d.val] {
        for i in 0..split.len() {
            assert_eq!(byte_at(&d, split, i, 5) as u32, 10 * split.labels[i]);
            assert_eq!(byte_at(&d, split, i, 1024 + 5), 100);
            assert_eq!(byte_at(&d, split, i, 2048 + 1023), 200);
        }
    }
    // G and B are constant on train: centred, with std taken as 1.
    assert_eq!(d.std[1], 1.0);
    assert!((d.mean[2] - 200.0 / 255.0).abs() < 1e-6);

    // Class names from batches.meta.txt when present.
    std::fs::write(
        dir.join("batches.meta.txt"),
        "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n",
    )
    .unwrap();
    let d = load("cifar-10", Some(dir.as_path()), &opts).unwrap();
    assert_eq!(
        d.class_names,
        ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
    );
    std::fs::write(dir.join("batches.meta.txt"), "a\nb\n").unwrap();
    assert_mentions(
        &load_err("cifar-10", &dir),
        &["batches.meta.txt", "10 class names", "found 2"],
    );
}

#[test]
fn cifar_size_not_multiple_of_record() {
    let dir = tmpdir("cifar-size");
    write_cifar(&dir);
    let mut t: Vec<u8> = (0..2).flat_map(|i| cifar_record(i, 1, 2, 3)).collect();
    t.truncate(t.len() - 10);
    std::fs::write(dir.join("test_batch.bin"), t).unwrap();
    assert_mentions(
        &load_err("cifar-10", &dir),
        &["test_batch.bin", "6136", "3073"],
    );
}

#[test]
fn cifar_label_out_of_range() {
    let dir = tmpdir("cifar-label");
    write_cifar(&dir);
    let t: Vec<u8> = [3, 10]
        .iter()
        .flat_map(|&l| cifar_record(l, 1, 2, 3))
        .collect();
    std::fs::write(dir.join("test_batch.bin"), t).unwrap();
    assert_mentions(
        &load_err("cifar-10", &dir),
        &["test_batch.bin", "record 1 has label 10", "0..=9"],
    );
}

#[test]
fn cifar_stray_bin_file_is_not_mixed_in() {
    let dir = tmpdir("cifar-stray");
    write_cifar(&dir);
    std::fs::write(dir.join("extra_batch.bin"), cifar_record(1, 1, 2, 3)).unwrap();
    assert_mentions(
        &load_err("cifar-10", &dir),
        &["extra_batch.bin", "data_batch*.bin", "test_batch*.bin"],
    );
}

#[test]
fn cifar_missing_test_batch() {
    let dir = tmpdir("cifar-notest");
    write_cifar(&dir);
    std::fs::remove_file(dir.join("test_batch.bin")).unwrap();
    assert_mentions(
        &load_err("cifar-10", &dir),
        &["test_batch*.bin", "datasets/fetch.sh cifar-10"],
    );
}

// ---------------------------------------------------------------- folder

fn grey_png(path: &Path, w: u32, h: u32, v: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save(path)
        .unwrap();
}

fn rgb_png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

#[test]
fn folder_with_train_and_test_grey() {
    let dir = tmpdir("folder-tt");
    for (k, class) in ["cat", "ant", "bee"].iter().enumerate() {
        for i in 0..4 {
            grey_png(
                &dir.join(format!("train/{class}/{i}.png")),
                5,
                3,
                50 * k as u8 + i,
            );
        }
        grey_png(&dir.join(format!("test/{class}/x.png")), 5, 3, 50 * k as u8);
    }
    std::fs::write(dir.join("train/ant/.DS_Store"), "hidden files are skipped").unwrap();
    let d = load(
        "folder",
        Some(dir.as_path()),
        &LoadOptions {
            val_fraction: 0.25,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.shape, [1, 3, 5]);
    assert_eq!(d.class_names, ["ant", "bee", "cat"]); // sorted
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (9, 3, 3));
    // Label = index of the sorted class name; "cat" (k = 0) pixels are 0..3.
    for split in [&d.train, &d.val, &d.test] {
        for i in 0..split.len() {
            let v = byte_at(&d, split, i, 7);
            let class = ["cat", "ant", "bee"][v as usize / 50];
            assert_eq!(d.class_names[split.labels[i] as usize], class);
        }
    }
}

#[test]
fn folder_rgb_with_held_out_test() {
    let dir = tmpdir("folder-rgb");
    for i in 0..10u8 {
        rgb_png(&dir.join(format!("red/{i}.png")), 4, 4, [200 + i, 0, 10]);
        rgb_png(&dir.join(format!("blue/{i}.png")), 4, 4, [0, i, 250]);
    }
    let d = load("folder", Some(dir.as_path()), &LoadOptions::default()).unwrap();
    assert_eq!(d.shape, [3, 4, 4]);
    assert_eq!(d.class_names, ["blue", "red"]);
    assert_eq!(d.test.len(), 4); // 20% of 20
    assert_eq!(d.train.len() + d.val.len(), 16);
    for split in [&d.train, &d.val, &d.test] {
        for i in 0..split.len() {
            let (r, b) = (byte_at(&d, split, i, 0), byte_at(&d, split, i, 32 + 15));
            match split.labels[i] {
                0 => assert_eq!((r, b), (0, 250)),
                _ => assert_eq!((r >= 200, b), (true, 10)),
            }
        }
    }
}

#[test]
fn folder_tiny_hold_out_keeps_one_test_image() {
    let dir = tmpdir("folder-tiny");
    grey_png(&dir.join("a/1.png"), 2, 2, 1);
    grey_png(&dir.join("b/1.png"), 2, 2, 2);
    let d = load("folder", Some(dir.as_path()), &LoadOptions::default()).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (1, 0, 1));
    grey_png(&dir.join("b/1.png"), 2, 2, 2);
    std::fs::remove_file(dir.join("a/1.png")).unwrap();
    std::fs::remove_dir(dir.join("a")).unwrap();
    assert_mentions(&load_err("folder", &dir), &["1 image", "at least 2"]);
}

#[test]
fn folder_image_of_another_size() {
    let dir = tmpdir("folder-size");
    grey_png(&dir.join("a/1.png"), 4, 4, 1);
    grey_png(&dir.join("a/2.png"), 4, 4, 1);
    grey_png(&dir.join("b/1.png"), 6, 4, 1);
    assert_mentions(
        &load_err("folder", &dir),
        &["b/1.png", "6×4", "a/1.png", "4×4"],
    );
}

#[test]
fn folder_corrupt_image() {
    let dir = tmpdir("folder-corrupt");
    grey_png(&dir.join("a/1.png"), 4, 4, 1);
    std::fs::write(
        dir.join("a/2.png"),
        b"\x89PNG\r\n\x1a\nthis is not really a png",
    )
    .unwrap();
    assert_mentions(&load_err("folder", &dir), &["a/2.png", "not a readable"]);
}

#[test]
fn folder_empty() {
    let dir = tmpdir("folder-empty");
    assert_mentions(
        &load_err("folder", &dir),
        &["folder-empty", "no class sub-folders"],
    );
    std::fs::create_dir_all(dir.join("a")).unwrap();
    assert_mentions(
        &load_err("folder", &dir),
        &["folder-empty/a", "no image files"],
    );
}

#[test]
fn folder_with_train_but_no_test() {
    let dir = tmpdir("folder-notest");
    grey_png(&dir.join("train/a/1.png"), 4, 4, 1);
    assert_mentions(&load_err("folder", &dir), &["train", "test", "found"]);
}

// ---------------------------------------------------------------- digits, split, options

#[test]
fn digits_loads_and_splits() {
    let d = digits(LoadOptions::default()).unwrap();
    assert_eq!(d.name, "digits");
    assert_eq!(d.shape, [1, 8, 8]);
    assert_eq!(d.image_len(), 64);
    assert_eq!(d.classes, 10);
    assert_eq!(d.train.len() + d.val.len() + d.test.len(), 1797);
    assert_eq!(d.test.len(), 359); // 20% held out
    assert_eq!(d.val.len(), 144); // 10% of the other 1,438
    assert_eq!(d.train.images.len(), d.train.len() * 64);
    assert!(d.train.labels.iter().chain(&d.test.labels).all(|&l| l < 10));
    // All ten classes appear in every part.
    for split in [&d.train, &d.val, &d.test] {
        let mut seen = [false; 10];
        split.labels.iter().for_each(|&l| seen[l as usize] = true);
        assert!(seen.iter().all(|&s| s));
    }
}

#[test]
fn normalisation_gives_zero_mean_unit_std_on_train() {
    let d = digits(LoadOptions::default()).unwrap();
    let n = d.train.images.len() as f64;
    let mean = d.train.images.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = d
        .train
        .images
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 1e-4, "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 1e-4, "std {}", var.sqrt());
    // Pixels are 0..16, scaled to 0..1.
    assert!(
        d.mean[0] > 0.1 && d.mean[0] < 0.6 && d.std[0] > 0.1,
        "{:?} {:?}",
        d.mean,
        d.std
    );
    // Other parts use the training statistics, so they are only roughly centred.
    let test_mean = d.test.images.iter().sum::<f32>() / d.test.images.len() as f32;
    assert!(test_mean.abs() < 0.1);
}

#[test]
fn load_is_deterministic_per_seed() {
    let a = digits(LoadOptions {
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    let b = digits(LoadOptions {
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    let c = digits(LoadOptions {
        seed: 8,
        ..Default::default()
    })
    .unwrap();
    assert_eq!((&a.train, &a.val, &a.test), (&b.train, &b.val, &b.test));
    assert_ne!(a.train.labels, c.train.labels);
}

#[test]
fn limits_take_the_first_after_shuffling() {
    let opts = LoadOptions {
        limit_train: Some(100),
        limit_test: Some(30),
        seed: 1,
        ..Default::default()
    };
    let d = load("digits", None, &opts).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (90, 10, 30));
    // The limited test set is a prefix of the full one, and the test part does not depend on
    // limit_train.
    let full = digits(LoadOptions {
        seed: 1,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(d.test.labels[..], full.test.labels[..30]);

    let dir = tmpdir("limits");
    write_mnist(&dir, 50, 20, false);
    let d = load(
        "mnist",
        Some(dir.as_path()),
        &LoadOptions {
            limit_train: Some(10),
            limit_test: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (9, 1, 4));

    let err = digits(LoadOptions {
        limit_train: Some(0),
        ..Default::default()
    })
    .unwrap_err();
    assert_mentions(&format!("{err:#}"), &["no training images"]);
}

#[test]
fn bad_validation_fraction() {
    for f in [-0.1, 1.0, f32::NAN] {
        let err = digits(LoadOptions {
            val_fraction: f,
            ..Default::default()
        })
        .unwrap_err();
        assert_mentions(&err.to_string(), &["validation fraction", "[0, 1)"]);
    }
    let d = digits(LoadOptions {
        val_fraction: 0.0,
        ..Default::default()
    })
    .unwrap();
    assert!(d.val.is_empty());
}

#[test]
fn unknown_dataset_lists_the_valid_names() {
    let err = load("imagenet", None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["imagenet"]);
    assert_mentions(&err, data::DATASETS);
}

#[test]
fn resolve_dir_order() {
    let explicit = Path::new("/some/where");
    assert_eq!(resolve_dir("mnist", Some(explicit)), explicit);

    let root = tmpdir("resolve");
    std::fs::create_dir_all(root.join("mnist")).unwrap();
    let saved = std::env::var_os("AUTOCOMPRESS_DATA");
    std::env::set_var("AUTOCOMPRESS_DATA", root.as_os_str());
    let with_env = resolve_dir("mnist", None);
    // Nothing exists for this name: the first candidate is named, for the error message.
    let missing = resolve_dir("cifar-10", None);
    match saved {
        Some(v) => std::env::set_var("AUTOCOMPRESS_DATA", v),
        None => std::env::remove_var("AUTOCOMPRESS_DATA"),
    }
    assert_eq!(with_env, root.join("mnist"));
    if !Path::new("datasets/cifar-10").is_dir() {
        assert_eq!(missing, root.join("cifar-10"));
    }
}

// ---------------------------------------------------------------- batching

#[test]
fn epoch_order_is_a_deterministic_permutation() {
    let a = epoch_order(1000, 42, 0);
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(a, epoch_order(1000, 42, 0));
    assert_ne!(a, epoch_order(1000, 42, 1));
    assert_ne!(a, epoch_order(1000, 43, 0));
    assert_ne!(a, (0..1000).collect::<Vec<_>>());
    assert!(epoch_order(0, 1, 0).is_empty());
}

#[test]
fn batches_and_drop_last() {
    let order: Vec<usize> = (0..10).collect();
    let keep: Vec<&[usize]> = batches(&order, 4, false).collect();
    assert_eq!(keep, [&[0, 1, 2, 3][..], &[4, 5, 6, 7], &[8, 9]]);
    let drop: Vec<&[usize]> = batches(&order, 4, true).collect();
    assert_eq!(drop, [&[0, 1, 2, 3][..], &[4, 5, 6, 7]]);
    assert_eq!(batches(&order, 10, true).count(), 1);
    assert_eq!(batches(&order, 11, true).count(), 0);
}

#[test]
fn gather_and_subset_copy_the_right_images() {
    let split = Split {
        images: (0..12).map(|v| v as f32).collect(),
        labels: vec![5, 6, 7, 8],
        teacher: (0..8).map(|v| v as f32).collect(),
    };
    assert_eq!(split.image(2, 3), [6.0, 7.0, 8.0]);
    let mut imgs = vec![-1.0; 9];
    let mut labels = vec![0; 3];
    gather(&split, &[3, 0], 3, &mut imgs, &mut labels);
    assert_eq!(imgs, [9.0, 10.0, 11.0, 0.0, 1.0, 2.0, -1.0, -1.0, -1.0]);
    assert_eq!(labels, [8, 5, 0]);
    let sub = split.subset(&[1, 1, 2], 3);
    assert_eq!(sub.labels, [6, 6, 7]);
    assert_eq!(sub.images, [3.0, 4.0, 5.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    // teacher logits (2 classes) follow their images
    assert_eq!(sub.teacher, [2.0, 3.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(sub.len(), 3);
}

// ---------------------------------------------------------------- real data (opt-in)

/// `AUTOCOMPRESS_DATA=/path/to/datasets cargo test --test data -- --ignored`
#[test]
#[ignore]
fn real_mnist_from_autocompress_data() {
    let Some(root) = std::env::var_os("AUTOCOMPRESS_DATA") else {
        eprintln!("AUTOCOMPRESS_DATA not set; nothing to check");
        return;
    };
    let root = PathBuf::from(root);
    let start = std::time::Instant::now();
    let d = load("mnist", Some(&root.join("mnist")), &LoadOptions::default()).unwrap();
    assert_eq!(
        (d.train.len(), d.val.len(), d.test.len()),
        (54_000, 6_000, 10_000)
    );
    // The well-known MNIST pixel statistics (0.1307, 0.3081), on 90% of the training set.
    assert!(
        (d.mean[0] - 0.1307).abs() < 0.002 && (d.std[0] - 0.3081).abs() < 0.002,
        "{:?} {:?}",
        d.mean,
        d.std
    );
    let mut hist = [0usize; 10];
    d.test.labels.iter().for_each(|&l| hist[l as usize] += 1);
    assert_eq!(
        hist,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    eprintln!("mnist: {:.2} s", start.elapsed().as_secs_f32());
}
