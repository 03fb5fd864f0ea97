//! Which weighted layer feeds which (SPEC.md §4 step 2), as channel spaces: a space is a set of
//! channels that live or die together. Its producers are the conv/linear layers whose filters
//! are its channels: one for a plain layer, several where a residual add sums branches (an
//! identity shortcut makes the block's output the same space as its input). Its batch norms
//! follow those filters. Its consumers read channel j as `per_channel` consecutive columns of
//! their dense GEMM view (R·S for a convolution, H·W for a linear layer after a flatten, 1 after
//! a linear layer or global pooling). The model input and the class scores are fixed.

use anyhow::{bail, Result};

use crate::model::graph::{branch_shapes, Architecture, Layer, Shape};

/// A weighted layer as the pruning code sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    /// Rows of the GEMM view (filters or units).
    pub rows: usize,
    /// Columns of the dense GEMM view (C·R·S, or input features).
    pub dense_cols: usize,
    /// Kept columns (indices into the dense view), when the layer is column-compacted.
    pub columns: Option<Vec<u32>>,
    /// Input channels and the dense columns each owns.
    pub channels: usize,
    pub per_channel: usize,
    /// The spaces it reads and writes.
    pub input: usize,
    pub output: usize,
}

impl Node {
    /// Columns of the stored GEMM view.
    pub fn cols(&self) -> usize {
        self.columns.as_ref().map_or(self.dense_cols, |c| c.len())
    }
    /// The dense column that stored column `j` stands for.
    pub fn dense_col(&self, j: usize) -> usize {
        self.columns.as_ref().map_or(j, |c| c[j] as usize)
    }
    /// The input channel stored column `j` reads.
    pub fn channel_of(&self, j: usize) -> usize {
        self.dense_col(j) / self.per_channel
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    pub channels: usize,
    /// Nodes whose rows are this space's channels (more than one: a coupled group).
    pub producers: Vec<usize>,
    /// Batch-norm layers over this space's channels.
    pub norms: Vec<String>,
    /// Nodes that read this space.
    pub consumers: Vec<usize>,
    /// The model input or the class scores: every channel stays.
    pub fixed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    /// Weighted layers in forward order.
    pub nodes: Vec<Node>,
    pub spaces: Vec<Space>,
}

impl Topology {
    /// The per-channel vectors of space `s` that follow its filters: every producer's bias and
    /// every batch norm's γ and β.
    pub fn channel_vectors(&self, s: usize) -> Vec<String> {
        let space = &self.spaces[s];
        let biases = space.producers.iter().map(|&p| format!("{}.bias", self.nodes[p].name));
        biases.chain(space.norms.iter().flat_map(|n| [format!("{n}.weight"), format!("{n}.bias")])).collect()
    }
}

pub fn topology(arch: &Architecture) -> Result<Topology> {
    let shapes = arch.shapes()?;
    let input = Shape::Chw(arch.input[0], arch.input[1], arch.input[2]);
    let mut b = Builder { nodes: Vec::new(), spaces: Vec::new(), parent: Vec::new() };
    let first = b.space(arch.input[0], true);
    b.walk(&arch.layers, &shapes, input, first, 1)?;
    let Some(last) = b.nodes.last().map(|n| n.output) else { bail!("{} has no conv2d or linear layer to prune", arch.name) };
    let root = b.find(last);
    b.spaces[root].fixed = true;
    Ok(b.finish())
}

struct Builder {
    nodes: Vec<Node>,
    spaces: Vec<Space>,
    /// Union-find over spaces: residual sums merge them.
    parent: Vec<usize>,
}

impl Builder {
    fn space(&mut self, channels: usize, fixed: bool) -> usize {
        self.spaces.push(Space { channels, fixed, ..Default::default() });
        self.parent.push(self.parent.len());
        self.spaces.len() - 1
    }

    fn find(&mut self, mut s: usize) -> usize {
        while self.parent[s] != s {
            self.parent[s] = self.parent[self.parent[s]];
            s = self.parent[s];
        }
        s
    }

    /// Merges two spaces into the older one, so producers stay in forward order.
    fn union(&mut self, a: usize, b: usize) -> usize {
        let (a, b) = (self.find(a), self.find(b));
        let (a, b) = (a.min(b), a.max(b));
        if a != b {
            let moved = std::mem::take(&mut self.spaces[b]);
            let s = &mut self.spaces[a];
            s.producers.extend(moved.producers);
            s.norms.extend(moved.norms);
            s.consumers.extend(moved.consumers);
            s.fixed |= moved.fixed;
            self.parent[b] = a;
        }
        a
    }

    /// Walks `layers` from `space` (with `per_flat` pixels per channel carried since the last
    /// weighted layer, for a linear layer after a flatten); returns the output space.
    fn walk(&mut self, layers: &[Layer], shapes: &[Shape], mut shape: Shape, mut space: usize, mut per_flat: usize) -> Result<usize> {
        for (layer, &out) in layers.iter().zip(shapes) {
            match (layer, shape) {
                (Layer::Conv2d { name, filters, kernel, columns, .. }, Shape::Chw(c, ..)) => {
                    space = self.node(name, *filters, c * kernel * kernel, columns, c, kernel * kernel, space);
                    per_flat = 1;
                }
                (Layer::Linear { name, units, columns }, Shape::Flat(n)) => {
                    space = self.node(name, *units, n, columns, n / per_flat, per_flat, space);
                    per_flat = 1;
                }
                (Layer::BatchNorm { name }, _) => {
                    let s = self.find(space);
                    self.spaces[s].norms.push(name.clone());
                }
                (Layer::Flatten, Shape::Chw(_, h, w)) => per_flat *= h * w,
                (Layer::GlobalAvgPool, _) => per_flat = 1,
                (Layer::Residual { body, shortcut }, _) => {
                    let b = self.walk(body, &branch_shapes(body, shape)?, shape, space, per_flat)?;
                    let s = if shortcut.is_empty() { space } else { self.walk(shortcut, &branch_shapes(shortcut, shape)?, shape, space, per_flat)? };
                    space = self.union(b, s);
                }
                (Layer::Conv2d { name, .. } | Layer::Linear { name, .. }, _) => bail!("layer {name} has an input it cannot take"),
                _ => {}
            }
            shape = out;
        }
        Ok(space)
    }

    #[allow(clippy::too_many_arguments)]
    fn node(&mut self, name: &str, rows: usize, dense_cols: usize, columns: &Option<Vec<u32>>, channels: usize, per_channel: usize, input: usize) -> usize {
        let input = self.find(input);
        let output = self.space(rows, false);
        let i = self.nodes.len();
        self.spaces[input].consumers.push(i);
        self.spaces[output].producers.push(i);
        self.nodes.push(Node { name: name.to_string(), rows, dense_cols, columns: columns.clone(), channels, per_channel, input, output });
        output
    }

    /// Numbers the surviving spaces in order of first appearance.
    fn finish(mut self) -> Topology {
        let mut index = vec![usize::MAX; self.spaces.len()];
        let mut spaces = Vec::new();
        for s in 0..self.spaces.len() {
            let r = self.find(s);
            if index[r] == usize::MAX {
                index[r] = spaces.len();
                spaces.push(std::mem::take(&mut self.spaces[r]));
            }
            index[s] = index[r];
        }
        for n in &mut self.nodes {
            n.input = index[n.input];
            n.output = index[n.output];
        }
        for s in &mut spaces {
            s.consumers.sort_unstable();
            s.consumers.dedup();
        }
        Topology { nodes: self.nodes, spaces }
    }
}
