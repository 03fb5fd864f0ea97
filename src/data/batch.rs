//! Mini-batch order and copying. The order depends only on (seed, epoch), so a run resumed at
//! epoch `e` sees exactly the batches it would have seen without the interruption.

use super::{rng, Split, STREAM_EPOCH};
use rand::seq::SliceRandom;

/// A shuffled order of `0..n` for one epoch; depends only on `(seed, epoch)`.
/// Cut it into mini-batches with `batches`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng(seed, STREAM_EPOCH.wrapping_add(epoch as u64)));
    order
}

/// The mini-batches of `order`, `batch_size` indices each (a `batch_size` of 0 is taken as 1).
/// `drop_last` drops the final partial batch, so every batch has exactly `batch_size` indices.
pub fn batches(
    order: &[usize],
    batch_size: usize,
    drop_last: bool,
) -> impl Iterator<Item = &[usize]> {
    let batch_size = batch_size.max(1);
    let full = if drop_last {
        order.len() / batch_size * batch_size
    } else {
        order.len()
    };
    order[..full].chunks(batch_size)
}

/// Copies the images and labels of `idx` into `out_images` / `out_labels` (no allocation, so a
/// training loop can reuse one staging buffer). Needs `out_images.len() >= idx.len() * image_len`
/// and `out_labels.len() >= idx.len()`; the rest of the buffers is left as it was.
pub fn gather(
    split: &Split,
    idx: &[usize],
    image_len: usize,
    out_images: &mut [f32],
    out_labels: &mut [u32],
) {
    assert!(
        out_images.len() >= idx.len() * image_len && out_labels.len() >= idx.len(),
        "gather: buffers too small for {} images of {} values",
        idx.len(),
        image_len
    );
    for (k, &i) in idx.iter().enumerate() {
        out_images[k * image_len..(k + 1) * image_len].copy_from_slice(split.image(i, image_len));
        out_labels[k] = split.labels[i];
    }
}

/// Copies the teacher logits of `idx` (`classes` per image) into `out`, as `gather` copies
/// their images.
pub fn gather_teacher(split: &Split, idx: &[usize], classes: usize, out: &mut [f32]) {
    assert!(out.len() >= idx.len() * classes, "gather_teacher: buffer too small for {} rows of {classes}", idx.len());
    for (k, &i) in idx.iter().enumerate() {
        out[k * classes..(k + 1) * classes].copy_from_slice(&split.teacher[i * classes..(i + 1) * classes]);
    }
}
