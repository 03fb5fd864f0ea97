//! Training-time augmentation for CIFAR-style data: a random crop from the image padded by
//! `pad` pixels on every side, and a horizontal flip with probability ½. Normalised images are
//! padded with zeros (the data set's mean). The choice for each image depends only on
//! (seed, epoch, position in the epoch), so a resumed run augments exactly as an uninterrupted one.

use super::{rng, STREAM_EPOCH};
use rand::Rng;

/// Stream of augmentation choices, apart from the epoch orders' streams.
const STREAM_AUGMENT: u64 = 1 << 48;

/// Augments `count` images of shape `[c, h, w]` in place; `first` is the position of the first
/// image in the epoch.
pub fn crop_flip(images: &mut [f32], count: usize, shape: [usize; 3], pad: usize, seed: u64, epoch: usize, first: usize) {
    let [c, h, w] = shape;
    let len = c * h * w;
    let mut src = vec![0.0f32; len];
    for k in 0..count {
        let mut r = rng(seed, STREAM_AUGMENT.wrapping_add(STREAM_EPOCH.wrapping_mul(epoch as u64)).wrapping_add((first + k) as u64));
        let dy = r.gen_range(0..=2 * pad) as isize - pad as isize;
        let dx = r.gen_range(0..=2 * pad) as isize - pad as isize;
        let flip = r.gen_bool(0.5);
        let img = &mut images[k * len..(k + 1) * len];
        src.copy_from_slice(img);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    // output (y, x) shows input (y + dy, x' + dx), x' mirrored when flipping
                    let xs = if flip { w - 1 - x } else { x } as isize + dx;
                    let ys = y as isize + dy;
                    let inside = (0..h as isize).contains(&ys) && (0..w as isize).contains(&xs);
                    img[(ch * h + y) * w + x] = if inside { src[(ch * h + ys as usize) * w + xs as usize] } else { 0.0 };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_and_flips_are_seeded_and_keep_the_pixels() {
        let shape = [2, 5, 7];
        let len = 70;
        let base: Vec<f32> = (0..3 * len).map(|i| i as f32 + 1.0).collect();
        let mut a = base.clone();
        crop_flip(&mut a, 3, shape, 2, 9, 0, 0);
        let mut b = base.clone();
        crop_flip(&mut b, 3, shape, 2, 9, 0, 0);
        assert_eq!(a, b, "same seed, epoch and position: same augmentation");
        let mut c = base.clone();
        crop_flip(&mut c, 3, shape, 2, 9, 1, 0);
        assert_ne!(a, c, "another epoch draws other crops");
        // every output pixel is zero padding or a pixel of the same image and channel
        for k in 0..3 {
            for ch in 0..2 {
                let plane = &a[k * len + ch * 35..k * len + (ch + 1) * 35];
                let orig = &base[k * len + ch * 35..k * len + (ch + 1) * 35];
                assert!(plane.iter().all(|v| *v == 0.0 || orig.contains(v)));
            }
        }
        let mut none = base.clone();
        crop_flip(&mut none, 3, shape, 0, 9, 0, 0);
        for k in 0..3 {
            let img = &none[k * len..(k + 1) * len];
            let orig = &base[k * len..(k + 1) * len];
            let flipped: Vec<f32> = (0..len).map(|i| orig[i / 7 * 7 + 6 - i % 7]).collect();
            assert!(img == orig || img == flipped.as_slice(), "pad 0 leaves the image or its mirror");
        }
    }
}
