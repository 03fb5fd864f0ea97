//! CPU twin of shaders/pool.wgsl: max and global average pooling, forward and backward.

/// Max pooling of `planes` h×w planes with a k×k window (floor mode) and `pad` pixels of -∞ on
/// every side. Returns y and, for each output, the flat index into x of its maximum: the first
/// one in row-major window order when several are equal.
pub fn maxpool_forward(x: &[f32], planes: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = ((h + 2 * pad - k) / stride + 1, (w + 2 * pad - k) / stride + 1);
    let mut y = Vec::with_capacity(planes * oh * ow);
    let mut arg = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        for i in 0..oh {
            for j in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for r in 0..k {
                    for s in 0..k {
                        // padded coordinates back to input ones; padding pixels are skipped
                        let (Some(row), Some(col)) = ((i * stride + r).checked_sub(pad), (j * stride + s).checked_sub(pad)) else { continue };
                        if row >= h || col >= w {
                            continue;
                        }
                        let xi = (p * h + row) * w + col;
                        if best.is_none_or(|(b, _)| x[xi] > b) {
                            best = Some((x[xi], xi));
                        }
                    }
                }
                let (b, bi) = best.unwrap();
                y.push(b);
                arg.push(bi as u32);
            }
        }
    }
    (y, arg)
}

/// dx: each output's gradient routed to its window's (first) maximum, summed over windows.
#[allow(clippy::too_many_arguments)]
pub fn maxpool_backward(x: &[f32], dy: &[f32], planes: usize, h: usize, w: usize, k: usize, stride: usize, pad: usize) -> Vec<f32> {
    let (_, arg) = maxpool_forward(x, planes, h, w, k, stride, pad);
    let mut dx = vec![0.0f64; planes * h * w];
    for (o, &a) in arg.iter().enumerate() {
        dx[a as usize] += dy[o] as f64;
    }
    dx.into_iter().map(|v| v as f32).collect()
}

/// Global average pooling: y[plane] = mean of its hw values.
pub fn avgpool_forward(x: &[f32], planes: usize, hw: usize) -> Vec<f32> {
    (0..planes).map(|p| (x[p * hw..(p + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64) as f32).collect()
}

pub fn avgpool_backward(dy: &[f32], planes: usize, hw: usize) -> Vec<f32> {
    (0..planes * hw).map(|i| (dy[i / hw] as f64 / hw as f64) as f32).collect()
}
