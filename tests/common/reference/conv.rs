//! CPU twin of shaders/conv2d.wgsl and shaders/conv_gemm.wgsl: convolutions, im2col, channel sums.

use autocompress::gpu::conv::ConvGeom;

/// Output height and width of a convolution (floor mode): (H + 2·pad − R) / stride + 1.
pub fn conv_out(geo: &ConvGeom) -> (usize, usize) {
    ((geo.h + 2 * geo.pad - geo.r) / geo.stride + 1, (geo.w + 2 * geo.pad - geo.s) / geo.stride + 1)
}

/// The flat index into x (N, C, H, W) read by tap (r, s) of output pixel (oh, ow), or None when
/// the tap falls in the zero padding.
fn tap(geo: &ConvGeom, n: usize, c: usize, oh: usize, ow: usize, r: usize, s: usize) -> Option<usize> {
    let ih = (oh * geo.stride + r) as isize - geo.pad as isize;
    let iw = (ow * geo.stride + s) as isize - geo.pad as isize;
    if ih < 0 || iw < 0 || ih >= geo.h as isize || iw >= geo.w as isize {
        return None;
    }
    Some(((n * geo.c + c) * geo.h + ih as usize) * geo.w + iw as usize)
}

/// Calls `visit(y, w, x)` with the flat indices into y (N, K, OH, OW), w (K, C, R, S) and
/// x (N, C, H, W) of every product the convolution sums (taps in the zero padding have none):
/// outputs in row-major order, each output's products in (c, r, s) order. Forward and both
/// gradients are this one index relation read three ways.
fn for_each_product(geo: &ConvGeom, mut visit: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = conv_out(geo);
    for n in 0..geo.n {
        for k in 0..geo.k {
            for i in 0..oh {
                for j in 0..ow {
                    let yi = ((n * geo.k + k) * oh + i) * ow + j;
                    for c in 0..geo.c {
                        for r in 0..geo.r {
                            for q in 0..geo.s {
                                if let Some(xi) = tap(geo, n, c, i, j, r, q) {
                                    visit(yi, ((k * geo.c + c) * geo.r + r) * geo.s + q, xi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// y (N, K, OH, OW) = conv(x (N, C, H, W), w (K, C, R, S)) + bias (K).
pub fn conv2d_forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, geo: &ConvGeom) -> Vec<f32> {
    let (oh, ow) = conv_out(geo);
    let mut y: Vec<f64> = (0..geo.n * geo.k * oh * ow).map(|yi| bias.map_or(0.0, |b| b[yi / (oh * ow) % geo.k] as f64)).collect();
    for_each_product(geo, |yi, wi, xi| y[yi] += x[xi] as f64 * w[wi] as f64);
    y.into_iter().map(|v| v as f32).collect()
}

/// dx (N, C, H, W) = the adjoint of the convolution applied to dy (N, K, OH, OW).
pub fn conv2d_backward_data(dy: &[f32], w: &[f32], geo: &ConvGeom) -> Vec<f32> {
    let mut dx = vec![0.0f64; geo.n * geo.c * geo.h * geo.w];
    for_each_product(geo, |yi, wi, xi| dx[xi] += dy[yi] as f64 * w[wi] as f64);
    dx.into_iter().map(|v| v as f32).collect()
}

/// dw (K, C, R, S) = Σ_n,pixels dy · x at the tap.
pub fn conv2d_backward_weight(x: &[f32], dy: &[f32], geo: &ConvGeom) -> Vec<f32> {
    let mut dw = vec![0.0f64; geo.k * geo.c * geo.r * geo.s];
    for_each_product(geo, |yi, wi, xi| dw[wi] += dy[yi] as f64 * x[xi] as f64);
    dw.into_iter().map(|v| v as f32).collect()
}

/// The GEMM view of images n0..n0+chunk: row j is the kept column `kept[j]` (an index into
/// c·R·S), column `img·OHW + pixel`. Layout [kept.len()][chunk·OHW], no padding.
pub fn im2col(x: &[f32], geo: &ConvGeom, kept: &[usize], n0: usize, chunk: usize) -> Vec<f32> {
    let (oh, ow) = conv_out(geo);
    let ncols = chunk * oh * ow;
    let mut col = vec![0.0; kept.len() * ncols];
    for (j, &kc) in kept.iter().enumerate() {
        let (c, r, s) = (kc / (geo.r * geo.s), (kc / geo.s) % geo.r, kc % geo.s);
        for img in 0..chunk {
            for i in 0..oh {
                for q in 0..ow {
                    if let Some(xi) = tap(geo, n0 + img, c, i, q, r, s) {
                        col[j * ncols + (img * oh + i) * ow + q] = x[xi];
                    }
                }
            }
        }
    }
    col
}

/// db[k] = Σ_n Σ_p dy[n][k][p] for dy (N, K, P).
pub fn channel_sum(dy: &[f32], n: usize, k: usize, p: usize) -> Vec<f32> {
    (0..k)
        .map(|kk| {
            let mut s = 0.0f64;
            for nn in 0..n {
                for i in 0..p {
                    s += dy[(nn * k + kk) * p + i] as f64;
                }
            }
            s as f32
        })
        .collect()
}
