//! A model flattened for execution: leaf layers, residual forks and joins over numbered value
//! and gradient buffers. A residual block's branches both read the block's input; each branch
//! writes its input gradient to a buffer of its own, which the fork sums in the backward pass.
//! Both branches' last layers read the join's output gradient, since d(a + b)/da = d(a + b)/db = 1.

use anyhow::Result;

use super::graph::{branch_shapes, Architecture, Layer, Shape};

pub enum Op<'a> {
    /// A layer without nested layers reading value `x`, writing value `y`; backward reads
    /// gradient `dy` and writes gradient `dx` (none for the model input).
    Leaf {
        layer: &'a Layer,
        input: Shape,
        output: Shape,
        x: usize,
        y: usize,
        dx: Option<usize>,
        dy: usize,
    },
    /// Backward only: grads[g] = grads[body] + grads[short] (`len` values per image).
    Fork {
        g: usize,
        body: usize,
        short: usize,
        len: usize,
    },
    /// Forward only: vals[y] = vals[a] + vals[b].
    Join {
        a: usize,
        b: usize,
        y: usize,
        len: usize,
    },
}

pub struct Flat<'a> {
    pub ops: Vec<Op<'a>>,
    /// Values per image of each value buffer; buffer 0 is the model input.
    pub vals: Vec<usize>,
    /// Values per image of each gradient buffer.
    pub grads: Vec<usize>,
    /// The logits and their gradient.
    pub out: usize,
    pub dout: usize,
}

pub fn flatten(arch: &Architecture) -> Result<Flat<'_>> {
    let shapes = arch.shapes()?;
    let input = Shape::Chw(arch.input[0], arch.input[1], arch.input[2]);
    let mut f = Flat {
        ops: Vec::new(),
        vals: vec![input.len()],
        grads: Vec::new(),
        out: 0,
        dout: 0,
    };
    let (out, dout) = f.seq(&arch.layers, &shapes, input, 0, None, None)?;
    f.out = out;
    // a model with no computing layer still needs a buffer for the loss to write
    f.dout = dout.unwrap_or_else(|| f.grad(arch.classes));
    Ok(f)
}

impl<'a> Flat<'a> {
    fn val(&mut self, len: usize) -> usize {
        self.vals.push(len);
        self.vals.len() - 1
    }

    fn grad(&mut self, len: usize) -> usize {
        self.grads.push(len);
        self.grads.len() - 1
    }

    /// Appends `layers` reading value `x` (gradient `gx`); the last layer's output gradient is
    /// `out_grad` when given. Returns the output value and gradient.
    fn seq(
        &mut self,
        layers: &'a [Layer],
        shapes: &[Shape],
        mut shape: Shape,
        mut x: usize,
        mut gx: Option<usize>,
        out_grad: Option<usize>,
    ) -> Result<(usize, Option<usize>)> {
        for (i, (layer, &s)) in layers.iter().zip(shapes).enumerate() {
            let last_grad = if i + 1 == layers.len() {
                out_grad
            } else {
                None
            };
            (x, gx) = match layer {
                // a view: same buffers (never inside a residual branch, so never `last_grad`)
                Layer::Flatten => (x, gx),
                Layer::Residual { body, shortcut } => {
                    self.residual(body, shortcut, shape, s, x, gx, last_grad)?
                }
                _ => {
                    let y = self.val(s.len());
                    let dy = last_grad.unwrap_or_else(|| self.grad(s.len()));
                    self.ops.push(Op::Leaf {
                        layer,
                        input: shape,
                        output: s,
                        x,
                        y,
                        dx: gx,
                        dy,
                    });
                    (y, Some(dy))
                }
            };
            shape = s;
        }
        Ok((x, gx))
    }

    #[allow(clippy::too_many_arguments)]
    fn residual(
        &mut self,
        body: &'a [Layer],
        shortcut: &'a [Layer],
        shape: Shape,
        out: Shape,
        x: usize,
        gx: Option<usize>,
        out_grad: Option<usize>,
    ) -> Result<(usize, Option<usize>)> {
        let go = out_grad.unwrap_or_else(|| self.grad(out.len()));
        let (mut gb, mut gs) = (None, None);
        if let Some(g) = gx {
            // placed before the branches, so in the reversed backward pass it runs after them
            let body = self.grad(shape.len());
            let short = if shortcut.is_empty() {
                go
            } else {
                self.grad(shape.len())
            };
            self.ops.push(Op::Fork {
                g,
                body,
                short,
                len: shape.len(),
            });
            (gb, gs) = (Some(body), Some(short));
        }
        let (vb, _) = self.seq(body, &branch_shapes(body, shape)?, shape, x, gb, Some(go))?;
        let vs = if shortcut.is_empty() {
            x
        } else {
            self.seq(
                shortcut,
                &branch_shapes(shortcut, shape)?,
                shape,
                x,
                gs,
                Some(go),
            )?
            .0
        };
        let y = self.val(out.len());
        self.ops.push(Op::Join {
            a: vb,
            b: vs,
            y,
            len: out.len(),
        });
        Ok((y, Some(go)))
    }
}
