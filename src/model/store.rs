//! A network's parameters in flat GPU buffers (weights, gradients, SGD velocities and 0/1
//! masks), one aligned range per parameter tensor, so that one SGD dispatch updates every
//! parameter (one dispatch per tensor cost a launch each: 58 for vgg16 with batch norm, 82 for
//! resnet18). Every parameter's tensors are views of the buffers (`Gpu::view`). The
//! weight-decayed tensors come first, so the SGD kernel tells them apart by one boundary instead
//! of a per-element flag. A model whose parameters exceed the adapter's storage binding limit
//! (128 MiB on lavapipe and in WebGPU's defaults) gets several chunks of buffers, one dispatch
//! each.

use anyhow::{bail, Result};

use crate::gpu::{Gpu, Tensor};

/// Where one tensor lies: its chunk and its offset there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    pub chunk: usize,
    pub offset: usize,
    pub len: usize,
}

/// One chunk's size: elements in each of its buffers, and the boundary below which every
/// element takes weight decay (its decayed tensors and their padding).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkLayout {
    pub len: usize,
    pub decayed: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Each tensor's place, in the order given.
    pub slots: Vec<Slot>,
    pub chunks: Vec<ChunkLayout>,
}

/// Lays out tensors of `lens` elements, each starting at a multiple of `align`: those with
/// `decay` first, then the rest, each group in the order given, filling chunks of at most
/// `capacity` elements one after another.
pub fn layout(lens: &[usize], decay: &[bool], align: usize, capacity: usize) -> Result<Layout> {
    assert_eq!(lens.len(), decay.len());
    let order = (0..lens.len()).filter(|&i| decay[i]).chain((0..lens.len()).filter(|&i| !decay[i]));
    let mut slots = vec![Slot { chunk: 0, offset: 0, len: 0 }; lens.len()];
    let mut chunks = vec![ChunkLayout { len: 0, decayed: 0 }];
    for i in order {
        if lens[i] > capacity {
            bail!("a parameter tensor of {} MiB is above this adapter's storage binding limit of {} MiB", lens[i] >> 18, capacity >> 18);
        }
        let mut offset = chunks.last().unwrap().len.next_multiple_of(align);
        if offset + lens[i] > capacity {
            chunks.push(ChunkLayout { len: 0, decayed: 0 });
            offset = 0;
        }
        let c = chunks.last_mut().unwrap();
        c.len = offset + lens[i];
        if decay[i] {
            c.decayed = c.len;
        }
        slots[i] = Slot { chunk: chunks.len() - 1, offset, len: lens[i] };
    }
    chunks.iter_mut().for_each(|c| c.len = c.len.max(1));
    Ok(Layout { slots, chunks })
}

/// One chunk's buffers. Padding is zero in weights, gradients and velocities, which keeps it
/// zero through every update, and one in the masks.
pub struct Chunk {
    pub weights: Tensor,
    pub grads: Tensor,
    pub velocities: Tensor,
    /// Ones except where a parameter is pruned; SGD reads it only while some parameter is masked.
    pub masks: Tensor,
    pub decayed: usize,
}

pub struct Store {
    pub chunks: Vec<Chunk>,
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
        let capacity = (gpu.max_binding_bytes() / 4) as usize / gpu.view_alignment() * gpu.view_alignment();
        Store::with_capacity(gpu, tensors, capacity)
    }

    /// As `new`, with chunks of at most `capacity` elements.
    pub fn with_capacity(gpu: &Gpu, tensors: &[(&[f32], bool)], capacity: usize) -> Result<(Store, Vec<Views>)> {
        let lens: Vec<usize> = tensors.iter().map(|t| t.0.len()).collect();
        let decay: Vec<bool> = tensors.iter().map(|t| t.1).collect();
        let layout = layout(&lens, &decay, gpu.view_alignment(), capacity)?;
        let mut flat: Vec<Vec<f32>> = layout.chunks.iter().map(|c| vec![0.0; c.len]).collect();
        for ((data, _), s) in tensors.iter().zip(&layout.slots) {
            flat[s.chunk][s.offset..s.offset + s.len].copy_from_slice(data);
        }
        let chunks = flat
            .iter()
            .zip(&layout.chunks)
            .map(|(w, c)| {
                Ok(Chunk {
                    weights: gpu.upload(w, "weights")?,
                    grads: gpu.tensor(c.len, "gradients")?,
                    velocities: gpu.tensor(c.len, "velocities")?,
                    masks: gpu.upload(&vec![1.0f32; c.len], "masks")?,
                    decayed: c.decayed,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let views = layout
            .slots
            .iter()
            .map(|s| {
                let c = &chunks[s.chunk];
                Ok(Views {
                    w: gpu.view(&c.weights, s.offset, s.len)?,
                    grad: gpu.view(&c.grads, s.offset, s.len)?,
                    velocity: gpu.view(&c.velocities, s.offset, s.len)?,
                    mask: gpu.view(&c.masks, s.offset, s.len)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((Store { chunks, layout }, views))
    }

    /// Reads one kind of buffer (`which` picks it from a chunk) back, one transfer per chunk,
    /// and cuts it into the tensors, in order.
    pub fn read_each(&self, gpu: &Gpu, which: impl Fn(&Chunk) -> &Tensor) -> Result<Vec<Vec<f32>>> {
        let all: Vec<Vec<f32>> = self.chunks.iter().map(|c| gpu.read(which(c))).collect::<Result<_>>()?;
        Ok(self.layout.slots.iter().map(|s| all[s.chunk][s.offset..s.offset + s.len].to_vec()).collect())
    }

    /// Fills one kind of buffer with `value` in every chunk.
    pub fn fill(&self, gpu: &Gpu, which: impl Fn(&Chunk) -> &Tensor, value: f32) {
        for c in &self.chunks {
            gpu.write(which(c), &vec![value; which(c).len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decayed_tensors_come_first_aligned_and_apart() {
        let lens = [5, 3, 70, 1, 64];
        let decay = [true, false, true, false, true];
        let l = layout(&lens, &decay, 64, 1 << 20).unwrap();
        let offsets: Vec<usize> = l.slots.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, vec![0, 256, 64, 320, 192]);
        assert_eq!(l.chunks, vec![ChunkLayout { len: 321, decayed: 256 }]);
        // no two ranges overlap, and every decayed range lies below the boundary
        let mut ranges: Vec<(usize, usize)> = l.slots.iter().map(|s| (s.offset, s.offset + s.len)).collect();
        ranges.sort();
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0));
        for (i, s) in l.slots.iter().enumerate() {
            assert_eq!(s.offset + s.len <= l.chunks[0].decayed, decay[i], "tensor {i}");
            assert_eq!(s.offset % 64, 0);
        }
    }

    #[test]
    fn alignment_one_packs_tightly() {
        let l = layout(&[2, 3, 4], &[false, true, false], 1, 100).unwrap();
        let offsets: Vec<usize> = l.slots.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, vec![3, 0, 5]);
        assert_eq!(l.chunks, vec![ChunkLayout { len: 9, decayed: 3 }]);
        assert_eq!(layout(&[], &[], 64, 100).unwrap().chunks, vec![ChunkLayout { len: 1, decayed: 0 }]);
    }

    #[test]
    fn parameters_above_one_binding_fill_several_chunks() {
        // capacity 100 at alignment 16: [60 decayed | 30 decayed] does not fit (64 + 30 = 94
        // would, 60 + pad + 50 would not)
        let l = layout(&[60, 50, 30, 100, 7], &[true, true, true, false, false], 16, 100).unwrap();
        let slots: Vec<(usize, usize)> = l.slots.iter().map(|s| (s.chunk, s.offset)).collect();
        assert_eq!(slots, vec![(0, 0), (1, 0), (1, 64), (2, 0), (3, 0)]);
        assert_eq!(
            l.chunks,
            vec![ChunkLayout { len: 60, decayed: 60 }, ChunkLayout { len: 94, decayed: 94 }, ChunkLayout { len: 100, decayed: 0 }, ChunkLayout { len: 7, decayed: 0 }]
        );
        let e = layout(&[10, 101], &[true, false], 1, 100).unwrap_err().to_string();
        assert!(e.contains("above this adapter's storage binding limit"), "{e}");
    }
}
