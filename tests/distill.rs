//! Knowledge distillation in training: the teacher's logits, not only the labels, drive the
//! student, and a run without the teacher's logits is refused.
mod common;

use autocompress::model::{zoo, Network, Weights};
use autocompress::train::Distill;
use autocompress::train::{logits, train, Schedule, TrainConfig};
use common::{digits, gpu_or_skip};

fn config(distill: Option<Distill>) -> TrainConfig {
    TrainConfig { epochs: 8, batch_size: 32, lr: 0.05, momentum: 0.9, weight_decay: 0.0, schedule: Schedule::Cosine, warmup_epochs: 0.0, seed: 3, steps_per_epoch: None, augment: false, distill }
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b })
}

/// With alpha = 1 the labels carry no weight: a teacher that says "label + 1" for every image is
/// what the student learns, on the training images.
#[test]
fn pure_distillation_learns_the_teachers_classes_not_the_labels() {
    let gpu = gpu_or_skip!();
    let mut data = digits(512, 64);
    let classes = data.classes;
    let shifted = |y: u32| (y as usize + 1) % classes;
    data.train.teacher = data.train.labels.iter().flat_map(|&y| (0..classes).map(move |c| if c == shifted(y) { 6.0 } else { 0.0 })).collect();

    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    let cfg = config(Some(Distill { alpha: 1.0, temperature: 2.0 }));
    let net = Network::new(gpu, &arch, &Weights::init(&arch, 1).unwrap(), cfg.batch_size, 0.0).unwrap();
    train(gpu, &net, &data, &cfg, false, |_| Ok(())).unwrap();

    let out = logits(gpu, &net, &data.train).unwrap();
    let n = data.train.len();
    let agree = |f: &dyn Fn(u32) -> usize| (0..n).filter(|&i| argmax(&out[i * classes..(i + 1) * classes]) == f(data.train.labels[i])).count() as f64 / n as f64;
    let with_teacher = agree(&shifted);
    let with_labels = agree(&|y| y as usize);
    assert!(with_teacher > 0.8, "the student agrees with the teacher on only {:.1}% of its training images", 100.0 * with_teacher);
    assert!(with_labels < 0.1, "the student follows the labels on {:.1}% of its training images although alpha is 1", 100.0 * with_labels);
}

#[test]
fn distillation_without_teacher_logits_or_with_augmentation_is_refused() {
    let gpu = gpu_or_skip!();
    let data = digits(64, 32);
    let arch = zoo::build("digits-cnn", data.shape, data.classes).unwrap();
    let cfg = config(Some(Distill { alpha: 0.5, temperature: 2.0 }));
    let net = Network::new(gpu, &arch, &Weights::init(&arch, 1).unwrap(), cfg.batch_size, 0.0).unwrap();
    let err = train(gpu, &net, &data, &cfg, false, |_| Ok(())).unwrap_err().to_string();
    assert!(err.contains("teacher's logits") && err.contains("found 0"), "unexpected error: {err}");

    let err = TrainConfig { augment: true, ..cfg.clone() }.validate().unwrap_err().to_string();
    assert!(err.contains("augmentation"), "unexpected error: {err}");
    let err = TrainConfig { distill: Some(Distill { alpha: 1.5, temperature: 2.0 }), ..cfg.clone() }.validate().unwrap_err().to_string();
    assert!(err.contains("--distill") && err.contains("1.5"), "unexpected error: {err}");
    let err = TrainConfig { distill: Some(Distill { alpha: 0.5, temperature: 0.0 }), ..cfg }.validate().unwrap_err().to_string();
    assert!(err.contains("--distill-temperature"), "unexpected error: {err}");
}
