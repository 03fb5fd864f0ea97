//! A network's parameters in four flat GPU buffers (weights, gradients, SGD velocities and 0/1
//! masks), one aligned range per parameter tensor, so that a single SGD dispatch updates every
//! parameter (one dispatch per tensor cost a launch each: 58 for vgg16 with batch norm, 82 for resnet18). Every
//! parameter's tensors are views of the four buffers (`Gpu::view`). The weight-decayed tensors
//! come first, so the SGD kernel tells them apart by one boundary instead of a per-element flag.

use anyhow::Result;

use crate::gpu::{Gpu, Tensor};

/// Where each tensor lies in the flat buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Offset of each tensor, in the order given.
    pub offsets: Vec<usize>,
    /// Elements of each tensor, in the order given.
    pub lens: Vec<usize>,
    /// Elements below this take weight decay: the decayed tensors and their padding.
    pub decayed: usize,
    /// Elements of each flat buffer.
    pub len: usize,
}

/// Lays out tensors of `lens` elements, each starting at a multiple of `align`: those with
/// `decay` first, then the rest, each group in the order given.
pub fn layout(lens: &[usize], decay: &[bool], align: usize) -> Layout {
    assert_eq!(lens.len(), decay.len());
    let mut offsets = vec![0; lens.len()];
    let mut end = 0usize;
    let mut decayed = 0;
    for pass in [true, false] {
        for (i, _) in decay.iter().enumerate().filter(|&(_, &d)| d == pass) {
            offsets[i] = end.next_multiple_of(align);
            end = offsets[i] + lens[i];
        }
        if pass {
            decayed = end;
        }
    }
    Layout { offsets, lens: lens.to_vec(), decayed, len: end.max(1) }
}

/// The four flat buffers. Padding is zero in weights, gradients and velocities, which keeps it
/// zero through every update, and one in the masks.
pub struct Store {
    pub weights: Tensor,
    pub grads: Tensor,
    pub velocities: Tensor,
    /// Ones except where a parameter is pruned; SGD reads it only while some parameter is masked.
    pub masks: Tensor,
    pub layout: Layout,
}

/// One parameter's views of the store.
pub struct Views {
    pub w: Tensor,
    pub grad: Tensor,
    pub velocity: Tensor,
    pub mask: Tensor,
}

impl Store {
    /// Uploads `tensors` (data, weight decay or not) and returns each one's views, in order.
    pub fn new(gpu: &Gpu, tensors: &[(&[f32], bool)]) -> Result<(Store, Vec<Views>)> {
        let lens: Vec<usize> = tensors.iter().map(|t| t.0.len()).collect();
        let decay: Vec<bool> = tensors.iter().map(|t| t.1).collect();
        let layout = layout(&lens, &decay, gpu.view_alignment());
        let mut flat = vec![0.0f32; layout.len];
        for ((data, _), &at) in tensors.iter().zip(&layout.offsets) {
            flat[at..at + data.len()].copy_from_slice(data);
        }
        let store = Store {
            weights: gpu.upload(&flat, "weights")?,
            grads: gpu.tensor(layout.len, "gradients")?,
            velocities: gpu.tensor(layout.len, "velocities")?,
            masks: gpu.upload(&vec![1.0f32; layout.len], "masks")?,
            layout,
        };
        let views = store
            .layout
            .lens
            .iter()
            .zip(&store.layout.offsets)
            .map(|(&len, &at)| {
                Ok(Views {
                    w: gpu.view(&store.weights, at, len)?,
                    grad: gpu.view(&store.grads, at, len)?,
                    velocity: gpu.view(&store.velocities, at, len)?,
                    mask: gpu.view(&store.masks, at, len)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((store, views))
    }

    /// Reads one flat buffer back in a single transfer and cuts it into the tensors' ranges.
    pub fn read_each(&self, gpu: &Gpu, flat: &Tensor) -> Result<Vec<Vec<f32>>> {
        let all: Vec<f32> = gpu.read(flat)?;
        Ok(self.layout.offsets.iter().zip(&self.layout.lens).map(|(&at, &n)| all[at..at + n].to_vec()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decayed_tensors_come_first_aligned_and_apart() {
        let lens = [5, 3, 70, 1, 64];
        let decay = [true, false, true, false, true];
        let l = layout(&lens, &decay, 64);
        assert_eq!(l.offsets, vec![0, 256, 64, 320, 192]);
        assert_eq!(l.decayed, 256);
        assert_eq!(l.len, 321);
        // no two ranges overlap, and every decayed range lies below the boundary
        let mut ranges: Vec<(usize, usize)> = l.offsets.iter().zip(&lens).map(|(&o, &n)| (o, o + n)).collect();
        ranges.sort();
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0));
        for i in 0..lens.len() {
            assert_eq!(l.offsets[i] + lens[i] <= l.decayed, decay[i], "tensor {i}");
            assert_eq!(l.offsets[i] % 64, 0);
        }
    }

    #[test]
    fn alignment_one_packs_tightly() {
        let l = layout(&[2, 3, 4], &[false, true, false], 1);
        assert_eq!(l, Layout { offsets: vec![3, 0, 5], lens: vec![2, 3, 4], decayed: 3, len: 9 });
        assert_eq!(layout(&[], &[], 64).len, 1);
    }
}
